//! The typed model of a boundary: C types, struct layouts, parameter roles and
//! size expressions. `signature.rs` builds these from annotated C prototypes;
//! `marshal.rs`, `invoke.rs` and `compare.rs` walk them.
//!
//! Layout follows the x86-64 System V ABI (the only target DDL supports):
//! `long` and pointers are 8 bytes, `bool` is 1 byte, struct fields are laid
//! out in order at their natural alignment.

use std::sync::Arc;

/// A C scalar type, after typedefs and `enum` (as `int`) are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Scalar {
    /// `bool` / `_Bool`: one byte, 0 or 1.
    Bool,
    /// `char`, `signed char`, `int8_t`.
    I8,
    /// `unsigned char`, `uint8_t`.
    U8,
    /// `short`, `int16_t`.
    I16,
    /// `unsigned short`, `uint16_t`.
    U16,
    /// `int`, `enum …`, `int32_t`.
    I32,
    /// `unsigned`, `uint32_t`.
    U32,
    /// `long`, `long long`, `ssize_t`, `ptrdiff_t`, `intptr_t`, `int64_t`.
    I64,
    /// `unsigned long`, `size_t`, `uintptr_t`, `uint64_t`.
    U64,
    /// `float`.
    F32,
    /// `double`.
    F64,
}

impl Scalar {
    /// Size in bytes (also the alignment).
    pub fn size(self) -> usize {
        match self {
            Scalar::Bool | Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::I64 | Scalar::U64 | Scalar::F64 => 8,
        }
    }

    /// True for `float` and `double`.
    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F64)
    }

    /// True for the signed integer types.
    pub fn is_signed(self) -> bool {
        matches!(self, Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64)
    }
}

/// A C type as DDL needs to know it.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    /// `void` (only as a return type or behind a pointer).
    Void,
    /// A scalar value.
    Scalar(Scalar),
    /// A pointer to the given type (`const` is recorded in [`Type::Pointer::is_const`]).
    Pointer {
        /// What it points to.
        pointee: Box<Type>,
        /// `const T *`: the callee promises not to write through it.
        is_const: bool,
    },
    /// A struct declared in the config's `types`.
    Struct(Arc<StructDef>),
    /// A function pointer: passed through unchanged unless annotated.
    FnPtr,
}

impl Type {
    /// Size in bytes of a value of this type (pointers and function pointers are 8).
    pub fn size(&self) -> usize {
        match self {
            Type::Void => 0,
            Type::Scalar(s) => s.size(),
            Type::Pointer { .. } | Type::FnPtr => 8,
            Type::Struct(s) => s.size,
        }
    }

    /// Alignment in bytes.
    pub fn align(&self) -> usize {
        match self {
            Type::Void => 1,
            Type::Scalar(s) => s.size(),
            Type::Pointer { .. } | Type::FnPtr => 8,
            Type::Struct(s) => s.align,
        }
    }
}

/// A struct declared in `types`, with its layout computed.
#[derive(Debug, PartialEq)]
pub struct StructDef {
    /// The tag, without `struct` (`point` for `struct point`).
    pub name: String,
    /// Fields in declaration order, with offsets.
    pub fields: Vec<Field>,
    /// `sizeof(struct name)`, tail padding included.
    pub size: usize,
    /// `_Alignof(struct name)`.
    pub align: usize,
}

/// One field of a declared struct.
#[derive(Debug, PartialEq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its type (arrays inside structs are written `T name[N]` and become [`Role::Array`]).
    pub ty: Type,
    /// Byte offset from the start of the struct.
    pub offset: usize,
    /// What the field's annotation (or the default for its type) says about it.
    /// Size expressions in a field's role name sibling fields through
    /// [`Expr::Field`].
    pub role: Role,
}

/// Direction of a buffer or pointed-to scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Read by the callee only.
    In,
    /// Written by the callee only.
    Out,
    /// Read and written.
    InOut,
}

impl Dir {
    /// The callee reads it.
    pub fn reads(self) -> bool {
        matches!(self, Dir::In | Dir::InOut)
    }
    /// The callee writes it.
    pub fn writes(self) -> bool {
        matches!(self, Dir::Out | Dir::InOut)
    }
}

/// How a parameter, field or return value is captured, given to the shadow
/// and compared. Decided by the parser from the annotation or the defaults of
/// CONFIG.md ("Defaults without annotations").
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// A scalar, struct by value or enum passed by value: captured as is,
    /// compared when it is an output (the return value).
    Value,
    /// A pointer to `count` elements of `elem` (`[in N]`, `[out N]`,
    /// `[inout N]`, `[out N; written W]`, `const T *` = `[in 1]`, `T *` with
    /// scalar T = `[inout 1]` with `scalar_out` set, `struct S *` = `[inout 1]`).
    Buffer {
        /// In, out or both.
        dir: Dir,
        /// The element type (the pointee; `void` pointee means bytes: `U8`).
        elem: Type,
        /// Number of elements, evaluated on the values before the call.
        count: Expr,
        /// Number of meaningful elements after the call (`written W`),
        /// evaluated on the values after the call; `None` means all `count`.
        written: Option<Expr>,
        /// `[out N; string]`: the output is a NUL-terminated string inside
        /// the buffer (compared up to the NUL).
        string: bool,
        /// `[out]` / `[inout]` on `T *` with scalar T, or the default for such
        /// a pointer: one scalar written by the callee, shown as a scalar in
        /// reports, and usable as `*p` in `written` expressions.
        scalar_out: bool,
    },
    /// A fixed-size array field inside a struct (`int v[4]`): `len` elements
    /// of the field's type stored inline.
    Array {
        /// Number of elements.
        len: usize,
    },
    /// `[string]`: a NUL-terminated input string (the default for `char *`
    /// and `const char *` parameters and for returned `const char *`).
    String,
    /// `[opaque]`: passed on unchanged, never compared (the default for
    /// `void *` without a size, for function pointers, and for returned
    /// pointers that are not strings).
    Opaque,
    /// `[null]`: the shadow receives NULL.
    Null,
    /// `[private]` (struct fields only): the component's own; the shadow keeps
    /// its own value, never copied, never compared.
    Private,
    /// A handle of the config's `handles` (CONFIG.md, "Handles"), passed by
    /// value: `class` indexes the handle types. The shadow receives its own
    /// handle paired with this one; as an outcome (a returned handle) only
    /// whether it is NULL is compared.
    Handle {
        /// Index of the handle type.
        class: u32,
    },
    /// `T **p` where `T *` is a handle type: the callee stores a handle
    /// there (a create function's `[out]` handle). The shadow gets its own
    /// slot; the two handles stored are paired after the call.
    HandleOut {
        /// Index of the handle type.
        class: u32,
    },
}

/// One parameter of a boundary function.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Its name (a prototype without parameter names gets `arg0`, `arg1`, …).
    pub name: String,
    /// Its C type.
    pub ty: Type,
    /// How it is captured and compared.
    pub role: Role,
    /// The handle type (index into the config's `handles`) this parameter
    /// carries: a handle ([`Role::Handle`]), an `[out]` handle
    /// ([`Role::HandleOut`]) or a caller-owned struct with a life
    /// ([`Role::Buffer`] of that struct: the shadow keeps its own instance).
    pub handle: Option<u32>,
}

/// What a boundary function does to the handles it is given (from the
/// config's `handles`: `create` and `destroy`; C++ constructors and
/// destructors are creates and destroys of their class).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Effect {
    /// Uses handles (or none).
    #[default]
    None,
    /// Creates a handle of this class: pairs the returned handle, `[out]`
    /// handles, or the caller-owned structs with a life it is given.
    Create {
        /// Index of the handle type.
        class: u32,
    },
    /// A C++ constructor: its `this` (the first parameter) is storage the
    /// caller owns; the shadow constructs its own object, of the new
    /// build's size, in storage DDL allocates, and pairs the two.
    Construct {
        /// Index of the handle type (the class of C++ objects).
        class: u32,
    },
    /// Destroys the handles of this class it is given: the shadow mirrors
    /// the destruction and forgets the pair.
    Destroy {
        /// Index of the handle type.
        class: u32,
    },
}

/// A parsed boundary function.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    /// The function's name (the symbol looked up in both builds).
    pub name: String,
    /// Return type.
    pub ret: Type,
    /// How the return value is captured: `Value` for scalars and structs,
    /// `String` for `char *`/`const char *`, `Opaque` for other pointers,
    /// `Buffer { dir: In, .. }` for a returned pointer annotated `[N]`.
    pub ret_role: Role,
    /// Parameters in order.
    pub params: Vec<Param>,
    /// The prototype as written in the config (reports key functions by name).
    pub text: String,
    /// Creates, destroys or uses handles (set from the config's `handles`).
    pub effect: Effect,
}

impl Signature {
    /// Whether the sampling decision is made at each call: yes, except for
    /// calls given handles, whose sampling was decided once, at their
    /// create call (a call on a handle the shadow does not have is
    /// `unmirrored`).
    pub fn sampled_per_call(&self) -> bool {
        matches!(
            self.effect,
            Effect::Create { .. } | Effect::Construct { .. }
        ) || !self.params.iter().any(|p| p.handle.is_some())
    }

    /// Whether a call may pair or unpair handles in the shadow's table: a
    /// create, construct or destroy function, or one that returns or
    /// stores (`[out]`) a handle.
    pub fn may_pair(&self) -> bool {
        self.effect != Effect::None
            || matches!(self.ret_role, Role::Handle { .. })
            || self
                .params
                .iter()
                .any(|p| matches!(p.role, Role::HandleOut { .. }))
    }

    /// Whether any parameter or the return value carries a handle.
    pub fn uses_handles(&self) -> bool {
        matches!(self.ret_role, Role::Handle { .. })
            || self.params.iter().any(|p| p.handle.is_some())
    }
}

/// A unary operator of a size expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `!x`
    Not,
}

/// A binary operator of a size expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (integer division; division by zero evaluates to an error)
    Div,
    /// `%`
    Rem,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
}

/// A size expression (CONFIG.md, "Sizes"). Evaluated as `i64`; a size below
/// zero counts as zero.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// An integer literal.
    Int(i64),
    /// A parameter, by index into [`Signature::params`] (its value; a pointer
    /// parameter evaluates to its address, which is only useful compared with 0).
    Param(usize),
    /// A sibling field, by index into [`StructDef::fields`] (inside struct field annotations).
    Field(usize),
    /// `ret`: the return value (only inside `written`).
    Ret,
    /// `*p`: the scalar an out-scalar parameter holds (after the call inside
    /// `written`, before it elsewhere).
    Deref(usize),
    /// `strlen(p)`: length of the string parameter `p`.
    StrLen(usize),
    /// `sizeof(TYPE)`, already computed.
    SizeOf(usize),
    /// `-x`, `!x`.
    Unary(UnOp, Box<Expr>),
    /// `a op b`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `min(a, b)`.
    Min(Box<Expr>, Box<Expr>),
    /// `max(a, b)`.
    Max(Box<Expr>, Box<Expr>),
    /// `abs(x)`.
    Abs(Box<Expr>),
}
