//! `ddl inspect BUILD [--config]`: what a build exports, as a developer
//! describing its boundary needs it (docs/CHECK.md).
//!
//! Every exported function, with its C prototype from the build's DWARF
//! when it has debug info, else its C++ declaration from the demangled
//! name (a C name alone: no prototype); the layouts of the structs those
//! prototypes use; class sizes; exported vtables. `--config` prints a
//! draft config instead (docs/CONFIG.md), whose pointer parameters carry
//! `FIXME` where a buffer size must be written: the config parser refuses
//! the draft, naming each such place, until they are filled in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use arbiter::abi::{self, Build, CType, Depth, Proto, RecordLayout};
use serde_json::Value;

/// Arguments of `ddl inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The build (a shared object) to describe.
    build: PathBuf,
    /// Print a draft config for this build instead (buffer sizes marked FIXME).
    #[arg(long)]
    config: bool,
}

/// Runs `ddl inspect`; returns the exit status (0, or 1 when the build
/// cannot be read).
pub fn main(args: Args) -> u8 {
    let build = match Build::read(&args.build, Depth::Debug, None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ddl inspect: error: {e}");
            return 1;
        }
    };
    if args.config {
        println!("{}", draft(&build));
    } else {
        print!("{}", describe(&build));
    }
    0
}

/// The exported functions, one entry per name: (symbol, versions spelled).
fn exported_functions(b: &Build) -> Vec<(String, Vec<String>)> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in b.elf.exports.iter().filter(|e| e.function) {
        let v = out.entry(e.name.clone()).or_default();
        if let Some(ver) = &e.version {
            v.push(format!("{}{ver}", if e.default { "@@" } else { "@" }));
        }
    }
    out.into_iter().collect()
}

/// The human description.
fn describe(b: &Build) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let e = &b.elf;
    let _ = writeln!(s, "build: {}", b.path.display());
    let _ = writeln!(
        s,
        "  {} {}, SONAME {}, debug info: {}",
        abi::elf::class_name(e.class),
        abi::elf::machine_name(e.machine),
        e.soname.as_deref().unwrap_or("(none)"),
        match (&b.debug, e.has_debug_info) {
            (Some(_), _) => "DWARF (prototypes below)",
            (None, true) => "present but unreadable (compressed?): names only",
            (None, false) => "none (C++ declarations from demangled names, C names only)",
        }
    );
    let fns = exported_functions(b);
    let _ = writeln!(s, "functions ({}):", fns.len());
    let mut used = BTreeSet::new();
    for (sym, versions) in &fns {
        let text = match b.debug.as_ref().and_then(|d| d.functions.get(sym)) {
            Some(p) => {
                for t in p.params.iter().map(|p| &p.ty).chain([&p.ret]) {
                    if let Some(r) = t.record() {
                        used.insert(r.to_string());
                    }
                }
                if p.cxx {
                    p.cxx_text()
                } else {
                    p.c_text(sym)
                }
            }
            None if sym.starts_with("_Z") => abi::demangle(sym),
            None => format!("{sym}  (no prototype: no debug info)"),
        };
        let mut line = format!("  {text}");
        if sym.starts_with("_Z") {
            let _ = write!(line, "  [{sym}]");
        }
        if !versions.is_empty() {
            let _ = write!(line, "  {}", versions.join(" "));
        }
        let _ = writeln!(s, "{line}");
    }
    if let Some(d) = &b.debug {
        // The records used, and the records they contain.
        let mut todo: Vec<String> = used.into_iter().collect();
        let mut seen = BTreeSet::new();
        while let Some(k) = todo.pop() {
            if !seen.insert(k.clone()) {
                continue;
            }
            if let Some(l) = d.structs.get(&k) {
                for f in &l.fields {
                    if let Some(r) = f.ty.record() {
                        todo.push(r.to_string());
                    }
                }
            }
        }
        let layouts: Vec<&RecordLayout> = seen.iter().filter_map(|k| d.structs.get(k)).collect();
        if !layouts.is_empty() {
            let _ = writeln!(s, "structs ({}):", layouts.len());
            for l in layouts {
                let _ = writeln!(s, "  {} {} ({} bytes)", l.kind, l.key, l.size);
                for f in &l.fields {
                    let decl = if f.name.starts_with('<') {
                        f.name.trim_matches(|c| c == '<' || c == '>').to_string()
                    } else {
                        f.ty.declare(&f.name, !l.cxx)
                    };
                    match f.bits {
                        Some((bit, n)) => {
                            let _ = writeln!(s, "    {:>4}  {decl} : {n}  (bit {bit})", f.offset);
                        }
                        None => {
                            let _ = writeln!(s, "    {:>4}  {decl}", f.offset);
                        }
                    }
                }
            }
        }
        // Classes of C++ members.
        let classes: BTreeSet<String> = fns
            .iter()
            .filter(|(sym, _)| sym.starts_with("_Z"))
            .filter_map(|(sym, _)| {
                let t = abi::demangle(sym);
                let head = t.split('(').next()?.to_string();
                Some(head[..head.rfind("::")?].to_string())
            })
            .filter(|c| d.sizes.contains_key(c))
            .collect();
        if !classes.is_empty() {
            let _ = writeln!(s, "classes ({}):", classes.len());
            for c in classes {
                let _ = writeln!(s, "  {c} ({} bytes)", d.sizes[&c]);
            }
        }
    }
    if !e.vtables.is_empty() {
        let _ = writeln!(s, "vtables ({}):", e.vtables.len());
        for (v, slots) in &e.vtables {
            let class = abi::vtable_class(v).unwrap_or_else(|| abi::demangle(v));
            let _ = writeln!(s, "  {class} [{v}]");
            for (i, slot) in slots.iter().enumerate() {
                if let Some(x) = slot {
                    if !x.starts_with("_ZTI") {
                        let _ = writeln!(s, "    [{i}] {}", abi::demangle(x));
                    }
                }
            }
        }
    }
    s
}

/// `<stdint.h>` and kin: names the config knows without a typedef.
const BUILTIN_TYPEDEFS: &[&str] = &[
    "bool",
    "_Bool",
    "int8_t",
    "uint8_t",
    "int16_t",
    "uint16_t",
    "int32_t",
    "uint32_t",
    "int64_t",
    "uint64_t",
    "size_t",
    "ssize_t",
    "ptrdiff_t",
    "intptr_t",
    "uintptr_t",
    "wchar_t",
    "pid_t",
    "uid_t",
    "gid_t",
    "mode_t",
    "socklen_t",
    "off_t",
    "off64_t",
    "time_t",
    "intmax_t",
    "uintmax_t",
];

/// The placeholder a draft puts where a buffer size must go.
const FIXME: &str = "FIXME";

/// The annotation a pointer parameter or field gets in a draft: `None`
/// when the config's default is right (strings, function pointers,
/// pointers to records DWARF only declares, which the config treats as
/// opaque).
fn placeholder(t: &CType, known: &dyn Fn(&str) -> bool) -> Option<String> {
    let CType::Pointer(to) = t.strip() else {
        return None;
    };
    let is_const = matches!(**to, CType::Const(_));
    match to.strip() {
        CType::Base { name, .. }
            if name.contains("char") && !name.contains("unsigned") && !name.contains("signed") =>
        {
            None
        }
        CType::Function { .. } => None,
        CType::Record { key, .. } if !known(key) => None,
        _ => Some(if is_const {
            format!("[in {FIXME}]")
        } else {
            format!("[inout {FIXME}]")
        }),
    }
}

/// Appends `annot` to the parameter or field declaration `decl` (`T *name`
/// → `T *name [in FIXME]`), where the config reads annotations.
fn annotate(decl: String, annot: Option<String>) -> String {
    match annot {
        Some(a) => format!("{decl} {a}"),
        None => decl,
    }
}

/// A draft config for `b`, as JSON text.
fn draft(b: &Build) -> String {
    let d = b.debug.as_ref();
    let old = b
        .elf
        .soname
        .clone()
        .or_else(|| b.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let known = |k: &str| d.is_some_and(|d| d.structs.contains_key(k));
    let mut functions = Vec::new();
    let mut records = BTreeSet::new();
    let mut opaque = BTreeSet::new();
    let mut typedefs: BTreeMap<String, CType> = BTreeMap::new();
    let mut cxx_records = BTreeSet::new();
    // A constructor's or destructor's variants (C1/C2, D0/D1/D2) demangle
    // alike; DWARF describes one of them (the others are aliases).
    let described: BTreeSet<String> = d
        .map(|d| d.functions.keys().map(|k| abi::demangle(k)).collect())
        .unwrap_or_default();
    for (sym, _) in exported_functions(b) {
        let Some(p) = d.and_then(|d| d.functions.get(&sym)) else {
            if sym.starts_with("_Z") && described.contains(&abi::demangle(&sym)) {
                continue;
            }
            if sym.starts_with("_Z") {
                // A C++ declaration without its return type: the user
                // writes it in (the config parser refuses FIXME).
                functions.push(Value::String(format!("{FIXME} {}", abi::demangle(&sym))));
            } else {
                functions.push(Value::String(format!("{FIXME} {sym}({FIXME})")));
            }
            continue;
        };
        if p.cxx && sym.starts_with("_Z") {
            // A C++ declaration (CONFIG.md, "C++, as implemented"); the
            // variants of a constructor or destructor are one.
            let text = p.cxx_text_with(&|q| {
                annotate(q.ty.declare(&q.name, false), placeholder(&q.ty, &known))
            });
            if !functions.iter().any(|f| f.as_str() == Some(text.as_str())) {
                functions.push(Value::String(text));
            }
            // Classes passed by value or by reference are declared.
            for q in p.params.iter().filter(|q| !q.artificial) {
                let inner = match q.ty.strip() {
                    CType::Reference(t) => t.strip(),
                    t => t,
                };
                if let CType::Record { key, .. } = inner {
                    cxx_records.insert(key.clone());
                }
            }
            continue;
        }
        for t in p.params.iter().map(|p| &p.ty).chain([&p.ret]) {
            collect(t, d.unwrap(), &mut records, &mut opaque, &mut typedefs);
        }
        functions.push(Value::String(prototype(p, &sym, &known)));
    }
    let mut types = Vec::new();
    for r in &opaque {
        types.push(Value::String(format!("struct {r};")));
    }
    if let Some(d) = d {
        let mut emitted = BTreeSet::new();
        for r in &records {
            emit_record(r, d, &known, &mut emitted, &mut types);
        }
    }
    // C++ classes by value or reference: `typedef struct Vec { … } Vec;`
    // (a class with a vtable or bases is left for the user to write).
    for key in &cxx_records {
        let Some(l) = d.and_then(|d| d.structs.get(key)) else {
            continue;
        };
        if l.fields
            .iter()
            .any(|f| f.name.starts_with('<') || f.name.starts_with("_vptr"))
        {
            continue;
        }
        let c = arbiter::cxx::c_type_name(key);
        let fields: Vec<String> = l
            .fields
            .iter()
            .map(|f| format!("{};", f.ty.declare(&f.name, false)))
            .collect();
        types.push(Value::String(format!(
            "typedef struct {c} {{ {} }} {c};",
            fields.join(" ")
        )));
    }
    for (name, target) in &typedefs {
        types.push(Value::String(format!(
            "typedef {};",
            target.declare(name, true)
        )));
    }
    // Written by hand so that the keys come in the order of CONFIG.md.
    let list = |v: &[Value]| {
        if v.is_empty() {
            return "[]".to_string();
        }
        let items: Vec<String> = v.iter().map(|x| format!("    {x}")).collect();
        format!("[\n{}\n  ]", items.join(",\n"))
    };
    format!(
        "{{\n  \"old\": {},\n  \"new\": {},\n  \"types\": {},\n  \"functions\": {}\n}}",
        Value::String(old.clone()),
        Value::String(format!("{FIXME}: path of the new build of {old}")),
        list(&types),
        list(&functions)
    )
}

/// Records, opaque records and typedefs a type uses.
fn collect(
    t: &CType,
    d: &abi::DebugFacts,
    records: &mut BTreeSet<String>,
    opaque: &mut BTreeSet<String>,
    typedefs: &mut BTreeMap<String, CType>,
) {
    match t {
        // The config knows `<stdint.h>` names itself: not what they are
        // made of (`__int32_t`).
        CType::Typedef { name, target } if !BUILTIN_TYPEDEFS.contains(&name.as_str()) => {
            typedefs.insert(name.clone(), (**target).clone());
            collect(target, d, records, opaque, typedefs);
        }
        CType::Const(t)
        | CType::Volatile(t)
        | CType::Pointer(t)
        | CType::Reference(t)
        | CType::Array(t, _) => collect(t, d, records, opaque, typedefs),
        CType::Function { ret, params, .. } => {
            collect(ret, d, records, opaque, typedefs);
            for p in params {
                collect(p, d, records, opaque, typedefs);
            }
        }
        CType::Record { key, .. } => match d.structs.get(key) {
            Some(l) => {
                if records.insert(key.clone()) {
                    for f in &l.fields {
                        collect(&f.ty, d, records, opaque, typedefs);
                    }
                }
            }
            None => {
                opaque.insert(key.clone());
            }
        },
        _ => {}
    }
}

/// The draft prototype of `p`: pointer parameters annotated with FIXME.
fn prototype(p: &Proto, sym: &str, known: &dyn Fn(&str) -> bool) -> String {
    let mut params: Vec<String> = p
        .params
        .iter()
        .map(|q| annotate(q.ty.declare(&q.name, true), placeholder(&q.ty, known)))
        .collect();
    if p.variadic {
        params.push("...".into());
    }
    if params.is_empty() {
        params.push("void".into());
    }
    p.ret
        .declare(&format!("{sym}({})", params.join(", ")), true)
}

/// Emits `key`'s declaration after those of the records it contains by
/// value.
fn emit_record(
    key: &str,
    d: &abi::DebugFacts,
    known: &dyn Fn(&str) -> bool,
    emitted: &mut BTreeSet<String>,
    out: &mut Vec<Value>,
) {
    if !emitted.insert(key.to_string()) {
        return;
    }
    let Some(l) = d.structs.get(key) else { return };
    for f in &l.fields {
        if let Some(r) = f.ty.by_value_record() {
            emit_record(r, d, known, emitted, out);
        }
    }
    let fields: Vec<String> = l
        .fields
        .iter()
        .map(|f| {
            let decl = annotate(f.ty.declare(&f.name, true), placeholder(&f.ty, known));
            match f.bits {
                Some((_, n)) => format!("{decl} : {n};"),
                None => format!("{decl};"),
            }
        })
        .collect();
    out.push(Value::String(format!(
        "{} {} {{ {} }}",
        l.kind,
        l.key,
        fields.join(" ")
    )));
}
