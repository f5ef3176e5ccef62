//! C++ boundary declarations (CONFIG.md: `"virtual double Shape::area()
//! const"`, `"Shape::Shape(double w, double h)"`, `"virtual
//! Shape::~Shape()"`): parsing, the C prototype the rest of DDL works with,
//! and resolution to the old build's mangled symbols.
//!
//! * [`CxxDecl::parse`] reads one declaration as written in the config:
//!   leading `virtual` / `static` / `inline` / `explicit`, a return type
//!   (none for constructors and destructors), a qualified name
//!   (`ns::Shape::area`, `Shape::Shape`, `Shape::~Shape`, or a plain
//!   `make_shape` for a free function with C++ linkage), parameters with
//!   optional names and CONFIG.md annotations (`[in n]`, kept verbatim), and
//!   after the `)`: `const`, `noexcept`, `override`, `final`, `= 0` and a
//!   return-value annotation. Templates, operators, function-pointer
//!   parameters, `...`, `&&` and ref-qualified methods are refused with an
//!   error naming the 1-based column.
//! * [`CxxDecl::c_prototype`] gives the C prototype `parse_signature`
//!   accepts: the implicit `this` comes first as `CLASS *this` (also for
//!   `const` methods), references become pointers, and `::` in type names
//!   becomes `__` (see [`c_type_name`]).
//! * [`resolve`] demangles every exported symbol with `cpp_demangle`, parses
//!   the demangled text with the same parser and compares both sides after
//!   normalisation (parameter names dropped, `const` placement, `unsigned`
//!   = `unsigned int`, `long int` = `long`, the `<stdint.h>` names and
//!   `size_t` as their x86-64 types, top-level `const` of a parameter
//!   ignored). The constructor/destructor variant (C1/C2/C3, D0/D1/D2) is
//!   read from the mangled name.
//!
//! Where the brief leaves a choice, this module chooses:
//!
//! * `A::B::f` is always a member `f` of class `A::B` (the mangled form
//!   does not say whether `A` is a namespace or a class). A function of a
//!   namespace, or a static member function, is written with `static`
//!   (`static int ns::count(int)`): it gets no `this`.
//! * A class-type name a user writes unqualified matches a qualified one in
//!   the mangled name (`const Vec &` matches `geo::Vec const&`); the name of
//!   the function itself must be written in full.
//! * A reference to a built-in scalar gets an explicit `[in 1]` (`const T &`)
//!   or `[inout 1]` (`T &`) unless the user wrote an annotation; a reference
//!   to a named type (a struct, a typedef, a handle class) keeps the C
//!   defaults of its pointer (`[in 1]` / `[inout 1]` for a declared struct,
//!   a handle for a handle type), so that a handle is not turned into a
//!   buffer.
//! * A class-type name is emitted as written (`const Vec &v` → `const Vec
//!   *v`; `geo::Vec` → `geo__Vec`), so that C sees it as a typedef name:
//!   declare it in `types` as `typedef struct Vec { double x; double y; }
//!   Vec;` (a plain `struct Vec { … }` declares only `struct Vec` in C).

use std::fmt;

/// A C++ declaration that does not parse, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CxxError {
    /// 1-based character column inside the declaration text.
    pub column: usize,
    /// What is wrong, for a human.
    pub message: String,
}

impl CxxError {
    fn new(column: usize, message: impl Into<String>) -> CxxError {
        CxxError {
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for CxxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for CxxError {}

type Result<T> = std::result::Result<T, CxxError>;

/// What a declaration names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CxxKind {
    /// A constructor (`Shape::Shape(…)`): C1/C2 in the mangled names.
    Ctor,
    /// A destructor (`Shape::~Shape()`): D0/D1/D2 in the mangled names.
    Dtor,
    /// A member function with a `this`.
    Method,
    /// A `static` member function or a function of a namespace
    /// (`static int ns::f(int)`): no `this`.
    Static,
    /// A free function with C++ linkage (`Shape *make_shape(int kind)`).
    Function,
}

/// One parameter of a C++ declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct CxxParam {
    /// The C++ type as written, tokens joined by single spaces
    /// (`const Vec &`).
    pub cxx_ty: String,
    /// The C type for the prototype: references as pointers, `::` as `__`
    /// (`const Vec *`).
    pub c_ty: String,
    /// The name (`argN` by position when the declaration has none).
    pub name: String,
    /// The annotation as written, brackets included (`[in n]`), if any.
    pub annotation: Option<String>,
    /// The parameter is a reference (`T &`, `const T &`).
    pub by_ref: bool,
    ty: Ty,
}

/// A parsed C++ boundary declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct CxxDecl {
    /// The declaration text as given.
    pub text: String,
    /// The qualified class (`Shape`, `ns::Shape`); for [`CxxKind::Static`]
    /// the qualifier (class or namespace); empty for a free function.
    pub class: String,
    /// The unqualified function name: `area`, `Shape` for a constructor,
    /// `~Shape` for a destructor.
    pub method: String,
    /// Constructor, destructor, method, static or free function.
    pub kind: CxxKind,
    /// Written with `virtual`.
    pub is_virtual: bool,
    /// A `const` member function.
    pub is_const: bool,
    /// The C text of the return type (references as pointers, `::` as
    /// `__`); empty for a constructor or destructor.
    pub ret: String,
    /// The return value's annotation (after the `)`), brackets included.
    pub ret_annotation: Option<String>,
    /// The parameters, `this` not included.
    pub params: Vec<CxxParam>,
}

/// How a resolved symbol implements the declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CxxVariant {
    /// `C1`: complete object constructor (what `new T` and a stack `T x`
    /// call).
    C1,
    /// `C2`: base object constructor (what a derived class's constructor
    /// calls).
    C2,
    /// `C3`: complete object allocating constructor (not emitted by g++).
    C3,
    /// `D0`: deleting destructor (`delete p` of a class with a virtual
    /// destructor; destroys, then frees).
    D0,
    /// `D1`: complete object destructor.
    D1,
    /// `D2`: base object destructor.
    D2,
    /// Any other function: a method, a static member, a free function.
    Plain,
}

impl CxxVariant {
    /// C1, C2 or C3.
    pub fn is_ctor(self) -> bool {
        matches!(self, CxxVariant::C1 | CxxVariant::C2 | CxxVariant::C3)
    }
    /// D0, D1 or D2.
    pub fn is_dtor(self) -> bool {
        matches!(self, CxxVariant::D0 | CxxVariant::D1 | CxxVariant::D2)
    }
}

/// A symbol of the old build that implements a declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CxxSymbol {
    /// The mangled name, without a symbol version (`_ZN5ShapeC1Edd`).
    pub mangled: String,
    /// The version given after `@` / `@@` in the input, if any.
    pub version: Option<String>,
    /// The demangled text (`Shape::Shape(double, double)`).
    pub demangled: String,
    /// Which constructor/destructor variant, or [`CxxVariant::Plain`].
    pub variant: CxxVariant,
}

// ---------------------------------------------------------------------------
// Tokens

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// A number (array bound, `= 0`).
    Int(String),
    /// `[...]` with its brackets, balanced, as written.
    Annot(String),
    Punct(&'static str),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    col: usize,
}

const PUNCTS: &[&str] = &[
    "::", "&&", "...", "(", ")", ",", "*", "&", "~", "=", "<", ">", ";",
];

fn lex(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    'outer: while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[i..j].iter().collect()),
                col,
            });
            i = j;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Int(chars[i..j].iter().collect()),
                col,
            });
            i = j;
            continue;
        }
        if c == '[' {
            let mut depth = 0usize;
            let mut j = i;
            while j < chars.len() {
                match chars[j] {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j >= chars.len() {
                return Err(CxxError::new(col, "unterminated `[` annotation"));
            }
            out.push(Token {
                tok: Tok::Annot(chars[i..=j].iter().collect()),
                col,
            });
            i = j + 1;
            continue;
        }
        for p in PUNCTS {
            let pc: Vec<char> = p.chars().collect();
            if chars[i..].starts_with(&pc) {
                out.push(Token {
                    tok: Tok::Punct(p),
                    col,
                });
                i += pc.len();
                continue 'outer;
            }
        }
        return Err(CxxError::new(col, format!("unexpected character `{c}`")));
    }
    Ok(out)
}

fn ident(t: &Token) -> Option<&str> {
    match &t.tok {
        Tok::Ident(s) => Some(s),
        _ => None,
    }
}

fn is_punct(t: &Token, p: &str) -> bool {
    matches!(&t.tok, Tok::Punct(q) if *q == p)
}

/// True if `text` is a C++ declaration rather than a C prototype: it
/// contains `::` outside `[...]` annotations, or begins with `virtual`.
/// (A free function with C++ linkage, `Shape *make_shape(int)`, reads as C;
/// [`resolve`] still finds its mangled symbol from a [`CxxDecl`].)
pub fn is_cxx_decl(text: &str) -> bool {
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("virtual") {
        if rest.starts_with(|c: char| c.is_whitespace()) {
            return true;
        }
    }
    let mut depth = 0usize;
    let mut prev = '\0';
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 && prev == ':' => return true,
            _ => {}
        }
        prev = if depth == 0 { c } else { '\0' };
    }
    false
}

// ---------------------------------------------------------------------------
// Types

/// One declarator level above the base type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// `*`, with `const` on the pointer itself.
    Ptr(bool),
    /// `&`.
    Ref,
}

/// A type, normalised for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ty {
    /// Canonical base: `int`, `unsigned long`, `double`, or a (possibly
    /// qualified) class name `geo::Vec`.
    base: String,
    /// The base is a built-in type (after typedefs of `<stdint.h>`).
    builtin: bool,
    /// `const` on the base.
    base_const: bool,
    levels: Vec<Level>,
}

impl Ty {
    /// The form compared by [`resolve`]: top-level `const` dropped (it is
    /// not part of a function's type).
    fn canon(&self) -> Ty {
        let mut t = self.clone();
        match t.levels.last_mut() {
            None => t.base_const = false,
            Some(Level::Ptr(c)) => *c = false,
            Some(Level::Ref) => {}
        }
        t
    }

    /// Same type, a user-written unqualified class name matching a
    /// qualified one on the mangled side.
    fn matches(&self, mangled: &Ty) -> bool {
        let (a, b) = (self.canon(), mangled.canon());
        if a.base_const != b.base_const || a.levels != b.levels || a.builtin != b.builtin {
            return false;
        }
        if a.base == b.base {
            return true;
        }
        !a.builtin && b.base.ends_with(&format!("::{}", a.base))
    }
}

const CV: &[&str] = &["const", "volatile"];
const BUILTIN_WORDS: &[&str] = &[
    "void", "bool", "char", "short", "int", "long", "float", "double", "signed", "unsigned",
    "wchar_t", "char8_t", "char16_t", "char32_t", "__int128",
];

/// `<stdint.h>`-style names as their x86-64 Linux types, in the spelling
/// the demangler uses.
fn typedef_canon(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix("std::").unwrap_or(name);
    Some(match name {
        "int8_t" => "signed char",
        "uint8_t" => "unsigned char",
        "int16_t" => "short",
        "uint16_t" => "unsigned short",
        "int32_t" | "pid_t" => "int",
        "uint32_t" | "uid_t" | "gid_t" | "mode_t" | "socklen_t" => "unsigned int",
        "int64_t" | "ssize_t" | "ptrdiff_t" | "intptr_t" | "off_t" | "off64_t" | "time_t"
        | "intmax_t" => "long",
        "uint64_t" | "size_t" | "uintptr_t" | "uintmax_t" => "unsigned long",
        _ => return None,
    })
}

/// The canonical spelling of a multiset of built-in specifier words, as the
/// demangler writes it.
fn builtin_canon(words: &[&str], col: usize) -> Result<String> {
    let count = |w: &str| words.iter().filter(|x| **x == w).count();
    let unsigned = count("unsigned") > 0;
    let signed = count("signed") > 0;
    let longs = count("long");
    let bad = || CxxError::new(col, format!("`{}` is not a C++ type", words.join(" ")));
    if unsigned && signed || count("unsigned") > 1 || count("signed") > 1 {
        return Err(bad());
    }
    let others: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "unsigned" | "signed" | "long" | "short" | "int"))
        .collect();
    if others.len() > 1 {
        return Err(bad());
    }
    let shorts = count("short");
    let ints = count("int");
    if ints > 1 || shorts > 1 || longs > 2 || (shorts > 0 && longs > 0) {
        return Err(bad());
    }
    if let Some(o) = others.first() {
        let only = |ok: bool| if ok { Ok(()) } else { Err(bad()) };
        return match *o {
            "char" => {
                only(longs == 0 && shorts == 0 && ints == 0)?;
                Ok(if unsigned {
                    "unsigned char"
                } else if signed {
                    "signed char"
                } else {
                    "char"
                }
                .into())
            }
            "double" => {
                only(!unsigned && !signed && shorts == 0 && ints == 0 && longs <= 1)?;
                Ok(if longs == 1 { "long double" } else { "double" }.into())
            }
            "__int128" => {
                only(longs == 0 && shorts == 0 && ints == 0 && !signed)?;
                Ok(if unsigned {
                    "unsigned __int128"
                } else {
                    "__int128"
                }
                .into())
            }
            w => {
                only(!unsigned && !signed && longs == 0 && shorts == 0 && ints == 0)?;
                Ok(w.to_string())
            }
        };
    }
    let base = if shorts == 1 {
        "short"
    } else if longs == 2 {
        "long long"
    } else if longs == 1 {
        "long"
    } else {
        "int"
    };
    Ok(if unsigned {
        format!("unsigned {base}")
    } else {
        base.to_string()
    })
}

/// The C spelling of a (possibly qualified) C++ type name in a prototype:
/// `::` becomes `__` (`ns::Shape` → `ns__Shape`), so a namespaced class or
/// struct is declared in the config's `types` (or registered as a handle)
/// under that name. `std::size_t` and the like lose their `std::`.
pub fn c_type_name(qualified: &str) -> String {
    if let Some(rest) = qualified.strip_prefix("std::") {
        if typedef_canon(rest).is_some() {
            return rest.to_string();
        }
    }
    qualified.replace("::", "__")
}

/// Parses the tokens of one type (no name, no annotation). Returns the type
/// and its C text.
fn parse_type(toks: &[Token], end_col: usize) -> Result<(Ty, String)> {
    let Some(first) = toks.first() else {
        return Err(CxxError::new(end_col, "expected a type"));
    };
    let mut i = 0;
    let mut base_const = false;
    let mut words: Vec<&str> = Vec::new();
    let mut named: Option<String> = None;
    let mut c_words: Vec<String> = Vec::new();
    // Declaration specifiers: cv, built-in words, or one qualified name.
    while i < toks.len() {
        let t = &toks[i];
        match &t.tok {
            Tok::Ident(s) if CV.contains(&s.as_str()) => {
                if s == "const" {
                    base_const = true;
                }
                i += 1;
            }
            Tok::Ident(s) if matches!(s.as_str(), "struct" | "class" | "enum" | "typename") => {
                if s == "enum" {
                    return Err(CxxError::new(
                        t.col,
                        "enum types are not supported in C++ declarations; use `int`",
                    ));
                }
                i += 1;
            }
            Tok::Ident(s) if BUILTIN_WORDS.contains(&s.as_str()) => {
                if named.is_some() {
                    return Err(CxxError::new(t.col, format!("unexpected `{s}`")));
                }
                words.push(s);
                c_words.push(s.clone());
                i += 1;
            }
            Tok::Ident(_) | Tok::Punct("::") => {
                if named.is_some() || !words.is_empty() {
                    return Err(CxxError::new(
                        t.col,
                        format!("unexpected `{}` in a type", tok_text(t)),
                    ));
                }
                let mut name = String::new();
                if is_punct(t, "::") {
                    i += 1; // a leading `::` (global scope)
                }
                loop {
                    let Some(part) = toks.get(i).and_then(ident) else {
                        return Err(CxxError::new(
                            toks.get(i).map_or(end_col, |t| t.col),
                            "expected a name after `::`",
                        ));
                    };
                    name.push_str(part);
                    i += 1;
                    if toks.get(i).is_some_and(|t| is_punct(t, "::")) {
                        name.push_str("::");
                        i += 1;
                    } else {
                        break;
                    }
                }
                c_words.push(c_type_name(&name));
                named = Some(name);
            }
            Tok::Punct("<") => {
                return Err(CxxError::new(t.col, "templates are not supported"));
            }
            _ => break,
        }
    }
    let (base, builtin) = match (named, words.is_empty()) {
        (Some(n), true) => match typedef_canon(&n) {
            Some(c) => (c.to_string(), true),
            None => (n, false),
        },
        (None, false) => (builtin_canon(&words, first.col)?, true),
        _ => return Err(CxxError::new(first.col, "expected a type")),
    };
    let mut c_text = String::new();
    if base_const {
        c_text.push_str("const ");
    }
    c_text.push_str(&c_words.join(" "));
    let mut levels = Vec::new();
    while i < toks.len() {
        let t = &toks[i];
        match &t.tok {
            Tok::Punct("*") => {
                levels.push(Level::Ptr(false));
                c_text.push_str(" *");
            }
            Tok::Punct("&") => {
                if levels.contains(&Level::Ref) {
                    return Err(CxxError::new(t.col, "a reference to a reference"));
                }
                levels.push(Level::Ref);
                c_text.push_str(" *");
            }
            Tok::Punct("&&") => {
                return Err(CxxError::new(t.col, "rvalue references are not supported"))
            }
            Tok::Ident(s) if CV.contains(&s.as_str()) => match levels.last_mut() {
                Some(Level::Ptr(c)) => {
                    if s == "const" {
                        *c = true;
                        c_text.push_str(" const");
                    }
                }
                Some(Level::Ref) => {
                    return Err(CxxError::new(t.col, "a reference cannot be const"))
                }
                None => {
                    if s == "const" {
                        // East const: `Vec const &`.
                        if !base_const {
                            c_text.insert_str(0, "const ");
                        }
                        base_const = true;
                    }
                }
            },
            Tok::Punct("(") => {
                return Err(CxxError::new(
                    t.col,
                    "function pointers are not supported in C++ declarations",
                ))
            }
            _ => {
                return Err(CxxError::new(
                    t.col,
                    format!("unexpected `{}` in a type", tok_text(t)),
                ))
            }
        }
        i += 1;
    }
    if levels.contains(&Level::Ref) && levels.last() != Some(&Level::Ref) {
        return Err(CxxError::new(first.col, "a pointer to a reference"));
    }
    Ok((
        Ty {
            base,
            builtin,
            base_const,
            levels,
        },
        c_text,
    ))
}

fn tok_text(t: &Token) -> String {
    match &t.tok {
        Tok::Ident(s) | Tok::Int(s) | Tok::Annot(s) => s.clone(),
        Tok::Punct(p) => p.to_string(),
    }
}

/// Joins tokens back into text with single spaces (`const Vec &`).
fn join(toks: &[Token]) -> String {
    toks.iter().map(tok_text).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Declarations

/// Where the parser is used from: a config declaration, or the demangler's
/// text of a symbol (no return type, no parameter names).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Config,
    Demangled,
}

impl CxxDecl {
    /// Parses one C++ declaration of the config (see the module docs for
    /// what is accepted).
    pub fn parse(text: &str) -> std::result::Result<CxxDecl, CxxError> {
        parse_decl(text, Mode::Config)
    }

    /// The qualified function name: `ns::Shape::area`, `Shape::~Shape`,
    /// `make_shape`.
    pub fn qualified_name(&self) -> String {
        if self.class.is_empty() {
            self.method.clone()
        } else {
            format!("{}::{}", self.class, self.method)
        }
    }

    /// The C name of the `this` type: [`c_type_name`] of the class
    /// (`Shape`, `ns__Shape` for `ns::Shape`); `None` when there is no
    /// `this` (static and free functions).
    pub fn this_type(&self) -> Option<String> {
        match self.kind {
            CxxKind::Ctor | CxxKind::Dtor | CxxKind::Method => Some(c_type_name(&self.class)),
            CxxKind::Static | CxxKind::Function => None,
        }
    }

    /// A C identifier for the function: the qualified name with `::` as
    /// `__`, a destructor's `~NAME` as `dtor` (`Shape__area`,
    /// `ns__Shape__Shape`, `Shape__dtor`, `make_shape`). Overloads share it;
    /// use [`CxxDecl::c_prototype_named`] with the mangled symbol name (a
    /// valid C identifier) where the name must be unique.
    pub fn c_name(&self) -> String {
        let method = if self.kind == CxxKind::Dtor {
            "dtor".to_string()
        } else {
            self.method.clone()
        };
        if self.class.is_empty() {
            method
        } else {
            format!("{}__{}", c_type_name(&self.class), method)
        }
    }

    /// The C prototype of the declaration, named [`CxxDecl::c_name`]: e.g.
    /// `double Shape__area(Shape *this)` for `virtual double Shape::area()
    /// const`. See [`CxxDecl::c_prototype_named`].
    pub fn c_prototype(&self) -> String {
        self.c_prototype_named(&self.c_name())
    }

    /// The C prototype under the given function name: `this` first
    /// (`CLASS *this`, const methods too), constructors and destructors
    /// returning `void`, references as pointers (`const T &x` → `const T
    /// *x`, `T &x` → `T *x`, with `[in 1]` / `[inout 1]` for references to
    /// built-in scalars), the user's annotations unchanged, and the return
    /// annotation after the `)`.
    pub fn c_prototype_named(&self, name: &str) -> String {
        let mut params: Vec<String> = Vec::new();
        if let Some(this) = self.this_type() {
            params.push(format!("{this} *this"));
        }
        for p in &self.params {
            // `T *x` rather than `T * x`, as a header would write it.
            let mut s = format!("{} {}", p.c_ty, p.name).replace("* ", "*");
            let ann = match (&p.annotation, p.by_ref) {
                (Some(a), _) => Some(a.clone()),
                (None, true) if p.ty.builtin && p.ty.levels.len() == 1 => Some(
                    if p.ty.base_const {
                        "[in 1]"
                    } else {
                        "[inout 1]"
                    }
                    .to_string(),
                ),
                _ => None,
            };
            if let Some(a) = ann {
                s.push(' ');
                s.push_str(&a);
            }
            params.push(s);
        }
        let ret = if self.ret.is_empty() {
            "void".to_string()
        } else {
            self.ret.clone()
        };
        let sep = if ret.ends_with('*') { "" } else { " " };
        let mut out = format!(
            "{ret}{sep}{name}({})",
            if params.is_empty() {
                "void".to_string()
            } else {
                params.join(", ")
            }
        );
        if let Some(a) = &self.ret_annotation {
            out.push(' ');
            out.push_str(a);
        }
        out
    }
}

fn parse_decl(text: &str, mode: Mode) -> Result<CxxDecl> {
    let toks = lex(text)?;
    let end_col = text.chars().count() + 1;
    for t in &toks {
        match &t.tok {
            Tok::Ident(s) if s == "template" => {
                return Err(CxxError::new(t.col, "templates are not supported"))
            }
            Tok::Ident(s) if s == "operator" => {
                return Err(CxxError::new(t.col, "operators are not supported"))
            }
            Tok::Punct("...") => {
                return Err(CxxError::new(
                    t.col,
                    "variadic functions (`...`) are not supported",
                ))
            }
            Tok::Punct("<") | Tok::Punct(">") => {
                return Err(CxxError::new(t.col, "templates are not supported"))
            }
            _ => {}
        }
    }
    let mut i = 0;
    let (mut is_virtual, mut is_static) = (false, false);
    while let Some(s) = toks.get(i).and_then(ident) {
        match s {
            "virtual" => is_virtual = true,
            "static" => is_static = true,
            "inline" | "explicit" | "constexpr" | "extern" => {}
            _ => break,
        }
        i += 1;
    }
    if is_virtual && is_static {
        return Err(CxxError::new(
            toks[0].col,
            "a function cannot be both `virtual` and `static`",
        ));
    }
    let open = toks[i..]
        .iter()
        .position(|t| is_punct(t, "("))
        .map(|p| p + i)
        .ok_or_else(|| {
            CxxError::new(
                toks.last().map_or(end_col, |t| t.col),
                "expected `(` and the parameters",
            )
        })?;
    // The qualified name: IDENT (:: IDENT)* with an optional `~` before the last.
    let mut j = open;
    let mut parts: Vec<(String, usize)> = Vec::new();
    let mut tilde = false;
    loop {
        if j == i {
            return Err(CxxError::new(
                toks[open].col,
                "expected a function name before `(`",
            ));
        }
        let t = &toks[j - 1];
        let Some(name) = ident(t) else {
            return Err(CxxError::new(t.col, "expected a function name before `(`"));
        };
        parts.push((name.to_string(), t.col));
        j -= 1;
        if parts.len() == 1 && j > i && is_punct(&toks[j - 1], "~") {
            tilde = true;
            j -= 1;
        }
        if j > i && is_punct(&toks[j - 1], "::") {
            j -= 1;
            continue;
        }
        break;
    }
    if j > i && is_punct(&toks[j - 1], "::") {
        return Err(CxxError::new(
            toks[j - 1].col,
            "expected a name before `::`",
        ));
    }
    parts.reverse();
    let (last, last_col) = parts.pop().expect("one name at least");
    for (p, c) in &parts {
        if CV.contains(&p.as_str()) || BUILTIN_WORDS.contains(&p.as_str()) {
            return Err(CxxError::new(*c, format!("`{p}` cannot name a class")));
        }
    }
    let class = parts
        .iter()
        .map(|(p, _)| p.as_str())
        .collect::<Vec<_>>()
        .join("::");
    let ret_toks = &toks[i..j];
    let kind = if tilde {
        if parts.last().map(|(p, _)| p.as_str()) != Some(last.as_str()) {
            return Err(CxxError::new(
                last_col,
                format!("a destructor must be named `{class}::~{}`", short(&class)),
            ));
        }
        CxxKind::Dtor
    } else if parts.last().is_some_and(|(p, _)| *p == last) {
        CxxKind::Ctor
    } else if parts.is_empty() {
        if is_virtual {
            return Err(CxxError::new(
                last_col,
                "a virtual function must be named with its class (`Class::name`)",
            ));
        }
        CxxKind::Function
    } else if is_static {
        CxxKind::Static
    } else {
        CxxKind::Method
    };
    if matches!(kind, CxxKind::Ctor | CxxKind::Dtor) {
        if let Some(t) = ret_toks.first() {
            return Err(CxxError::new(
                t.col,
                "a constructor or destructor has no return type",
            ));
        }
        if is_static || (is_virtual && kind == CxxKind::Ctor) {
            return Err(CxxError::new(
                toks[0].col,
                "a constructor cannot be virtual or static",
            ));
        }
    }
    let ret = match kind {
        CxxKind::Ctor | CxxKind::Dtor => String::new(),
        _ if ret_toks.is_empty() => {
            if mode == Mode::Config {
                return Err(CxxError::new(
                    toks[i].col,
                    format!("expected the return type of {last}"),
                ));
            }
            String::new()
        }
        _ => parse_type(ret_toks, toks[j].col)?.1,
    };
    let method = if tilde { format!("~{last}") } else { last };

    // Parameters, up to the matching `)`.
    let mut k = open + 1;
    let mut params: Vec<CxxParam> = Vec::new();
    let mut groups: Vec<&[Token]> = Vec::new();
    let mut start = k;
    let close = loop {
        let Some(t) = toks.get(k) else {
            return Err(CxxError::new(end_col, "expected `)`"));
        };
        if is_punct(t, ")") {
            groups.push(&toks[start..k]);
            break k;
        }
        if is_punct(t, "(") {
            return Err(CxxError::new(
                t.col,
                "function pointers are not supported in C++ declarations",
            ));
        }
        if is_punct(t, ",") {
            groups.push(&toks[start..k]);
            start = k + 1;
        }
        k += 1;
    };
    let no_params = groups.len() == 1
        && (groups[0].is_empty() || (groups[0].len() == 1 && ident(&groups[0][0]) == Some("void")));
    if !no_params {
        for (n, g) in groups.iter().enumerate() {
            let at = if g.is_empty() {
                toks[close].col
            } else {
                g[0].col
            };
            params.push(parse_param(g, n, at)?);
        }
    }
    // After the `)`.
    let mut is_const = false;
    let mut ret_annotation = None;
    let mut k = close + 1;
    while let Some(t) = toks.get(k) {
        match &t.tok {
            Tok::Ident(s) if s == "const" => is_const = true,
            Tok::Ident(s) if matches!(s.as_str(), "noexcept" | "override" | "final") => {}
            Tok::Ident(s) if s == "volatile" => {
                return Err(CxxError::new(t.col, "volatile methods are not supported"))
            }
            Tok::Punct("&") | Tok::Punct("&&") => {
                return Err(CxxError::new(
                    t.col,
                    "ref-qualified methods are not supported",
                ))
            }
            Tok::Punct("=") => {
                // `= 0`, `= default`
                match toks.get(k + 1).map(|t| &t.tok) {
                    Some(Tok::Int(_)) | Some(Tok::Ident(_)) => k += 1,
                    _ => return Err(CxxError::new(t.col, "expected `= 0` or `= default`")),
                }
            }
            Tok::Punct(";") if k + 1 == toks.len() => {}
            Tok::Annot(a) if mode == Mode::Config && ret_annotation.is_none() => {
                ret_annotation = Some(a.clone())
            }
            _ => {
                return Err(CxxError::new(
                    t.col,
                    format!("unexpected `{}` after the parameters", tok_text(t)),
                ))
            }
        }
        k += 1;
    }
    if is_const && !matches!(kind, CxxKind::Method) {
        return Err(CxxError::new(
            toks[close].col,
            "only a member function can be `const`",
        ));
    }
    Ok(CxxDecl {
        text: text.to_string(),
        class,
        method,
        kind,
        is_virtual,
        is_const,
        ret,
        ret_annotation,
        params,
    })
}

/// The last component of a qualified name.
fn short(q: &str) -> &str {
    q.rsplit("::").next().unwrap_or(q)
}

fn parse_param(g: &[Token], n: usize, at: usize) -> Result<CxxParam> {
    if g.is_empty() {
        return Err(CxxError::new(at, "expected a parameter"));
    }
    let mut toks = g;
    let mut annotation = None;
    let mut array = false;
    if let Some(Token {
        tok: Tok::Annot(a), ..
    }) = toks.last()
    {
        annotation = Some(a.clone());
        toks = &toks[..toks.len() - 1];
    }
    let mut name = None;
    if toks.len() >= 2 {
        if let Some(s) = ident(&toks[toks.len() - 1]) {
            let before = &toks[toks.len() - 2];
            let is_word = CV.contains(&s) || BUILTIN_WORDS.contains(&s);
            // What is left must still name a type (`const Vec` is a type).
            let rest_names_type = toks[..toks.len() - 1].iter().any(|t| {
                ident(t).is_some_and(|w| !CV.contains(&w) && !matches!(w, "struct" | "class"))
            });
            if !is_word
                && !is_punct(before, "::")
                && !matches!(s, "struct" | "class")
                && rest_names_type
            {
                name = Some(s.to_string());
                toks = &toks[..toks.len() - 1];
            }
        }
    }
    // `double v[3]`, `char *argv[]`: an array parameter decays to a pointer.
    if let Some(a) = &annotation {
        let inner = a[1..a.len() - 1].trim();
        if inner.is_empty() || inner.chars().all(|c| c.is_ascii_digit()) {
            array = true;
        }
    }
    if toks.is_empty() {
        return Err(CxxError::new(at, "expected the parameter's type"));
    }
    let (mut ty, mut c_ty) = parse_type(toks, at)?;
    if array && !ty.levels.contains(&Level::Ptr(false)) && !ty.levels.contains(&Level::Ptr(true)) {
        if ty.levels.contains(&Level::Ref) {
            return Err(CxxError::new(
                at,
                "a reference to an array is not supported",
            ));
        }
        ty.levels.push(Level::Ptr(false));
        // The C prototype keeps `T v[3]`: `parse_signature` reads it as `[in 3]`.
        let _ = &mut c_ty;
    }
    let by_ref = ty.levels.last() == Some(&Level::Ref);
    Ok(CxxParam {
        cxx_ty: join(toks),
        c_ty,
        name: name.unwrap_or_else(|| format!("arg{n}")),
        annotation,
        by_ref,
        ty,
    })
}

// ---------------------------------------------------------------------------
// Resolution

/// Removes `[abi:cxx11]` tags from demangled text (they are not part of
/// what a user writes).
fn strip_abi_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find("[abi:") {
        out.push_str(&rest[..p]);
        match rest[p..].find(']') {
            Some(e) => rest = &rest[p + e + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The constructor/destructor variant named in a mangled nested name
/// (`_ZN5ShapeC1Edd` → C1, `_ZN2ns5ShapeD0Ev` → D0). Walks the
/// `<nested-name>` prefix: source names, substitutions, ABI tags; `None`
/// for anything it does not know (templates, local names) and for
/// functions that are not constructors or destructors.
fn ctor_dtor_variant(mangled: &str) -> Option<CxxVariant> {
    let b = mangled.as_bytes();
    mangled.strip_prefix("_Z")?;
    let mut i = 2;
    if b.get(i) != Some(&b'N') {
        return None;
    }
    i += 1;
    while matches!(b.get(i), Some(b'r' | b'V' | b'K' | b'R' | b'O')) {
        i += 1;
    }
    let mut last = None;
    loop {
        match *b.get(i)? {
            b'0'..=b'9' => {
                let mut n = 0usize;
                while let Some(d @ b'0'..=b'9') = b.get(i) {
                    n = n.checked_mul(10)?.checked_add((d - b'0') as usize)?;
                    i += 1;
                }
                i = i.checked_add(n)?;
                last = None;
            }
            b'S' => {
                i += 1;
                match *b.get(i)? {
                    b't' | b'a' | b'b' | b's' | b'i' | b'o' | b'd' | b'_' => i += 1,
                    _ => {
                        while b.get(i)?.is_ascii_alphanumeric() {
                            i += 1;
                        }
                        if b.get(i) != Some(&b'_') {
                            return None;
                        }
                        i += 1;
                    }
                }
                last = None;
            }
            b'B' => {
                // ABI tag: B <source-name>; keeps `last`.
                i += 1;
                let mut n = 0usize;
                while let Some(d @ b'0'..=b'9') = b.get(i) {
                    n = n.checked_mul(10)?.checked_add((d - b'0') as usize)?;
                    i += 1;
                }
                i = i.checked_add(n)?;
            }
            b'C' => {
                last = Some(match *b.get(i + 1)? {
                    b'1' => CxxVariant::C1,
                    b'2' => CxxVariant::C2,
                    b'3' => CxxVariant::C3,
                    _ => return None, // C4, inheriting constructors (CI1): not handled
                });
                i += 2;
            }
            b'D' => {
                last = Some(match *b.get(i + 1)? {
                    b'0' => CxxVariant::D0,
                    b'1' => CxxVariant::D1,
                    b'2' => CxxVariant::D2,
                    _ => return None,
                });
                i += 2;
            }
            b'E' => return last,
            _ => return None,
        }
    }
}

/// The old build's symbols (mangled, as listed by `nm -D`; a `@VERSION` /
/// `@@VERSION` suffix is allowed) that implement `decl`: demangled with
/// `cpp_demangle`, parsed, and compared with the declaration after
/// normalisation (see the module docs). A constructor usually resolves to
/// C1 and C2 (often at one address), a virtual destructor to D0, D1 and D2,
/// anything else to one symbol; an empty result means not found, more than
/// one for a method means the declaration is ambiguous. A free function
/// also matches an unmangled symbol of its name (`extern "C"`).
pub fn resolve(decl: &CxxDecl, symbols: &[&str]) -> Vec<CxxSymbol> {
    let want = decl.qualified_name();
    let mut out = Vec::new();
    for &sym in symbols {
        let (name, version) = match sym.find('@') {
            Some(p) => (
                &sym[..p],
                Some(sym[p..].trim_start_matches('@').to_string()),
            ),
            None => (sym, None),
        };
        if !name.starts_with("_Z") {
            if decl.kind == CxxKind::Function && name == want {
                out.push(CxxSymbol {
                    mangled: name.to_string(),
                    version,
                    demangled: name.to_string(),
                    variant: CxxVariant::Plain,
                });
            }
            continue;
        }
        // Special names (vtables, typeinfo, thunks, guard variables) are
        // not functions a declaration names.
        if name.starts_with("_ZT") || name.starts_with("_ZGV") || name.starts_with("_ZTh") {
            continue;
        }
        let Ok(parsed) = cpp_demangle::Symbol::new(name) else {
            continue;
        };
        let opts = cpp_demangle::DemangleOptions::new().no_return_type();
        let Ok(text) = parsed.demangle(&opts) else {
            continue;
        };
        let text = strip_abi_tags(&text);
        // Quick filter before parsing: the qualified name must appear.
        if !text.contains(&want) {
            continue;
        }
        let Ok(found) = parse_decl(&text, Mode::Demangled) else {
            continue;
        };
        if found.qualified_name() != want || !same_shape(decl, &found) {
            continue;
        }
        let variant = match decl.kind {
            CxxKind::Ctor | CxxKind::Dtor => match ctor_dtor_variant(name) {
                Some(v) if v.is_ctor() == (decl.kind == CxxKind::Ctor) => v,
                _ => continue,
            },
            _ => CxxVariant::Plain,
        };
        out.push(CxxSymbol {
            mangled: name.to_string(),
            version,
            demangled: text,
            variant,
        });
    }
    out
}

/// Same parameters (normalised) and `const`-ness.
fn same_shape(decl: &CxxDecl, found: &CxxDecl) -> bool {
    // The demangled text of a free function, a static member and a method
    // look alike (`ns::f(int)`); only `const` tells a method apart.
    decl.is_const == found.is_const
        && decl.params.len() == found.params.len()
        && decl
            .params
            .iter()
            .zip(&found.params)
            .all(|(a, b)| a.ty.matches(&b.ty))
}

/// Encodes a qualified class name as an Itanium `<name>` (`Shape` →
/// `5Shape`, `ns::Shape` → `N2ns5ShapeE`, `std::exception` →
/// `St9exception`). `None` for a name that is not a plain identifier path.
fn mangle_class(class: &str) -> Option<String> {
    let mut parts: Vec<&str> = class.trim_start_matches("::").split("::").collect();
    let valid = |p: &&str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    if parts.is_empty() || !parts.iter().all(valid) {
        return None;
    }
    let std = parts[0] == "std" && parts.len() > 1;
    if std {
        parts.remove(0);
    }
    let body: String = parts.iter().map(|p| format!("{}{p}", p.len())).collect();
    Some(match (std, parts.len()) {
        (true, 1) => format!("St{body}"),
        (true, _) => format!("NSt{body}E"),
        (false, 1) => body,
        (false, _) => format!("N{body}E"),
    })
}

/// The vtable symbol of a class: `_ZTV5Shape`, `_ZTVN2ns5ShapeE`. `None`
/// for a name that is not `ident(::ident)*`.
pub fn vtable_symbol(class: &str) -> Option<String> {
    mangle_class(class).map(|m| format!("_ZTV{m}"))
}

/// The typeinfo object of a class: `_ZTI5Shape`, `_ZTIN2ns5ShapeE`.
pub fn typeinfo_symbol(class: &str) -> Option<String> {
    mangle_class(class).map(|m| format!("_ZTI{m}"))
}

/// The typeinfo name string of a class: `_ZTS5Shape`, `_ZTSN2ns5ShapeE`.
pub fn typeinfo_name_symbol(class: &str) -> Option<String> {
    mangle_class(class).map(|m| format!("_ZTS{m}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{parse_signature, TypeTable};

    /// `nm -D --defined-only` of cxx-fixtures' old libshapes.so.1 (g++ 12.2,
    /// -O2), functions and vtables/typeinfo.
    const SHAPES: &[&str] = &[
        "_Z10make_shapeidd",
        "_ZN4RectC1Edd",
        "_ZN4RectC2Edd",
        "_ZN4RectD0Ev",
        "_ZN4RectD1Ev",
        "_ZN4RectD2Ev",
        "_ZN5Shape4growEd",
        "_ZN5Shape4growEi",
        "_ZN5Shape5scaleEd",
        "_ZN5ShapeC1Edd",
        "_ZN5ShapeC2Edd",
        "_ZN5ShapeD0Ev",
        "_ZN5ShapeD1Ev",
        "_ZN5ShapeD2Ev",
        "_ZN5tally7Counter3addEi",
        "_ZN5tally7Counter4takeEi",
        "_ZN5tally7CounterC1Ei",
        "_ZN5tally7CounterC2Ei",
        "_ZN5tally7CounterD1Ev",
        "_ZN5tally7CounterD2Ev",
        "_ZN6CircleC1Ed",
        "_ZN6CircleC2Ed",
        "_ZN6CircleD0Ev",
        "_ZN6CircleD1Ev",
        "_ZN6CircleD2Ev",
        "_ZNK4Rect4areaEv",
        "_ZNK4Rect4nameEv",
        "_ZNK5Shape4areaEv",
        "_ZNK5Shape4nameEv",
        "_ZNK5Shape6boundsERdS0_",
        "_ZNK5Shape7stretchERK3Vec",
        "_ZNK5tally7Counter5totalEv",
        "_ZNK6Circle4areaEv",
        "_ZNK6Circle4nameEv",
        "_ZTI4Rect",
        "_ZTI5Shape",
        "_ZTI6Circle",
        "_ZTS4Rect",
        "_ZTS5Shape",
        "_ZTS6Circle",
        "_ZTV4Rect",
        "_ZTV5Shape",
        "_ZTV6Circle",
        "_ZNSt9exceptionD2Ev@GLIBCXX_3.4",
        "malloc@GLIBC_2.2.5",
    ];

    fn resolved(decl: &str) -> Vec<(String, CxxVariant)> {
        let d = CxxDecl::parse(decl).unwrap_or_else(|e| panic!("{decl}: {e}"));
        let mut v: Vec<_> = resolve(&d, SHAPES)
            .into_iter()
            .map(|s| (s.mangled, s.variant))
            .collect();
        v.sort();
        v
    }

    fn one(decl: &str) -> String {
        let r = resolved(decl);
        assert_eq!(r.len(), 1, "{decl}: {r:?}");
        assert_eq!(r[0].1, CxxVariant::Plain);
        r[0].0.clone()
    }

    fn err(decl: &str) -> CxxError {
        match CxxDecl::parse(decl) {
            Ok(d) => panic!("{decl} parsed: {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_the_brief_examples() {
        let d = CxxDecl::parse("Shape::Shape(double w, double h)").unwrap();
        assert_eq!((d.class.as_str(), d.method.as_str()), ("Shape", "Shape"));
        assert_eq!(d.kind, CxxKind::Ctor);
        assert_eq!(d.ret, "");
        assert_eq!(d.params.len(), 2);
        assert_eq!(d.params[1].name, "h");
        assert_eq!(
            d.c_prototype(),
            "void Shape__Shape(Shape *this, double w, double h)"
        );

        let d = CxxDecl::parse("virtual double Shape::area() const").unwrap();
        assert!(d.is_virtual && d.is_const);
        assert_eq!(d.kind, CxxKind::Method);
        assert_eq!(d.c_prototype(), "double Shape__area(Shape *this)");

        let d = CxxDecl::parse("virtual Shape::~Shape()").unwrap();
        assert_eq!(d.kind, CxxKind::Dtor);
        assert_eq!(d.method, "~Shape");
        assert_eq!(d.c_prototype(), "void Shape__dtor(Shape *this)");

        let d = CxxDecl::parse("void Shape::grow(int n)").unwrap();
        assert_eq!(d.c_prototype(), "void Shape__grow(Shape *this, int n)");

        let d = CxxDecl::parse("const char *Shape::name() const").unwrap();
        assert_eq!(d.ret, "const char *");
        assert_eq!(d.c_prototype(), "const char *Shape__name(Shape *this)");

        let d = CxxDecl::parse("double Shape::scale(const Vec &v)").unwrap();
        assert_eq!(d.params[0].cxx_ty, "const Vec &");
        assert_eq!(d.params[0].c_ty, "const Vec *");
        assert!(d.params[0].by_ref);
        assert_eq!(
            d.c_prototype(),
            "double Shape__scale(Shape *this, const Vec *v)"
        );

        let d = CxxDecl::parse("Shape *make_shape(int kind, double a, double b)").unwrap();
        assert_eq!(d.kind, CxxKind::Function);
        assert_eq!(d.class, "");
        assert_eq!(d.this_type(), None);
        assert_eq!(
            d.c_prototype(),
            "Shape *make_shape(int kind, double a, double b)"
        );
    }

    #[test]
    fn namespaced_classes() {
        let d = CxxDecl::parse("virtual double ns::Shape::area() const").unwrap();
        assert_eq!(d.class, "ns::Shape");
        assert_eq!(d.qualified_name(), "ns::Shape::area");
        assert_eq!(d.this_type().as_deref(), Some("ns__Shape"));
        assert_eq!(d.c_prototype(), "double ns__Shape__area(ns__Shape *this)");
        let d = CxxDecl::parse("a::b::C::C(const geo::Vec &v, std::size_t n)").unwrap();
        assert_eq!(d.kind, CxxKind::Ctor);
        assert_eq!(d.class, "a::b::C");
        assert_eq!(
            d.c_prototype(),
            "void a__b__C__C(a__b__C *this, const geo__Vec *v, size_t n)"
        );
        let d = CxxDecl::parse("ns::Shape::~Shape()").unwrap();
        assert_eq!(d.kind, CxxKind::Dtor);
        assert_eq!(d.c_name(), "ns__Shape__dtor");
        let d = CxxDecl::parse("static int ns::count(int k)").unwrap();
        assert_eq!(d.kind, CxxKind::Static);
        assert_eq!(d.c_prototype(), "int ns__count(int k)");
    }

    #[test]
    fn references_and_annotations() {
        let d = CxxDecl::parse("void Shape::bounds(double &w, double &h) const").unwrap();
        assert_eq!(
            d.c_prototype(),
            "void Shape__bounds(Shape *this, double *w [inout 1], double *h [inout 1])"
        );
        let d = CxxDecl::parse("int S::f(const char &c, char &d, const int &k)").unwrap();
        assert_eq!(
            d.c_prototype(),
            "int S__f(S *this, const char *c [in 1], char *d [inout 1], const int *k [in 1])"
        );
        // The user's annotations stay as written; the return annotation too.
        let d = CxxDecl::parse(
            "size_t Codec::encode(const uint8_t *src [in len], size_t len, uint8_t *dst [out cap; written ret], size_t cap) const",
        )
        .unwrap();
        assert_eq!(
            d.c_prototype(),
            "size_t Codec__encode(Codec *this, const uint8_t *src [in len], size_t len, uint8_t *dst [out cap; written ret], size_t cap)"
        );
        let d = CxxDecl::parse("const char *Shape::label(int k) const [string]").unwrap();
        assert_eq!(d.ret_annotation.as_deref(), Some("[string]"));
        assert_eq!(
            d.c_prototype(),
            "const char *Shape__label(Shape *this, int k) [string]"
        );
        // Reference to a named type: the C defaults apply (struct or handle).
        let d = CxxDecl::parse("void Shape::copy(Shape &other, Vec const &v)").unwrap();
        assert_eq!(
            d.c_prototype(),
            "void Shape__copy(Shape *this, Shape *other, const Vec *v)"
        );
        // Unnamed parameters, (void).
        let d = CxxDecl::parse("void Shape::grow(int)").unwrap();
        assert_eq!(d.params[0].name, "arg0");
        let d = CxxDecl::parse("int Shape::n(void) const").unwrap();
        assert!(d.params.is_empty());
        // Qualifiers after the parameters.
        let d =
            CxxDecl::parse("virtual double Rect::area() const noexcept override final").unwrap();
        assert!(d.is_const && d.is_virtual);
        let d = CxxDecl::parse("virtual double Shape::area() const = 0").unwrap();
        assert!(d.is_const);
    }

    #[test]
    fn prototypes_parse_as_c() {
        let mut tt = TypeTable::new();
        for t in [
            "struct Shape;",
            "typedef struct Shape Shape;",
            "struct ns__Shape;",
            "typedef struct ns__Shape ns__Shape;",
            "typedef struct Vec { double x; double y; } Vec;",
        ] {
            tt.declare(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
        for decl in [
            "Shape::Shape(double w, double h)",
            "virtual double Shape::area() const",
            "virtual Shape::~Shape()",
            "void Shape::grow(int n)",
            "const char *Shape::name() const",
            "double Shape::scale(const Vec &v)",
            "void Shape::bounds(double &w, double &h) const",
            "int Shape::f(const char &c, unsigned &u, long int l, unsigned long long q)",
            "size_t Shape::fill(double *out [out n], size_t n)",
            "virtual double ns::Shape::area() const",
            "Shape *make_shape(int kind, double a, double b)",
            "void Shape::sum(const double v[3])",
        ] {
            let d = CxxDecl::parse(decl).unwrap();
            let proto = d.c_prototype();
            let sig =
                parse_signature(&proto, &tt).unwrap_or_else(|e| panic!("{decl} → {proto}: {e}"));
            let named = d.c_prototype_named("_ZN5Shape4growEi");
            parse_signature(&named, &tt).unwrap_or_else(|e| panic!("{named}: {e}"));
            let this = usize::from(d.this_type().is_some());
            assert_eq!(sig.params.len(), d.params.len() + this, "{proto}");
        }
    }

    #[test]
    fn errors_have_columns() {
        let e = err("template <class T> void S::f(T x)");
        assert_eq!(e.column, 1);
        let e = err("bool S::operator==(const S &o) const");
        assert_eq!(e.column, 9);
        let e = err("void S::f(int a, ...)");
        assert_eq!(e.column, 18);
        let e = err("double Shape::area");
        assert!(e.message.contains("`(`"), "{e}");
        let e = err("Shape::area() const");
        assert_eq!(e.column, 1);
        assert!(e.message.contains("return type"), "{e}");
        let e = err("int Shape::Shape(double w)");
        assert_eq!(e.column, 1);
        let e = err("void Shape::grow(int n");
        assert_eq!(e.column, 23);
        let e = err("void Shape::grow(int n) const const2");
        assert_eq!(e.column, 31);
        let e = err("void Shape::f(std::vector<int> v)");
        assert_eq!(e.column, 26);
        let e = err("void Shape::f(void (*cb)(int))");
        assert_eq!(e.column, 20);
        let e = err("void Shape::f(int &&x)");
        assert_eq!(e.column, 19);
        let e = err("void Shape::f(int [in 2)");
        assert_eq!(e.column, 19);
        let e = err("void Shape::f(unsigned double x)");
        assert_eq!(e.column, 15);
        let e = err("virtual Shape::~Rect()");
        assert!(e.message.contains("destructor"), "{e}");
        let e = err("virtual int f(int)");
        assert!(e.message.contains("class"), "{e}");
        let e = err("void Shape::f(int a,)");
        assert_eq!(e.column, 21);
        let e = err("void Shape::f() &");
        assert_eq!(e.column, 17);
        let e = err("void Shape::f(int a) $");
        assert_eq!(e.column, 22);
        assert_eq!(e.to_string(), "column 22: unexpected character `$`");
    }

    #[test]
    fn tells_cxx_from_c() {
        assert!(is_cxx_decl("virtual double Shape::area() const"));
        assert!(is_cxx_decl("virtual Shape::~Shape()"));
        assert!(is_cxx_decl("Shape::Shape(double w, double h)"));
        assert!(is_cxx_decl("  virtual\tint X::f()"));
        assert!(is_cxx_decl("int ns::f(int a)"));
        assert!(!is_cxx_decl(
            "Shape *make_shape(int kind, double a, double b)"
        ));
        assert!(!is_cxx_decl("int calc_add(int a, int b)"));
        assert!(!is_cxx_decl("int virtualize(int a)"));
        assert!(!is_cxx_decl("int f(int *p [in a ? b :: c])"));
        assert!(!is_cxx_decl("int f(int a) [x::y]"));
    }

    #[test]
    fn resolves_constructors_and_destructors() {
        use CxxVariant::*;
        let s = |v: &[(&str, CxxVariant)]| -> Vec<(String, CxxVariant)> {
            v.iter().map(|(a, b)| (a.to_string(), *b)).collect()
        };
        assert_eq!(
            resolved("Shape::Shape(double w, double h)"),
            s(&[("_ZN5ShapeC1Edd", C1), ("_ZN5ShapeC2Edd", C2)])
        );
        assert_eq!(
            resolved("Rect::Rect(double, double)"),
            s(&[("_ZN4RectC1Edd", C1), ("_ZN4RectC2Edd", C2)])
        );
        assert_eq!(
            resolved("Circle::Circle(double r)"),
            s(&[("_ZN6CircleC1Ed", C1), ("_ZN6CircleC2Ed", C2)])
        );
        assert_eq!(
            resolved("virtual Shape::~Shape()"),
            s(&[
                ("_ZN5ShapeD0Ev", D0),
                ("_ZN5ShapeD1Ev", D1),
                ("_ZN5ShapeD2Ev", D2)
            ])
        );
        assert_eq!(
            resolved("virtual Circle::~Circle()"),
            s(&[
                ("_ZN6CircleD0Ev", D0),
                ("_ZN6CircleD1Ev", D1),
                ("_ZN6CircleD2Ev", D2)
            ])
        );
        assert_eq!(
            resolved("tally::Counter::Counter(int start)"),
            s(&[("_ZN5tally7CounterC1Ei", C1), ("_ZN5tally7CounterC2Ei", C2)])
        );
        assert_eq!(
            resolved("tally::Counter::~Counter()"),
            s(&[("_ZN5tally7CounterD1Ev", D1), ("_ZN5tally7CounterD2Ev", D2)])
        );
        // Wrong arity: nothing.
        assert!(resolved("Shape::Shape(double w)").is_empty());
        // Not namespaced as written: nothing.
        assert!(resolved("Counter::Counter(int start)").is_empty());
    }

    #[test]
    fn resolves_methods_and_overloads() {
        assert_eq!(one("void Shape::grow(int n)"), "_ZN5Shape4growEi");
        assert_eq!(one("void Shape::grow(double f)"), "_ZN5Shape4growEd");
        assert_eq!(
            one("virtual double Shape::area() const"),
            "_ZNK5Shape4areaEv"
        );
        assert_eq!(one("virtual double Rect::area() const"), "_ZNK4Rect4areaEv");
        assert_eq!(
            one("virtual const char *Circle::name() const"),
            "_ZNK6Circle4nameEv"
        );
        assert_eq!(one("double Shape::scale(double k)"), "_ZN5Shape5scaleEd");
        assert_eq!(
            one("double Shape::stretch(const Vec &v) const"),
            "_ZNK5Shape7stretchERK3Vec"
        );
        // East const, no names.
        assert_eq!(
            one("double Shape::stretch(Vec const&) const"),
            "_ZNK5Shape7stretchERK3Vec"
        );
        assert_eq!(
            one("void Shape::bounds(double &w, double &h) const"),
            "_ZNK5Shape6boundsERdS0_"
        );
        assert_eq!(
            one("int tally::Counter::total() const"),
            "_ZNK5tally7Counter5totalEv"
        );
        assert_eq!(
            one("void tally::Counter::add(int n)"),
            "_ZN5tally7Counter3addEi"
        );
        // Free function with C++ linkage.
        assert_eq!(
            one("Shape *make_shape(int kind, double a, double b)"),
            "_Z10make_shapeidd"
        );
        // const-ness and types must agree.
        assert!(resolved("virtual double Shape::area()").is_empty());
        assert!(resolved("double Shape::scale(double k) const").is_empty());
        assert!(resolved("void Shape::grow(long n)").is_empty());
        assert!(resolved("void Shape::grow(float n)").is_empty());
        assert!(resolved("double Shape::stretch(Vec &v) const").is_empty());
        assert!(resolved("double Shape::stretch(const Vec *v) const").is_empty());
        assert!(resolved("void Shape::bounds(double *w, double *h) const").is_empty());
        // The top-level const of a by-value parameter is not part of the type.
        assert_eq!(one("void Shape::grow(const int n)"), "_ZN5Shape4growEi");
        // An extern "C" function matches by name.
        let d = CxxDecl::parse("void *malloc(size_t n)").unwrap();
        let r = resolve(&d, SHAPES);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].mangled, "malloc");
        assert_eq!(r[0].version.as_deref(), Some("GLIBC_2.2.5"));
    }

    #[test]
    fn normalises_types() {
        // Mangled names g++ gives for these parameter types.
        let syms = [
            "_ZN1S1fEj",             // S::f(unsigned int)
            "_ZN1S1fEm",             // S::f(unsigned long)
            "_ZN1S1fEx",             // S::f(long long)
            "_ZN1S1fEl",             // S::f(long)
            "_ZN1S1fEa",             // S::f(signed char)
            "_ZN1S1fEh",             // S::f(unsigned char)
            "_ZN1S1fEc",             // S::f(char)
            "_ZN1S1fEt",             // S::f(unsigned short)
            "_ZN1S1fEPKc",           // S::f(char const*)
            "_ZN1S1fEPc",            // S::f(char*)
            "_ZN1S1fEPKPc",          // S::f(char* const*)
            "_ZN1S1fERKN3geo3VecE",  // S::f(geo::Vec const&)
            "_ZN1S1fERSt9exception", // S::f(std::exception&)
            "_ZN1S1fEPv",            // S::f(void*)
            "_ZN1S1fEb",             // S::f(bool)
            "_ZN1S1fEy",             // S::f(unsigned long long)
            "_ZN1S1fEs",             // S::f(short)
            "_ZN1S1fEf",             // S::f(float)
            "_ZN1S1fEe",             // S::f(long double)
            "_ZN1S1fEPKd",           // S::f(double const*)
        ];
        let r = |decl: &str| -> Vec<String> {
            let d = CxxDecl::parse(decl).unwrap();
            resolve(&d, &syms).into_iter().map(|s| s.mangled).collect()
        };
        assert_eq!(r("void S::f(unsigned u)"), ["_ZN1S1fEj"]);
        assert_eq!(r("void S::f(unsigned int u)"), ["_ZN1S1fEj"]);
        assert_eq!(r("void S::f(uint32_t u)"), ["_ZN1S1fEj"]);
        assert_eq!(r("void S::f(size_t n)"), ["_ZN1S1fEm"]);
        assert_eq!(r("void S::f(std::size_t n)"), ["_ZN1S1fEm"]);
        assert_eq!(r("void S::f(long unsigned int n)"), ["_ZN1S1fEm"]);
        assert_eq!(r("void S::f(long long int n)"), ["_ZN1S1fEx"]);
        assert_eq!(r("void S::f(signed long n)"), ["_ZN1S1fEl"]);
        assert_eq!(r("void S::f(int64_t n)"), ["_ZN1S1fEl"]);
        assert_eq!(r("void S::f(int8_t n)"), ["_ZN1S1fEa"]);
        assert_eq!(r("void S::f(uint8_t n)"), ["_ZN1S1fEh"]);
        assert_eq!(r("void S::f(char n)"), ["_ZN1S1fEc"]);
        assert_eq!(r("void S::f(short unsigned n)"), ["_ZN1S1fEt"]);
        assert_eq!(r("void S::f(short int n)"), ["_ZN1S1fEs"]);
        assert_eq!(r("void S::f(const char *s)"), ["_ZN1S1fEPKc"]);
        assert_eq!(r("void S::f(char const *s)"), ["_ZN1S1fEPKc"]);
        assert_eq!(r("void S::f(char *const s)"), ["_ZN1S1fEPc"]);
        assert_eq!(r("void S::f(char *const *argv)"), ["_ZN1S1fEPKPc"]);
        assert_eq!(r("void S::f(const geo::Vec &v)"), ["_ZN1S1fERKN3geo3VecE"]);
        assert_eq!(r("void S::f(const Vec &v)"), ["_ZN1S1fERKN3geo3VecE"]);
        assert!(r("void S::f(const other::Vec &v)").is_empty());
        assert_eq!(r("void S::f(std::exception &e)"), ["_ZN1S1fERSt9exception"]);
        assert_eq!(r("void S::f(void *p)"), ["_ZN1S1fEPv"]);
        assert_eq!(r("void S::f(bool b)"), ["_ZN1S1fEb"]);
        assert_eq!(r("void S::f(unsigned long long b)"), ["_ZN1S1fEy"]);
        assert_eq!(r("void S::f(float b)"), ["_ZN1S1fEf"]);
        assert_eq!(r("void S::f(long double b)"), ["_ZN1S1fEe"]);
        assert_eq!(r("void S::f(const double v[3])"), ["_ZN1S1fEPKd"]);
        assert_eq!(r("void S::f(const double *v [in 3])"), ["_ZN1S1fEPKd"]);
        assert_eq!(r("void S::f(const double)").len(), 0);
        assert!(r("void S::f(double v[])").is_empty());
    }

    #[test]
    fn variants_from_mangled_names() {
        use CxxVariant::*;
        assert_eq!(ctor_dtor_variant("_ZN5ShapeC1Edd"), Some(C1));
        assert_eq!(ctor_dtor_variant("_ZN5ShapeC2Edd"), Some(C2));
        assert_eq!(ctor_dtor_variant("_ZN5ShapeD0Ev"), Some(D0));
        assert_eq!(ctor_dtor_variant("_ZN2ns5ShapeD2Ev"), Some(D2));
        assert_eq!(ctor_dtor_variant("_ZNSt9exceptionD1Ev"), Some(D1));
        assert_eq!(ctor_dtor_variant("_ZN5Shape4growEi"), None);
        assert_eq!(ctor_dtor_variant("_Z10make_shapeidd"), None);
        // A class whose name holds "C1E" is still read right.
        assert_eq!(ctor_dtor_variant("_ZN4AC1E3getEv"), None);
        assert_eq!(ctor_dtor_variant("_ZN4AC1EC2Ev"), Some(C2));
        // ABI tag after the constructor name.
        assert_eq!(ctor_dtor_variant("_ZN1SC1B5cxx11Ev"), Some(C1));
        // A substitution in the prefix (S_ = ns): ns::S::S(ns::S const&).
        assert_eq!(ctor_dtor_variant("_ZN2ns1SC1ERKS0_"), Some(C1));
        assert_eq!(ctor_dtor_variant("_ZNS_1SC1Ev"), Some(C1));
    }

    /// Every function of the fixture's example config parses and resolves:
    /// constructors to C1 + C2, virtual destructors to D0 + D1 + D2, the
    /// Counter's destructor to D1 + D2, the rest to exactly one symbol.
    #[test]
    fn shapes_config_resolves() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../cxx-fixtures/shapes.ddl.json"
        );
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut n = 0;
        for f in cfg["functions"].as_array().unwrap() {
            let text = f.as_str().or_else(|| f["sig"].as_str()).unwrap();
            let d = CxxDecl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let want = match d.kind {
                CxxKind::Ctor => 2,
                CxxKind::Dtor if d.is_virtual => 3,
                CxxKind::Dtor => 2,
                _ => 1,
            };
            assert_eq!(resolve(&d, SHAPES).len(), want, "{text}");
            assert_eq!(is_cxx_decl(text), d.kind != CxxKind::Function, "{text}");
            n += 1;
        }
        assert_eq!(n, 22);
    }

    #[test]
    fn class_symbols() {
        assert_eq!(vtable_symbol("Shape").as_deref(), Some("_ZTV5Shape"));
        assert_eq!(
            vtable_symbol("ns::Shape").as_deref(),
            Some("_ZTVN2ns5ShapeE")
        );
        assert_eq!(typeinfo_symbol("Rect").as_deref(), Some("_ZTI4Rect"));
        assert_eq!(
            typeinfo_name_symbol("Circle").as_deref(),
            Some("_ZTS6Circle")
        );
        assert_eq!(typeinfo_symbol("a::b::C").as_deref(), Some("_ZTIN1a1b1CE"));
        assert_eq!(
            vtable_symbol("std::exception").as_deref(),
            Some("_ZTVSt9exception")
        );
        assert_eq!(vtable_symbol("::Shape").as_deref(), Some("_ZTV5Shape"));
        assert_eq!(vtable_symbol("Sha pe"), None);
        assert_eq!(vtable_symbol("ns::"), None);
        // They are real: in the fixture, and the demangler agrees.
        for c in ["Shape", "Rect", "Circle"] {
            assert!(SHAPES.contains(&vtable_symbol(c).unwrap().as_str()));
            assert!(SHAPES.contains(&typeinfo_symbol(c).unwrap().as_str()));
        }
        let v = vtable_symbol("ns::inner::Shape").unwrap();
        let s = cpp_demangle::Symbol::new(v.as_str()).unwrap();
        let text = s.to_string();
        assert!(
            text.contains("vtable") && text.contains("(ns::inner::Shape)"),
            "{text}"
        );
    }
}
