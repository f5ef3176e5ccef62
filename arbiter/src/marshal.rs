//! Capture from raw arguments, and materialise arguments for the shadow.
//!
//! The caller's path hands us the registers and stack of a call exactly as
//! the application made it (a [`Frame`], filled by the wrapper's assembly
//! entry). [`Layout`] says, from the signature and the x86-64 System V
//! classification rules, where each argument and the return value live.
//! [`capture_inputs`] then deep-copies what the callee will read (before the
//! call), [`capture_outputs`] what it wrote (after), and [`Materialised`]
//! rebuilds the same arguments in memory the shadow owns.
//!
//! Reading the caller's memory is the one unsafe thing here: a buffer is read
//! for exactly the number of elements its size expression gives, never more
//! (CONFIG.md: "Capture never reads past the size it was given").

use crate::compare::Outcome;
use crate::signature::ExprEnv;
use crate::types::{Dir, Expr, Role, Scalar, Signature, StructDef, Type};
use crate::value::Value;

/// The register and stack state of one call, as the wrapper entry saved it.
///
/// Shared with the assembly in `shim/src/wrapper.rs`: the field offsets are
/// part of that contract (checked by a unit test there) and must not move.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// `rdi, rsi, rdx, rcx, r8, r9` at entry.
    pub gpr: [u64; 6],
    /// `rax` at entry (`al` = vector registers used, for variadic callees).
    pub rax: u64,
    /// Address of the first stack argument (the caller's `rsp + 8`).
    pub stack: *const u64,
    /// The return address: where in the application the call came from.
    pub ret_addr: u64,
    /// Set by the pre hook: bytes of stack arguments to copy (multiple of 16).
    pub copy_bytes: u64,
    /// `xmm0..xmm7` at entry (low and high quadwords).
    pub xmm: [[u64; 2]; 8],
    /// `rax` after the primary call.
    pub ret_rax: u64,
    /// `rdx` after the primary call.
    pub ret_rdx: u64,
    /// `xmm0` after the primary call.
    pub ret_xmm0: [u64; 2],
    /// `xmm1` after the primary call.
    pub ret_xmm1: [u64; 2],
    /// Set by the pre hook: the function the entry calls (the old build's).
    pub target: u64,
    /// Padding to keep the frame a multiple of 16 bytes.
    pub _pad: u64,
}

/// Size of [`Frame`] in bytes (the assembly reserves exactly this).
pub const FRAME_SIZE: usize = 272;

/// Where one eightbyte of an argument or return value travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// General purpose register by index (`rdi`=0 … `r9`=5; for returns `rax`=0, `rdx`=1).
    Gpr(u8),
    /// Vector register by index (`xmm0`=0 …).
    Sse(u8),
}

/// Where an argument (or the return value) lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    /// In registers, one per eightbyte.
    Regs(Vec<Reg>),
    /// On the stack at this byte offset from the first stack argument.
    Stack(usize),
    /// (Return value only) in memory the caller provided; its address is
    /// passed in `rdi` and returned in `rax`.
    Memory,
    /// Nothing (`void`).
    None,
}

/// The location of every argument and of the return value of one signature.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Per parameter.
    pub args: Vec<Loc>,
    /// The return value.
    pub ret: Loc,
    /// Bytes of stack arguments, rounded up to 16.
    pub stack_bytes: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Integer,
    Sse,
}

/// Flattens a type into (offset, scalar) pairs; pointers count as `U64`.
fn flatten(ty: &Type, base: usize, out: &mut Vec<(usize, Scalar)>) {
    match ty {
        Type::Scalar(s) => out.push((base, *s)),
        Type::Pointer { .. } | Type::FnPtr => out.push((base, Scalar::U64)),
        Type::Struct(def) => {
            for f in &def.fields {
                let n = match f.role {
                    Role::Array { len } => len,
                    _ => 1,
                };
                for i in 0..n {
                    flatten(&f.ty, base + f.offset + i * f.ty.size(), out);
                }
            }
        }
        Type::Void => {}
    }
}

/// Classifies a by-value type into eightbyte classes, or `None` for MEMORY.
fn classify(ty: &Type) -> Option<Vec<Class>> {
    let size = ty.size();
    if size == 0 {
        return Some(Vec::new());
    }
    if size > 16 {
        return None;
    }
    let mut parts = Vec::new();
    flatten(ty, 0, &mut parts);
    let n = size.div_ceil(8);
    let mut classes = vec![None; n];
    for (off, s) in parts {
        let c = if s.is_float() {
            Class::Sse
        } else {
            Class::Integer
        };
        let slot = &mut classes[off / 8];
        *slot = match (*slot, c) {
            (Some(Class::Integer), _) | (_, Class::Integer) => Some(Class::Integer),
            _ => Some(Class::Sse),
        };
    }
    // Eightbytes holding only padding are SSE by the ABI's merge rules.
    Some(
        classes
            .into_iter()
            .map(|c| c.unwrap_or(Class::Sse))
            .collect(),
    )
}

/// Gives each eightbyte the next free register of its class.
fn assign_regs(classes: &[Class], gpr: &mut u8, sse: &mut u8) -> Vec<Reg> {
    classes
        .iter()
        .map(|c| match c {
            Class::Integer => {
                *gpr += 1;
                Reg::Gpr(*gpr - 1)
            }
            Class::Sse => {
                *sse += 1;
                Reg::Sse(*sse - 1)
            }
        })
        .collect()
}

impl Layout {
    /// Computes the System V x86-64 locations for `sig`.
    pub fn of(sig: &Signature) -> Layout {
        let mut gpr = 0u8;
        let mut sse = 0u8;
        let mut stack = 0usize;
        let ret = match &sig.ret {
            Type::Void => Loc::None,
            ty => match classify(ty) {
                None => {
                    gpr = 1; // the hidden return pointer takes rdi
                    Loc::Memory
                }
                Some(classes) => {
                    let (mut g, mut s) = (0u8, 0u8);
                    Loc::Regs(assign_regs(&classes, &mut g, &mut s))
                }
            },
        };
        let mut args = Vec::with_capacity(sig.params.len());
        for p in &sig.params {
            let classes = classify(&p.ty);
            let loc = match classes {
                Some(cs) => {
                    let need_g = cs.iter().filter(|c| **c == Class::Integer).count() as u8;
                    let need_s = cs.len() as u8 - need_g;
                    if gpr + need_g <= 6 && sse + need_s <= 8 {
                        Loc::Regs(assign_regs(&cs, &mut gpr, &mut sse))
                    } else {
                        let at = stack;
                        stack += p.ty.size().div_ceil(8) * 8;
                        Loc::Stack(at)
                    }
                }
                None => {
                    let align = p.ty.align().max(8);
                    stack = stack.div_ceil(align) * align;
                    let at = stack;
                    stack += p.ty.size().div_ceil(8) * 8;
                    Loc::Stack(at)
                }
            };
            args.push(loc);
        }
        Layout {
            args,
            ret,
            stack_bytes: stack.div_ceil(16) * 16,
        }
    }
}

/// One argument or return value as raw machine data.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// A scalar or pointer: its 64-bit register or slot image.
    Bits(u64),
    /// A struct by value: its bytes.
    Bytes(Vec<u8>),
    /// Nothing (`void` return).
    None,
}

impl Raw {
    /// The bits of a register or slot value (0 for anything else).
    pub fn bits(&self) -> u64 {
        match self {
            Raw::Bits(b) => *b,
            _ => 0,
        }
    }
}

/// Reads argument `i` of a call from its frame.
///
/// # Safety
/// `frame` must have been filled by the wrapper entry for a call of this
/// signature, so that `frame.stack` points at the caller's stack arguments.
pub unsafe fn raw_arg(frame: &Frame, layout: &Layout, sig: &Signature, i: usize) -> Raw {
    let ty = &sig.params[i].ty;
    let size = ty.size();
    match &layout.args[i] {
        Loc::Regs(regs) => {
            let word = |r: &Reg| match *r {
                Reg::Gpr(g) => frame.gpr[g as usize],
                Reg::Sse(s) => frame.xmm[s as usize][0],
            };
            if matches!(ty, Type::Struct(_)) {
                let mut bytes: Vec<u8> = regs.iter().flat_map(|r| word(r).to_le_bytes()).collect();
                bytes.truncate(size);
                Raw::Bytes(bytes)
            } else {
                // A scalar or pointer: one register, nothing allocated.
                Raw::Bits(regs.first().map(word).unwrap_or(0))
            }
        }
        Loc::Stack(off) => {
            // SAFETY: the caller placed `size` bytes of this argument at this
            // offset of its outgoing argument area (checked by the ABI layout).
            let p = (frame.stack as *const u8).add(*off);
            if matches!(ty, Type::Struct(_)) {
                Raw::Bytes(std::slice::from_raw_parts(p, size).to_vec())
            } else {
                Raw::Bits(std::ptr::read_unaligned(p as *const u64))
            }
        }
        Loc::Memory | Loc::None => Raw::None,
    }
}

/// Reads the return value of a call from its frame after the primary call.
///
/// # Safety
/// As [`raw_arg`]; for a memory-class return, `frame.ret_rax` must point at
/// the returned struct (the ABI guarantees it).
pub unsafe fn raw_ret(frame: &Frame, layout: &Layout, sig: &Signature) -> Raw {
    match &layout.ret {
        Loc::None => Raw::None,
        Loc::Memory => {
            // SAFETY: the callee returned the address of the caller's return buffer.
            let p = frame.ret_rax as *const u8;
            Raw::Bytes(std::slice::from_raw_parts(p, sig.ret.size()).to_vec())
        }
        Loc::Regs(regs) => {
            let word = |r: &Reg| match *r {
                Reg::Gpr(0) => frame.ret_rax,
                Reg::Gpr(_) => frame.ret_rdx,
                Reg::Sse(0) => frame.ret_xmm0[0],
                Reg::Sse(_) => frame.ret_xmm1[0],
            };
            if matches!(sig.ret, Type::Struct(_)) {
                let mut bytes: Vec<u8> = regs.iter().flat_map(|r| word(r).to_le_bytes()).collect();
                bytes.truncate(sig.ret.size());
                Raw::Bytes(bytes)
            } else {
                // A scalar or pointer: one register, nothing allocated.
                Raw::Bits(regs.first().map(word).unwrap_or(0))
            }
        }
        Loc::Stack(_) => Raw::None,
    }
}

/// What was captured before a call: everything the callee may read, plus
/// the element counts of pointer arguments evaluated on the values before
/// the call (the same counts size the shadow's buffers).
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    /// Per parameter: the captured input (`Buf` holds an out buffer's
    /// contents before the call, so that bytes the callee leaves alone
    /// compare equal on both sides).
    pub values: Vec<Value>,
    /// Per parameter: the element count of a buffer (`None` otherwise or
    /// when the pointer was NULL). Empty when no parameter is a buffer (no
    /// allocation on the caller's path for a scalar signature).
    pub counts: Vec<Option<usize>>,
    /// Per parameter: for a struct captured field by field ([`deep_struct`]),
    /// where its pointer fields pointed before the call, on the primary's
    /// side (empty when no parameter is such a struct).
    pub deep: Vec<Option<Vec<FieldPtr>>>,
    /// `(parameter, address)` of each caller-owned struct with a life (a
    /// struct handle) the call was given: the address is the handle.
    pub structs: Vec<(usize, u64)>,
}

/// Where a pointer field of a struct pointed before the call, and how many
/// elements its annotation gave it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldPtr {
    /// The field's value before the call (0 for NULL and non-pointer fields).
    pub addr: u64,
    /// Elements of the buffer it points to.
    pub count: usize,
}

/// A struct whose pointer fields carry roles (buffers, strings, `[null]`,
/// `[private]`): passed by pointer, it is captured field by field, and the
/// shadow gets its own copy whose pointer fields point into memory DDL owns —
/// never into the application's. Such structs are handled one at a time
/// (count 1, the stream-struct case); in an array of them, those pointer
/// fields reach the shadow as NULL.
pub fn deep_struct(elem: &Type) -> Option<&StructDef> {
    match elem {
        Type::Struct(def)
            if def
                .fields
                .iter()
                .any(|f| matches!(f.ty, Type::Pointer { .. } | Type::FnPtr)) =>
        {
            Some(def)
        }
        _ => None,
    }
}

/// Size expressions inside a struct see its sibling fields.
struct FieldEnv<'a> {
    def: &'a StructDef,
    base: u64,
}

impl ExprEnv for FieldEnv<'_> {
    fn param(&self, _i: usize) -> Option<i64> {
        None
    }
    fn field(&self, i: usize) -> Option<i64> {
        let f = self.def.fields.get(i)?;
        // SAFETY: `base` points at a whole struct of this definition.
        let bytes = unsafe {
            std::slice::from_raw_parts((self.base as usize + f.offset) as *const u8, f.ty.size())
        };
        match &f.ty {
            Type::Scalar(s) => Value::scalar_from_bytes(*s, bytes).as_i64(),
            Type::Pointer { .. } | Type::FnPtr => {
                Some(u64::from_le_bytes(bytes.try_into().ok()?) as i64)
            }
            _ => None,
        }
    }
    fn ret(&self) -> Option<i64> {
        None
    }
    fn deref(&self, _i: usize) -> Option<i64> {
        None
    }
    fn strlen(&self, _i: usize) -> Option<i64> {
        None
    }
}

/// Reads one field's raw word (pointer fields).
///
/// # Safety
/// `base` must point at a whole struct that has this field.
unsafe fn field_word(base: u64, f: &crate::types::Field) -> u64 {
    std::ptr::read_unaligned((base as usize + f.offset) as *const u64)
}

/// A field held in the struct itself (scalar, fixed array, nested struct).
fn plain_field(f: &crate::types::Field) -> bool {
    matches!(f.role, Role::Array { .. }) || matches!(f.ty, Type::Scalar(_) | Type::Struct(_))
}

/// Reads a [`plain_field`] at `at`.
///
/// # Safety
/// `at` must point at the field inside a whole struct.
unsafe fn read_plain_field(f: &crate::types::Field, at: *const u8) -> Value {
    match (&f.ty, &f.role) {
        (_, Role::Array { len }) => Value::Buf {
            elem: f.ty.clone(),
            bytes: read_bytes(at as u64, len * f.ty.size()),
        },
        (Type::Scalar(s), _) => {
            Value::scalar_from_bytes(*s, std::slice::from_raw_parts(at, s.size()))
        }
        _ => Value::Buf {
            elem: f.ty.clone(),
            bytes: read_bytes(at as u64, f.ty.size()),
        },
    }
}

/// Captures a struct field by field, before the call.
///
/// # Safety
/// `base` must point at a whole struct of `def`, whose annotated pointer
/// fields are valid for their sizes.
unsafe fn capture_deep(def: &StructDef, base: u64) -> (Value, Vec<FieldPtr>) {
    let env = FieldEnv { def, base };
    let mut fields = Vec::with_capacity(def.fields.len());
    let mut ptrs = Vec::with_capacity(def.fields.len());
    for f in &def.fields {
        let at = (base as usize + f.offset) as *const u8;
        let mut fp = FieldPtr::default();
        let v = match (&f.ty, &f.role) {
            _ if plain_field(f) => read_plain_field(f, at),
            (_, role) => {
                let addr = field_word(base, f);
                fp.addr = addr;
                match role {
                    _ if addr == 0 => Value::Null,
                    Role::Buffer { elem, count, .. } => {
                        let n = count_of(count, &env).unwrap_or(0);
                        fp.count = n;
                        Value::Buf {
                            elem: byte_elem(elem),
                            bytes: read_input_bytes(addr, n * elem_size(elem)),
                        }
                    }
                    Role::String => read_cstr(addr),
                    Role::Null => Value::Null,
                    Role::Private => Value::None,
                    _ => Value::Opaque(addr),
                }
            }
        };
        fields.push(v);
        ptrs.push(fp);
    }
    (Value::Struct(fields), ptrs)
}

/// Captures a struct field by field after the call. A buffer field is
/// compared by how far the callee advanced it, never by address: an input
/// buffer by the number of elements it advanced over, an output buffer by
/// the elements it advanced over (or `written`), an inout one whole.
///
/// # Safety
/// As [`capture_deep`]; `before` is what that capture saw on this side.
unsafe fn capture_deep_after(def: &StructDef, base: u64, before: &[FieldPtr]) -> Value {
    let env = FieldEnv { def, base };
    let mut fields = Vec::with_capacity(def.fields.len());
    for (k, f) in def.fields.iter().enumerate() {
        let at = (base as usize + f.offset) as *const u8;
        let v = match (&f.ty, &f.role) {
            _ if plain_field(f) => read_plain_field(f, at),
            (
                _,
                Role::Buffer {
                    dir, elem, written, ..
                },
            ) => {
                let b = before.get(k).copied().unwrap_or_default();
                let after = field_word(base, f);
                let esz = elem_size(elem) as u64;
                if b.addr == 0 {
                    Value::None
                } else if after < b.addr || (after - b.addr) / esz > b.count as u64 {
                    // Pointed somewhere else: only where it went is known, and
                    // addresses are never compared.
                    Value::None
                } else {
                    let advanced = ((after - b.addr) / esz) as usize;
                    match dir {
                        Dir::In => Value::Int(Scalar::I64, advanced as i64),
                        Dir::Out => {
                            let n = match written {
                                Some(w) => count_of(w, &env).unwrap_or(0).min(b.count),
                                None => advanced,
                            };
                            Value::Buf {
                                elem: byte_elem(elem),
                                bytes: read_bytes(b.addr, n * esz as usize),
                            }
                        }
                        Dir::InOut => Value::Buf {
                            elem: byte_elem(elem),
                            bytes: read_bytes(b.addr, b.count * esz as usize),
                        },
                    }
                }
            }
            _ => Value::None,
        };
        fields.push(v);
    }
    Value::Struct(fields)
}

/// A buffer's element type as stored (`void` means bytes).
fn byte_elem(elem: &Type) -> Type {
    if matches!(elem, Type::Void) {
        Type::Scalar(Scalar::U8)
    } else {
        elem.clone()
    }
}

impl Inputs {
    /// Bytes of captured data (for `queue_bytes` accounting).
    pub fn heap_bytes(&self) -> usize {
        self.values.iter().map(Value::heap_bytes).sum()
    }
}

/// The environment size expressions see: parameter values and, after the
/// call, the return value and what out-scalars hold.
struct Env<'a> {
    sig: &'a Signature,
    raw: &'a [Raw],
    ret: Option<i64>,
}

impl ExprEnv for Env<'_> {
    fn param(&self, i: usize) -> Option<i64> {
        let p = self.sig.params.get(i)?;
        match (&p.ty, self.raw.get(i)?) {
            (Type::Scalar(s), Raw::Bits(b)) => Value::scalar_from_bits(*s, *b).as_i64(),
            (_, Raw::Bits(b)) => Some(*b as i64),
            _ => None,
        }
    }
    fn field(&self, _i: usize) -> Option<i64> {
        None
    }
    fn ret(&self) -> Option<i64> {
        self.ret
    }
    fn deref(&self, i: usize) -> Option<i64> {
        let p = self.sig.params.get(i)?;
        let addr = self.raw.get(i)?.bits();
        if addr == 0 {
            return None;
        }
        let Type::Pointer { pointee, .. } = &p.ty else {
            return None;
        };
        let Type::Scalar(s) = **pointee else {
            return None;
        };
        // SAFETY: an out-scalar parameter points at one scalar of its type.
        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, s.size()) };
        Value::scalar_from_bytes(s, bytes).as_i64()
    }
    fn strlen(&self, i: usize) -> Option<i64> {
        let addr = self.raw.get(i)?.bits();
        if addr == 0 {
            return None;
        }
        // SAFETY: `strlen(p)` is only accepted on string parameters.
        Some(unsafe { libc::strlen(addr as *const libc::c_char) } as i64)
    }
}

/// The element type of a buffer role (`void` means bytes).
fn elem_size(elem: &Type) -> usize {
    match elem {
        Type::Void => 1,
        t => t.size().max(1),
    }
}

/// Reads a NUL-terminated string.
///
/// # Safety
/// `addr` must be NULL or point at a NUL-terminated string.
unsafe fn read_cstr(addr: u64) -> Value {
    if addr == 0 {
        return Value::Null;
    }
    let s = std::ffi::CStr::from_ptr(addr as *const libc::c_char);
    Value::Str(s.to_bytes().to_vec())
}

/// Reads `n` bytes.
///
/// # Safety
/// `addr` must point at `n` readable bytes.
unsafe fn read_bytes(addr: u64, n: usize) -> Vec<u8> {
    if n == 0 {
        return Vec::new();
    }
    // Large buffers come from the pool the shadow gives judged ones back to.
    crate::bufpool::copy_of(std::slice::from_raw_parts(addr as *const u8, n))
}

/// Reads `n` bytes of an input, before the call, on the application's
/// thread: as [`read_bytes`], but a large buffer is written with
/// non-temporal stores ([`crate::bufpool::copy_streamed`]; the shadow reads
/// it on its own core once `Shadow::submit` has fenced and published it).
///
/// # Safety
/// `addr` must point at `n` readable bytes.
unsafe fn read_input_bytes(addr: u64, n: usize) -> Vec<u8> {
    if n == 0 {
        return Vec::new();
    }
    crate::bufpool::copy_streamed(std::slice::from_raw_parts(addr as *const u8, n))
}

/// A size expression's value as an element count (below zero counts as zero).
fn count_of(e: &Expr, env: &dyn ExprEnv) -> Option<usize> {
    e.eval(env).map(|v| v.max(0) as usize)
}

/// Applies `[null]` to struct fields inside captured struct bytes: such
/// fields are zeroed so the shadow receives NULL there.
fn null_fields(def: &StructDef, bytes: &mut [u8], count: usize) {
    for i in 0..count {
        for f in &def.fields {
            // In an array of structs, pointer fields that would let the
            // shadow reach the application's memory reach it as NULL.
            let pointer = matches!(f.ty, Type::Pointer { .. } | Type::FnPtr);
            if matches!(f.role, Role::Null | Role::Private)
                || (pointer && matches!(f.role, Role::Buffer { .. } | Role::String))
            {
                let at = i * def.size + f.offset;
                if at + f.ty.size() <= bytes.len() {
                    bytes[at..at + f.ty.size()].fill(0);
                }
            }
        }
    }
}

/// Deep-copies what the callee may read, before the call. Buffers of
/// [`crate::bufpool::STREAM_MIN`] bytes or more are copied with
/// non-temporal stores: hand the inputs to another thread through
/// `Shadow::submit` (which fences first), or call
/// [`crate::bufpool::publish_fence`] before publishing them otherwise.
///
/// # Safety
/// `raw` must be the arguments of a real call of `sig` whose pointers are
/// valid for the sizes their annotations give.
pub unsafe fn capture_inputs(sig: &Signature, raw: &[Raw]) -> Inputs {
    let env = Env {
        sig,
        raw,
        ret: None,
    };
    let mut values = Vec::with_capacity(sig.params.len());
    let buffers = sig
        .params
        .iter()
        .any(|p| matches!(p.role, Role::Buffer { .. }));
    let mut counts = Vec::with_capacity(if buffers { sig.params.len() } else { 0 });
    // Allocated only when some parameter needs it (rarely).
    let mut deep: Vec<Option<Vec<FieldPtr>>> = Vec::new();
    let mut structs = Vec::new();
    for (i, p) in sig.params.iter().enumerate() {
        let r = &raw[i];
        let (v, c) = match (&p.role, &p.ty) {
            (Role::Value, Type::Scalar(s)) => (Value::scalar_from_bits(*s, r.bits()), None),
            (Role::Value, Type::Struct(_)) => match r {
                Raw::Bytes(b) => (
                    Value::Buf {
                        elem: p.ty.clone(),
                        bytes: b.clone(),
                    },
                    None,
                ),
                _ => (Value::None, None),
            },
            (Role::Value, _) => (Value::Opaque(r.bits()), None),
            (_, _) if r.bits() == 0 && !matches!(p.role, Role::Value) => (Value::Null, None),
            (Role::String, _) => (read_cstr(r.bits()), None),
            (Role::Buffer { elem, count, .. }, _)
                if deep_struct(elem).is_some() && count_of(count, &env) == Some(1) =>
            {
                let (v, ptrs) = capture_deep(deep_struct(elem).unwrap(), r.bits());
                if deep.is_empty() {
                    deep.resize(sig.params.len(), None);
                }
                deep[i] = Some(ptrs);
                if p.handle.is_some() {
                    structs.push((i, r.bits()));
                }
                (v, Some(1))
            }
            (Role::Buffer { elem, count, .. }, _) => {
                let n = count_of(count, &env).unwrap_or(0);
                let mut bytes = read_input_bytes(r.bits(), n * elem_size(elem));
                if let Type::Struct(def) = elem {
                    null_fields(def, &mut bytes, n);
                }
                let elem = if matches!(elem, Type::Void) {
                    Type::Scalar(Scalar::U8)
                } else {
                    elem.clone()
                };
                (Value::Buf { elem, bytes }, Some(n))
            }
            (Role::Opaque, _) | (Role::Handle { .. }, _) => (Value::Opaque(r.bits()), None),
            (Role::HandleOut { .. }, _) => (Value::None, None),
            (Role::Null, _) | (Role::Private, _) | (Role::Array { .. }, _) => (Value::None, None),
        };
        values.push(v);
        if buffers {
            counts.push(c);
        }
    }
    Inputs {
        values,
        counts,
        deep,
        structs,
    }
}

/// Captures what a call produced: the return value and every written
/// output, reading the memory its (raw) arguments point at.
///
/// # Safety
/// `raw` and `ret` must be the arguments and return value of a completed
/// call of `sig`; `inputs` the capture taken before that call (its counts
/// bound every read); `deep` where this side's struct pointer fields pointed
/// before the call ([`Inputs::deep`] for the primary, [`Materialised::deep`]
/// for the shadow).
pub unsafe fn capture_outputs(
    sig: &Signature,
    raw: &[Raw],
    ret: &Raw,
    inputs: &Inputs,
    deep: &[Option<Vec<FieldPtr>>],
) -> Outcome {
    let ret_value = match (&sig.ret_role, &sig.ret, ret) {
        (_, Type::Void, _) => Value::None,
        (Role::Value, Type::Scalar(s), Raw::Bits(b)) => Value::scalar_from_bits(*s, *b),
        (Role::Value, Type::Struct(_), Raw::Bytes(b)) => Value::Buf {
            elem: sig.ret.clone(),
            bytes: b.clone(),
        },
        (Role::String, _, Raw::Bits(b)) => read_cstr(*b),
        (Role::Handle { .. }, _, Raw::Bits(0)) => Value::Null,
        (Role::Buffer { elem, count, .. }, _, Raw::Bits(b)) => {
            if *b == 0 {
                Value::Null
            } else {
                let env = Env {
                    sig,
                    raw,
                    ret: None,
                };
                let n = count_of(count, &env).unwrap_or(0);
                Value::Buf {
                    elem: elem.clone(),
                    bytes: read_bytes(*b, n * elem_size(elem)),
                }
            }
        }
        (_, _, Raw::Bits(b)) => Value::Opaque(*b),
        _ => Value::None,
    };
    let ret_i64 = match &ret_value {
        Value::Opaque(p) => Some(*p as i64),
        v => v.as_i64(),
    };
    let env = Env {
        sig,
        raw,
        ret: ret_i64,
    };
    // Nothing is written through a scalar parameter: no outputs at all
    // then (no allocation; readers take a missing output as `None`).
    let writes = sig.params.iter().any(|p| match &p.role {
        Role::Buffer { dir, .. } => dir.writes(),
        Role::HandleOut { .. } => true,
        _ => false,
    });
    if !writes {
        return Outcome {
            ret: ret_value,
            outputs: Vec::new(),
            errno: None,
            exception: None,
            outgoing: None,
        };
    }
    let mut outputs = Vec::with_capacity(sig.params.len());
    for (i, p) in sig.params.iter().enumerate() {
        let addr = raw[i].bits();
        let out = match &p.role {
            Role::HandleOut { .. } if addr != 0 => {
                match std::ptr::read_unaligned(addr as *const u64) {
                    0 => Value::Null,
                    h => Value::Opaque(h),
                }
            }
            Role::Buffer { dir, elem, .. }
                if dir.writes() && addr != 0 && deep.get(i).is_some_and(Option::is_some) =>
            {
                let def = deep_struct(elem).expect("deep capture of a struct");
                capture_deep_after(def, addr, deep[i].as_deref().unwrap_or_default())
            }
            Role::Buffer {
                dir,
                elem,
                written,
                string,
                ..
            } if dir.writes() => {
                if addr == 0 {
                    Value::Null
                } else {
                    let cap = inputs.counts[i].unwrap_or(0);
                    let n = match written {
                        Some(w) => count_of(w, &env).unwrap_or(0).min(cap),
                        None => cap,
                    };
                    let esz = elem_size(elem);
                    if *string {
                        // SAFETY: the buffer has `cap` elements; stop at the first NUL.
                        let bytes = read_bytes(addr, cap * esz);
                        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                        Value::Str(bytes[..end].to_vec())
                    } else {
                        let mut bytes = read_bytes(addr, n * esz);
                        if let Type::Struct(def) = elem {
                            null_fields(def, &mut bytes, n);
                        }
                        let elem = if matches!(elem, Type::Void) {
                            Type::Scalar(Scalar::U8)
                        } else {
                            elem.clone()
                        };
                        Value::Buf { elem, bytes }
                    }
                }
            }
            _ => Value::None,
        };
        outputs.push(out);
    }
    Outcome {
        ret: ret_value,
        outputs,
        errno: None,
        exception: None,
        outgoing: None,
    }
}

/// What the shadow passes for a handle argument ([`Materialised::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleArg {
    /// The shadow's own handle, paired with the primary's.
    Value(u64),
    /// The shadow's own instance of a caller-owned struct with a life: its
    /// fields are refreshed from the primary's before each call, its
    /// `[private]` fields are left as the new build set them.
    Instance(*mut u8),
    /// The shadow never saw this handle created (or its two sides have
    /// parted): the call is `unmirrored`.
    Unknown,
}

/// Arguments rebuilt in memory the shadow owns.
///
/// Every buffer the shadow's callee reads or writes is allocated here, by
/// DDL, in the base namespace, and freed here: never by the new build (its
/// own malloc lives in another namespace).
pub struct Materialised {
    /// Per parameter: the raw argument to pass (pointers point into `storage`).
    pub raw: Vec<Raw>,
    /// Per parameter: where the pointer fields of a struct captured field by
    /// field point in the shadow's copy, before the call (empty when no
    /// parameter is such a struct).
    pub deep: Vec<Option<Vec<FieldPtr>>>,
    /// Owned buffers; `raw` points into them, so they must outlive the call.
    storage: Vec<Vec<u8>>,
}

impl Materialised {
    /// Builds the shadow's arguments from what was captured on the primary
    /// side. `handle(param, class, primary)` translates each non-NULL
    /// handle, struct with a life included; `None` when one is
    /// [`HandleArg::Unknown`] (the call is then `unmirrored`).
    pub fn new(
        sig: &Signature,
        inputs: &Inputs,
        handle: &mut dyn FnMut(usize, u32, u64) -> HandleArg,
    ) -> Option<Materialised> {
        let mut storage: Vec<Vec<u8>> = Vec::new();
        let mut raw = Vec::with_capacity(sig.params.len());
        // Allocated only when some parameter needs it (rarely).
        let mut deep: Vec<Option<Vec<FieldPtr>>> = Vec::new();
        for (i, p) in sig.params.iter().enumerate() {
            let v = &inputs.values[i];
            let r = match (v, &p.role) {
                (Value::Null, _) => Raw::Bits(0),
                (_, Role::Null) => Raw::Bits(0),
                (Value::Opaque(h), Role::Handle { class }) => match handle(i, *class, *h) {
                    HandleArg::Value(s) => Raw::Bits(s),
                    HandleArg::Instance(at) => Raw::Bits(at as u64),
                    HandleArg::Unknown => return None,
                },
                (_, Role::HandleOut { .. }) => {
                    storage.push(vec![0u8; 8]);
                    Raw::Bits(storage.last().unwrap().as_ptr() as u64)
                }
                (Value::Struct(fields), Role::Buffer { elem, .. }) => {
                    let Some(def) = deep_struct(elem) else {
                        unreachable!("struct values come from deep_struct")
                    };
                    let own = match (p.handle, inputs.structs.iter().find(|(k, _)| *k == i)) {
                        (Some(class), Some(&(_, addr))) => match handle(i, class, addr) {
                            HandleArg::Instance(at) => Some(at),
                            _ => return None,
                        },
                        _ => None,
                    };
                    let ptrs = match own {
                        Some(at) => {
                            // SAFETY: a struct handle's instance is `def.size`
                            // bytes owned by the shadow's handle table.
                            let target = unsafe { std::slice::from_raw_parts_mut(at, def.size) };
                            build_deep(def, fields, target, &mut storage, true)
                        }
                        None => {
                            let mut bytes = vec![0u8; def.size.max(1)];
                            let ptrs = build_deep(def, fields, &mut bytes, &mut storage, false);
                            storage.push(bytes);
                            ptrs
                        }
                    };
                    if deep.is_empty() {
                        deep.resize(sig.params.len(), None);
                    }
                    deep[i] = Some(ptrs);
                    match own {
                        Some(at) => Raw::Bits(at as u64),
                        None => Raw::Bits(storage.last().unwrap().as_ptr() as u64),
                    }
                }
                (Value::Str(s), _) => {
                    let mut b = s.clone();
                    b.push(0);
                    storage.push(b);
                    Raw::Bits(storage.last().unwrap().as_ptr() as u64)
                }
                (Value::Buf { bytes, .. }, Role::Value) => Raw::Bytes(bytes.clone()),
                // An `[in]` buffer the callee only reads: the captured bytes
                // themselves (DDL's memory, alive until the invocation is
                // judged), not a second copy of them.
                (
                    Value::Buf { bytes, .. },
                    Role::Buffer {
                        dir: crate::types::Dir::In,
                        ..
                    },
                ) if !bytes.is_empty() => Raw::Bits(bytes.as_ptr() as u64),
                (Value::Buf { bytes, .. }, _) => {
                    // At least one byte so that an empty buffer is still a
                    // valid, distinct, non-NULL pointer as on the primary side.
                    let mut b = crate::bufpool::shadow().copy_of(bytes);
                    if b.is_empty() {
                        b.push(0);
                    }
                    storage.push(b);
                    Raw::Bits(storage.last().unwrap().as_ptr() as u64)
                }
                (v, _) => Raw::Bits(v.scalar_bits()),
            };
            raw.push(r);
        }
        Some(Materialised { raw, deep, storage })
    }

    /// Bytes owned for this call.
    pub fn owned_bytes(&self) -> usize {
        self.storage.iter().map(Vec::len).sum()
    }
}

impl Drop for Materialised {
    /// The call is over: its buffers go back to the pool.
    fn drop(&mut self) {
        let pool = crate::bufpool::shadow();
        self.storage.drain(..).for_each(|b| pool.give(b));
    }
}

/// Writes the shadow's own copy of a struct captured field by field into
/// `bytes` (a zeroed new struct, or a struct handle's instance): its buffers
/// and strings are allocated in `storage` (the shadow's memory), its
/// `[null]` fields are NULL, `[opaque]` ones pass through, and `[private]`
/// fields are left as they are (NULL in a new struct). `refresh`: `bytes`
/// is a struct handle's instance that the new build has already worked on,
/// whose `[private]` and `[null]` fields are its own (an init function that
/// found NULL allocator callbacks set its own, which its end function uses).
fn build_deep(
    def: &StructDef,
    fields: &[Value],
    bytes: &mut [u8],
    storage: &mut Vec<Vec<u8>>,
    refresh: bool,
) -> Vec<FieldPtr> {
    let mut ptrs = Vec::with_capacity(def.fields.len());
    for (f, v) in def.fields.iter().zip(fields) {
        let at = f.offset;
        let mut fp = FieldPtr::default();
        if refresh && matches!(f.role, Role::Null | Role::Private) {
            ptrs.push(fp);
            continue;
        }
        let is_ptr = matches!(f.ty, Type::Pointer { .. } | Type::FnPtr);
        match v {
            Value::Buf { bytes: b, .. } if !is_ptr => {
                let n = b.len().min(def.size - at);
                bytes[at..at + n].copy_from_slice(&b[..n]);
            }
            Value::Buf { bytes: b, .. } => {
                let mut buf = b.clone();
                buf.push(0); // never empty: a distinct, valid pointer
                storage.push(buf);
                fp.addr = storage.last().unwrap().as_ptr() as u64;
                if let Role::Buffer { elem, .. } = &f.role {
                    fp.count = b.len() / elem_size(elem);
                }
                bytes[at..at + 8].copy_from_slice(&fp.addr.to_le_bytes());
            }
            Value::Str(st) => {
                let mut buf = st.clone();
                buf.push(0);
                storage.push(buf);
                fp.addr = storage.last().unwrap().as_ptr() as u64;
                bytes[at..at + 8].copy_from_slice(&fp.addr.to_le_bytes());
            }
            Value::Opaque(a) => bytes[at..at + 8].copy_from_slice(&a.to_le_bytes()),
            Value::Null if is_ptr => bytes[at..at + 8].fill(0),
            v @ (Value::Int(..) | Value::UInt(..) | Value::F32(_) | Value::F64(_)) => {
                let n = f.ty.size();
                bytes[at..at + n].copy_from_slice(&v.scalar_bits().to_le_bytes()[..n]);
            }
            _ => {}
        }
        ptrs.push(fp);
    }
    ptrs
}

/// Which parameters a report shows as arguments: inputs, not pure outputs.
pub fn shows_as_arg(role: &Role) -> bool {
    match role {
        Role::Buffer { dir, .. } => *dir != Dir::Out,
        Role::Null | Role::Private | Role::Array { .. } | Role::HandleOut { .. } => false,
        _ => true,
    }
}
