//! Signatures (CONFIG.md, "Signatures"): annotated C prototypes and the
//! declarations of the config's `types`, turned into the typed model of
//! [`crate::types`].
//!
//! The parser is a hand-written lexer plus recursive descent over the small
//! part of C that prototypes copied from a header use: declaration
//! specifiers, pointer declarators with qualifiers, function-pointer
//! declarators, and struct bodies. Annotations (`[in N]`, `[out N; written
//! W]`, …) are parsed into a raw form first and resolved once every
//! parameter is known, because a size may name a parameter that comes later
//! (`written *outlen` before `size_t *outlen [out]`). Size expressions follow
//! C precedence and evaluate as `i64`.
//!
//! Every error carries the 1-based character column of the offending token
//! inside the text it came from, so the config loader can point at it.
//!
//! Where CONFIG.md is silent, this parser chooses what a C programmer
//! would expect:
//!
//! * Only plain `char *` / `const char *` default to strings; `unsigned
//!   char *`, `uint8_t *` and `signed char *` are byte pointers.
//! * A parameter written as an array decays to a pointer: `const double
//!   v[3]` is `[in 3]`, `char *argv[]` is `char **`. A bracket after a
//!   *pointer* name is always an annotation (`double *v [4]` is `[in 4]`).
//! * In a struct, `T name[N]` on a non-pointer is a fixed array
//!   ([`Role::Array`]); `int a, b;` declares two fields. A field pointing to
//!   a struct that is not declared yet (itself, or one declared later) is
//!   kept as an opaque `void *`.
//! * Unnamed parameters are `arg0`, `arg1`, … by position; `f()` means no
//!   parameters. `[in]` without a size means one element.
//! * Comments, `extern`, `restrict`, `__extension__` and `__attribute__((…))`
//!   are accepted and ignored; unions, bit-fields, `long double` and `...`
//!   are refused.
//! * Besides `<stdint.h>` and `<stddef.h>` names, `pid_t`, `uid_t`, `gid_t`,
//!   `mode_t`, `socklen_t`, `time_t`, `off64_t`, `wchar_t`, `intmax_t` and
//!   `uintmax_t` are known with their x86-64 Linux types. A `typedef` may
//!   repeat a built-in name only with the same type.
//! * Size expressions nest at most 64 deep (they are evaluated recursively
//!   on the caller's path); arithmetic wraps, division by zero gives no
//!   value. A multi-line prototype's columns count from its first
//!   character, newlines included.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::types::{
    BinOp, Dir, Effect, Expr, Field, Param, Role, Scalar, Signature, StructDef, Type, UnOp,
};

/// A signature or declaration that does not parse, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigError {
    /// 1-based character column inside the signature or declaration text.
    pub column: usize,
    /// What is wrong, for a human.
    pub message: String,
}

impl SigError {
    fn new(column: usize, message: impl Into<String>) -> SigError {
        SigError {
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for SigError {}

type Result<T> = std::result::Result<T, SigError>;

const CXX_REFUSED: &str = "C++ declarations arrive with the stateful-components issue";

// ---------------------------------------------------------------------------
// Syntactic types

/// A type as written, before struct names are looked up. Struct references
/// stay names so that a typedef may name a struct declared later, and a
/// struct may point to itself.
#[derive(Clone, Debug, PartialEq)]
enum CTy {
    Void,
    Scalar(Scalar),
    Struct(String),
    FnPtr,
    /// Pointer to the inner type; the flag is `const` on the pointee.
    Ptr(Box<CTy>, bool),
}

/// A typedef: the type it names, and whether its innermost base was spelled
/// plain `char` (so `typedef char *str_t;` still defaults to a string).
#[derive(Clone, Debug, PartialEq)]
struct Typedef {
    ty: CTy,
    plain_char: bool,
}

/// The structs and typedefs declared in the config's `types`.
#[derive(Clone, Debug, Default)]
pub struct TypeTable {
    structs: HashMap<String, Arc<StructDef>>,
    typedefs: HashMap<String, Typedef>,
    /// Structs declared without a body (`struct calc_ctx;`): pointers to
    /// them are opaque `void *`.
    incomplete: std::collections::HashSet<String>,
    /// The handle types: what a handle points to, and its class (the
    /// index of its entry in the config's `handles`; C++ classes share one
    /// class, as an object is one object whatever its static type).
    handles: Vec<(CTy, u32)>,
    /// Handle classes declared.
    classes: u32,
}

/// `<stdint.h>`, `<stddef.h>`, `<stdbool.h>`, `<sys/types.h>` names DDL knows
/// without a typedef, with their x86-64 Linux types.
fn builtin_named(name: &str) -> Option<Scalar> {
    Some(match name {
        "bool" | "_Bool" => Scalar::Bool,
        "int8_t" => Scalar::I8,
        "uint8_t" => Scalar::U8,
        "int16_t" => Scalar::I16,
        "uint16_t" => Scalar::U16,
        "int32_t" | "wchar_t" | "pid_t" => Scalar::I32,
        "uint32_t" | "uid_t" | "gid_t" | "mode_t" | "socklen_t" => Scalar::U32,
        "int64_t" | "ssize_t" | "ptrdiff_t" | "intptr_t" | "off_t" | "off64_t" | "time_t"
        | "intmax_t" => Scalar::I64,
        "uint64_t" | "size_t" | "uintptr_t" | "uintmax_t" => Scalar::U64,
        _ => return None,
    })
}

const QUALIFIERS: &[&str] = &[
    "const",
    "volatile",
    "restrict",
    "__restrict",
    "__restrict__",
];
const SPECIFIERS: &[&str] = &[
    "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned",
];
const KEYWORDS: &[&str] = &[
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Bool", "bool",
];

impl TypeTable {
    /// An empty table.
    pub fn new() -> Self {
        TypeTable::default()
    }

    /// Declares one entry of the config's `types`: a struct
    /// (`struct point { double x; double y; }`, fields with annotations,
    /// fixed arrays `int v[4];`), a typedef (`typedef struct z_stream_s
    /// *z_streamp;`, `typedef unsigned int uInt;`, `typedef struct { … }
    /// name;`), an incomplete struct (`struct calc_ctx;`: pointers to it are
    /// opaque), or an enum (accepted; enums are `int`).
    pub fn declare(&mut self, decl: &str) -> std::result::Result<(), SigError> {
        let toks = lex(decl)?;
        check_cxx(&toks)?;
        let mut p = Parser::new(toks, self);
        let done = if p.is_ident("typedef") {
            p.next();
            p.parse_typedef()?
        } else if p.is_ident("struct") {
            p.next();
            let (name, name_col) = p.expect_name("a struct name")?;
            if p.is_punct(";") || matches!(p.tok(), Tok::Eof) {
                p.eat_punct(";");
                p.expect_eof()?;
                drop(p);
                if !self.structs.contains_key(&name) {
                    self.incomplete.insert(name);
                }
                return Ok(());
            }
            if !p.is_punct("{") {
                return Err(SigError::new(
                    p.col(),
                    format!("expected `{{` and the fields of struct {name}"),
                ));
            }
            let fields = p.parse_struct_body()?;
            Decl::Struct {
                name,
                name_col,
                fields,
            }
        } else if p.is_ident("enum") {
            p.next();
            if p.is_ident_any() {
                p.next();
            }
            if !p.is_punct("{") {
                return Err(SigError::new(p.col(), "expected `{` and the enumerators"));
            }
            p.skip_balanced("{", "}")?;
            Decl::Nothing
        } else if p.is_ident("union") {
            return Err(SigError::new(p.col(), "unions are not supported"));
        } else {
            return Err(SigError::new(
                p.col(),
                "expected `struct NAME { … }`, `typedef …` or `enum …`",
            ));
        };
        p.eat_punct(";");
        p.expect_eof()?;
        drop(p);
        self.apply(done)
    }

    /// Declares a handle type (`"codec_t *"`, `"struct z_stream_s *"`;
    /// CONFIG.md, "Handles") and returns its class (index). A name that
    /// is not declared in `types` is an opaque type of its own (a handle
    /// needs no typedef); a pointer to a struct declared with its fields is
    /// a caller-owned struct with a life (the shadow keeps its own instance).
    pub fn declare_handle(&mut self, text: &str) -> std::result::Result<u32, SigError> {
        let class = self.classes;
        self.declare_handle_in(text, class)?;
        Ok(class)
    }

    /// Declares `text` as one more type of the handle class `class` (a
    /// C++ class pointer: every class shares the class of C++ objects).
    /// Declaring a type already in that class is not an error.
    pub fn declare_handle_in(
        &mut self,
        text: &str,
        class: u32,
    ) -> std::result::Result<(), SigError> {
        let toks = lex(text)?;
        check_cxx(&toks)?;
        // Unknown names become opaque types (`codec_t`, `struct codec`).
        let mut after_struct = false;
        for t in &toks {
            if let Tok::Ident(name) = &t.tok {
                let known = self.typedefs.contains_key(name)
                    || builtin_named(name).is_some()
                    || KEYWORDS.contains(&name.as_str())
                    || QUALIFIERS.contains(&name.as_str());
                if after_struct {
                    if !self.structs.contains_key(name) {
                        self.incomplete.insert(name.clone());
                    }
                } else if !known {
                    let tag = format!("{name} (handle)");
                    self.incomplete.insert(tag.clone());
                    self.typedefs.insert(
                        name.clone(),
                        Typedef {
                            ty: CTy::Struct(tag),
                            plain_char: false,
                        },
                    );
                }
                after_struct = name == "struct";
            } else {
                after_struct = false;
            }
        }
        let mut p = Parser::new(toks, self);
        let base = p.parse_base()?;
        let d = p.parse_declarator(&base)?;
        if let Some((_, col)) = d.name {
            return Err(SigError::new(
                col,
                "a handle type has no name: write it as `T *`",
            ));
        }
        p.expect_eof()?;
        let CTy::Ptr(pointee, _) = d.ty else {
            return Err(SigError::new(1, "a handle type is a pointer: `T *`"));
        };
        if matches!(*pointee, CTy::Scalar(_) | CTy::Void | CTy::FnPtr) {
            return Err(SigError::new(
                1,
                "a handle type points to a named type (`codec_t *`, `struct S *`)",
            ));
        }
        match self.handles.iter().find(|(t, _)| *t == *pointee) {
            Some((_, c)) if *c == class => return Ok(()),
            Some(_) => return Err(SigError::new(1, "this handle type is already listed")),
            None => {}
        }
        self.handles.push((*pointee, class));
        self.classes = self.classes.max(class + 1);
        Ok(())
    }

    /// Handle classes declared so far.
    pub fn handle_classes(&self) -> u32 {
        self.classes
    }

    /// The handle class of a parameter or return type: `T *` where `T *` is
    /// a handle type gives `(class, false)`, `T **` gives `(class, true)`.
    fn handle_of(&self, ty: &CTy) -> Option<(u32, bool)> {
        let find = |inner: &CTy| {
            self.handles
                .iter()
                .find(|(h, _)| h == inner)
                .map(|(_, c)| *c)
        };
        match ty {
            CTy::Ptr(inner, _) => match &**inner {
                CTy::Ptr(inner2, _) => find(inner2).map(|c| (c, true)),
                inner => find(inner).map(|c| (c, false)),
            },
            _ => None,
        }
    }

    /// The struct declared as `struct NAME { … }`, if any (not one declared
    /// without fields, `struct NAME;`).
    pub fn lookup_struct(&self, name: &str) -> Option<Arc<StructDef>> {
        self.structs.get(name).cloned()
    }

    fn apply(&mut self, decl: Decl) -> Result<()> {
        match decl {
            Decl::Nothing => Ok(()),
            Decl::Struct {
                name,
                name_col,
                fields,
            } => {
                self.add_struct(name, name_col, fields)?;
                Ok(())
            }
            Decl::Typedef {
                body,
                ty,
                plain_char,
                name,
                name_col,
            } => {
                if let Some((tag, tag_col, fields)) = body {
                    self.add_struct(tag, tag_col, fields)?;
                }
                let td = Typedef { ty, plain_char };
                if let Some(s) = builtin_named(&name) {
                    if td.ty != CTy::Scalar(s) {
                        return Err(SigError::new(
                            name_col,
                            format!("typedef {name} conflicts with the built-in {name}"),
                        ));
                    }
                    return Ok(());
                }
                if let Some(old) = self.typedefs.get(&name) {
                    if old.ty != td.ty {
                        return Err(SigError::new(
                            name_col,
                            format!("typedef {name} is already declared as another type"),
                        ));
                    }
                }
                self.typedefs.insert(name, td);
                Ok(())
            }
        }
    }

    fn add_struct(&mut self, name: String, name_col: usize, fields: Vec<RawField>) -> Result<()> {
        if self.structs.contains_key(&name) {
            return Err(SigError::new(
                name_col,
                format!("struct {name} is already declared"),
            ));
        }
        let def = self.build_struct(&name, fields)?;
        self.structs.insert(name, Arc::new(def));
        Ok(())
    }

    /// Lays out a struct (natural alignment, x86-64 SysV) and resolves its
    /// fields' annotations against its own fields.
    fn build_struct(&self, name: &str, raw: Vec<RawField>) -> Result<StructDef> {
        let names: Vec<String> = raw.iter().map(|f| f.name.clone()).collect();
        for (i, f) in raw.iter().enumerate() {
            if names[..i].contains(&f.name) {
                return Err(SigError::new(
                    f.name_col,
                    format!("struct {name} has two fields named {}", f.name),
                ));
            }
        }
        let mut res = Resolver {
            scope: Scope::Fields {
                names: &names,
                strukt: name,
            },
            ret_void: false,
            checks: Vec::new(),
        };
        let mut fields = Vec::with_capacity(raw.len());
        let mut offset = 0usize;
        let mut align = 1usize;
        for f in &raw {
            let (ty, incomplete) = self.resolve_field_type(&f.ty, f.ty_col)?;
            if matches!(ty, Type::Void) {
                return Err(SigError::new(
                    f.ty_col,
                    format!("field {} has type void", f.name),
                ));
            }
            let role = if let Some(len) = f.array {
                match &f.annot {
                    None => Role::Array { len },
                    Some(a) if matches!(a.kind, AKind::Private) => Role::Private,
                    Some(a) => {
                        return Err(SigError::new(
                            a.col,
                            "an array field takes no annotation but [private]",
                        ))
                    }
                }
            } else {
                if incomplete {
                    if let Some(a) = &f.annot {
                        if matches!(a.kind, AKind::Buffer { .. } | AKind::String) {
                            return Err(SigError::new(
                                a.col,
                                format!(
                                    "field {} points to a struct that is not declared before it: \
                                     only [opaque], [null] or [private] apply",
                                    f.name
                                ),
                            ));
                        }
                    }
                }
                make_role(&ty, f.plain_char, f.annot.as_ref(), Where::Field, &mut res)?
            };
            let (size, al) = match f.array {
                Some(len) => (ty.size() * len, ty.align()),
                None => (ty.size(), ty.align()),
            };
            offset = align_up(offset, al);
            align = align.max(al);
            fields.push(Field {
                name: f.name.clone(),
                ty,
                offset,
                role,
            });
            offset += size;
        }
        debug_assert!(res.checks.is_empty());
        Ok(StructDef {
            name: name.to_string(),
            fields,
            size: align_up(offset, align),
            align,
        })
    }

    /// Resolves a field's type; a pointer to a struct that is not declared
    /// yet (itself, or one declared later) becomes `void *` and the second
    /// value says so.
    fn resolve_field_type(&self, ty: &CTy, col: usize) -> Result<(Type, bool)> {
        if let CTy::Ptr(inner, c) = ty {
            if let CTy::Struct(n) = &**inner {
                if !self.structs.contains_key(n) {
                    return Ok((
                        Type::Pointer {
                            pointee: Box::new(Type::Void),
                            is_const: *c,
                        },
                        true,
                    ));
                }
            }
        }
        Ok((self.resolve(ty, col, true)?, false))
    }

    /// Turns a syntactic type into a [`Type`]. Inside struct fields
    /// (`lenient`), pointers to undeclared structs deeper than one level
    /// become `void` pointees.
    fn resolve(&self, ty: &CTy, col: usize, lenient: bool) -> Result<Type> {
        Ok(match ty {
            CTy::Void => Type::Void,
            CTy::Scalar(s) => Type::Scalar(*s),
            CTy::FnPtr => Type::FnPtr,
            CTy::Struct(n) => match self.structs.get(n) {
                Some(s) => Type::Struct(s.clone()),
                None if self.incomplete.contains(n) => {
                    return Err(SigError::new(
                        col,
                        format!(
                        "struct {n} is declared without fields: only a pointer to it can be used"
                    ),
                    ))
                }
                None => {
                    return Err(SigError::new(
                        col,
                        format!("struct {n} is not declared in \"types\""),
                    ))
                }
            },
            CTy::Ptr(inner, c) => {
                let pointee = match (&**inner, lenient) {
                    (CTy::Struct(n), true) if !self.structs.contains_key(n) => Type::Void,
                    (CTy::Struct(n), _)
                        if !self.structs.contains_key(n) && self.incomplete.contains(n) =>
                    {
                        Type::Void
                    }
                    _ => self.resolve(inner, col, lenient)?,
                };
                Type::Pointer {
                    pointee: Box::new(pointee),
                    is_const: *c,
                }
            }
        })
    }
}

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Punct(&'static str),
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    col: usize,
}

const PUNCTS: &[&str] = &[
    "...", "::", "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "->", "(", ")", "[", "]", "{",
    "}", "*", ",", ";", "?", ":", "&", "|", "<", ">", "+", "-", "/", "%", "!", "=", "~", "^", ".",
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
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == '*' && chars[j + 1] == '/') {
                j += 1;
            }
            if j + 1 >= chars.len() {
                return Err(SigError::new(col, "unterminated comment"));
            }
            i = j + 2;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
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
            let s: String = chars[i..j].iter().collect();
            let v = parse_int(&s)
                .ok_or_else(|| SigError::new(col, format!("invalid integer literal \"{s}\"")))?;
            out.push(Token {
                tok: Tok::Int(v),
                col,
            });
            i = j;
            continue;
        }
        // PUNCTS are ASCII: one char each of their bytes (no allocation per
        // try: the lexer was ~14 % of the CPU of a process's start-up under
        // DDL, most of it allocating here).
        for p in PUNCTS {
            let rest = chars.get(i..i + p.len()).unwrap_or(&[]);
            if rest.len() == p.len() && rest.iter().zip(p.bytes()).all(|(&c, b)| c == b as char) {
                out.push(Token {
                    tok: Tok::Punct(p),
                    col,
                });
                i += p.len();
                continue 'outer;
            }
        }
        return Err(SigError::new(col, format!("unexpected character '{c}'")));
    }
    out.push(Token {
        tok: Tok::Eof,
        col: chars.len() + 1,
    });
    Ok(strip_attributes(out))
}

/// Drops GNU decorations that headers carry and DDL has no use for:
/// `__attribute__((…))`, `__extension__`.
fn strip_attributes(toks: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].tok {
            Tok::Ident(s) if s == "__extension__" => i += 1,
            Tok::Ident(s)
                if (s == "__attribute__" || s == "__attribute")
                    && matches!(toks.get(i + 1).map(|t| &t.tok), Some(Tok::Punct("("))) =>
            {
                let mut depth = 0usize;
                let mut j = i + 1;
                while j < toks.len() {
                    match toks[j].tok {
                        Tok::Punct("(") => depth += 1,
                        Tok::Punct(")") => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Tok::Eof => break,
                        _ => {}
                    }
                    j += 1;
                }
                if matches!(toks[j].tok, Tok::Eof) {
                    // Unbalanced: keep it, the parser reports it.
                    out.push(toks[i].clone());
                    i += 1;
                } else {
                    i = j + 1;
                }
            }
            _ => {
                out.push(toks[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// A C integer literal: decimal, `0x` hex, `0` octal, with `u`/`l` suffixes.
fn parse_int(s: &str) -> Option<i64> {
    let body = s.trim_end_matches(['u', 'U', 'l', 'L']);
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        u64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse::<u64>().ok()?
    };
    i64::try_from(v).ok()
}

/// C++ is refused as a whole, at the first token that shows it.
fn check_cxx(toks: &[Token]) -> Result<()> {
    let mut depth = 0usize;
    for t in toks {
        match &t.tok {
            Tok::Punct("[") => depth += 1,
            Tok::Punct("]") => depth = depth.saturating_sub(1),
            Tok::Punct("::") => return Err(SigError::new(t.col, CXX_REFUSED)),
            Tok::Punct("&") | Tok::Punct("&&") if depth == 0 => {
                return Err(SigError::new(t.col, CXX_REFUSED))
            }
            Tok::Ident(s) if s == "virtual" || s == "template" || s == "operator" => {
                return Err(SigError::new(t.col, CXX_REFUSED))
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Annotations and raw size expressions

/// A size expression with names not yet resolved.
#[derive(Clone, Debug)]
enum RExpr {
    Int(i64),
    Name(String, usize),
    Ret(usize),
    Deref(String, usize),
    StrLen(String, usize),
    SizeOf(usize),
    Un(UnOp, Box<RExpr>),
    Bin(BinOp, Box<RExpr>, Box<RExpr>),
    Cond(Box<RExpr>, Box<RExpr>, Box<RExpr>),
    Min(Box<RExpr>, Box<RExpr>),
    Max(Box<RExpr>, Box<RExpr>),
    Abs(Box<RExpr>),
}

#[derive(Clone, Debug)]
enum AKind {
    /// `[N]` (dir None), `[in N]`, `[out]`, `[out N]`, `[inout N]`, …
    Buffer {
        dir: Option<Dir>,
        count: Option<RExpr>,
    },
    String,
    Opaque,
    Null,
    Private,
    Handle,
}

#[derive(Clone, Debug)]
struct Annot {
    /// Column of the `[`.
    col: usize,
    /// Column of the first word inside (or of the expression).
    kw_col: usize,
    kind: AKind,
    /// `; written W` with the column of `written`.
    written: Option<(RExpr, usize)>,
    /// `; string` with its column.
    string: Option<usize>,
}

/// Where a role is being decided: defaults and allowed annotations differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    Param,
    Field,
    Ret,
}

enum Scope<'a> {
    Params {
        names: &'a [String],
        func: &'a str,
    },
    Fields {
        names: &'a [String],
        strukt: &'a str,
    },
}

#[derive(Clone, Copy)]
enum CheckKind {
    Deref,
    StrLen,
}

/// A condition on another parameter's role, checked once all roles are known.
struct Check {
    kind: CheckKind,
    idx: usize,
    col: usize,
    name: String,
}

struct Resolver<'a> {
    scope: Scope<'a>,
    ret_void: bool,
    checks: Vec<Check>,
}

impl Resolver<'_> {
    fn lookup(&self, name: &str, col: usize) -> Result<usize> {
        let (names, what) = match &self.scope {
            Scope::Params { names, func } => (names, format!("a parameter of {func}")),
            Scope::Fields { names, strukt } => (names, format!("a field of struct {strukt}")),
        };
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| SigError::new(col, format!("unknown name \"{name}\": not {what}")))
    }

    fn in_fields(&self) -> bool {
        matches!(self.scope, Scope::Fields { .. })
    }

    fn resolve(&mut self, e: &RExpr, in_written: bool) -> Result<Expr> {
        let r = |x: &RExpr, s: &mut Self| s.resolve(x, in_written).map(Box::new);
        Ok(match e {
            RExpr::Int(v) => Expr::Int(*v),
            RExpr::Name(n, col) => {
                let i = self.lookup(n, *col)?;
                if self.in_fields() {
                    Expr::Field(i)
                } else {
                    Expr::Param(i)
                }
            }
            RExpr::Ret(col) => {
                if self.in_fields() {
                    return Err(SigError::new(
                        *col,
                        "`ret` is not available in struct fields",
                    ));
                }
                if !in_written {
                    return Err(SigError::new(
                        *col,
                        "`ret` is only available in `written` (the return value exists only after the call)",
                    ));
                }
                if self.ret_void {
                    return Err(SigError::new(*col, "`ret` in a function that returns void"));
                }
                Expr::Ret
            }
            RExpr::Deref(n, col) => {
                if self.in_fields() {
                    return Err(SigError::new(
                        *col,
                        "`*p` is not available in struct fields",
                    ));
                }
                let i = self.lookup(n, *col)?;
                self.checks.push(Check {
                    kind: CheckKind::Deref,
                    idx: i,
                    col: *col,
                    name: n.clone(),
                });
                Expr::Deref(i)
            }
            RExpr::StrLen(n, col) => {
                if self.in_fields() {
                    return Err(SigError::new(
                        *col,
                        "strlen() is not available in struct fields",
                    ));
                }
                let i = self.lookup(n, *col)?;
                self.checks.push(Check {
                    kind: CheckKind::StrLen,
                    idx: i,
                    col: *col,
                    name: n.clone(),
                });
                Expr::StrLen(i)
            }
            RExpr::SizeOf(n) => Expr::SizeOf(*n),
            RExpr::Un(op, a) => Expr::Unary(*op, r(a, self)?),
            RExpr::Bin(op, a, b) => Expr::Binary(*op, r(a, self)?, r(b, self)?),
            RExpr::Cond(c, a, b) => Expr::Cond(r(c, self)?, r(a, self)?, r(b, self)?),
            RExpr::Min(a, b) => Expr::Min(r(a, self)?, r(b, self)?),
            RExpr::Max(a, b) => Expr::Max(r(a, self)?, r(b, self)?),
            RExpr::Abs(a) => Expr::Abs(r(a, self)?),
        })
    }
}

/// Element type and whether it is `char`-like, for a pointer type.
fn char_like(t: &Type) -> bool {
    matches!(t, Type::Scalar(Scalar::I8 | Scalar::U8) | Type::Void)
}

fn is_char_ptr(ty: &Type, plain_char: bool) -> bool {
    plain_char
        && matches!(ty, Type::Pointer { pointee, .. } if matches!(**pointee, Type::Scalar(Scalar::I8)))
}

/// The role of a parameter, field or return value: its annotation applied to
/// its type, or CONFIG.md's defaults.
fn make_role(
    ty: &Type,
    plain_char: bool,
    annot: Option<&Annot>,
    at: Where,
    res: &mut Resolver<'_>,
) -> Result<Role> {
    let is_ptr = matches!(ty, Type::Pointer { .. } | Type::FnPtr);
    let Some(a) = annot else {
        return Ok(default_role(ty, plain_char, at));
    };
    let needs_ptr = |what: &str| -> Result<()> {
        if is_ptr {
            Ok(())
        } else {
            Err(SigError::new(a.col, format!("[{what}] needs a pointer")))
        }
    };
    if !matches!(a.kind, AKind::Buffer { .. }) {
        if let Some((_, col)) = &a.written {
            return Err(SigError::new(*col, "`written` needs [out N] or [inout N]"));
        }
        if let Some(col) = a.string {
            return Err(SigError::new(col, "`; string` needs [out N] or [inout N]"));
        }
    }
    match &a.kind {
        AKind::Handle => Err(SigError::new(
            a.kw_col,
            "[handle] needs a type listed in \"handles\"",
        )),
        AKind::Private => {
            if at == Where::Field {
                Ok(Role::Private)
            } else {
                Err(SigError::new(
                    a.kw_col,
                    "[private] is only for struct fields",
                ))
            }
        }
        AKind::Opaque => {
            needs_ptr("opaque")?;
            Ok(Role::Opaque)
        }
        AKind::Null => {
            if at == Where::Ret {
                return Err(SigError::new(
                    a.kw_col,
                    "[null] does not apply to a return value",
                ));
            }
            needs_ptr("null")?;
            Ok(Role::Null)
        }
        AKind::String => match ty {
            Type::Pointer { pointee, .. } if char_like(pointee) => Ok(Role::String),
            _ => Err(SigError::new(a.kw_col, "[string] needs a char pointer")),
        },
        AKind::Buffer { dir, count } => {
            let Type::Pointer { pointee, .. } = ty else {
                return Err(SigError::new(
                    a.col,
                    "a buffer annotation needs a pointer (not a function pointer or a value)",
                ));
            };
            let elem = match &**pointee {
                Type::Void => Type::Scalar(Scalar::U8),
                t => t.clone(),
            };
            let dir_v = dir.unwrap_or(Dir::In);
            if at == Where::Ret && dir_v != Dir::In {
                return Err(SigError::new(
                    a.kw_col,
                    "a return value can only be annotated [N], [in N], [string] or [opaque]",
                ));
            }
            if let Some((_, col)) = &a.written {
                if !dir_v.writes() {
                    return Err(SigError::new(*col, "`written` needs [out N] or [inout N]"));
                }
            }
            if let Some(col) = a.string {
                if !dir_v.writes() || count.is_none() {
                    return Err(SigError::new(col, "`; string` needs [out N] or [inout N]"));
                }
                if !char_like(pointee) {
                    return Err(SigError::new(col, "`; string` needs a char buffer"));
                }
            }
            let (count, scalar_out) = match count {
                Some(c) => (res.resolve(c, false)?, false),
                None => {
                    if matches!(**pointee, Type::Void) {
                        return Err(SigError::new(
                            a.kw_col,
                            "a void pointer needs a size in bytes: [in N], [out N] or [inout N]",
                        ));
                    }
                    let scalar = matches!(**pointee, Type::Scalar(_));
                    (Expr::Int(1), scalar && dir_v.writes())
                }
            };
            let written = match &a.written {
                Some((w, _)) => Some(res.resolve(w, true)?),
                None => None,
            };
            Ok(Role::Buffer {
                dir: dir_v,
                elem,
                count,
                written,
                string: a.string.is_some(),
                scalar_out,
            })
        }
    }
}

/// CONFIG.md, "Defaults without annotations".
fn default_role(ty: &Type, plain_char: bool, at: Where) -> Role {
    match ty {
        Type::Void | Type::Scalar(_) | Type::Struct(_) => Role::Value,
        Type::FnPtr => Role::Opaque,
        Type::Pointer { pointee, is_const } => {
            if is_char_ptr(ty, plain_char) {
                return Role::String;
            }
            if at == Where::Ret {
                return Role::Opaque;
            }
            match &**pointee {
                Type::Scalar(_) | Type::Struct(_) => Role::Buffer {
                    dir: if *is_const { Dir::In } else { Dir::InOut },
                    elem: (**pointee).clone(),
                    count: Expr::Int(1),
                    written: None,
                    string: false,
                    scalar_out: !*is_const && matches!(**pointee, Type::Scalar(_)),
                },
                Type::Void | Type::Pointer { .. } | Type::FnPtr => Role::Opaque,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Parser

struct RawField {
    ty: CTy,
    ty_col: usize,
    plain_char: bool,
    name: String,
    name_col: usize,
    array: Option<usize>,
    annot: Option<Annot>,
}

enum Decl {
    Nothing,
    Struct {
        name: String,
        name_col: usize,
        fields: Vec<RawField>,
    },
    Typedef {
        /// `typedef struct tag { … } name;`: the struct declared on the way.
        body: Option<(String, usize, Vec<RawField>)>,
        ty: CTy,
        plain_char: bool,
        name: String,
        name_col: usize,
    },
}

/// Declaration specifiers: the base type, `const` on it, plain `char`.
struct Base {
    ty: CTy,
    is_const: bool,
    plain_char: bool,
    col: usize,
}

/// A declarator applied to a base type.
struct Declarator {
    ty: CTy,
    name: Option<(String, usize)>,
}

struct Parser<'t> {
    toks: Vec<Token>,
    pos: usize,
    types: &'t TypeTable,
    /// Nesting of size-expression parsing (see [`MAX_DEPTH`]).
    depth: usize,
}

/// Deepest nesting a size expression may have.
const MAX_DEPTH: usize = 64;

/// Whether an expression tree is deeper than [`MAX_DEPTH`] (stops looking
/// as soon as it is, so it never recurses further than that itself).
fn too_deep(e: &RExpr, d: usize) -> bool {
    if d > MAX_DEPTH {
        return true;
    }
    match e {
        RExpr::Int(_)
        | RExpr::Name(..)
        | RExpr::Ret(_)
        | RExpr::Deref(..)
        | RExpr::StrLen(..)
        | RExpr::SizeOf(_) => false,
        RExpr::Un(_, a) | RExpr::Abs(a) => too_deep(a, d + 1),
        RExpr::Bin(_, a, b) | RExpr::Min(a, b) | RExpr::Max(a, b) => {
            too_deep(a, d + 1) || too_deep(b, d + 1)
        }
        RExpr::Cond(c, a, b) => too_deep(c, d + 1) || too_deep(a, d + 1) || too_deep(b, d + 1),
    }
}

impl<'t> Parser<'t> {
    fn new(toks: Vec<Token>, types: &'t TypeTable) -> Self {
        Parser {
            toks,
            pos: 0,
            types,
            depth: 0,
        }
    }

    fn tok(&self) -> &Tok {
        &self.toks[self.pos].tok
    }
    fn tok_at(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len() - 1);
        &self.toks[i].tok
    }
    fn col(&self) -> usize {
        self.toks[self.pos].col
    }
    fn next(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(self.tok(), Tok::Punct(q) if *q == p)
    }
    fn is_ident(&self, s: &str) -> bool {
        matches!(self.tok(), Tok::Ident(q) if q == s)
    }
    fn is_ident_any(&self) -> bool {
        matches!(self.tok(), Tok::Ident(_))
    }
    fn ident(&self) -> Option<&str> {
        match self.tok() {
            Tok::Ident(s) => Some(s),
            _ => None,
        }
    }
    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.next();
            true
        } else {
            false
        }
    }
    fn describe(&self) -> String {
        match self.tok() {
            Tok::Ident(s) => format!("\"{s}\""),
            Tok::Int(v) => format!("{v}"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "the end".to_string(),
        }
    }
    fn expect_punct(&mut self, p: &str, context: &str) -> Result<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(SigError::new(
                self.col(),
                format!("expected `{p}` {context}, found {}", self.describe()),
            ))
        }
    }
    fn expect_eof(&self) -> Result<()> {
        if matches!(self.tok(), Tok::Eof) {
            Ok(())
        } else {
            Err(SigError::new(
                self.col(),
                format!("unexpected {} after the declaration", self.describe()),
            ))
        }
    }
    fn expect_name(&mut self, what: &str) -> Result<(String, usize)> {
        match self.tok() {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => {
                let r = (s.clone(), self.col());
                self.next();
                Ok(r)
            }
            _ => Err(SigError::new(
                self.col(),
                format!("expected {what}, found {}", self.describe()),
            )),
        }
    }
    fn skip_balanced(&mut self, open: &str, close: &str) -> Result<()> {
        let start = self.col();
        let mut depth = 0usize;
        loop {
            if matches!(self.tok(), Tok::Eof) {
                return Err(SigError::new(start, format!("`{open}` is never closed")));
            }
            if self.is_punct(open) {
                depth += 1;
            } else if self.is_punct(close) {
                depth -= 1;
                if depth == 0 {
                    self.next();
                    return Ok(());
                }
            }
            self.next();
        }
    }

    fn eat_qualifiers(&mut self) -> bool {
        let mut c = false;
        while let Some(s) = self.ident() {
            if !QUALIFIERS.contains(&s) {
                break;
            }
            c |= s == "const";
            self.next();
        }
        c
    }

    /// Declaration specifiers: `const unsigned long`, `struct S`, `enum E`,
    /// `uint8_t`, a typedef name.
    fn parse_base(&mut self) -> Result<Base> {
        let col = self.col();
        let mut is_const = false;
        let mut words: Vec<(&'static str, usize)> = Vec::new();
        let mut named: Option<(CTy, bool)> = None;
        while let Some(s) = self.ident().map(str::to_string) {
            let c = self.col();
            if QUALIFIERS.contains(&s.as_str()) {
                is_const |= s == "const";
                self.next();
                continue;
            }
            if let Some(w) = SPECIFIERS.iter().find(|w| **w == s) {
                if named.is_some() {
                    return Err(SigError::new(
                        c,
                        format!("unexpected \"{s}\" after a type name"),
                    ));
                }
                words.push((w, c));
                self.next();
                continue;
            }
            if named.is_some() || !words.is_empty() {
                break;
            }
            match s.as_str() {
                "struct" | "enum" => {
                    self.next();
                    let (tag, _) = self.expect_name(&format!("a name after `{s}`"))?;
                    named = Some(if s == "struct" {
                        (CTy::Struct(tag), false)
                    } else {
                        (CTy::Scalar(Scalar::I32), false)
                    });
                }
                "union" => return Err(SigError::new(c, "unions are not supported")),
                "extern" | "static" | "inline" | "register" => {
                    self.next();
                }
                _ => {
                    if let Some(td) = self.types.typedefs.get(&s) {
                        named = Some((td.ty.clone(), td.plain_char));
                    } else if let Some(sc) = builtin_named(&s) {
                        named = Some((CTy::Scalar(sc), false));
                    } else if KEYWORDS.contains(&s.as_str()) {
                        return Err(SigError::new(c, format!("expected a type, found \"{s}\"")));
                    } else {
                        return Err(SigError::new(c, format!("unknown type \"{s}\"")));
                    }
                    self.next();
                }
            }
        }
        if let Some((ty, plain_char)) = named {
            return Ok(Base {
                ty,
                is_const,
                plain_char,
                col,
            });
        }
        if words.is_empty() {
            return Err(SigError::new(
                self.col(),
                format!("expected a type, found {}", self.describe()),
            ));
        }
        let (ty, plain_char) = combine_specifiers(&words)?;
        Ok(Base {
            ty,
            is_const,
            plain_char,
            col,
        })
    }

    /// Pointers (with their qualifiers), a function-pointer declarator
    /// `(*name)(…)`, and the name, if any.
    fn parse_declarator(&mut self, base: &Base) -> Result<Declarator> {
        let mut ty = base.ty.clone();
        let mut cur_const = base.is_const;
        while self.eat_punct("*") {
            ty = CTy::Ptr(Box::new(ty), cur_const);
            cur_const = self.eat_qualifiers();
        }
        if self.is_punct("(") && matches!(self.tok_at(1), Tok::Punct("*")) {
            self.next();
            let mut stars = 0;
            while self.eat_punct("*") {
                stars += 1;
                self.eat_qualifiers();
            }
            let name = match self.tok() {
                Tok::Ident(_) => Some(self.expect_name("a name")?),
                _ => None,
            };
            if self.is_punct("[") {
                return Err(SigError::new(
                    self.col(),
                    "arrays of function pointers are not supported",
                ));
            }
            self.expect_punct(")", "after the function pointer's name")?;
            if !self.is_punct("(") {
                return Err(SigError::new(
                    self.col(),
                    "expected the function pointer's parameter list",
                ));
            }
            self.skip_balanced("(", ")")?;
            let mut ty = CTy::FnPtr;
            for _ in 1..stars {
                ty = CTy::Ptr(Box::new(ty), false);
            }
            return Ok(Declarator { ty, name });
        }
        let name = match self.tok() {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => Some(self.expect_name("a name")?),
            Tok::Ident(s) => {
                return Err(SigError::new(
                    self.col(),
                    format!("unexpected \"{s}\" in a declarator"),
                ))
            }
            _ => None,
        };
        Ok(Declarator { ty, name })
    }

    /// `[ … ]` after a name or after the closing parenthesis.
    fn parse_annot(&mut self) -> Result<Annot> {
        let col = self.col();
        self.expect_punct("[", "")?;
        let kw_col = self.col();
        let ends = |t: &Tok| matches!(t, Tok::Punct("]") | Tok::Punct(";"));
        let word = self.ident().map(str::to_string);
        let kind = match word.as_deref() {
            Some(w @ ("in" | "out" | "inout")) => {
                let dir = match w {
                    "in" => Dir::In,
                    "out" => Dir::Out,
                    _ => Dir::InOut,
                };
                self.next();
                let count = if ends(self.tok()) {
                    None
                } else {
                    Some(self.parse_size()?)
                };
                AKind::Buffer {
                    dir: Some(dir),
                    count,
                }
            }
            Some(w @ ("string" | "opaque" | "null" | "private" | "handle"))
                if ends(self.tok_at(1)) =>
            {
                self.next();
                match w {
                    "string" => AKind::String,
                    "opaque" => AKind::Opaque,
                    "null" => AKind::Null,
                    "private" => AKind::Private,
                    _ => AKind::Handle,
                }
            }
            _ => {
                if self.is_punct("]") {
                    return Err(SigError::new(col, "empty annotation"));
                }
                AKind::Buffer {
                    dir: None,
                    count: Some(self.parse_size()?),
                }
            }
        };
        let mut written = None;
        let mut string = None;
        while self.eat_punct(";") {
            let c = self.col();
            match self.ident() {
                Some("written") => {
                    self.next();
                    if written.is_some() {
                        return Err(SigError::new(c, "`written` given twice"));
                    }
                    written = Some((self.parse_size()?, c));
                }
                Some("string") => {
                    self.next();
                    string = Some(c);
                }
                _ => {
                    return Err(SigError::new(
                        c,
                        format!(
                            "expected `written W` or `string` after `;`, found {}",
                            self.describe()
                        ),
                    ))
                }
            }
        }
        if !self.is_punct("]") {
            return Err(SigError::new(
                self.col(),
                format!(
                    "expected `]` to close the annotation, found {}",
                    self.describe()
                ),
            ));
        }
        self.next();
        Ok(Annot {
            col,
            kw_col,
            kind,
            written,
            string,
        })
    }

    /// `[]` or `[INT]` right after a name: an array declarator (not an annotation).
    fn at_array_dim(&self) -> bool {
        self.is_punct("[")
            && (matches!(self.tok_at(1), Tok::Punct("]"))
                || (matches!(self.tok_at(1), Tok::Int(_))
                    && matches!(self.tok_at(2), Tok::Punct("]"))))
    }

    fn parse_array_dim(&mut self) -> Option<i64> {
        self.next();
        let v = match self.tok() {
            Tok::Int(v) => {
                let v = *v;
                self.next();
                Some(v)
            }
            _ => None,
        };
        self.next();
        v
    }

    // --- size expressions -------------------------------------------------

    /// A size expression, no deeper than [`MAX_DEPTH`]: sizes are evaluated
    /// recursively on the caller's path, so a pathological config must not
    /// be able to overflow a stack there (or here).
    fn parse_size(&mut self) -> Result<RExpr> {
        let col = self.col();
        let e = self.parse_expr()?;
        if too_deep(&e, 0) {
            return Err(SigError::new(col, "size expression nested too deeply"));
        }
        Ok(e)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SigError::new(
                self.col(),
                "size expression nested too deeply",
            ));
        }
        Ok(())
    }

    fn parse_expr(&mut self) -> Result<RExpr> {
        self.enter()?;
        let r = self.parse_expr_inner();
        self.depth -= 1;
        r
    }

    fn parse_expr_inner(&mut self) -> Result<RExpr> {
        let c = self.parse_bin(0)?;
        if self.eat_punct("?") {
            let a = self.parse_expr()?;
            self.expect_punct(":", "in `c ? a : b`")?;
            let b = self.parse_expr()?;
            return Ok(RExpr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        Ok(c)
    }

    fn parse_bin(&mut self, level: usize) -> Result<RExpr> {
        const LEVELS: &[&[(&str, BinOp)]] = &[
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
            &[
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level == LEVELS.len() {
            return self.parse_unary();
        }
        let mut lhs = self.parse_bin(level + 1)?;
        loop {
            let Some((_, op)) = LEVELS[level].iter().find(|(s, _)| self.is_punct(s)) else {
                return Ok(lhs);
            };
            self.next();
            let rhs = self.parse_bin(level + 1)?;
            lhs = RExpr::Bin(*op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn parse_unary(&mut self) -> Result<RExpr> {
        self.enter()?;
        let r = self.parse_unary_inner();
        self.depth -= 1;
        r
    }

    fn parse_unary_inner(&mut self) -> Result<RExpr> {
        if self.eat_punct("-") {
            return Ok(RExpr::Un(UnOp::Neg, Box::new(self.parse_unary()?)));
        }
        if self.eat_punct("!") {
            return Ok(RExpr::Un(UnOp::Not, Box::new(self.parse_unary()?)));
        }
        if self.eat_punct("+") {
            return self.parse_unary();
        }
        if self.eat_punct("*") {
            let (n, c) = self.expect_name("a parameter name after `*`")?;
            return Ok(RExpr::Deref(n, c));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<RExpr> {
        let col = self.col();
        match self.tok().clone() {
            Tok::Int(v) => {
                self.next();
                Ok(RExpr::Int(v))
            }
            Tok::Punct("(") => {
                self.next();
                let e = self.parse_expr()?;
                self.expect_punct(")", "to close `(`")?;
                Ok(e)
            }
            Tok::Ident(s) if s == "ret" && !matches!(self.tok_at(1), Tok::Punct("(")) => {
                self.next();
                Ok(RExpr::Ret(col))
            }
            Tok::Ident(s) if matches!(self.tok_at(1), Tok::Punct("(")) => {
                self.next();
                self.next();
                let e = match s.as_str() {
                    "min" | "max" => {
                        let a = self.parse_expr()?;
                        self.expect_punct(",", &format!("between the arguments of {s}()"))?;
                        let b = self.parse_expr()?;
                        if s == "min" {
                            RExpr::Min(Box::new(a), Box::new(b))
                        } else {
                            RExpr::Max(Box::new(a), Box::new(b))
                        }
                    }
                    "abs" => RExpr::Abs(Box::new(self.parse_expr()?)),
                    "strlen" => {
                        let (n, c) = self.expect_name("a parameter name in strlen()")?;
                        RExpr::StrLen(n, c)
                    }
                    "sizeof" => {
                        let base = self.parse_base()?;
                        let d = self.parse_declarator(&base)?;
                        if let Some((_, c)) = d.name {
                            return Err(SigError::new(c, "sizeof() takes a type"));
                        }
                        let ty = self.types.resolve(&d.ty, base.col, false)?;
                        if matches!(ty, Type::Void) {
                            return Err(SigError::new(base.col, "sizeof(void) is not a size"));
                        }
                        RExpr::SizeOf(ty.size())
                    }
                    _ => {
                        return Err(SigError::new(
                            col,
                            format!(
                            "unknown function {s}() (sizes use min, max, abs, strlen and sizeof)"
                        ),
                        ))
                    }
                };
                self.expect_punct(")", &format!("to close {s}("))?;
                Ok(e)
            }
            Tok::Ident(s) => {
                self.next();
                Ok(RExpr::Name(s, col))
            }
            _ => Err(SigError::new(
                col,
                format!("expected a size expression, found {}", self.describe()),
            )),
        }
    }

    // --- declarations -----------------------------------------------------

    /// `{ fields } ` of a struct.
    fn parse_struct_body(&mut self) -> Result<Vec<RawField>> {
        self.expect_punct("{", "to open the struct's fields")?;
        let mut fields = Vec::new();
        while !self.eat_punct("}") {
            if matches!(self.tok(), Tok::Eof) {
                return Err(SigError::new(
                    self.col(),
                    "expected `}` to close the struct",
                ));
            }
            let base = self.parse_base()?;
            loop {
                let d = self.parse_declarator(&base)?;
                let Some((name, name_col)) = d.name else {
                    return Err(SigError::new(
                        self.col(),
                        format!("expected a field name, found {}", self.describe()),
                    ));
                };
                let mut array = None;
                if self.is_punct(":") {
                    return Err(SigError::new(self.col(), "bit-fields are not supported"));
                }
                if self.at_array_dim() && !matches!(d.ty, CTy::Ptr(..) | CTy::FnPtr) {
                    let c = self.col();
                    match self.parse_array_dim() {
                        Some(n) if n > 0 => array = Some(n as usize),
                        _ => {
                            return Err(SigError::new(c, "an array field needs a positive length"))
                        }
                    }
                }
                let annot = if self.is_punct("[") {
                    Some(self.parse_annot()?)
                } else {
                    None
                };
                fields.push(RawField {
                    ty: d.ty,
                    ty_col: base.col,
                    plain_char: base.plain_char,
                    name,
                    name_col,
                    array,
                    annot,
                });
                if !self.eat_punct(",") {
                    break;
                }
            }
            self.expect_punct(";", "after a field")?;
        }
        Ok(fields)
    }

    /// After `typedef`.
    fn parse_typedef(&mut self) -> Result<Decl> {
        let mut body = None;
        let base = if self.is_ident("struct")
            && (matches!(self.tok_at(1), Tok::Punct("{"))
                || matches!(self.tok_at(2), Tok::Punct("{")))
        {
            let col = self.col();
            self.next();
            let tag = if self.is_ident_any() {
                Some(self.expect_name("a struct name")?)
            } else {
                None
            };
            let fields = self.parse_struct_body()?;
            let is_const = self.eat_qualifiers();
            body = Some((tag, fields));
            Base {
                ty: CTy::Void, // replaced below once the name is known
                is_const,
                plain_char: false,
                col,
            }
        } else if self.is_ident("enum")
            && (matches!(self.tok_at(1), Tok::Punct("{"))
                || matches!(self.tok_at(2), Tok::Punct("{")))
        {
            let col = self.col();
            self.next();
            if self.is_ident_any() {
                self.next();
            }
            self.skip_balanced("{", "}")?;
            let is_const = self.eat_qualifiers();
            Base {
                ty: CTy::Scalar(Scalar::I32),
                is_const,
                plain_char: false,
                col,
            }
        } else {
            self.parse_base()?
        };
        // Peek at the declarator's name first: an anonymous struct is named
        // after its typedef.
        let save = self.pos;
        let probe = self.parse_declarator(&base)?;
        let Some((name, name_col)) = probe.name else {
            return Err(SigError::new(
                self.col(),
                format!("expected the typedef's name, found {}", self.describe()),
            ));
        };
        let mut body_out = None;
        let mut base = base;
        if let Some((tag, fields)) = body {
            let (tag, tag_col) = tag.unwrap_or((name.clone(), name_col));
            base.ty = CTy::Struct(tag.clone());
            body_out = Some((tag, tag_col, fields));
        }
        self.pos = save;
        let d = self.parse_declarator(&base)?;
        if self.is_punct("[") {
            return Err(SigError::new(
                self.col(),
                "typedefs take no annotation or array (annotate the parameters and fields)",
            ));
        }
        if self.is_punct(",") {
            return Err(SigError::new(self.col(), "declare one typedef per entry"));
        }
        Ok(Decl::Typedef {
            body: body_out,
            ty: d.ty,
            plain_char: base.plain_char,
            name,
            name_col,
        })
    }
}

/// `unsigned long int` and friends → a scalar (or void).
fn combine_specifiers(words: &[(&'static str, usize)]) -> Result<(CTy, bool)> {
    let col = words[0].1;
    let count = |w: &str| words.iter().filter(|(x, _)| *x == w).count();
    let (signed, unsigned, short, long, int, chr) = (
        count("signed"),
        count("unsigned"),
        count("short"),
        count("long"),
        count("int"),
        count("char"),
    );
    let (void, float, double) = (count("void"), count("float"), count("double"));
    let bad = || {
        let spelled: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
        SigError::new(col, format!("invalid type \"{}\"", spelled.join(" ")))
    };
    if double == 1 && long > 0 {
        return Err(SigError::new(
            col,
            "long double is not supported (its 80-bit format has no portable comparison)",
        ));
    }
    if signed + unsigned > 1 || short > 1 || long > 2 || int > 1 || chr > 1 {
        return Err(bad());
    }
    let n = words.len();
    if void == 1 {
        return if n == 1 {
            Ok((CTy::Void, false))
        } else {
            Err(bad())
        };
    }
    if float == 1 {
        return if n == 1 {
            Ok((CTy::Scalar(Scalar::F32), false))
        } else {
            Err(bad())
        };
    }
    if double == 1 {
        return if n == 1 {
            Ok((CTy::Scalar(Scalar::F64), false))
        } else {
            Err(bad())
        };
    }
    if chr == 1 {
        if short + long + int > 0 {
            return Err(bad());
        }
        return Ok(match (signed, unsigned) {
            (0, 0) => (CTy::Scalar(Scalar::I8), true),
            (1, _) => (CTy::Scalar(Scalar::I8), false),
            _ => (CTy::Scalar(Scalar::U8), false),
        });
    }
    if short == 1 && long > 0 {
        return Err(bad());
    }
    let s = match (short, long, unsigned) {
        (1, _, 0) => Scalar::I16,
        (1, _, _) => Scalar::U16,
        (_, l, 0) if l > 0 => Scalar::I64,
        (_, l, _) if l > 0 => Scalar::U64,
        (_, _, 0) => Scalar::I32,
        _ => Scalar::U32,
    };
    Ok((CTy::Scalar(s), false))
}

// ---------------------------------------------------------------------------
// Signatures

struct RawParam {
    ty: CTy,
    ty_col: usize,
    plain_char: bool,
    name: String,
    /// `T name[N]` / `T name[]` on a parameter: decays to a pointer; the
    /// length (if given) becomes the default count.
    array: Option<Option<i64>>,
    /// `const` on the element type of such an array.
    elem_const: bool,
    annot: Option<Annot>,
}

/// Parses one boundary function's prototype, with its annotations, against
/// the config's declared types.
pub fn parse_signature(text: &str, types: &TypeTable) -> std::result::Result<Signature, SigError> {
    let toks = lex(text)?;
    check_cxx(&toks)?;
    let mut p = Parser::new(toks, types);
    let ret_base = p.parse_base()?;
    let mut ret_ty = ret_base.ty.clone();
    let mut cur_const = ret_base.is_const;
    while p.eat_punct("*") {
        ret_ty = CTy::Ptr(Box::new(ret_ty), cur_const);
        cur_const = p.eat_qualifiers();
    }
    if p.is_punct("(") && matches!(p.tok_at(1), Tok::Punct("*")) {
        return Err(SigError::new(
            p.col(),
            "a function returning a function pointer needs a typedef for it",
        ));
    }
    let (name, _) = p.expect_name("the function's name")?;
    p.expect_punct("(", "after the function's name")?;
    let mut raw: Vec<RawParam> = Vec::new();
    let void_list = p.is_ident("void") && matches!(p.tok_at(1), Tok::Punct(")"));
    if void_list {
        p.next();
    }
    if !p.is_punct(")") {
        loop {
            if p.is_punct("...") {
                return Err(SigError::new(
                    p.col(),
                    "variadic functions (`...`) are not supported: their arguments have no types to capture",
                ));
            }
            let base = p.parse_base()?;
            let d = p.parse_declarator(&base)?;
            let (pname, name_col) = match d.name {
                Some(n) => n,
                None => (format!("arg{}", raw.len()), p.col()),
            };
            let mut array = None;
            // `T name[N]` decays to a pointer; so does `T *name[]`
            // (`char *argv[]`), while `T *name[N]` reads as the annotation `[N]`.
            let empty_dim = p.is_punct("[") && matches!(p.tok_at(1), Tok::Punct("]"));
            if p.at_array_dim() && (empty_dim || !matches!(d.ty, CTy::Ptr(..) | CTy::FnPtr)) {
                array = Some(p.parse_array_dim());
            }
            let annot = if p.is_punct("[") {
                Some(p.parse_annot()?)
            } else {
                None
            };
            if d.ty == CTy::Void && array.is_none() {
                return Err(SigError::new(
                    base.col,
                    "a parameter cannot have type void (write `(void)` for no parameters)",
                ));
            }
            if raw.iter().any(|r| r.name == pname) {
                return Err(SigError::new(
                    name_col,
                    format!("two parameters are named {pname}"),
                ));
            }
            let elem_const = base.is_const && !matches!(d.ty, CTy::Ptr(..));
            raw.push(RawParam {
                ty: d.ty,
                ty_col: base.col,
                plain_char: base.plain_char,
                name: pname,
                array,
                elem_const,
                annot,
            });
            if p.eat_punct(",") {
                continue;
            }
            break;
        }
    }
    p.expect_punct(")", "to close the parameter list")?;
    let ret_annot = if p.is_punct("[") {
        Some(p.parse_annot()?)
    } else {
        None
    };
    p.eat_punct(";");
    p.expect_eof()?;

    // Types.
    let ret = types.resolve(&ret_ty, ret_base.col, false)?;
    let mut tys = Vec::with_capacity(raw.len());
    for r in &raw {
        let mut ty = types.resolve(&r.ty, r.ty_col, false)?;
        if r.array.is_some() {
            if matches!(ty, Type::Void) {
                return Err(SigError::new(r.ty_col, "an array of void"));
            }
            ty = Type::Pointer {
                pointee: Box::new(ty),
                is_const: r.elem_const,
            };
        }
        tys.push(ty);
    }

    // Roles.
    let names: Vec<String> = raw.iter().map(|r| r.name.clone()).collect();
    let mut res = Resolver {
        scope: Scope::Params {
            names: &names,
            func: &name,
        },
        ret_void: matches!(ret, Type::Void),
        checks: Vec::new(),
    };
    let mut params = Vec::with_capacity(raw.len());
    for (r, ty) in raw.iter().zip(tys) {
        let handle = types.handle_of(&r.ty).filter(|_| r.array.is_none());
        if let Some((class, out)) = handle {
            let is_struct = matches!(ty, Type::Pointer { ref pointee, .. } if matches!(**pointee, Type::Struct(_)));
            if out || !is_struct {
                let role = handle_role(class, out, r.annot.as_ref())?;
                params.push(Param {
                    name: r.name.clone(),
                    ty,
                    role,
                    handle: Some(class),
                });
                continue;
            }
        }
        let mut role = make_role(&ty, r.plain_char, r.annot.as_ref(), Where::Param, &mut res)?;
        if let (Some(Some(n)), None) = (r.array, &r.annot) {
            if let Role::Buffer {
                count, scalar_out, ..
            } = &mut role
            {
                *count = Expr::Int(n.max(0));
                *scalar_out = false;
            }
        }
        params.push(Param {
            name: r.name.clone(),
            ty,
            role,
            handle: handle.map(|(c, _)| c),
        });
    }
    let ret_handle = types.handle_of(&ret_ty).filter(|(_, out)| !out);
    let ret_role = match &ret_annot {
        a if ret_handle.is_some() => handle_role(ret_handle.unwrap().0, false, a.as_ref())?,
        Some(a) if matches!(a.kind, AKind::Private) => {
            return Err(SigError::new(
                a.kw_col,
                "[private] is only for struct fields",
            ))
        }
        a => make_role(&ret, ret_base.plain_char, a.as_ref(), Where::Ret, &mut res)?,
    };
    for c in &res.checks {
        let role = &params[c.idx].role;
        match c.kind {
            CheckKind::Deref => {
                if !matches!(
                    role,
                    Role::Buffer {
                        scalar_out: true,
                        ..
                    }
                ) {
                    return Err(SigError::new(
                        c.col,
                        format!(
                            "*{} needs {} to be an out-scalar (a `T *` with scalar T, or [out]/[inout] on one)",
                            c.name, c.name
                        ),
                    ));
                }
            }
            CheckKind::StrLen => {
                if !matches!(role, Role::String) {
                    return Err(SigError::new(
                        c.col,
                        format!("strlen({}) needs a string parameter", c.name),
                    ));
                }
            }
        }
    }
    Ok(Signature {
        name,
        ret,
        ret_role,
        params,
        text: text.to_string(),
        effect: Effect::None,
    })
}

/// The role of a handle (`out`: a `T **` where the callee stores one). Only
/// `[handle]` (and `[out]` on a `T **`) may annotate it.
fn handle_role(class: u32, out: bool, annot: Option<&Annot>) -> Result<Role> {
    match annot.map(|a| (&a.kind, a)) {
        None | Some((AKind::Handle, _)) => {}
        Some((
            AKind::Buffer {
                dir: Some(Dir::Out),
                count: None,
            },
            a,
        )) if out && a.written.is_none() => {}
        Some((_, a)) => {
            return Err(SigError::new(
                a.kw_col,
                if out {
                    "an [out] handle (`T **`) takes no annotation but [out]"
                } else {
                    "a handle takes no annotation but [handle]"
                },
            ))
        }
    }
    Ok(if out {
        Role::HandleOut { class }
    } else {
        Role::Handle { class }
    })
}

// ---------------------------------------------------------------------------
// Evaluation

/// The values a size expression reads, supplied by whoever evaluates it
/// (capture before the call, or after it for `written`).
pub trait ExprEnv {
    /// Value of parameter `i` (a pointer: its address).
    fn param(&self, i: usize) -> Option<i64>;
    /// Sibling field `i` (inside struct field sizes).
    fn field(&self, i: usize) -> Option<i64>;
    /// The return value (inside `written` only).
    fn ret(&self) -> Option<i64>;
    /// `*p` for the out-scalar parameter `i`.
    fn deref(&self, i: usize) -> Option<i64>;
    /// `strlen(p)` for the string parameter `i`.
    fn strlen(&self, i: usize) -> Option<i64>;
}

impl Expr {
    /// Evaluates the expression: `None` when a value it needs is unavailable,
    /// on division by zero, or on overflow of a division. Arithmetic wraps;
    /// comparisons and logic give 0 or 1; `&&`, `||` and `?:` evaluate only
    /// what C would.
    pub fn eval(&self, env: &dyn ExprEnv) -> Option<i64> {
        Some(match self {
            Expr::Int(v) => *v,
            Expr::Param(i) => env.param(*i)?,
            Expr::Field(i) => env.field(*i)?,
            Expr::Ret => env.ret()?,
            Expr::Deref(i) => env.deref(*i)?,
            Expr::StrLen(i) => env.strlen(*i)?,
            Expr::SizeOf(n) => *n as i64,
            Expr::Unary(UnOp::Neg, a) => a.eval(env)?.wrapping_neg(),
            Expr::Unary(UnOp::Not, a) => (a.eval(env)? == 0) as i64,
            Expr::Binary(BinOp::And, a, b) => {
                if a.eval(env)? == 0 {
                    0
                } else {
                    (b.eval(env)? != 0) as i64
                }
            }
            Expr::Binary(BinOp::Or, a, b) => {
                if a.eval(env)? != 0 {
                    1
                } else {
                    (b.eval(env)? != 0) as i64
                }
            }
            Expr::Binary(op, a, b) => {
                let (x, y) = (a.eval(env)?, b.eval(env)?);
                match op {
                    BinOp::Add => x.wrapping_add(y),
                    BinOp::Sub => x.wrapping_sub(y),
                    BinOp::Mul => x.wrapping_mul(y),
                    BinOp::Div => x.checked_div(y)?,
                    BinOp::Rem => x.checked_rem(y)?,
                    BinOp::Eq => (x == y) as i64,
                    BinOp::Ne => (x != y) as i64,
                    BinOp::Lt => (x < y) as i64,
                    BinOp::Le => (x <= y) as i64,
                    BinOp::Gt => (x > y) as i64,
                    BinOp::Ge => (x >= y) as i64,
                    BinOp::And | BinOp::Or => unreachable!("handled above"),
                }
            }
            Expr::Cond(c, a, b) => {
                if c.eval(env)? != 0 {
                    a.eval(env)?
                } else {
                    b.eval(env)?
                }
            }
            Expr::Min(a, b) => a.eval(env)?.min(b.eval(env)?),
            Expr::Max(a, b) => a.eval(env)?.max(b.eval(env)?),
            Expr::Abs(a) => a.eval(env)?.wrapping_abs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(text: &str) -> Signature {
        parse_signature(text, &TypeTable::new()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }
    fn sig_t(text: &str, t: &TypeTable) -> Signature {
        parse_signature(text, t).unwrap_or_else(|e| panic!("{text}: {e}"))
    }
    fn err(text: &str) -> SigError {
        err_t(text, &TypeTable::new())
    }
    fn err_t(text: &str, t: &TypeTable) -> SigError {
        match parse_signature(text, t) {
            Ok(s) => panic!("{text} parsed: {s:?}"),
            Err(e) => e,
        }
    }
    fn sc(s: Scalar) -> Type {
        Type::Scalar(s)
    }
    fn ptr(t: Type, is_const: bool) -> Type {
        Type::Pointer {
            pointee: Box::new(t),
            is_const,
        }
    }
    fn buf(dir: Dir, elem: Type, count: Expr, scalar_out: bool) -> Role {
        Role::Buffer {
            dir,
            elem,
            count,
            written: None,
            string: false,
            scalar_out,
        }
    }
    fn table(decls: &[&str]) -> TypeTable {
        let mut t = TypeTable::new();
        for d in decls {
            t.declare(d).unwrap_or_else(|e| panic!("{d}: {e}"));
        }
        t
    }

    /// Values for evaluation tests.
    #[derive(Default)]
    struct Env {
        params: Vec<i64>,
        fields: Vec<i64>,
        ret: Option<i64>,
        derefs: HashMap<usize, i64>,
        strlens: HashMap<usize, i64>,
    }
    impl ExprEnv for Env {
        fn param(&self, i: usize) -> Option<i64> {
            self.params.get(i).copied()
        }
        fn field(&self, i: usize) -> Option<i64> {
            self.fields.get(i).copied()
        }
        fn ret(&self) -> Option<i64> {
            self.ret
        }
        fn deref(&self, i: usize) -> Option<i64> {
            self.derefs.get(&i).copied()
        }
        fn strlen(&self, i: usize) -> Option<i64> {
            self.strlens.get(&i).copied()
        }
    }
    fn count_of(r: &Role) -> &Expr {
        match r {
            Role::Buffer { count, .. } => count,
            r => panic!("not a buffer: {r:?}"),
        }
    }
    fn written_of(r: &Role) -> &Expr {
        match r {
            Role::Buffer {
                written: Some(w), ..
            } => w,
            r => panic!("no written: {r:?}"),
        }
    }

    #[test]
    fn simple_prototype() {
        let s = sig("int calc_add(int a, int b)");
        assert_eq!(s.name, "calc_add");
        assert_eq!(s.ret, sc(Scalar::I32));
        assert_eq!(s.ret_role, Role::Value);
        assert_eq!(s.params.len(), 2);
        assert_eq!(s.params[0].name, "a");
        assert_eq!(s.params[1].name, "b");
        assert_eq!(s.params[1].role, Role::Value);
        assert_eq!(s.text, "int calc_add(int a, int b)");
        assert!(sig("int calc_version(void)").params.is_empty());
        assert!(sig("int calc_version()").params.is_empty());
        assert_eq!(sig("void f(void);").ret, Type::Void);
        assert_eq!(sig("void f(void);").ret_role, Role::Value);
    }

    #[test]
    fn every_scalar_spelling() {
        let cases: &[(&str, Scalar)] = &[
            ("char", Scalar::I8),
            ("signed char", Scalar::I8),
            ("unsigned char", Scalar::U8),
            ("char unsigned", Scalar::U8),
            ("short", Scalar::I16),
            ("short int", Scalar::I16),
            ("signed short", Scalar::I16),
            ("unsigned short", Scalar::U16),
            ("unsigned short int", Scalar::U16),
            ("int", Scalar::I32),
            ("signed", Scalar::I32),
            ("signed int", Scalar::I32),
            ("unsigned", Scalar::U32),
            ("unsigned int", Scalar::U32),
            ("long", Scalar::I64),
            ("long int", Scalar::I64),
            ("signed long", Scalar::I64),
            ("unsigned long", Scalar::U64),
            ("long unsigned int", Scalar::U64),
            ("long long", Scalar::I64),
            ("long long int", Scalar::I64),
            ("unsigned long long", Scalar::U64),
            ("int8_t", Scalar::I8),
            ("uint8_t", Scalar::U8),
            ("int16_t", Scalar::I16),
            ("uint16_t", Scalar::U16),
            ("int32_t", Scalar::I32),
            ("uint32_t", Scalar::U32),
            ("int64_t", Scalar::I64),
            ("uint64_t", Scalar::U64),
            ("size_t", Scalar::U64),
            ("ssize_t", Scalar::I64),
            ("ptrdiff_t", Scalar::I64),
            ("intptr_t", Scalar::I64),
            ("uintptr_t", Scalar::U64),
            ("off_t", Scalar::I64),
            ("bool", Scalar::Bool),
            ("_Bool", Scalar::Bool),
            ("float", Scalar::F32),
            ("double", Scalar::F64),
            ("enum color", Scalar::I32),
            ("const volatile int", Scalar::I32),
            ("int const", Scalar::I32),
        ];
        for (spelling, s) in cases {
            let text = format!("{spelling} f({spelling} x)");
            let g = sig(&text);
            assert_eq!(g.ret, sc(*s), "{text}");
            assert_eq!(g.params[0].ty, sc(*s), "{text}");
            assert_eq!(g.params[0].role, Role::Value, "{text}");
        }
    }

    #[test]
    fn bad_specifier_combinations() {
        for t in [
            "unsigned signed f(int x)",
            "short long f(int x)",
            "long long long f(int x)",
            "unsigned float f(int x)",
            "void int f(int x)",
            "char int f(int x)",
        ] {
            let e = err(t);
            assert_eq!(e.column, 1, "{t}: {e}");
            assert!(e.message.contains("invalid type"), "{t}: {e}");
        }
    }

    #[test]
    fn long_double_and_varargs_refused() {
        let e = err("long double f(double x)");
        assert_eq!(e.column, 1);
        assert!(e.message.contains("long double"), "{e}");
        let e = err("double f(long double x)");
        assert_eq!(e.column, 10);
        assert!(e.message.contains("long double"), "{e}");
        let e = err("int printf(const char *fmt, ...)");
        assert_eq!(e.column, 29);
        assert!(e.message.contains("variadic"), "{e}");
    }

    #[test]
    fn unknown_type_column() {
        let e = err("int calc_add(int a, intt b)");
        assert_eq!(e.column, 21);
        assert_eq!(e.message, "unknown type \"intt\"");
        assert_eq!(e.to_string(), "column 21: unknown type \"intt\"");
        let e = err("intt f(void)");
        assert_eq!((e.column, e.message.as_str()), (1, "unknown type \"intt\""));
        let e = err("int f(struct nope *p)");
        assert_eq!(e.column, 7);
        assert!(e.message.contains("struct nope is not declared"), "{e}");
    }

    #[test]
    fn pointer_defaults() {
        let s = sig(
            "int f(const int *a, int *b, char *s, const char *t, void *v, const void *cv, \
             int **pp, unsigned char *u, const double *d, char **argv)",
        );
        let r: Vec<&Role> = s.params.iter().map(|p| &p.role).collect();
        assert_eq!(*r[0], buf(Dir::In, sc(Scalar::I32), Expr::Int(1), false));
        assert_eq!(s.params[0].ty, ptr(sc(Scalar::I32), true));
        assert_eq!(*r[1], buf(Dir::InOut, sc(Scalar::I32), Expr::Int(1), true));
        assert_eq!(s.params[1].ty, ptr(sc(Scalar::I32), false));
        assert_eq!(*r[2], Role::String);
        assert_eq!(*r[3], Role::String);
        assert_eq!(s.params[3].ty, ptr(sc(Scalar::I8), true));
        assert_eq!(*r[4], Role::Opaque);
        assert_eq!(*r[5], Role::Opaque);
        assert_eq!(*r[6], Role::Opaque);
        assert_eq!(s.params[6].ty, ptr(ptr(sc(Scalar::I32), false), false));
        assert_eq!(*r[7], buf(Dir::InOut, sc(Scalar::U8), Expr::Int(1), true));
        assert_eq!(*r[8], buf(Dir::In, sc(Scalar::F64), Expr::Int(1), false));
        assert_eq!(*r[9], Role::Opaque);
    }

    #[test]
    fn return_defaults() {
        assert_eq!(sig("char *f(void)").ret_role, Role::String);
        assert_eq!(sig("const char *f(void)").ret_role, Role::String);
        assert_eq!(sig("const char * const f(void)").ret_role, Role::String);
        assert_eq!(sig("int *f(void)").ret_role, Role::Opaque);
        assert_eq!(sig("void *f(void)").ret_role, Role::Opaque);
        assert_eq!(sig("unsigned char *f(void)").ret_role, Role::Opaque);
        let t = table(&["struct point { double x; double y; }"]);
        let s = sig_t("struct point mid(struct point a, struct point b)", &t);
        assert_eq!(s.ret_role, Role::Value);
        assert_eq!(s.params[0].role, Role::Value);
        assert!(matches!(&s.ret, Type::Struct(p) if p.name == "point"));
        let s = sig("const int *table(int n) [n]");
        assert_eq!(
            s.ret_role,
            buf(Dir::In, sc(Scalar::I32), Expr::Param(0), false)
        );
        let s = sig("const int *table(int n) [in n * 2]");
        assert_eq!(
            s.ret_role,
            buf(
                Dir::In,
                sc(Scalar::I32),
                Expr::Binary(BinOp::Mul, Box::new(Expr::Param(0)), Box::new(Expr::Int(2))),
                false
            )
        );
        assert_eq!(sig("char *name(void) [opaque]").ret_role, Role::Opaque);
        assert_eq!(
            sig("const uint8_t *name(void) [string]").ret_role,
            Role::String
        );
        let e = err("int *f(int n) [out n]");
        assert_eq!(e.column, 16);
        assert!(e.message.contains("return value"), "{e}");
        let e = err("int *f(int n) [null]");
        assert_eq!(e.column, 16);
        let e = err("int *f(int n) [private]");
        assert!(e.message.contains("struct fields"), "{e}");
        let e = err("int f(int n) [n]");
        assert_eq!(e.column, 14);
        assert!(e.message.contains("pointer"), "{e}");
    }

    #[test]
    fn annotations() {
        let s = sig(
            "size_t codec_encode(const uint8_t *src [in len], size_t len,\n\
                     uint8_t *dst [out cap; written ret], size_t cap)",
        );
        assert_eq!(s.params.len(), 4);
        assert_eq!(
            s.params[0].role,
            buf(Dir::In, sc(Scalar::U8), Expr::Param(1), false)
        );
        assert_eq!(
            s.params[2].role,
            Role::Buffer {
                dir: Dir::Out,
                elem: sc(Scalar::U8),
                count: Expr::Param(3),
                written: Some(Expr::Ret),
                string: false,
                scalar_out: false,
            }
        );
        let s = sig(
            "int f(double *x [4], double *y [inout n; written n - 1], int n, \
                     int *out [out], int *io [inout], char *name [out 16; string], \
                     void *raw [out n], const char *s [string], void *o [opaque], \
                     int (*cb)(int) [null], double *z [out n])",
        );
        let r: Vec<&Role> = s.params.iter().map(|p| &p.role).collect();
        assert_eq!(*r[0], buf(Dir::In, sc(Scalar::F64), Expr::Int(4), false));
        assert_eq!(
            *r[1],
            Role::Buffer {
                dir: Dir::InOut,
                elem: sc(Scalar::F64),
                count: Expr::Param(2),
                written: Some(Expr::Binary(
                    BinOp::Sub,
                    Box::new(Expr::Param(2)),
                    Box::new(Expr::Int(1))
                )),
                string: false,
                scalar_out: false,
            }
        );
        assert_eq!(*r[3], buf(Dir::Out, sc(Scalar::I32), Expr::Int(1), true));
        assert_eq!(*r[4], buf(Dir::InOut, sc(Scalar::I32), Expr::Int(1), true));
        assert_eq!(
            *r[5],
            Role::Buffer {
                dir: Dir::Out,
                elem: sc(Scalar::I8),
                count: Expr::Int(16),
                written: None,
                string: true,
                scalar_out: false,
            }
        );
        assert_eq!(*r[6], buf(Dir::Out, sc(Scalar::U8), Expr::Param(2), false));
        assert_eq!(*r[7], Role::String);
        assert_eq!(*r[8], Role::Opaque);
        assert_eq!(*r[9], Role::Null);
        assert_eq!(s.params[9].ty, Type::FnPtr);
        assert_eq!(
            *r[10],
            buf(Dir::Out, sc(Scalar::F64), Expr::Param(2), false)
        );
    }

    #[test]
    fn annotation_errors() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "int f(int *p [in n; written 2], int n)",
                21,
                "`written` needs",
            ),
            ("int f(int *p [n; written 2], int n)", 18, "`written` needs"),
            ("int f(int *p [string; written 2])", 23, "`written` needs"),
            (
                "int f(int *p [out n], int m)",
                19,
                "unknown name \"n\": not a parameter of f",
            ),
            ("int f(int *p [out ret])", 19, "only available in `written`"),
            ("void f(int *p [out 4; written ret])", 31, "returns void"),
            (
                "int f(int *p [out 4; written *n], int *n [in 1])",
                31,
                "out-scalar",
            ),
            (
                "int f(int *p [out 4; written *n], const int *n)",
                31,
                "out-scalar",
            ),
            (
                "int f(int *p [out strlen(n)], int *n)",
                26,
                "strlen(n) needs a string",
            ),
            (
                "int f(int *p [out 4; frob])",
                22,
                "expected `written W` or `string`",
            ),
            (
                "int f(int *p [handle])",
                15,
                "[handle] needs a type listed in \"handles\"",
            ),
            ("int f(int *p [private])", 15, "only for struct fields"),
            ("int f(int x [4])", 1, ""),
            ("int f(int x [in 4])", 13, "needs a pointer"),
            ("int f(void *p [out])", 16, "void pointer needs a size"),
            ("int f(int *p [in 4; string])", 21, "`; string` needs"),
            ("int f(int *p [out 4; string])", 22, "char buffer"),
            ("int f(int *p [out 4)", 20, "expected `]`"),
            ("int *f(void) []", 14, "empty annotation"),
            ("int f(int *p [out 4 +])", 22, "expected a size expression"),
            ("int f(int *p [out foo(2)])", 19, "unknown function foo()"),
            (
                "int f(int *p [out sizeof(struct q)])",
                26,
                "struct q is not declared",
            ),
            ("int f(int *p [string])", 15, "needs a char pointer"),
            ("int f(int x [opaque])", 13, "needs a pointer"),
            ("int f(int (*cb)(int) [in 4])", 22, "needs a pointer"),
        ];
        for (text, col, msg) in cases {
            if *col == 1 && msg.is_empty() {
                // `int x [4]` is an array parameter: a pointer to 4 ints.
                let s = sig(text);
                assert_eq!(s.params[0].ty, ptr(sc(Scalar::I32), false));
                assert_eq!(
                    s.params[0].role,
                    buf(Dir::InOut, sc(Scalar::I32), Expr::Int(4), false)
                );
                continue;
            }
            let e = err(text);
            assert!(e.message.contains(msg), "{text}: {e}");
            assert_eq!(e.column, *col, "{text}: {e}");
        }
    }

    #[test]
    fn deref_and_strlen() {
        let s = sig("int f(char *buf [out cap; written *len], size_t cap, size_t *len [out])");
        assert_eq!(written_of(&s.params[0].role), &Expr::Deref(2));
        assert_eq!(
            s.params[2].role,
            buf(Dir::Out, sc(Scalar::U64), Expr::Int(1), true)
        );
        // The default for a non-const scalar pointer is an out-scalar too.
        let s = sig("int f(char *buf [out cap; written *len], size_t cap, size_t *len)");
        assert_eq!(written_of(&s.params[0].role), &Expr::Deref(2));
        let s = sig("int f(const char *s, char *d [out strlen(s) + 1])");
        assert_eq!(
            count_of(&s.params[1].role),
            &Expr::Binary(
                BinOp::Add,
                Box::new(Expr::StrLen(0)),
                Box::new(Expr::Int(1))
            )
        );
        let s = sig("int f(int n, double *d [out n * sizeof(double)])");
        assert_eq!(
            count_of(&s.params[1].role),
            &Expr::Binary(
                BinOp::Mul,
                Box::new(Expr::Param(0)),
                Box::new(Expr::SizeOf(8))
            )
        );
    }

    #[test]
    fn function_pointers() {
        let s = sig(
            "void qsort(void *base [inout n * size], size_t n, size_t size, \
                     int (*cmp)(const void *, const void *))",
        );
        assert_eq!(s.params[3].name, "cmp");
        assert_eq!(s.params[3].ty, Type::FnPtr);
        assert_eq!(s.params[3].role, Role::Opaque);
        assert_eq!(
            count_of(&s.params[0].role),
            &Expr::Binary(
                BinOp::Mul,
                Box::new(Expr::Param(1)),
                Box::new(Expr::Param(2))
            )
        );
        let s = sig("void f(void (*)(int), void *(**alloc)(size_t n) , int)");
        assert_eq!(s.params[0].name, "arg0");
        assert_eq!(s.params[0].ty, Type::FnPtr);
        assert_eq!(s.params[1].ty, ptr(Type::FnPtr, false));
        assert_eq!(s.params[1].role, Role::Opaque);
        assert_eq!(s.params[2].name, "arg2");
        let t = table(&["typedef int (*cmp_fn)(const void *, const void *);"]);
        let s = sig_t("void sort(cmp_fn c)", &t);
        assert_eq!(s.params[0].ty, Type::FnPtr);
        assert_eq!(s.params[0].role, Role::Opaque);
    }

    #[test]
    fn unnamed_parameters_and_qualifiers() {
        let s = sig("int f(int, const char *, double * const restrict, volatile long)");
        let names: Vec<&str> = s.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["arg0", "arg1", "arg2", "arg3"]);
        assert_eq!(s.params[1].role, Role::String);
        assert_eq!(s.params[2].ty, ptr(sc(Scalar::F64), false));
        assert_eq!(s.params[3].ty, sc(Scalar::I64));
        // const on the pointer itself does not make the pointee const.
        let s = sig("int f(int * const p, const int * const q, char * const * v)");
        assert_eq!(s.params[0].ty, ptr(sc(Scalar::I32), false));
        assert_eq!(s.params[1].ty, ptr(sc(Scalar::I32), true));
        assert_eq!(s.params[2].ty, ptr(ptr(sc(Scalar::I8), false), true));
        let s = sig("extern int f(int arg0, int)");
        assert_eq!(s.params[1].name, "arg1");
        // A generated name that a named parameter already has is a clash.
        let e = err("int f(int arg1, int)");
        assert!(e.message.contains("two parameters are named arg1"), "{e}");
    }

    #[test]
    fn duplicate_parameters() {
        let e = err("int f(int a, int a)");
        assert_eq!(e.column, 18);
        assert!(e.message.contains("two parameters"), "{e}");
    }

    #[test]
    fn cxx_refused() {
        for (t, col) in [
            ("int Shape::area() const", 10),
            ("Shape::Shape(double w, double h)", 6),
            ("virtual Shape::~Shape()", 1),
            ("void f(const Shape &s)", 20),
            ("void f(int &&s)", 12),
        ] {
            let e = err(t);
            assert_eq!(e.message, CXX_REFUSED, "{t}");
            assert_eq!(e.column, col, "{t}");
        }
        // `&&` inside a size expression is logic, not C++.
        sig("int f(int *p [in n > 0 && n < 9 ? n : 1], int n)");
    }

    #[test]
    fn blas_dgemm() {
        let text = "void cblas_dgemm(int Order, int TransA, int TransB, int M, int N, int K,
    double alpha,
    const double *A [(Order == 101) == (TransA == 111) ? (M - 1) * lda + K : (K - 1) * lda + M], int lda,
    const double *B [(Order == 101) == (TransB == 111) ? (K - 1) * ldb + N : (N - 1) * ldb + K], int ldb,
    double beta,
    double *C [inout (Order == 101) ? (M - 1) * ldc + N : (N - 1) * ldc + M], int ldc)";
        let s = sig(text);
        assert_eq!(s.name, "cblas_dgemm");
        assert_eq!(s.params.len(), 14);
        let names: Vec<&str> = s.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Order", "TransA", "TransB", "M", "N", "K", "alpha", "A", "lda", "B", "ldb",
                "beta", "C", "ldc"
            ]
        );
        assert!(matches!(
            s.params[7].role,
            Role::Buffer {
                dir: Dir::In,
                elem: Type::Scalar(Scalar::F64),
                written: None,
                ..
            }
        ));
        assert!(matches!(
            s.params[12].role,
            Role::Buffer {
                dir: Dir::InOut,
                elem: Type::Scalar(Scalar::F64),
                scalar_out: false,
                ..
            }
        ));
        assert_eq!(s.params[6].role, Role::Value);
        // Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
        let env =
            |order: i64, ta: i64, tb: i64, m: i64, n: i64, k: i64, lda: i64, ldb: i64, ldc: i64| {
                Env {
                    params: vec![
                        order, ta, tb, m, n, k, 0, 0x1000, lda, 0x2000, ldb, 0, 0x3000, ldc,
                    ],
                    ..Env::default()
                }
            };
        let (a, b, c) = (
            count_of(&s.params[7].role),
            count_of(&s.params[9].role),
            count_of(&s.params[12].role),
        );
        // Row-major (101), no transpose (111): A is M x K with lda >= K.
        let e = env(101, 111, 111, 3, 4, 5, 5, 4, 4);
        assert_eq!(a.eval(&e), Some(2 * 5 + 5));
        assert_eq!(b.eval(&e), Some(4 * 4 + 4));
        assert_eq!(c.eval(&e), Some(2 * 4 + 4));
        // Row-major, A transposed (112): A is K x M.
        let e = env(101, 112, 111, 3, 4, 5, 3, 4, 4);
        assert_eq!(a.eval(&e), Some(4 * 3 + 3));
        // Column-major (102), no transpose: A is lda x K, (K-1)*lda + M.
        let e = env(102, 111, 111, 3, 4, 5, 3, 5, 3);
        assert_eq!(a.eval(&e), Some(4 * 3 + 3));
        assert_eq!(b.eval(&e), Some(3 * 5 + 5));
        assert_eq!(c.eval(&e), Some(3 * 3 + 3));
        // Column-major, A transposed: (M-1)*lda + K.
        let e = env(102, 112, 112, 3, 4, 5, 5, 4, 3);
        assert_eq!(a.eval(&e), Some(2 * 5 + 5));
        assert_eq!(b.eval(&e), Some(4 * 4 + 4));
        // Empty matrices give sizes below zero (they count as zero).
        let e = env(101, 111, 111, 0, 0, 0, 1, 1, 1);
        assert!(c.eval(&e).unwrap() <= 0);
    }

    #[test]
    fn precedence_and_eval() {
        let ev = |src: &str, params: Vec<i64>| -> Option<i64> {
            let names: Vec<String> = (0..params.len()).map(|i| format!("p{i}")).collect();
            let decl: Vec<String> = names.iter().map(|n| format!("long {n}")).collect();
            let text = format!("int f(int *buf [in {src}], {})", decl.join(", "));
            let s = sig(&text);
            let mut all = vec![0x1000];
            all.extend(params);
            count_of(&s.params[0].role).eval(&Env {
                params: all,
                ..Env::default()
            })
        };
        assert_eq!(ev("1 + 2 * 3", vec![0]), Some(7));
        assert_eq!(ev("(1 + 2) * 3", vec![0]), Some(9));
        assert_eq!(ev("10 - 4 - 3", vec![0]), Some(3));
        assert_eq!(ev("100 / 10 / 5", vec![0]), Some(2));
        assert_eq!(ev("17 % 5 * 2", vec![0]), Some(4));
        assert_eq!(ev("-3 + 5", vec![0]), Some(2));
        assert_eq!(ev("!0 + !7", vec![0]), Some(1));
        assert_eq!(ev("1 < 2 == 1", vec![0]), Some(1));
        assert_eq!(ev("2 > 1 > 0", vec![0]), Some(1));
        assert_eq!(ev("3 >= 3 && 2 <= 1 || 4 != 4", vec![0]), Some(0));
        assert_eq!(ev("1 || 0 && 0", vec![0]), Some(1));
        assert_eq!(ev("0 ? 1 : 2 ? 3 : 4", vec![0]), Some(3));
        assert_eq!(ev("p1 ? p1 * 2 : 5", vec![0, 0]), Some(5));
        assert_eq!(ev("p1 ? p1 * 2 : 5", vec![0, 4]), Some(8));
        assert_eq!(ev("min(p1, 3) + max(p1, 3)", vec![0, 10]), Some(13));
        assert_eq!(ev("abs(0 - p1)", vec![0, 10]), Some(10));
        assert_eq!(ev("0x10 + 010 + 1u + 2UL", vec![0]), Some(16 + 8 + 3));
        assert_eq!(ev("p1 / p2", vec![0, 1, 0]), None);
        assert_eq!(ev("p1 % p2", vec![0, 1, 0]), None);
        assert_eq!(ev("p2 && p1 / p2", vec![0, 1, 0]), Some(0));
        assert_eq!(ev("p2 == 0 || p1 / p2", vec![0, 1, 0]), Some(1));
        assert_eq!(ev("p2 ? p1 / p2 : 7", vec![0, 1, 0]), Some(7));
        assert_eq!(
            ev(
                "sizeof(double) * 2 + sizeof(char *) + sizeof(unsigned short)",
                vec![0]
            ),
            Some(26)
        );
        assert_eq!(ev("p0 != 0", vec![0]), Some(0));
        // Wrapping, not panicking.
        assert_eq!(ev("9223372036854775807 + 1", vec![0]), Some(i64::MIN));
        assert_eq!(ev("(0 - 9223372036854775807 - 1) / -1", vec![0]), None);
        // Missing values.
        let s = sig("int f(int *b [in n], int n)");
        assert_eq!(count_of(&s.params[0].role).eval(&Env::default()), None);
    }

    #[test]
    fn eval_env_hooks() {
        let s = sig(
            "long f(const char *s, char *d [out strlen(s) + 1; written ret], size_t *n [out], \
                     char *e [out 8; written *n])",
        );
        let env = Env {
            params: vec![1, 2, 3, 4],
            ret: Some(5),
            derefs: [(2usize, 6i64)].into_iter().collect(),
            strlens: [(0usize, 9i64)].into_iter().collect(),
            ..Env::default()
        };
        assert_eq!(count_of(&s.params[1].role).eval(&env), Some(10));
        assert_eq!(written_of(&s.params[1].role).eval(&env), Some(5));
        assert_eq!(written_of(&s.params[3].role).eval(&env), Some(6));
        assert_eq!(
            Expr::Field(1).eval(&Env {
                fields: vec![3, 4],
                ..Env::default()
            }),
            Some(4)
        );
        assert_eq!(Expr::SizeOf(24).eval(&Env::default()), Some(24));
        assert_eq!(Expr::Ret.eval(&Env::default()), None);
    }

    #[test]
    fn structs_and_layout() {
        let t = table(&[
            "struct point { double x; double y; }",
            "struct mixed { char c; int i; short s; char *name; bool b; };",
            "struct arr { int id; uint16_t v[3]; double w; }",
            "struct nest { char tag; struct point p; int n; }",
            "struct empty { }",
        ]);
        let p = t.lookup_struct("point").unwrap();
        assert_eq!((p.size, p.align), (16, 8));
        assert_eq!(p.fields[1].offset, 8);
        assert_eq!(p.fields[0].role, Role::Value);
        let m = t.lookup_struct("mixed").unwrap();
        let offs: Vec<usize> = m.fields.iter().map(|f| f.offset).collect();
        assert_eq!(offs, [0, 4, 8, 16, 24]);
        assert_eq!((m.size, m.align), (32, 8));
        assert_eq!(m.fields[3].role, Role::String);
        assert_eq!(m.fields[4].ty, sc(Scalar::Bool));
        let a = t.lookup_struct("arr").unwrap();
        assert_eq!(a.fields[1].role, Role::Array { len: 3 });
        assert_eq!(a.fields[1].ty, sc(Scalar::U16));
        assert_eq!(a.fields[1].offset, 4);
        assert_eq!(a.fields[2].offset, 16);
        assert_eq!((a.size, a.align), (24, 8));
        let n = t.lookup_struct("nest").unwrap();
        assert_eq!(n.fields[1].offset, 8);
        assert_eq!(n.fields[2].offset, 24);
        assert_eq!(n.size, 32);
        assert!(matches!(&n.fields[1].ty, Type::Struct(s) if Arc::ptr_eq(s, &p)));
        let e = t.lookup_struct("empty").unwrap();
        assert_eq!((e.size, e.align), (0, 1));
        assert!(t.lookup_struct("nope").is_none());

        let s = sig_t(
            "double dist(const struct point *a, struct point *b, struct point c)",
            &t,
        );
        assert_eq!(
            s.params[0].role,
            buf(Dir::In, Type::Struct(p.clone()), Expr::Int(1), false)
        );
        assert_eq!(
            s.params[1].role,
            buf(Dir::InOut, Type::Struct(p.clone()), Expr::Int(1), false)
        );
        assert_eq!(s.params[2].role, Role::Value);
        let s = sig_t(
            "void fill(struct point *pts [out n], int n, struct point *one [out])",
            &t,
        );
        assert_eq!(
            s.params[0].role,
            buf(Dir::Out, Type::Struct(p.clone()), Expr::Param(1), false)
        );
        assert_eq!(
            s.params[2].role,
            buf(Dir::Out, Type::Struct(p.clone()), Expr::Int(1), false)
        );
        let s = sig_t("int f(int *p [in sizeof(struct point) * 2])", &t);
        assert_eq!(count_of(&s.params[0].role).eval(&Env::default()), Some(32));
    }

    #[test]
    fn zlib_stream() {
        let t = table(&[
            "typedef unsigned int uInt;",
            "typedef unsigned long uLong;",
            "typedef unsigned char Bytef;",
            "typedef struct z_stream_s *z_streamp;",
            "struct z_stream_s {
                const Bytef *next_in [in avail_in];
                uInt avail_in;
                uLong total_in;
                Bytef *next_out [out avail_out];
                uInt avail_out;
                uLong total_out;
                const char *msg;
                struct internal_state *state [private];
                void *(*zalloc)(void *, unsigned, unsigned) [null];
                void (*zfree)(void *, void *) [null];
                void *opaque [opaque];
                int data_type;
                uLong adler;
                uLong reserved;
            }",
        ]);
        let z = t.lookup_struct("z_stream_s").unwrap();
        assert_eq!(z.size, 112);
        assert_eq!(z.align, 8);
        let f = |n: &str| z.fields.iter().find(|f| f.name == n).unwrap();
        assert_eq!(
            f("next_in").role,
            buf(Dir::In, sc(Scalar::U8), Expr::Field(1), false)
        );
        assert_eq!(f("next_in").ty, ptr(sc(Scalar::U8), true));
        assert_eq!(f("avail_in").ty, sc(Scalar::U32));
        assert_eq!(f("avail_in").offset, 8);
        assert_eq!(f("total_in").offset, 16);
        assert_eq!(
            f("next_out").role,
            buf(Dir::Out, sc(Scalar::U8), Expr::Field(4), false)
        );
        assert_eq!(f("msg").role, Role::String);
        assert_eq!(f("state").role, Role::Private);
        assert_eq!(f("state").ty, ptr(Type::Void, false));
        assert_eq!(f("zalloc").role, Role::Null);
        assert_eq!(f("zalloc").ty, Type::FnPtr);
        assert_eq!(f("zalloc").offset, 64);
        assert_eq!(f("zfree").role, Role::Null);
        assert_eq!(f("opaque").role, Role::Opaque);
        assert_eq!(f("data_type").offset, 88);
        assert_eq!(f("reserved").offset, 104);

        // The typedef was declared before the struct: resolved at use.
        let s = sig_t("int deflate(z_streamp strm, int flush)", &t);
        assert_eq!(
            s.params[0].role,
            buf(Dir::InOut, Type::Struct(z.clone()), Expr::Int(1), false)
        );
        let s = sig_t(
            "int deflateInit2_(z_streamp strm, int level, int method, int windowBits, \
             int memLevel, int strategy, const char *version, int stream_size)",
            &t,
        );
        assert_eq!(s.params[6].role, Role::String);
        let s = sig_t(
            "uLong crc32(uLong crc, const Bytef *buf [in len], uInt len)",
            &t,
        );
        assert_eq!(s.ret, sc(Scalar::U64));
        assert_eq!(
            s.params[1].role,
            buf(Dir::In, sc(Scalar::U8), Expr::Param(2), false)
        );
    }

    #[test]
    fn typedefs() {
        let t = table(&[
            "typedef struct point { double x; double y; } point_t;",
            "typedef struct point pt;",
            "typedef struct { int a; int b; } pair_t;",
            "typedef char *str_t;",
            "typedef const char *cstr_t;",
            "typedef enum color color_t;",
            "typedef enum { RED, GREEN } shade_t;",
            "enum dir { UP = 1, DOWN };",
            "typedef unsigned long size_t;",
            "typedef unsigned int uInt;",
            "typedef unsigned int uInt;",
            "typedef uInt *uIntp;",
        ]);
        let s = sig_t(
            "point_t f(pt *a, pair_t b, str_t s, cstr_t c, color_t k, shade_t h, enum dir d, size_t n, uIntp u)",
            &t,
        );
        let p = t.lookup_struct("point").unwrap();
        assert_eq!(s.ret, Type::Struct(p.clone()));
        assert_eq!(
            s.params[0].role,
            buf(Dir::InOut, Type::Struct(p), Expr::Int(1), false)
        );
        let pair = t.lookup_struct("pair_t").unwrap();
        assert_eq!(pair.size, 8);
        assert_eq!(s.params[1].ty, Type::Struct(pair));
        assert_eq!(s.params[2].role, Role::String);
        assert_eq!(s.params[3].role, Role::String);
        assert_eq!(s.params[4].ty, sc(Scalar::I32));
        assert_eq!(s.params[5].ty, sc(Scalar::I32));
        assert_eq!(s.params[6].ty, sc(Scalar::I32));
        assert_eq!(s.params[7].ty, sc(Scalar::U64));
        assert_eq!(
            s.params[8].role,
            buf(Dir::InOut, sc(Scalar::U32), Expr::Int(1), true)
        );
    }

    #[test]
    fn declaration_errors() {
        let mut t = table(&["struct point { double x; double y; }", "typedef int myint;"]);
        let cases: &[(&str, usize, &str)] = &[
            ("struct point { int z; }", 8, "already declared"),
            (
                "typedef long myint;",
                14,
                "already declared as another type",
            ),
            ("typedef int size_t;", 13, "conflicts with the built-in"),
            ("struct s { int a; int a; }", 23, "two fields named a"),
            ("struct s { intt a; }", 12, "unknown type \"intt\""),
            ("struct s { int a }", 18, "expected `;`"),
            ("struct s { int a; ", 19, "expected `}`"),
            ("struct s { int a : 3; }", 18, "bit-fields"),
            ("struct s { int v[0]; }", 17, "positive length"),
            (
                "struct s { int *p [in n]; int m; }",
                23,
                "unknown name \"n\": not a field of struct s",
            ),
            (
                "struct s { int *p [out 4; written ret]; }",
                35,
                "not available in struct fields",
            ),
            (
                "struct s { int *p [in strlen(q)]; char *q; }",
                30,
                "not available in struct fields",
            ),
            (
                "struct s { int *p [in *q]; int *q; }",
                24,
                "not available in struct fields",
            ),
            (
                "struct s { int *p [handle]; }",
                20,
                "[handle] needs a type listed",
            ),
            (
                "struct s { struct later *l [in 4]; }",
                28,
                "not declared before it",
            ),
            (
                "struct s { struct later v; }",
                12,
                "struct later is not declared",
            ),
            ("struct s { void v; }", 12, "type void"),
            ("struct s { int v[4] [in 4]; }", 21, "array field"),
            ("union u { int a; }", 1, "unions are not supported"),
            ("int x;", 1, "expected `struct NAME"),
            ("struct Shape::Inner { int a; }", 13, "C++ declarations"),
            ("typedef int;", 12, "expected the typedef's name"),
            ("typedef int *p [in 4];", 16, "typedefs take no annotation"),
            ("struct s { int a; } extra", 21, "unexpected \"extra\""),
        ];
        for (d, col, msg) in cases {
            let e = t.declare(d).expect_err(d);
            assert!(e.message.contains(msg), "{d}: {e}");
            assert_eq!(e.column, *col, "{d}: {e}");
        }
        // Failed declarations leave nothing behind.
        assert!(t.lookup_struct("s").is_none());
    }

    #[test]
    fn incomplete_structs_are_opaque_behind_pointers() {
        let t = table(&[
            "struct calc_ctx;",
            "typedef struct calc_ctx calc_ctx;",
            "struct holder { struct calc_ctx *ctx; int n; }",
        ]);
        assert!(t.lookup_struct("calc_ctx").is_none());
        let s = sig_t("calc_ctx *calc_new(void)", &t);
        assert_eq!(s.ret, ptr(Type::Void, false));
        assert_eq!(s.ret_role, Role::Opaque);
        let s = sig_t("int calc_get(const struct calc_ctx *c, calc_ctx **out)", &t);
        assert_eq!(s.params[0].ty, ptr(Type::Void, true));
        assert_eq!(s.params[0].role, Role::Opaque);
        assert_eq!(s.params[1].role, Role::Opaque);
        let h = t.lookup_struct("holder").unwrap();
        assert_eq!(h.fields[0].role, Role::Opaque);
        let e = err_t("int f(struct calc_ctx c)", &t);
        assert_eq!(e.column, 7);
        assert!(e.message.contains("declared without fields"), "{e}");
        let e = err_t("int f(int *p [in sizeof(calc_ctx)])", &t);
        assert!(e.message.contains("declared without fields"), "{e}");
        // It can still be completed later.
        let mut t = t;
        t.declare("struct calc_ctx { int v; }").unwrap();
        let s = sig_t("int calc_get(const struct calc_ctx *c)", &t);
        assert!(matches!(
            s.params[0].role,
            Role::Buffer { dir: Dir::In, .. }
        ));
    }

    #[test]
    fn self_referential_struct() {
        let t =
            table(&["struct node { int v; struct node *next; const struct node *prev [opaque]; }"]);
        let n = t.lookup_struct("node").unwrap();
        assert_eq!(n.fields[1].ty, ptr(Type::Void, false));
        assert_eq!(n.fields[1].role, Role::Opaque);
        assert_eq!(n.fields[2].role, Role::Opaque);
        assert_eq!(n.size, 24);
        let s = sig_t("int sum(const struct node *head)", &t);
        assert_eq!(
            s.params[0].role,
            buf(Dir::In, Type::Struct(n), Expr::Int(1), false)
        );
    }

    #[test]
    fn struct_field_multi_declarators_and_sizes() {
        let t = table(&[
            "struct buf { size_t len, cap; uint8_t *data [inout cap; written len]; double *w [out min(len, cap) * 2]; }",
        ]);
        let b = t.lookup_struct("buf").unwrap();
        assert_eq!(b.fields.len(), 4);
        assert_eq!(b.fields[1].name, "cap");
        assert_eq!(b.fields[1].offset, 8);
        assert_eq!(
            b.fields[2].role,
            Role::Buffer {
                dir: Dir::InOut,
                elem: sc(Scalar::U8),
                count: Expr::Field(1),
                written: Some(Expr::Field(0)),
                string: false,
                scalar_out: false,
            }
        );
        let env = Env {
            fields: vec![3, 5, 0, 0],
            ..Env::default()
        };
        assert_eq!(count_of(&b.fields[3].role).eval(&env), Some(6));
    }

    #[test]
    fn misc_syntax_errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("int f(int a", 12, "expected `)`"),
            ("int f(int a))", 13, "unexpected `)`"),
            ("int (int a)", 5, "expected the function's name"),
            ("int f int a", 7, "expected `(`"),
            ("", 1, "expected a type"),
            ("int f(int a) @", 14, "unexpected character '@'"),
            ("int f(int a, void)", 14, "type void"),
            ("int (*f(int a))(int)", 5, "needs a typedef"),
            (
                "int f(int *p [in 99999999999999999999])",
                18,
                "invalid integer literal",
            ),
            ("int f(int *p [in (2 + 3])", 24, "expected `)`"),
            ("int f(int *p [in 1 ? 2])", 23, "expected `:`"),
            ("int f(int *p [in min(1 2)])", 24, "expected `,`"),
            (
                "int f(int *p [in sizeof(n)], int n)",
                25,
                "unknown type \"n\"",
            ),
            ("int f(int *p [in sizeof(void)])", 25, "sizeof(void)"),
            (
                "int f(int *p [in * 3])",
                20,
                "expected a parameter name after `*`",
            ),
            ("int f(union u x)", 7, "unions are not supported"),
            ("int f(int /* unterminated", 11, "unterminated comment"),
        ];
        for (text, col, msg) in cases {
            let e = err(text);
            assert!(e.message.contains(msg), "{text:?}: {e}");
            assert_eq!(e.column, *col, "{text:?}: {e}");
        }
        // Comments are fine.
        let s = sig("int /* result */ f(int a /* first */, // rest\n int b)");
        assert_eq!(s.params.len(), 2);
    }

    #[test]
    fn array_parameters_and_attributes() {
        let s = sig("int main_like(int argc, char *argv[], const double v[3], double w[])");
        assert_eq!(s.params[1].ty, ptr(ptr(sc(Scalar::I8), false), false));
        assert_eq!(s.params[1].role, Role::Opaque);
        assert_eq!(s.params[2].ty, ptr(sc(Scalar::F64), true));
        assert_eq!(
            s.params[2].role,
            buf(Dir::In, sc(Scalar::F64), Expr::Int(3), false)
        );
        assert_eq!(
            s.params[3].role,
            buf(Dir::InOut, sc(Scalar::F64), Expr::Int(1), true)
        );
        let s = sig("int f(double v[] [in n], int n)");
        assert_eq!(
            s.params[0].role,
            buf(Dir::In, sc(Scalar::F64), Expr::Param(1), false)
        );
        let s = sig("__extension__ int f(const char *s __attribute__((nonnull))) __attribute__ ((pure, warn_unused_result));");
        assert_eq!(s.params.len(), 1);
        assert_eq!(s.params[0].role, Role::String);
    }

    #[test]
    fn pathological_expressions_are_refused_not_overflowing() {
        let deep = format!(
            "int f(int *p [in {}1{}])",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert!(err(&deep).message.contains("nested too deeply"));
        let neg = format!("int f(int *p [in {}1])", "-".repeat(5000));
        assert!(err(&neg).message.contains("nested too deeply"));
        let long = format!("int f(int *p [in 1{}])", " + 1".repeat(5000));
        let e = err(&long);
        assert!(e.message.contains("nested too deeply"), "{e}");
        assert_eq!(e.column, 18);
        // Reasonable nesting is fine.
        let ok = format!("int f(int *p [in {}1{}])", "(".repeat(20), ")".repeat(20));
        sig(&ok);
    }

    /// A tiny fuzzer: random token soup never panics.
    #[test]
    fn random_input_never_panics() {
        const PIECES: &[&str] = &[
            "int",
            "char",
            "*",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ";",
            ",",
            "const",
            "struct",
            "s",
            "x",
            "n",
            "in",
            "out",
            "inout",
            "written",
            "string",
            "ret",
            "?",
            ":",
            "+",
            "-",
            "!",
            "&&",
            "||",
            "==",
            "<",
            "1",
            "0x10",
            "sizeof",
            "min",
            "strlen",
            "void",
            "typedef",
            "unsigned",
            "long",
            "double",
            "...",
            "f",
            "p",
            "enum",
            "null",
            "private",
            "opaque",
            "handle",
            "__attribute__",
            "&",
            "::",
            "é",
            "/*",
            "*/",
            "99999999999999999999",
        ];
        let mut t = TypeTable::new();
        t.declare("struct s { int n; int *x [in n]; }").unwrap();
        let mut state: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = |k: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % k
        };
        for _ in 0..20000 {
            let n = 1 + rnd(24);
            let mut text = String::new();
            for _ in 0..n {
                text.push_str(PIECES[rnd(PIECES.len())]);
                text.push(' ');
            }
            let _ = parse_signature(&text, &t);
            let mut t2 = t.clone();
            let _ = t2.declare(&text);
            let prefixed = format!("int f(int n, {text}");
            let _ = parse_signature(&prefixed, &t);
            let st = format!("struct q {{ {text} }}");
            let _ = t2.declare(&st);
        }
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = err("int f(/* é */ intt x)");
        assert_eq!(e.column, 15);
    }
}
