//! The pre-flight of a swap: can the new build stand in for the old one on
//! the boundary? (issue 5, `ddl check`; libddl runs the same check before
//! it mirrors anything.)
//!
//! A [`Build`] is what one file says about itself: ELF facts from its
//! symbol tables, dynamic section and relocations ([`elf`]), and, when it
//! carries debug info, the prototypes and record layouts of its DWARF
//! ([`debug`]). [`check`] compares two builds on a [`Boundary`] (the
//! config's functions, or every function the old build exports) and
//! returns [`Finding`]s, each either [`Severity::Incompatible`] (mirroring
//! cannot be trusted: a call would reach a different function, or pass
//! different bytes), [`Severity::WorthReading`] (DDL copes, a human should
//! know) or a [`Severity::Note`] (what could not be compared). The exit
//! bits follow `abidiff`: 4 for worth reading, 8 for incompatible.
//!
//! The boundary is what DDL rebinds and calls, so only it is judged:
//! a changed function nobody mirrors is not a finding.

pub mod debug;
pub mod elf;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::cxx::{self, CxxDecl, CxxKind};
use crate::types::{Role, Type};

pub use debug::{CType, DebugFacts, Proto, RecordLayout};
pub use elf::{ElfFacts, Export};

/// A build as a file describes it.
#[derive(Clone, Debug)]
pub struct Build {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its ELF facts.
    pub elf: ElfFacts,
    /// Its DWARF facts, when it has debug info and they were asked for.
    pub debug: Option<DebugFacts>,
}

/// How much of a build to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Symbol tables, dynamic section, relocations: no DWARF.
    Symbols,
    /// Also the DWARF prototypes of these symbols (`None` in
    /// [`Build::read`]'s `wanted`: every external function).
    Debug,
}

impl Build {
    /// Reads the build at `path`. With [`Depth::Debug`], the prototypes of
    /// `wanted` (all external functions when `None`) and the layouts they
    /// use. `Err`: the file cannot be read, or is not an ELF file.
    pub fn read(
        path: &Path,
        depth: Depth,
        wanted: Option<&HashSet<String>>,
    ) -> Result<Build, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut b = Build::from_data(path, &data)?;
        if depth == Depth::Debug {
            b.read_debug(&data, wanted)?;
        }
        Ok(b)
    }

    /// The ELF facts of `data`, the contents of the file at `path`.
    pub fn from_data(path: &Path, data: &[u8]) -> Result<Build, String> {
        let elf = elf::read(data).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Build {
            path: path.to_path_buf(),
            elf,
            debug: None,
        })
    }

    /// Adds the DWARF facts of `data` (this build's file contents): the
    /// prototypes of `wanted` (every external function when `None`).
    pub fn read_debug(
        &mut self,
        data: &[u8],
        wanted: Option<&HashSet<String>>,
    ) -> Result<(), String> {
        if self.elf.has_debug_info {
            self.debug =
                debug::read(data, wanted).map_err(|e| format!("{}: {e}", self.path.display()))?;
        }
        Ok(())
    }

    /// The exports named `name` (every version of it).
    pub fn exports_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Export> + 'a {
        let start = self.elf.exports.partition_point(|e| e.name.as_str() < name);
        self.elf.exports[start..]
            .iter()
            .take_while(move |e| e.name == name)
    }

    /// Exported function names, with `@VER` / `@@VER` as `cxx::resolve`
    /// reads them.
    pub fn function_symbols(&self) -> Vec<String> {
        self.elf
            .exports
            .iter()
            .filter(|e| e.function)
            .map(Export::spelled)
            .collect()
    }
}

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Could not be compared (no debug info); no exit bit.
    Note,
    /// A change worth reading (exit bit 4): DDL copes with it.
    WorthReading,
    /// An incompatible change (exit bit 8): the new build cannot stand in.
    Incompatible,
}

impl Severity {
    /// Its exit bit (`abidiff`'s: 4, 8; 0 for a note).
    pub fn bit(self) -> u8 {
        match self {
            Severity::Note => 0,
            Severity::WorthReading => 4,
            Severity::Incompatible => 8,
        }
    }

    /// How a finding line starts.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::WorthReading => "worth reading",
            Severity::Incompatible => "incompatible",
        }
    }
}

/// One finding of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// What kind of change, one word (`elf-class`, `machine`, `soname`,
    /// `symbol-missing`, `symbol-added`, `prototype`, `struct-layout`,
    /// `class-size`, `vtable-slot`, `no-debug-info`, `config-layout`).
    pub kind: &'static str,
    /// The finding for a human: what, where.
    pub message: String,
    /// The config's `functions[i]` it concerns, if any.
    pub function: Option<usize>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity.label(), self.message)
    }
}

/// The exit status of a list of findings: the OR of their bits.
pub fn exit_bits(findings: &[Finding]) -> u8 {
    findings.iter().fold(0, |b, f| b | f.severity.bit())
}

/// One boundary function.
#[derive(Clone, Debug)]
pub struct BoundaryFn {
    /// The symbol (mangled for C++), without a version.
    pub symbol: String,
    /// What a human calls it: the config's key, else the symbol
    /// (demangled for C++).
    pub label: String,
    /// The config's `functions[i]`.
    pub config_index: Option<usize>,
}

/// A struct the config declares, as DDL will lay it out.
#[derive(Clone, Debug)]
pub struct ConfigStruct {
    /// Its name in `types` (the tag, or the typedef).
    pub name: String,
    /// Its size.
    pub size: usize,
    /// (field, offset), in order.
    pub fields: Vec<(String, usize)>,
    /// Some field carries an annotation that makes DDL follow it (a
    /// buffer, string, `[private]`, `[null]`, handle): the struct is
    /// captured field by field.
    pub annotated: bool,
    /// The config's `functions[i]` that first uses it.
    pub function: usize,
}

/// The boundary [`check`] judges.
#[derive(Clone, Debug, Default)]
pub struct Boundary {
    /// The functions.
    pub functions: Vec<BoundaryFn>,
    /// The C++ classes whose vtables and sizes matter (qualified).
    pub classes: Vec<String>,
    /// The structs the config declares and its signatures use.
    pub structs: Vec<ConfigStruct>,
    /// True when it comes from a config (else: every export of OLD).
    pub from_config: bool,
}

impl Boundary {
    /// The symbols whose prototypes [`check`] needs.
    pub fn symbols(&self) -> HashSet<String> {
        self.functions.iter().map(|f| f.symbol.clone()).collect()
    }
}

/// Demangled text of a C++ symbol (the symbol itself otherwise).
pub fn demangle(symbol: &str) -> String {
    if !symbol.starts_with("_Z") {
        return symbol.to_string();
    }
    cpp_demangle::Symbol::new(symbol)
        .ok()
        .and_then(|s| s.demangle(&cpp_demangle::DemangleOptions::new()).ok())
        .unwrap_or_else(|| symbol.to_string())
}

/// The class whose vtable `symbol` (`_ZTV5Shape`) is (`Shape`).
pub fn vtable_class(symbol: &str) -> Option<String> {
    let d = demangle(symbol);
    let c = d
        .strip_prefix("{vtable(")
        .and_then(|c| c.strip_suffix(")}"))
        .or_else(|| d.strip_prefix("vtable for "))?;
    Some(c.to_string())
}

/// The class part of a demangled member (`Shape::area() const` →
/// `Shape`), if it has one.
fn class_of(demangled: &str) -> Option<String> {
    let head = demangled.split('(').next()?;
    let cut = head.rfind("::")?;
    Some(head[..cut].to_string())
}

/// The boundary without a config: every function OLD exports, and the
/// classes whose vtables it exports.
pub fn boundary_of_exports(old: &Build) -> Boundary {
    let mut b = Boundary::default();
    let mut seen = BTreeSet::new();
    for e in old.elf.exports.iter().filter(|e| e.function) {
        if seen.insert(e.name.clone()) {
            b.functions.push(BoundaryFn {
                symbol: e.name.clone(),
                label: demangle(&e.name),
                config_index: None,
            });
        }
    }
    let mut classes: BTreeSet<String> = old
        .elf
        .vtables
        .keys()
        .filter_map(|v| vtable_class(v))
        .collect();
    // Classes of exported members (a namespace found this way has no
    // size in DWARF and is passed over).
    for f in &b.functions {
        if f.symbol.starts_with("_Z") {
            if let Some(c) = class_of(&f.label) {
                classes.insert(c);
            }
        }
    }
    b.classes = classes.into_iter().collect();
    b
}

/// The boundary of a config: its functions resolved in OLD (C names;
/// C++ declarations, and C prototypes of functions with C++ linkage,
/// through the demangled names, as libddl resolves them), the classes its
/// C++ declarations name, and the structs its signatures use. `Err`: a
/// function no symbol of OLD implements.
#[allow(clippy::result_large_err)]
pub fn boundary_of_config(config: &Config, old: &Build) -> Result<Boundary, ConfigError> {
    let mut b = Boundary {
        from_config: true,
        ..Boundary::default()
    };
    let symbols = old.function_symbols();
    let refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let mut classes = BTreeSet::new();
    let mut structs: BTreeMap<String, ConfigStruct> = BTreeMap::new();
    for (i, f) in config.functions.iter().enumerate() {
        if f.cxx.is_none() && old.exports_named(&f.sig.name).any(|e| e.function) {
            b.functions.push(BoundaryFn {
                symbol: f.sig.name.clone(),
                label: f.key.clone(),
                config_index: Some(i),
            });
        } else {
            let decl = match &f.cxx {
                Some(d) => Some(d.clone()),
                None => CxxDecl::parse(&f.sig.text).ok(),
            };
            let found = decl
                .as_ref()
                .map(|d| cxx::resolve(d, &refs))
                .unwrap_or_default();
            if found.is_empty() {
                return Err(config.function_error(
                    i,
                    format!(
                        "no symbol of the old build {} implements {}",
                        old.path.display(),
                        f.key
                    ),
                ));
            }
            let mut names: Vec<String> = found.into_iter().map(|s| s.mangled).collect();
            names.sort();
            names.dedup();
            for symbol in names {
                b.functions.push(BoundaryFn {
                    symbol,
                    label: f.key.clone(),
                    config_index: Some(i),
                });
            }
            if let Some(d) = decl {
                if matches!(d.kind, CxxKind::Method | CxxKind::Dtor | CxxKind::Ctor) {
                    classes.insert(d.class.clone());
                }
            }
        }
        let mut tys: Vec<&Type> = f.sig.params.iter().map(|p| &p.ty).collect();
        tys.push(&f.sig.ret);
        for t in tys {
            collect_structs(t, i, &mut structs);
        }
    }
    b.classes = classes.into_iter().collect();
    b.structs = structs.into_values().collect();
    Ok(b)
}

fn collect_structs(t: &Type, function: usize, out: &mut BTreeMap<String, ConfigStruct>) {
    match t {
        Type::Pointer { pointee, .. } => collect_structs(pointee, function, out),
        Type::Struct(s) => {
            if out.contains_key(&s.name) {
                return;
            }
            let annotated = s
                .fields
                .iter()
                .any(|f| !matches!(f.role, Role::Value | Role::Array { .. }));
            out.insert(
                s.name.clone(),
                ConfigStruct {
                    name: s.name.clone(),
                    size: s.size,
                    fields: s
                        .fields
                        .iter()
                        .map(|f| (f.name.clone(), f.offset))
                        .collect(),
                    annotated,
                    function,
                },
            );
            for f in &s.fields {
                collect_structs(&f.ty, function, out);
            }
        }
        _ => {}
    }
}

fn short(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Compares OLD and NEW on the boundary. The findings come in a fixed
/// order: ELF class and machine (when they differ nothing else is
/// compared), SONAME, missing symbols, prototypes, structs, classes,
/// vtables, added symbols, notes.
pub fn check(old: &Build, new: &Build, b: &Boundary) -> Vec<Finding> {
    let mut out = Vec::new();
    let (o, n) = (&old.elf, &new.elf);
    if o.class != n.class {
        add(
            &mut out,
            Severity::Incompatible,
            "elf-class",
            format!(
                "ELF class differs: OLD is {}, NEW is {}",
                elf::class_name(o.class),
                elf::class_name(n.class)
            ),
            None,
        );
    }
    if o.machine != n.machine {
        add(
            &mut out,
            Severity::Incompatible,
            "machine",
            format!(
                "machine differs: OLD is {}, NEW is {}",
                elf::machine_name(o.machine),
                elf::machine_name(n.machine)
            ),
            None,
        );
    }
    if !out.is_empty() {
        return out;
    }
    if o.soname != n.soname {
        let s = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".into());
        add(
            &mut out,
            Severity::WorthReading,
            "soname",
            format!("SONAME differs: OLD {}, NEW {}", s(&o.soname), s(&n.soname)),
            None,
        );
    }
    // Missing symbols, with their versions.
    for f in &b.functions {
        for e in old.exports_named(&f.symbol).filter(|e| e.function) {
            let there = new.exports_named(&f.symbol).any(|x| {
                x.function
                    && match &e.version {
                        // An unversioned reference binds to any default.
                        None => x.version.is_none() || x.default,
                        Some(v) => x.version.as_deref() == Some(v.as_str()),
                    }
            });
            if !there {
                let versions: Vec<String> =
                    new.exports_named(&f.symbol).map(Export::spelled).collect();
                let also = if versions.is_empty() {
                    String::new()
                } else {
                    format!(" (NEW has {})", versions.join(", "))
                };
                add(
                    &mut out,
                    Severity::Incompatible,
                    "symbol-missing",
                    format!(
                        "symbol {}{} is missing from NEW {}{also}",
                        e.spelled(),
                        if f.label == f.symbol {
                            String::new()
                        } else {
                            format!(" ({})", f.label)
                        },
                        short(&new.path)
                    ),
                    f.config_index,
                );
            }
        }
    }
    // Prototypes and structs passed by value (DWARF, both builds).
    let mut records: BTreeMap<String, Option<usize>> = BTreeMap::new();
    if let (Some(od), Some(nd)) = (&old.debug, &new.debug) {
        let mut done = HashSet::new();
        for f in &b.functions {
            if !done.insert(f.symbol.clone()) {
                continue;
            }
            let (Some(op), Some(np)) = (od.functions.get(&f.symbol), nd.functions.get(&f.symbol))
            else {
                continue;
            };
            if let Some(why) = proto_difference(op, np) {
                add(
                    &mut out,
                    Severity::Incompatible,
                    "prototype",
                    format!(
                        "prototype of {} changed ({why}): OLD `{}`, NEW `{}`",
                        f.label,
                        op.c_text(&f.symbol),
                        np.c_text(&f.symbol)
                    ),
                    f.config_index,
                );
            }
            let by_value = op
                .params
                .iter()
                .map(|p| &p.ty)
                .chain(std::iter::once(&op.ret))
                .filter_map(|t| t.by_value_record());
            for r in by_value {
                records.entry(r.to_string()).or_insert(f.config_index);
            }
        }
        for (r, function) in &records {
            if let (Some(ol), Some(nl)) = (od.record(r), nd.record(r)) {
                if let Some(why) = layout_difference(ol, nl) {
                    add(
                        &mut out,
                        Severity::Incompatible,
                        "struct-layout",
                        format!("{} {r}, passed by value, changed layout: {why}", ol.kind),
                        *function,
                    );
                }
            }
        }
        for s in &b.structs {
            if records.contains_key(&s.name) {
                continue;
            }
            if let (Some(ol), Some(nl)) = (od.record(&s.name), nd.record(&s.name)) {
                if let Some(why) = layout_difference(ol, nl) {
                    add(
                        &mut out,
                        Severity::Incompatible,
                        "struct-layout",
                        format!(
                            "struct {}, declared in the config, changed layout: {why}",
                            s.name
                        ),
                        Some(s.function),
                    );
                }
            }
        }
        for s in &b.structs {
            if let Some(ol) = od.record(&s.name) {
                if let Some(why) = config_difference(s, ol) {
                    add(
                        &mut out,
                        Severity::WorthReading,
                        "config-layout",
                        format!(
                            "struct {} as the config declares it differs from OLD's DWARF: {why}",
                            s.name
                        ),
                        Some(s.function),
                    );
                }
            }
        }
        for c in &b.classes {
            if let (Some(os), Some(ns)) = (od.sizes.get(c), nd.sizes.get(c)) {
                if os != ns {
                    add(
        &mut out,
                        Severity::WorthReading,
                        "class-size",
                        format!(
                            "size of class {c} changed from {os} to {ns} bytes (DDL sizes the shadow's objects from NEW)"
                        ),
                        None,
                    );
                }
            }
        }
    }
    // Vtable slots of the boundary classes (relocations; no DWARF needed).
    let boundary_syms: HashSet<&str> = b.functions.iter().map(|f| f.symbol.as_str()).collect();
    for c in &b.classes {
        let Some(vt) = cxx::vtable_symbol(c) else {
            continue;
        };
        let Some(oslots) = o.vtables.get(&vt) else {
            continue;
        };
        let nslots = n.vtables.get(&vt);
        for (i, s) in oslots.iter().enumerate() {
            let Some(s) = s else { continue };
            if b.from_config && !boundary_syms.contains(s.as_str()) {
                continue;
            }
            if s == "__cxa_pure_virtual" || s.starts_with("_ZTI") {
                continue;
            }
            let now = nslots.and_then(|v| v.iter().position(|x| x.as_deref() == Some(s.as_str())));
            if now == Some(i) {
                continue;
            }
            let whereto = match (nslots, now) {
                (None, _) => format!("NEW has no vtable for {c}"),
                (Some(_), None) => "NEW's vtable does not have it".into(),
                (Some(_), Some(j)) => format!("it is slot {j} in NEW"),
            };
            add(
                &mut out,
                Severity::Incompatible,
                "vtable-slot",
                format!(
                    "vtable slot {i} of class {c} ({}) moved: {whereto}",
                    demangle(s)
                ),
                None,
            );
        }
    }
    // Symbols added.
    let added: Vec<&Export> = n
        .exports
        .iter()
        .filter(|x| {
            !o.exports
                .iter()
                .any(|e| e.name == x.name && e.version == x.version)
        })
        .collect();
    const LISTED: usize = 10;
    for x in added.iter().take(LISTED) {
        add(
            &mut out,
            Severity::WorthReading,
            "symbol-added",
            format!("symbol {} added in NEW", x.spelled()),
            None,
        );
    }
    if added.len() > LISTED {
        add(
            &mut out,
            Severity::WorthReading,
            "symbol-added",
            format!("{} more symbols added in NEW", added.len() - LISTED),
            None,
        );
    }
    // What could not be compared.
    let missing: Vec<&Build> = [old, new]
        .into_iter()
        .filter(|x| x.debug.is_none())
        .collect();
    if !missing.is_empty() && !b.functions.is_empty() {
        let which: Vec<String> = missing
            .iter()
            .map(|x| {
                format!(
                    "{} {}",
                    if std::ptr::eq(*x, old) { "OLD" } else { "NEW" },
                    short(&x.path)
                )
            })
            .collect();
        add(
            &mut out,
            Severity::Note,
            "no-debug-info",
            format!(
                "prototypes, struct layouts and class sizes not compared: no debug info in {}",
                which.join(" and ")
            ),
            None,
        );
    }
    out
}

fn add(
    out: &mut Vec<Finding>,
    severity: Severity,
    kind: &'static str,
    message: String,
    function: Option<usize>,
) {
    out.push(Finding {
        severity,
        kind,
        message,
        function,
    })
}

/// Why two prototypes are not called the same way, if they are not.
fn proto_difference(o: &Proto, n: &Proto) -> Option<String> {
    let (oret, op) = o.canonical();
    let (nret, np) = n.canonical();
    if op.len() != np.len() {
        return Some(format!("{} parameters, now {}", op.len(), np.len()));
    }
    for (i, (a, b)) in op.iter().zip(&np).enumerate() {
        if a != b {
            return Some(format!(
                "parameter {} `{}` was `{}`, is `{}`",
                i + 1,
                n.params[i].name,
                o.params[i].ty.declare("", !o.cxx),
                n.params[i].ty.declare("", !n.cxx)
            ));
        }
    }
    if oret != nret {
        return Some(format!(
            "return type was `{}`, is `{}`",
            o.ret.declare("", !o.cxx),
            n.ret.declare("", !n.cxx)
        ));
    }
    if o.variadic != n.variadic {
        return Some("variadic in one build only".into());
    }
    None
}

/// Why two record layouts differ (size, or a field's offset), if they do.
pub fn layout_difference(o: &RecordLayout, n: &RecordLayout) -> Option<String> {
    let mut why = Vec::new();
    if o.size != n.size {
        why.push(format!("size {} -> {}", o.size, n.size));
    }
    for f in &o.fields {
        match n.fields.iter().find(|g| g.name == f.name) {
            None => why.push(format!("field {} removed", f.name)),
            Some(g) if g.offset != f.offset || g.bits != f.bits => why.push(format!(
                "field {} offset {} -> {}",
                f.name, f.offset, g.offset
            )),
            Some(g) if g.ty.canonical() != f.ty.canonical() => why.push(format!(
                "field {} type `{}` -> `{}`",
                f.name,
                f.ty.declare("", !o.cxx),
                g.ty.declare("", !n.cxx)
            )),
            _ => {}
        }
    }
    for g in &n.fields {
        if !o.fields.iter().any(|f| f.name == g.name) {
            why.push(format!("field {} added at offset {}", g.name, g.offset));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

fn config_difference(s: &ConfigStruct, l: &RecordLayout) -> Option<String> {
    let mut why = Vec::new();
    if s.size as u64 != l.size {
        why.push(format!("size {} in the config, {} in OLD", s.size, l.size));
    }
    for (name, off) in &s.fields {
        if let Some(g) = l.fields.iter().find(|g| &g.name == name) {
            if g.offset != *off as u64 {
                why.push(format!(
                    "field {name} at {off} in the config, {} in OLD",
                    g.offset
                ));
            }
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// The largest `.debug_info` libddl's gate reads at start-up (bytes);
/// past it only symbol tables and relocations are compared there (`ddl
/// check` reads any size).
pub const GATE_DWARF_MAX: u64 = 64 << 20;

/// libddl's gate: the check of OLD against NEW on the config's boundary,
/// reading DWARF only when both files carry it. `Ok(())`: nothing
/// incompatible (or a file could not be read: the loader says why later).
/// `Err((function, why))`: the incompatible findings, joined with `; `,
/// and the config's `functions[i]` of the first when it has one.
pub fn gate(config: &Config, old_path: &Path) -> Result<(), (Option<usize>, String)> {
    // Each file is read once; a file that cannot be read or parsed is
    // left to the loader, which reports it as it always has.
    let (Ok(old_data), Ok(new_data)) = (std::fs::read(old_path), std::fs::read(&config.new)) else {
        return Ok(());
    };
    let (Ok(mut old), Ok(mut new)) = (
        Build::from_data(old_path, &old_data),
        Build::from_data(&config.new, &new_data),
    ) else {
        return Ok(());
    };
    let Ok(b) = boundary_of_config(config, &old) else {
        return Ok(()); // libddl's own resolution names the function
    };
    let small = |x: &Build| x.elf.debug_info_size <= GATE_DWARF_MAX;
    // Both or neither: a prototype needs DWARF on both sides.
    if old.elf.class == new.elf.class
        && old.elf.has_debug_info
        && new.elf.has_debug_info
        && small(&old)
        && small(&new)
    {
        let wanted = b.symbols();
        let _ = old.read_debug(&old_data, Some(&wanted));
        let _ = new.read_debug(&new_data, Some(&wanted));
    }
    let bad: Vec<Finding> = check(&old, &new, &b)
        .into_iter()
        .filter(|f| f.severity == Severity::Incompatible)
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let why: Vec<&str> = bad.iter().map(|f| f.message.as_str()).collect();
    Err((
        bad[0].function,
        format!(
            "ddl check calls {} and {} incompatible: {}",
            old_path.display(),
            config.new.display(),
            why.join("; ")
        ),
    ))
}
