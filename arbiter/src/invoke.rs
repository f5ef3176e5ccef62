//! Calling a function by signature: how the shadow calls the new build.
//!
//! The shadow side goes through libffi, an ABI implementation independent of
//! the wrapper's own register-level capture (`marshal::Layout`): when the two
//! disagree about where an argument lives, the shadow sees different inputs
//! and the tests' "no false positives" assertions fail. That makes every
//! fixture run a cross-check of both.

use libffi::middle::{Cif, Type as FfiType};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::marshal::Raw;
use crate::sandbox::{self, CallFailure, DdlCall, FfiCallFn, GuardFn};
use crate::types::{Role, Scalar, Signature, Type};

/// A prepared call interface for one signature.
pub struct Invoker {
    cif: Cif,
    /// The specialised call's description, when every argument and the
    /// return value live in registers (`csrc/regcall.c`).
    reg: Option<Box<RegSig>>,
    /// Per argument: how its slot is widened to 64 bits (`csrc/regcall.c`
    /// passes whole registers; a callee may rely on the caller extending a
    /// narrow integer, as compilers do).
    ext: Vec<Ext>,
    ret_size: usize,
    /// Per parameter: the size of the argument slot libffi reads.
    arg_sizes: Vec<usize>,
}

// SAFETY: a prepared `ffi_cif` is immutable after `ffi_prep_cif`; libffi
// reads it concurrently without synchronisation in its own tests.
unsafe impl Send for Invoker {}
// SAFETY: as above, `call` only reads the cif.
unsafe impl Sync for Invoker {}

fn ffi_type(ty: &Type) -> FfiType {
    match ty {
        Type::Void => FfiType::void(),
        Type::Scalar(s) => match s {
            Scalar::Bool | Scalar::U8 => FfiType::u8(),
            Scalar::I8 => FfiType::i8(),
            Scalar::I16 => FfiType::i16(),
            Scalar::U16 => FfiType::u16(),
            Scalar::I32 => FfiType::i32(),
            Scalar::U32 => FfiType::u32(),
            Scalar::I64 => FfiType::i64(),
            Scalar::U64 => FfiType::u64(),
            Scalar::F32 => FfiType::f32(),
            Scalar::F64 => FfiType::f64(),
        },
        Type::Pointer { .. } | Type::FnPtr => FfiType::pointer(),
        Type::Struct(def) => {
            let mut fields = Vec::new();
            for f in &def.fields {
                let n = match f.role {
                    Role::Array { len } => len,
                    _ => 1,
                };
                for _ in 0..n {
                    fields.push(ffi_type(&f.ty));
                }
            }
            FfiType::structure(fields)
        }
    }
}

/// `struct ddl_regsig` of `csrc/regcall.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RegSig {
    nargs: u8,
    ret: u8,
    cls: [u8; 14],
}

const REG_NONE: u8 = 0;
const REG_INT: u8 = 1;
const REG_SSE: u8 = 2;

/// How an argument's 64-bit slot is filled from its bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// As is.
    None,
    /// Sign-extended from this many bits.
    Sign(u32),
    /// Zero-extended from this many bits.
    Zero(u32),
}

impl Ext {
    /// `b` widened to the whole 64-bit slot.
    #[inline]
    fn widen(&self, b: u64) -> u64 {
        match *self {
            Ext::Sign(n) => (((b << (64 - n)) as i64) >> (64 - n)) as u64,
            Ext::Zero(n) => b & (u64::MAX >> (64 - n)),
            Ext::None => b,
        }
    }
}

extern "C" {
    /// The specialised call (csrc/regcall.c), with `ffi_call`'s signature.
    fn ddl_reg_call(
        cif: *mut libc::c_void,
        f: Option<unsafe extern "C" fn()>,
        rvalue: *mut libc::c_void,
        avalue: *mut *mut libc::c_void,
    );
}

/// Calls are made through libffi even where the specialised call could
/// (set from `DDL_SHADOW_CALLS=libffi`: the tests run every fixture both
/// ways and expect the same verdicts).
static GENERIC_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes every shadow call go through libffi (`true`) or lets register-only
/// signatures use the specialised call (`false`, the default).
pub fn use_generic_calls(on: bool) {
    GENERIC_ONLY.store(on, Ordering::Relaxed);
}

/// The register class of a scalar or pointer type; `None` for a struct.
fn reg_class(ty: &Type) -> Option<u8> {
    match ty {
        Type::Void => Some(REG_NONE),
        Type::Scalar(s) if s.is_float() => Some(REG_SSE),
        Type::Scalar(_) | Type::Pointer { .. } | Type::FnPtr => Some(REG_INT),
        Type::Struct(_) => None,
    }
}

/// The specialised call's description of `sig`, if it fits registers only.
fn reg_sig(sig: &Signature) -> Option<RegSig> {
    let mut r = RegSig {
        nargs: 0,
        ret: reg_class(&sig.ret)?,
        cls: [0; 14],
    };
    let (mut ints, mut sses) = (0, 0);
    for (i, p) in sig.params.iter().enumerate() {
        let c = reg_class(&p.ty).filter(|c| *c != REG_NONE)?;
        if c == REG_SSE {
            sses += 1;
        } else {
            ints += 1;
        }
        if ints > 6 || sses > 8 || i >= 14 {
            return None;
        }
        r.cls[i] = c;
        r.nargs += 1;
    }
    Some(r)
}

fn ext_of(ty: &Type) -> Ext {
    match ty {
        Type::Scalar(s) => match s {
            Scalar::I8 => Ext::Sign(8),
            Scalar::I16 => Ext::Sign(16),
            Scalar::I32 => Ext::Sign(32),
            Scalar::Bool | Scalar::U8 => Ext::Zero(8),
            Scalar::U16 => Ext::Zero(16),
            Scalar::U32 => Ext::Zero(32),
            _ => Ext::None,
        },
        _ => Ext::None,
    }
}

impl Invoker {
    /// Prepares the call interface of `sig`.
    pub fn new(sig: &Signature) -> Invoker {
        let cif = Cif::new(
            sig.params.iter().map(|p| ffi_type(&p.ty)),
            ffi_type(&sig.ret),
        );
        Invoker {
            cif,
            reg: reg_sig(sig).map(Box::new),
            ext: sig.params.iter().map(|p| ext_of(&p.ty)).collect(),
            ret_size: sig.ret.size(),
            arg_sizes: sig.params.iter().map(|p| p.ty.size()).collect(),
        }
    }

    /// Calls `func` with `args` and returns its raw return value.
    ///
    /// # Safety
    /// `func` must be a function of this signature, and every pointer in
    /// `args` valid for what the callee does with it.
    pub unsafe fn call(&self, func: *const libc::c_void, args: &[Raw]) -> Raw {
        // SAFETY: forwarded contract; `with_slots` hands `rvalue`/`avalue`
        // laid out for this cif.
        let ((), ret) = unsafe {
            self.with_slots(args, |rvalue, avalue| {
                // SAFETY: the cif matches `func` (caller's contract); `avalue`
                // holds one valid pointer per argument; `rvalue` is large
                // enough and aligned.
                libffi::raw::ffi_call(self.cif.as_raw_ptr(), Some(fn_of(func)), rvalue, avalue);
                ((), true)
            })
        };
        ret
    }

    /// Calls `func` with `args` inside the sandbox (`crate::sandbox`): a
    /// fault or a hang past `timeout_ms` (0: no limit) of the callee, a
    /// C++ exception caught by `guard`, or an exit (through a reference
    /// `shim::contain` patched, or `exit_group` under the thread's
    /// backstop) comes back as a [`CallFailure`] instead of ending the
    /// process. The calling thread should have called
    /// `sandbox::thread_init` (done lazily otherwise).
    ///
    /// # Safety
    /// As [`Invoker::call`]; and after a failure the callee's state (and
    /// that of libc in its namespace) may be left inconsistent: see
    /// `sandbox::call`. `guard` must be the guard of `func`'s namespace.
    pub unsafe fn call_sandboxed(
        &self,
        func: *const libc::c_void,
        args: &[Raw],
        guard: Option<GuardFn>,
        timeout_ms: u32,
    ) -> Result<Raw, CallFailure> {
        let (ffi_call, cif) = self.call_fn();
        // SAFETY: forwarded contract, as in `call`.
        let (outcome, ret) = unsafe {
            self.with_slots(args, |rvalue, avalue| {
                let mut c = DdlCall::new(ffi_call, cif, Some(fn_of(func)), rvalue, avalue, guard);
                // SAFETY: `c` describes a call of `func` through this cif
                // with valid argument and return storage.
                let outcome = sandbox::call(&mut c, timeout_ms);
                let ok = outcome.is_ok();
                (outcome, ok)
            })
        };
        outcome.map(|()| ret)
    }

    /// [`Invoker::call_sandboxed`] for a scalar signature (every argument
    /// a scalar by value, the result one or `void`), its arguments given
    /// as their bits: nothing is allocated or converted (the shadow's calls
    /// from a ring's slots). The result's bits, `None` for `void`.
    ///
    /// # Safety
    /// As [`Invoker::call_sandboxed`]; `bits` holds one value per
    /// parameter (at most 8).
    pub unsafe fn call_sandboxed_bits(
        &self,
        func: *const libc::c_void,
        bits: &[u64],
        guard: Option<GuardFn>,
        timeout_ms: u32,
    ) -> Result<Option<u64>, CallFailure> {
        assert!(bits.len() <= 8 && bits.len() == self.ext.len() && self.ret_size <= 8);
        let mut slots = [0u64; 8];
        for (i, (b, e)) in bits.iter().zip(&self.ext).enumerate() {
            slots[i] = e.widen(*b);
        }
        let mut ptrs = [std::ptr::null_mut::<libc::c_void>(); 8];
        for (p, s) in ptrs.iter_mut().zip(slots.iter_mut()) {
            *p = s as *mut u64 as *mut libc::c_void;
        }
        // At least one ffi_arg, and room for libffi's widening.
        let mut ret = [0u64; 2];
        let (ffi_call, cif) = self.call_fn();
        let mut c = DdlCall::new(
            ffi_call,
            cif,
            Some(fn_of(func)),
            ret.as_mut_ptr() as *mut libc::c_void,
            ptrs.as_mut_ptr(),
            guard,
        );
        // SAFETY: `c` describes a call of `func` through this cif with
        // valid argument and return storage (the caller's contract).
        unsafe { sandbox::call(&mut c, timeout_ms) }?;
        Ok((self.ret_size != 0).then_some(ret[0]))
    }

    /// The function a sandboxed call goes through and its description: the
    /// specialised register call where the signature fits registers only
    /// (`ddl_reg_call` has `ffi_call`'s signature, its `cif` is a
    /// `RegSig`), else libffi's `ffi_call`.
    fn call_fn(&self) -> (FfiCallFn, *mut libc::c_void) {
        match &self.reg {
            Some(r) if !GENERIC_ONLY.load(Ordering::Relaxed) => (
                ddl_reg_call as FfiCallFn,
                &**r as *const RegSig as *mut libc::c_void,
            ),
            _ => {
                // SAFETY: libffi's `ffi_call` differs from `FfiCallFn` only
                // in the pointee type of its first parameter (`ffi_cif`
                // against `void`).
                let generic: FfiCallFn = unsafe {
                    std::mem::transmute::<
                        unsafe extern "C" fn(
                            *mut libffi::raw::ffi_cif,
                            Option<unsafe extern "C" fn()>,
                            *mut libc::c_void,
                            *mut *mut libc::c_void,
                        ),
                        FfiCallFn,
                    >(libffi::raw::ffi_call)
                };
                (generic, self.cif.as_raw_ptr() as *mut libc::c_void)
            }
        }
    }

    /// Lays out `args` the way libffi reads them, runs `call(rvalue,
    /// avalue)`, and returns what it returned with the raw return value
    /// (`Raw::None` when `call` says the return storage was not written).
    /// The storage is inline for the common case: no allocation per call.
    ///
    /// # Safety
    /// `call` receives pointers valid only during the call.
    unsafe fn with_slots<T>(
        &self,
        args: &[Raw],
        call: impl FnOnce(*mut libc::c_void, *mut *mut libc::c_void) -> (T, bool),
    ) -> (T, Raw) {
        debug_assert_eq!(args.len(), self.arg_sizes.len());
        // libffi reads each argument through a pointer to storage of the
        // argument's own size; scalars are kept in 8-byte slots (x86-64 is
        // little endian, so the low bytes are the value).
        let mut slots: SmallVec<[u64; 8]> = SmallVec::with_capacity(args.len());
        for (a, e) in args.iter().zip(&self.ext) {
            slots.push(match a {
                Raw::Bits(b) => e.widen(*b),
                _ => 0,
            });
        }
        let mut ptrs: SmallVec<[*mut libc::c_void; 8]> = SmallVec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            ptrs.push(match a {
                Raw::Bytes(b) => b.as_ptr() as *mut libc::c_void,
                _ => &mut slots[i] as *mut u64 as *mut libc::c_void,
            });
        }
        // Room for the largest return (struct) and at least one ffi_arg.
        let mut ret: SmallVec<[u64; 4]> =
            smallvec::smallvec![0u64; self.ret_size.div_ceil(8).max(1) + 1];
        let (out, returned) = call(ret.as_mut_ptr() as *mut libc::c_void, ptrs.as_mut_ptr());
        let raw = if self.ret_size == 0 || !returned {
            Raw::None
        } else if self.is_struct_ret() {
            let bytes: Vec<u8> = ret
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .take(self.ret_size)
                .collect();
            Raw::Bytes(bytes)
        } else {
            Raw::Bits(ret[0])
        };
        (out, raw)
    }

    /// Whether calls of this signature can take the specialised register
    /// call (and do, unless [`use_generic_calls`] says otherwise).
    pub fn specialised(&self) -> bool {
        self.reg.is_some()
    }

    fn is_struct_ret(&self) -> bool {
        // SAFETY: the cif's rtype is the ffi_type we built in `new`.
        unsafe { (*(*self.cif.as_raw_ptr()).rtype).type_ == libffi::raw::FFI_TYPE_STRUCT as u16 }
    }
}

/// `func` as the function pointer type libffi takes.
///
/// # Safety
/// `func` must be the address of a function.
unsafe fn fn_of(func: *const libc::c_void) -> unsafe extern "C" fn() {
    // SAFETY: a code address as a function pointer (caller's contract).
    unsafe { std::mem::transmute::<*const libc::c_void, unsafe extern "C" fn()>(func) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{parse_signature, TypeTable};

    fn inv(text: &str, types: &TypeTable) -> Invoker {
        Invoker::new(&parse_signature(text, types).expect(text))
    }

    /// Which signatures take the specialised register call.
    #[test]
    fn register_only_signatures_are_specialised() {
        let mut t = TypeTable::new();
        t.declare("struct pt { double x; double y; }").unwrap();
        for s in [
            "int f(int a, int b)",
            "double f(double x)",
            "float f(float x, float k)",
            "void f(void)",
            "const char *f(int code)",
            "long f(int a, double b, char *c, float d, long e, void *g, short h, unsigned char i)",
            "double f(double a, double b, double c, double d, double e, double f2, double g, double h)",
            "double f(struct pt *p)",
        ] {
            assert!(inv(s, &t).specialised(), "{s}");
        }
        for s in [
            // a struct by value, a struct returned, a seventh integer
            // argument, a ninth floating one: libffi
            "double f(struct pt p)",
            "struct pt f(double x)",
            "int f(int a, int b, int c, int d, int e, int g, int h)",
            "double f(double a, double b, double c, double d, double e, double f2, double g, double h, double i)",
        ] {
            assert!(!inv(s, &t).specialised(), "{s}");
        }
    }

    /// Narrow integers are widened as their type says.
    #[test]
    fn narrow_arguments_are_extended() {
        assert_eq!(ext_of(&Type::Scalar(Scalar::I8)), Ext::Sign(8));
        assert_eq!(ext_of(&Type::Scalar(Scalar::U16)), Ext::Zero(16));
        assert_eq!(ext_of(&Type::Scalar(Scalar::I64)), Ext::None);
    }
}
