//! What a build's DWARF says about its boundary: the prototype of each
//! exported function (return type, parameters with their names and C
//! types), and the layout of every struct, union and class those
//! prototypes use (size, each field's offset and type), read with
//! `gimli` from the file's own `.debug_info` (DWARF 2 to 5).
//!
//! A function is found by its symbol: `DW_AT_linkage_name` (C++), else
//! `DW_AT_name` of an external `DW_TAG_subprogram` (C). A definition that
//! refers to its declaration (`DW_AT_specification`, a C++ method defined
//! out of its class) or to an abstract instance (`DW_AT_abstract_origin`,
//! a function also inlined elsewhere) takes its names and types from
//! there. Types are kept as a small tree ([`CType`]) so that they can be
//! written back as C declarations (`const struct point *p`,
//! `int (*cb)(int)`) and compared with typedefs and qualifiers set aside.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use gimli::{AttributeValue, UnitOffset};

type R<'a> = crate::dwarf::Reader<'a>;

/// A C (or C++) type as DWARF describes it.
#[derive(Clone, Debug, PartialEq)]
pub enum CType {
    /// `void`.
    Void,
    /// A base type (`int`, `long unsigned int`, `double`, `_Bool`).
    Base {
        /// Its DWARF name.
        name: String,
        /// `DW_AT_byte_size`.
        size: u64,
    },
    /// An enumeration (`DW_AT_byte_size` bytes).
    Enum {
        /// Its tag, if named.
        name: Option<String>,
        /// Its size.
        size: u64,
    },
    /// A struct, union or class, by name: its layout is in
    /// [`DebugFacts::structs`] under `key`.
    Record {
        /// `struct`, `union` or `class`.
        kind: &'static str,
        /// The qualified tag (`point`, `tally::Counter`), or the name of
        /// the typedef that names an anonymous one.
        key: String,
    },
    /// A typedef of another type.
    Typedef {
        /// The typedef's name.
        name: String,
        /// What it names.
        target: Box<CType>,
    },
    /// `T *`.
    Pointer(Box<CType>),
    /// `T &` (C++; `&&` too).
    Reference(Box<CType>),
    /// `const T`.
    Const(Box<CType>),
    /// `volatile T`.
    Volatile(Box<CType>),
    /// `T [N]` (`None`: size not given).
    Array(Box<CType>, Option<u64>),
    /// A function type (behind a pointer: a function pointer).
    Function {
        /// Its return type.
        ret: Box<CType>,
        /// Its parameter types.
        params: Vec<CType>,
        /// Ends with `...`.
        variadic: bool,
    },
    /// Something this reader does not follow (a type in another unit).
    Unknown,
}

impl CType {
    /// The type with typedefs and `const`/`volatile` removed at the top.
    pub fn strip(&self) -> &CType {
        match self {
            CType::Typedef { target, .. } => target.strip(),
            CType::Const(t) | CType::Volatile(t) => t.strip(),
            t => t,
        }
    }

    /// The type as the ABI sees it: typedefs resolved and qualifiers
    /// dropped everywhere, parameter names absent. Two prototypes whose
    /// types have equal canonical forms are called the same way.
    pub fn canonical(&self) -> String {
        match self.strip() {
            CType::Void => "void".into(),
            CType::Base { name, size } => format!("{name}:{size}"),
            CType::Enum { size, .. } => format!("enum:{size}"),
            CType::Record { kind, key } => format!("{kind} {key}"),
            CType::Pointer(t) => format!("{}*", t.canonical()),
            CType::Reference(t) => format!("{}&", t.canonical()),
            CType::Array(t, n) => format!(
                "{}[{}]",
                t.canonical(),
                n.map(|n| n.to_string()).unwrap_or_default()
            ),
            CType::Function {
                ret,
                params,
                variadic,
            } => {
                let p: Vec<String> = params.iter().map(CType::canonical).collect();
                format!(
                    "{}({}{})",
                    ret.canonical(),
                    p.join(","),
                    if *variadic { ",..." } else { "" }
                )
            }
            CType::Unknown => "?".into(),
            CType::Typedef { .. } | CType::Const(_) | CType::Volatile(_) => unreachable!(),
        }
    }

    /// A declaration of `name` with this type, in C syntax (`name` may be
    /// empty for an abstract declarator): `const char *s`, `int (*cb)(int)`,
    /// `double v[4]`. `c_tags`: write `struct`/`union`/`enum` before tags
    /// (C; C++ names classes without them).
    pub fn declare(&self, name: &str, c_tags: bool) -> String {
        spell(self, name.to_string(), c_tags).trim().to_string()
    }

    /// The record this type is or points to (through typedefs, qualifiers,
    /// pointers, references and arrays).
    pub fn record(&self) -> Option<&str> {
        match self.strip() {
            CType::Record { key, .. } => Some(key),
            CType::Pointer(t) | CType::Reference(t) | CType::Array(t, _) => t.record(),
            _ => None,
        }
    }

    /// The record passed by value (the type itself, through typedefs and
    /// qualifiers), if it is one.
    pub fn by_value_record(&self) -> Option<&str> {
        match self.strip() {
            CType::Record { key, .. } => Some(key),
            _ => None,
        }
    }
}

fn leaf(t: &CType, c_tags: bool) -> String {
    match t {
        CType::Void => "void".into(),
        CType::Base { name, .. } => name.clone(),
        CType::Enum { name, .. } => match (name, c_tags) {
            (Some(n), true) => format!("enum {n}"),
            (Some(n), false) => n.clone(),
            (None, _) => "int".into(),
        },
        CType::Record { kind, key } if c_tags => format!("{kind} {key}"),
        CType::Record { key, .. } => key.clone(),
        CType::Typedef { name, .. } => name.clone(),
        _ => "void".into(),
    }
}

fn spell(t: &CType, inner: String, c_tags: bool) -> String {
    match t {
        CType::Pointer(to) | CType::Reference(to) => {
            let star = if matches!(t, CType::Pointer(_)) {
                "*"
            } else {
                "&"
            };
            match &**to {
                CType::Array(..) | CType::Function { .. } => {
                    spell(to, format!("({star}{inner})"), c_tags)
                }
                _ => spell(to, format!("{star}{inner}"), c_tags),
            }
        }
        CType::Const(to) | CType::Volatile(to) => {
            let q = if matches!(t, CType::Const(_)) {
                "const"
            } else {
                "volatile"
            };
            match &**to {
                CType::Pointer(_) | CType::Reference(_) => {
                    spell(to, format!(" {q} {inner}"), c_tags)
                }
                _ => format!("{q} {}", spell(to, inner, c_tags)),
            }
        }
        CType::Array(elem, n) => spell(
            elem,
            format!("{inner}[{}]", n.map(|n| n.to_string()).unwrap_or_default()),
            c_tags,
        ),
        CType::Function {
            ret,
            params,
            variadic,
        } => {
            let mut p: Vec<String> = params.iter().map(|p| p.declare("", c_tags)).collect();
            if *variadic {
                p.push("...".into());
            }
            if p.is_empty() {
                p.push("void".into());
            }
            spell(ret, format!("{inner}({})", p.join(", ")), c_tags)
        }
        CType::Unknown => format!("void /* ? */ {inner}"),
        other => {
            if inner.is_empty() {
                leaf(other, c_tags)
            } else if inner.starts_with('*') || inner.starts_with('&') || inner.starts_with('(') {
                format!("{} {inner}", leaf(other, c_tags))
            } else {
                format!("{} {}", leaf(other, c_tags), inner.trim_start())
            }
        }
    }
}

/// One parameter of a prototype.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtoParam {
    /// Its name (`argN` when DWARF gives none).
    pub name: String,
    /// Its type.
    pub ty: CType,
    /// `this` and other parameters the compiler adds (`DW_AT_artificial`).
    pub artificial: bool,
}

/// A function's prototype from DWARF.
#[derive(Clone, Debug, PartialEq)]
pub struct Proto {
    /// The name as the source writes it, qualified for C++
    /// (`Shape::area`).
    pub name: String,
    /// The return type.
    pub ret: CType,
    /// The parameters, `this` first for a C++ member function.
    pub params: Vec<ProtoParam>,
    /// Ends with `...`.
    pub variadic: bool,
    /// The unit is C++ (`DW_LANG_C_plus_plus*`).
    pub cxx: bool,
    /// A virtual member function (`DW_AT_virtuality`).
    pub is_virtual: bool,
}

impl Proto {
    /// The C prototype: `int calc_add(int a, int b)`. For C++ the
    /// artificial `this` is written as a first parameter named `this`.
    pub fn c_text(&self, symbol: &str) -> String {
        let name = if self.cxx { &self.name } else { symbol };
        let mut p: Vec<String> = self
            .params
            .iter()
            .map(|p| p.ty.declare(&p.name, !self.cxx))
            .collect();
        if self.variadic {
            p.push("...".into());
        }
        if p.is_empty() {
            p.push("void".into());
        }
        self.ret
            .declare(&format!("{name}({})", p.join(", ")), !self.cxx)
    }

    /// The C++ declaration: `double Shape::area() const`, `this` left
    /// out (`const` when it points to const), no return type for a
    /// constructor or destructor.
    pub fn cxx_text(&self) -> String {
        self.cxx_text_with(&|p| p.ty.declare(&p.name, false))
    }

    /// [`Proto::cxx_text`] with each parameter written by `param`; `virtual`
    /// and `static` (a qualified function without `this`) as a config
    /// writes them.
    pub fn cxx_text_with(&self, param: &dyn Fn(&ProtoParam) -> String) -> String {
        let mut params = self.params.as_slice();
        let mut is_const = false;
        let mut has_this = false;
        if let Some(first) = params.first() {
            if first.artificial {
                if let CType::Pointer(to) = first.ty.strip() {
                    is_const = matches!(**to, CType::Const(_));
                }
                params = &params[1..];
                has_this = true;
            }
        }
        let mut p: Vec<String> = params.iter().map(param).collect();
        if self.variadic {
            p.push("...".into());
        }
        let last = self.name.rsplit("::").next().unwrap_or("");
        let class_last = self.name.rsplit("::").nth(1).unwrap_or("");
        let special = !class_last.is_empty()
            && (last == class_last || last.strip_prefix('~') == Some(class_last));
        let head = format!(
            "{}({}){}",
            self.name,
            p.join(", "),
            if is_const { " const" } else { "" }
        );
        let text = if special {
            head
        } else {
            self.ret.declare(&head, false)
        };
        if self.is_virtual {
            format!("virtual {text}")
        } else if !has_this && !special && !class_last.is_empty() {
            format!("static {text}")
        } else {
            text
        }
    }

    /// The canonical form of the call: return and parameter types.
    pub fn canonical(&self) -> (String, Vec<String>) {
        (
            self.ret.canonical(),
            self.params.iter().map(|p| p.ty.canonical()).collect(),
        )
    }
}

/// One field of a record's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldLayout {
    /// Its name (`<base NAME>` for a C++ base class).
    pub name: String,
    /// Byte offset from the record's start.
    pub offset: u64,
    /// For a bit-field: (bit offset from the record's start, bit size).
    pub bits: Option<(u64, u64)>,
    /// Its type.
    pub ty: CType,
}

/// A struct, union or class layout.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordLayout {
    /// `struct`, `union` or `class`.
    pub kind: &'static str,
    /// Its key (qualified tag, or the typedef naming an anonymous one).
    pub key: String,
    /// `sizeof`.
    pub size: u64,
    /// Fields (data members and bases), in order.
    pub fields: Vec<FieldLayout>,
    /// The unit is C++.
    pub cxx: bool,
}

impl RecordLayout {
    /// The C declaration of this record (`struct point { double x; double y; }`).
    pub fn c_text(&self) -> String {
        let f: Vec<String> = self
            .fields
            .iter()
            .filter(|f| !f.name.starts_with('<'))
            .map(|f| {
                let d = f.ty.declare(&f.name, !self.cxx);
                match f.bits {
                    Some((_, n)) => format!("{d} : {n};"),
                    None => format!("{d};"),
                }
            })
            .collect();
        format!("{} {} {{ {} }}", self.kind, self.key, f.join(" "))
    }
}

/// The DWARF facts of one build.
#[derive(Clone, Debug, Default)]
pub struct DebugFacts {
    /// Prototypes by symbol name (mangled for C++).
    pub functions: BTreeMap<String, Proto>,
    /// Layouts of the records those prototypes use (by value, behind
    /// pointers, and the records those contain), by key.
    pub structs: BTreeMap<String, RecordLayout>,
    /// Typedef names of records (`Vec` → `Vec`, `point_t` → `point`).
    pub typedefs: BTreeMap<String, String>,
    /// Sizes of every class/struct defined with a name (qualified), for
    /// the classes of a C++ boundary.
    pub sizes: BTreeMap<String, u64>,
}

impl DebugFacts {
    /// The layout of the record a config or a user names: by key, else by
    /// a typedef of it.
    pub fn record(&self, name: &str) -> Option<&RecordLayout> {
        self.structs
            .get(name)
            .or_else(|| self.structs.get(self.typedefs.get(name)?))
    }
}

/// Reads the DWARF of the ELF file in `data`. `wanted`: the symbols whose
/// prototypes are needed (`None`: every external function). `Ok(None)`:
/// no (uncompressed) `.debug_info`.
pub fn read(data: &[u8], wanted: Option<&HashSet<String>>) -> Result<Option<DebugFacts>, String> {
    crate::dwarf::with_dwarf(data, |dwarf| facts_of(dwarf, wanted))
}

fn facts_of(
    dwarf: &gimli::Dwarf<R<'_>>,
    wanted: Option<&HashSet<String>>,
) -> Result<DebugFacts, String> {
    let mut facts = DebugFacts::default();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| e.to_string())? {
        let unit = dwarf.unit(header).map_err(|e| e.to_string())?;
        let mut r = UnitReader::new(dwarf, &unit)?;
        r.scan()?;
        r.functions(wanted, &mut facts)?;
        for (k, v) in r.sizes {
            facts.sizes.entry(k).or_insert(v);
        }
    }
    Ok(facts)
}

/// What one entry is called and where it sits.
#[derive(Clone, Debug)]
struct Named {
    qualified: String,
}

struct UnitReader<'d, 'a> {
    dwarf: &'d gimli::Dwarf<R<'a>>,
    unit: &'d gimli::Unit<R<'a>>,
    cxx: bool,
    /// Qualified names of named entries.
    names: HashMap<UnitOffset, Named>,
    /// Subprograms, in order.
    subprograms: Vec<UnitOffset>,
    sizes: BTreeMap<String, u64>,
    types: HashMap<UnitOffset, CType>,
}

fn err(e: gimli::Error) -> String {
    e.to_string()
}

impl<'d, 'a> UnitReader<'d, 'a> {
    fn new(dwarf: &'d gimli::Dwarf<R<'a>>, unit: &'d gimli::Unit<R<'a>>) -> Result<Self, String> {
        let mut cxx = false;
        let mut tree = unit.entries_tree(None).map_err(err)?;
        let root = tree.root().map_err(err)?;
        if let Some(AttributeValue::Language(l)) = root
            .entry()
            .attr_value(gimli::DW_AT_language)
            .map_err(err)?
        {
            cxx = matches!(
                l,
                gimli::DW_LANG_C_plus_plus
                    | gimli::DW_LANG_C_plus_plus_03
                    | gimli::DW_LANG_C_plus_plus_11
                    | gimli::DW_LANG_C_plus_plus_14
            ) || l.0 == 0x2a /* DW_LANG_C_plus_plus_17 */ || l.0 == 0x2b /* _20 */;
        }
        Ok(UnitReader {
            dwarf,
            unit,
            cxx,
            names: HashMap::new(),
            subprograms: Vec::new(),
            sizes: BTreeMap::new(),
            types: HashMap::new(),
        })
    }

    fn string(&self, v: AttributeValue<R<'a>>) -> Option<String> {
        self.dwarf
            .attr_string(self.unit, v)
            .ok()
            .map(|s| s.to_string_lossy().into_owned())
    }

    fn name_of(&self, e: &gimli::DebuggingInformationEntry<'_, '_, R<'a>>) -> Option<String> {
        self.string(e.attr_value(gimli::DW_AT_name).ok()??)
    }

    /// One walk over the unit: qualified names, subprograms, class sizes.
    fn scan(&mut self) -> Result<(), String> {
        let mut tree = self.unit.entries_tree(None).map_err(err)?;
        let root = tree.root().map_err(err)?;
        let mut path = Vec::new();
        self.scan_node(root, &mut path)
    }

    fn scan_node(
        &mut self,
        node: gimli::EntriesTreeNode<'_, '_, '_, R<'a>>,
        path: &mut Vec<String>,
    ) -> Result<(), String> {
        let mut children = node.children();
        while let Some(child) = children.next().map_err(err)? {
            let e = child.entry();
            let tag = e.tag();
            let name = self.name_of(e);
            let qualified = match &name {
                Some(n) if !path.is_empty() => format!("{}::{n}", path.join("::")),
                Some(n) => n.clone(),
                None => String::new(),
            };
            if name.is_some() {
                self.names.insert(
                    e.offset(),
                    Named {
                        qualified: qualified.clone(),
                    },
                );
            }
            let record = matches!(
                tag,
                gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type
            );
            if record && name.is_some() {
                let decl = matches!(
                    e.attr_value(gimli::DW_AT_declaration).map_err(err)?,
                    Some(AttributeValue::Flag(true))
                );
                if !decl {
                    if let Some(size) = e
                        .attr_value(gimli::DW_AT_byte_size)
                        .map_err(err)?
                        .and_then(|v| v.udata_value())
                    {
                        self.sizes.entry(qualified.clone()).or_insert(size);
                    }
                }
            }
            if tag == gimli::DW_TAG_subprogram {
                self.subprograms.push(e.offset());
            }
            let scope = tag == gimli::DW_TAG_namespace || record;
            if scope {
                let pushed = name.is_some();
                if let Some(n) = name {
                    path.push(n);
                }
                self.scan_node(child, path)?;
                if pushed {
                    path.pop();
                }
            }
        }
        Ok(())
    }

    fn reference(&self, v: Option<AttributeValue<R<'a>>>) -> Option<UnitOffset> {
        match v? {
            AttributeValue::UnitRef(o) => Some(o),
            _ => None,
        }
    }

    /// The chain: the entry, its abstract origin, their specification.
    fn chain(&self, at: UnitOffset) -> Result<Vec<UnitOffset>, String> {
        let mut out = vec![at];
        let mut cur = at;
        for _ in 0..4 {
            let e = self.unit.entry(cur).map_err(err)?;
            let next = self
                .reference(e.attr_value(gimli::DW_AT_abstract_origin).map_err(err)?)
                .or(self.reference(e.attr_value(gimli::DW_AT_specification).map_err(err)?));
            match next {
                Some(n) if !out.contains(&n) => {
                    out.push(n);
                    cur = n;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    fn first_attr(
        &self,
        chain: &[UnitOffset],
        at: gimli::DwAt,
    ) -> Result<Option<(UnitOffset, AttributeValue<R<'a>>)>, String> {
        for &o in chain {
            let e = self.unit.entry(o).map_err(err)?;
            if let Some(v) = e.attr_value(at).map_err(err)? {
                return Ok(Some((o, v)));
            }
        }
        Ok(None)
    }

    fn functions(
        &mut self,
        wanted: Option<&HashSet<String>>,
        facts: &mut DebugFacts,
    ) -> Result<(), String> {
        let subs = std::mem::take(&mut self.subprograms);
        let mut records = BTreeSet::new();
        for at in subs {
            let e = self.unit.entry(at).map_err(err)?;
            // Only definitions (with code, or the concrete instance of an
            // abstract one): declarations of other libraries' functions
            // (printf) are not this build's.
            let has_code = e.attr_value(gimli::DW_AT_low_pc).map_err(err)?.is_some()
                || e.attr_value(gimli::DW_AT_ranges).map_err(err)?.is_some();
            if !has_code {
                continue;
            }
            let chain = self.chain(at)?;
            let external = matches!(
                self.first_attr(&chain, gimli::DW_AT_external)?,
                Some((_, AttributeValue::Flag(true)))
            );
            if !external {
                continue;
            }
            let symbol = match self.first_attr(&chain, gimli::DW_AT_linkage_name)? {
                Some((_, v)) => self.string(v),
                None => match self.first_attr(&chain, gimli::DW_AT_MIPS_linkage_name)? {
                    Some((_, v)) => self.string(v),
                    None => match self.first_attr(&chain, gimli::DW_AT_name)? {
                        Some((_, v)) => self.string(v),
                        None => None,
                    },
                },
            };
            let Some(symbol) = symbol else { continue };
            if wanted.is_some_and(|w| !w.contains(&symbol)) || facts.functions.contains_key(&symbol)
            {
                continue;
            }
            let name = match self.first_attr(&chain, gimli::DW_AT_name)? {
                Some((o, v)) => self
                    .names
                    .get(&o)
                    .map(|n| n.qualified.clone())
                    .or_else(|| self.string(v))
                    .unwrap_or_else(|| symbol.clone()),
                None => symbol.clone(),
            };
            let ret = match self.first_attr(&chain, gimli::DW_AT_type)? {
                Some((_, v)) => match self.reference(Some(v)) {
                    Some(t) => self.ty(t, 0)?,
                    None => CType::Unknown,
                },
                None => CType::Void,
            };
            let is_virtual = matches!(
                self.first_attr(&chain, gimli::DW_AT_virtuality)?,
                Some((_, AttributeValue::Virtuality(v))) if v != gimli::DW_VIRTUALITY_none
            );
            // Parameters: from the first entry of the chain that lists any.
            let mut params = Vec::new();
            let mut variadic = false;
            for &o in &chain {
                let (p, v) = self.params(o)?;
                if !p.is_empty() || v {
                    params = p;
                    variadic = v;
                    break;
                }
            }
            for p in &params {
                if let Some(k) = p.ty.record() {
                    records.insert(k.to_string());
                }
            }
            if let Some(k) = ret.record() {
                records.insert(k.to_string());
            }
            facts.functions.insert(
                symbol,
                Proto {
                    name,
                    ret,
                    params,
                    variadic,
                    cxx: self.cxx,
                    is_virtual,
                },
            );
        }
        // Layouts of the records used, and of the records they contain.
        let mut todo: Vec<String> = records.into_iter().collect();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(k) = todo.pop() {
            if !seen.insert(k.clone()) || facts.structs.contains_key(&k) {
                continue;
            }
            if let Some(layout) = self.layout(&k)? {
                for f in &layout.fields {
                    if let Some(r) = f.ty.record() {
                        todo.push(r.to_string());
                    }
                }
                facts.structs.insert(k, layout);
            }
        }
        for (o, t) in &self.types {
            if let CType::Typedef { name, target } = t {
                if let CType::Record { key, .. } = target.strip() {
                    let _ = o;
                    facts.typedefs.entry(name.clone()).or_insert(key.clone());
                }
            }
        }
        Ok(())
    }

    fn params(&mut self, at: UnitOffset) -> Result<(Vec<ProtoParam>, bool), String> {
        let mut tree = self.unit.entries_tree(Some(at)).map_err(err)?;
        let root = tree.root().map_err(err)?;
        let mut children = root.children();
        let mut raw = Vec::new();
        let mut variadic = false;
        while let Some(c) = children.next().map_err(err)? {
            let e = c.entry();
            match e.tag() {
                gimli::DW_TAG_formal_parameter => raw.push(e.offset()),
                gimli::DW_TAG_unspecified_parameters => variadic = true,
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (i, o) in raw.into_iter().enumerate() {
            let chain = self.chain(o)?;
            let name = match self.first_attr(&chain, gimli::DW_AT_name)? {
                Some((_, v)) => self.string(v),
                None => None,
            };
            let artificial = matches!(
                self.first_attr(&chain, gimli::DW_AT_artificial)?,
                Some((_, AttributeValue::Flag(true)))
            );
            let ty = match self.first_attr(&chain, gimli::DW_AT_type)? {
                Some((_, v)) => match self.reference(Some(v)) {
                    Some(t) => self.ty(t, 0)?,
                    None => CType::Unknown,
                },
                None => CType::Unknown,
            };
            out.push(ProtoParam {
                name: name.unwrap_or_else(|| format!("arg{i}")),
                ty,
                artificial,
            });
        }
        Ok((out, variadic))
    }

    /// The type at `at`, as a [`CType`].
    fn ty(&mut self, at: UnitOffset, depth: usize) -> Result<CType, String> {
        if let Some(t) = self.types.get(&at) {
            return Ok(t.clone());
        }
        if depth > 32 {
            return Ok(CType::Unknown);
        }
        let e = self.unit.entry(at).map_err(err)?;
        let tag = e.tag();
        let inner = self.reference(e.attr_value(gimli::DW_AT_type).map_err(err)?);
        let size = e
            .attr_value(gimli::DW_AT_byte_size)
            .map_err(err)?
            .and_then(|v| v.udata_value());
        let name = self.name_of(&e);
        let sub = |me: &mut Self| -> Result<Box<CType>, String> {
            Ok(Box::new(match inner {
                Some(i) => me.ty(i, depth + 1)?,
                None => CType::Void,
            }))
        };
        let t = match tag {
            gimli::DW_TAG_base_type => CType::Base {
                name: name.unwrap_or_else(|| "?".into()),
                size: size.unwrap_or(0),
            },
            gimli::DW_TAG_enumeration_type => CType::Enum {
                name: self.names.get(&at).map(|n| n.qualified.clone()),
                size: size.unwrap_or(4),
            },
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                let kind = match tag {
                    gimli::DW_TAG_union_type => "union",
                    gimli::DW_TAG_class_type => "class",
                    _ => "struct",
                };
                let key = self
                    .names
                    .get(&at)
                    .map(|n| n.qualified.clone())
                    .unwrap_or_else(|| format!("<anonymous@{:#x}>", at.0));
                CType::Record { kind, key }
            }
            gimli::DW_TAG_typedef => {
                let target = sub(self)?;
                let name = self
                    .names
                    .get(&at)
                    .map(|n| n.qualified.clone())
                    .or(name)
                    .unwrap_or_default();
                // A typedef of an anonymous record names it.
                let target = match *target {
                    CType::Record { kind, key } if key.starts_with("<anonymous") => {
                        if let Some(i) = inner {
                            self.names.insert(
                                i,
                                Named {
                                    qualified: name.clone(),
                                },
                            );
                            self.types.remove(&i);
                        }
                        Box::new(CType::Record {
                            kind,
                            key: name.clone(),
                        })
                    }
                    t => Box::new(t),
                };
                CType::Typedef { name, target }
            }
            gimli::DW_TAG_pointer_type => CType::Pointer(sub(self)?),
            gimli::DW_TAG_reference_type | gimli::DW_TAG_rvalue_reference_type => {
                CType::Reference(sub(self)?)
            }
            gimli::DW_TAG_const_type => CType::Const(sub(self)?),
            gimli::DW_TAG_volatile_type => CType::Volatile(sub(self)?),
            gimli::DW_TAG_restrict_type | gimli::DW_TAG_atomic_type => *sub(self)?,
            gimli::DW_TAG_array_type => {
                let elem = sub(self)?;
                let mut count = None;
                let mut tree = self.unit.entries_tree(Some(at)).map_err(err)?;
                let root = tree.root().map_err(err)?;
                let mut children = root.children();
                if let Some(c) = children.next().map_err(err)? {
                    let ce = c.entry();
                    if let Some(n) = ce
                        .attr_value(gimli::DW_AT_count)
                        .map_err(err)?
                        .and_then(|v| v.udata_value())
                    {
                        count = Some(n);
                    } else if let Some(n) = ce
                        .attr_value(gimli::DW_AT_upper_bound)
                        .map_err(err)?
                        .and_then(|v| v.udata_value())
                    {
                        count = Some(n + 1);
                    }
                }
                CType::Array(elem, count)
            }
            gimli::DW_TAG_subroutine_type => {
                let ret = sub(self)?;
                let (params, variadic) = self.params(at)?;
                CType::Function {
                    ret,
                    params: params.into_iter().map(|p| p.ty).collect(),
                    variadic,
                }
            }
            gimli::DW_TAG_unspecified_type => CType::Void, // decltype(nullptr)
            _ => CType::Unknown,
        };
        self.types.insert(at, t.clone());
        Ok(t)
    }

    /// The layout of the record named `key`: its definition in this unit.
    fn layout(&mut self, key: &str) -> Result<Option<RecordLayout>, String> {
        let candidates: Vec<UnitOffset> = self
            .names
            .iter()
            .filter(|(_, n)| n.qualified == key)
            .map(|(o, _)| *o)
            .collect();
        for at in candidates {
            let e = self.unit.entry(at).map_err(err)?;
            let kind = match e.tag() {
                gimli::DW_TAG_structure_type => "struct",
                gimli::DW_TAG_class_type => "class",
                gimli::DW_TAG_union_type => "union",
                _ => continue,
            };
            if matches!(
                e.attr_value(gimli::DW_AT_declaration).map_err(err)?,
                Some(AttributeValue::Flag(true))
            ) {
                continue;
            }
            let size = e
                .attr_value(gimli::DW_AT_byte_size)
                .map_err(err)?
                .and_then(|v| v.udata_value())
                .unwrap_or(0);
            let mut raw = Vec::new();
            {
                let mut tree = self.unit.entries_tree(Some(at)).map_err(err)?;
                let root = tree.root().map_err(err)?;
                let mut children = root.children();
                while let Some(c) = children.next().map_err(err)? {
                    let ce = c.entry();
                    let inheritance = ce.tag() == gimli::DW_TAG_inheritance;
                    if ce.tag() != gimli::DW_TAG_member && !inheritance {
                        continue;
                    }
                    // Static data members are declarations without a location.
                    if matches!(
                        ce.attr_value(gimli::DW_AT_external).map_err(err)?,
                        Some(AttributeValue::Flag(true))
                    ) {
                        continue;
                    }
                    let offset = match ce
                        .attr_value(gimli::DW_AT_data_member_location)
                        .map_err(err)?
                    {
                        Some(AttributeValue::Exprloc(x)) => plus_uconst(x.0.slice()),
                        Some(v) => v.udata_value(),
                        None => None,
                    };
                    let bit_offset = ce
                        .attr_value(gimli::DW_AT_data_bit_offset)
                        .map_err(err)?
                        .and_then(|v| v.udata_value());
                    let bit_size = ce
                        .attr_value(gimli::DW_AT_bit_size)
                        .map_err(err)?
                        .and_then(|v| v.udata_value());
                    let name = self.name_of(ce);
                    let ty = self.reference(ce.attr_value(gimli::DW_AT_type).map_err(err)?);
                    raw.push((name, inheritance, offset, bit_offset, bit_size, ty));
                }
            }
            let mut fields = Vec::new();
            for (i, (name, inheritance, offset, bit_offset, bit_size, ty)) in
                raw.into_iter().enumerate()
            {
                let ty = match ty {
                    Some(t) => self.ty(t, 0)?,
                    None => CType::Unknown,
                };
                let name = if inheritance {
                    format!("<base {}>", ty.declare("", false))
                } else {
                    name.unwrap_or_else(|| format!("<anonymous {i}>"))
                };
                let bits = bit_size.map(|n| (bit_offset.unwrap_or(offset.unwrap_or(0) * 8), n));
                let offset = offset.unwrap_or_else(|| bits.map(|b| b.0 / 8).unwrap_or(0));
                fields.push(FieldLayout {
                    name,
                    offset,
                    bits,
                    ty,
                });
            }
            return Ok(Some(RecordLayout {
                kind,
                key: key.to_string(),
                size,
                fields,
                cxx: self.cxx,
            }));
        }
        Ok(None)
    }
}

/// `DW_OP_plus_uconst N` (DWARF 2's member locations).
fn plus_uconst(bytes: &[u8]) -> Option<u64> {
    let (&op, mut rest) = bytes.split_first()?;
    if op != 0x23 {
        return None;
    }
    let mut v = 0u64;
    let mut shift = 0;
    while let Some((&b, r)) = rest.split_first() {
        rest = r;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(name: &str, size: u64) -> CType {
        CType::Base {
            name: name.into(),
            size,
        }
    }

    #[test]
    fn declarations_in_c_syntax() {
        let int = base("int", 4);
        let ch = base("char", 1);
        let cstr = CType::Pointer(Box::new(CType::Const(Box::new(ch.clone()))));
        assert_eq!(cstr.declare("s", true), "const char *s");
        assert_eq!(
            CType::Pointer(Box::new(cstr.clone())).declare("v", true),
            "const char **v"
        );
        let cptr = CType::Const(Box::new(CType::Pointer(Box::new(ch))));
        assert_eq!(cptr.declare("p", true), "char * const p");
        let f = CType::Function {
            ret: Box::new(int.clone()),
            params: vec![int.clone()],
            variadic: false,
        };
        assert_eq!(
            CType::Pointer(Box::new(f)).declare("cb", true),
            "int (*cb)(int)"
        );
        assert_eq!(
            CType::Array(Box::new(int.clone()), Some(4)).declare("v", true),
            "int v[4]"
        );
        let rec = CType::Record {
            kind: "struct",
            key: "point".into(),
        };
        assert_eq!(
            CType::Pointer(Box::new(rec.clone())).declare("p", true),
            "struct point *p"
        );
        assert_eq!(
            CType::Pointer(Box::new(rec)).declare("p", false),
            "point *p"
        );
        assert_eq!(int.declare("", true), "int");
    }

    #[test]
    fn canonical_sets_typedefs_and_qualifiers_aside() {
        let u8t = CType::Typedef {
            name: "uint8_t".into(),
            target: Box::new(base("unsigned char", 1)),
        };
        let a = CType::Pointer(Box::new(CType::Const(Box::new(u8t))));
        let b = CType::Pointer(Box::new(base("unsigned char", 1)));
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(base("int", 4).canonical(), base("long int", 8).canonical());
    }

    #[test]
    fn dwarf2_member_locations() {
        assert_eq!(plus_uconst(&[0x23, 0x08]), Some(8));
        assert_eq!(plus_uconst(&[0x23, 0x80, 0x01]), Some(128));
        assert_eq!(plus_uconst(&[0x10, 0x08]), None);
    }
}
