//! The C++ exception guard in the new build's namespace (DESIGN.md: "A C++
//! exception escaping the new build aborts the process: call C++ boundary
//! functions through a small catch-all guard library loaded into the new
//! namespace").
//!
//! `csrc/cxxguard.cc` is built by `build.rs` and embedded here; [`load_into`]
//! writes it to a memfd and `dlmopen`s `/proc/self/fd/N` into the given
//! namespace, so that its `try`/`catch` runs on that namespace's libstdc++
//! (the one the new build throws with). The result is a [`GuardFn`]
//! (`ddl_guard_fn` of `arbiter/csrc/ddl_call.h`): it calls libffi's
//! `ffi_call` (passed as a pointer) and turns an exception into
//! `DDL_CALL_EXCEPTION` with its demangled type and `what()`.
// Used by the runtime once C++ boundaries are wired in.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CStr};

/// The guard library (`libddl-cxxguard.so`), built by `build.rs`.
static GUARD_SO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libddl-cxxguard.so"));

/// The guard's exported function.
const GUARD_SYMBOL: &CStr = c"ddl_cxxguard_call";

/// `ddl_ffi_call_fn` of `ddl_call.h`: libffi's `ffi_call`.
pub type FfiCallFn = unsafe extern "C" fn(
    cif: *mut c_void,
    func: Option<unsafe extern "C" fn()>,
    rvalue: *mut c_void,
    avalue: *mut *mut c_void,
);

/// `ddl_guard_fn` of `ddl_call.h`: calls `call(cif, func, rvalue, avalue)`
/// inside `try`/`catch`; returns `DDL_CALL_OK` (0) or `DDL_CALL_EXCEPTION`
/// (1) with the exception's demangled type in `type_buf` and, for a
/// `std::exception`, `what()` in `what_buf` (both NUL-terminated, truncated
/// to their lengths; empty when nothing was thrown).
pub type GuardFn = unsafe extern "C" fn(
    call: FfiCallFn,
    cif: *mut c_void,
    func: Option<unsafe extern "C" fn()>,
    rvalue: *mut c_void,
    avalue: *mut *mut c_void,
    type_buf: *mut c_char,
    type_len: usize,
    what_buf: *mut c_char,
    what_len: usize,
) -> c_int;

/// `DDL_CALL_OK` of `ddl_call.h`.
pub const DDL_CALL_OK: c_int = 0;
/// `DDL_CALL_EXCEPTION` of `ddl_call.h`.
pub const DDL_CALL_EXCEPTION: c_int = 1;

/// The last `dlerror()` text, or `what` if there is none.
fn dl_error(what: &str) -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until
    // the next dl* call on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        what.to_string()
    } else {
        // SAFETY: non-NULL, NUL-terminated (above).
        format!("{what}: {}", unsafe { CStr::from_ptr(e) }.to_string_lossy())
    }
}

/// Loads the guard library into namespace `lmid` (the new build's, from
/// `dlinfo(handle, RTLD_DI_LMID)`) and returns its `ddl_cxxguard_call`.
/// Loading it again into the same namespace returns the same library. The
/// library stays loaded (its handle is not kept; it goes away with the
/// namespace).
///
/// # Safety
///
/// `lmid` must be a namespace that exists (not `LM_ID_NEWLM`, which would
/// give the guard a namespace of its own, useless for the new build). Must
/// not be called inside a shadow call (it takes ld.so's load lock).
pub unsafe fn load_into(lmid: libc::Lmid_t) -> Result<GuardFn, String> {
    // SAFETY: a valid NUL-terminated name; flags are plain.
    let fd = unsafe { libc::memfd_create(c"ddl-cxxguard".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "memfd_create for the C++ guard: {}",
            std::io::Error::last_os_error()
        ));
    }
    let result = (|| {
        let mut done = 0;
        while done < GUARD_SO.len() {
            // SAFETY: writes from a live slice, within its bounds, to our fd.
            let n =
                unsafe { libc::write(fd, GUARD_SO[done..].as_ptr().cast(), GUARD_SO.len() - done) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("writing the C++ guard to a memfd: {e}"));
            }
            done += n as usize;
        }
        let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
        // SAFETY: a valid path; RTLD_NOW so that no lazy binding runs inside
        // a shadow call later. The caller vouches for `lmid`.
        let handle = unsafe { libc::dlmopen(lmid, path.as_ptr(), libc::RTLD_NOW) };
        if handle.is_null() {
            return Err(dl_error("loading the C++ guard into the new namespace"));
        }
        // SAFETY: a live handle and a NUL-terminated name.
        let sym = unsafe { libc::dlsym(handle, GUARD_SYMBOL.as_ptr()) };
        if sym.is_null() {
            return Err(dl_error("the C++ guard has no ddl_cxxguard_call"));
        }
        // SAFETY: ddl_cxxguard_call is defined with exactly the
        // ddl_guard_fn prototype (csrc/cxxguard.cc, ddl_call.h).
        Ok(unsafe { std::mem::transmute::<*mut c_void, GuardFn>(sym) })
    })();
    // SAFETY: our own fd; the mapping made by dlmopen outlives it.
    unsafe { libc::close(fd) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use libffi::low::{ffi_abi_FFI_DEFAULT_ABI, ffi_cif, ffi_type, prep_cif, types};
    use std::process::Command;

    const THROWER: &str = r#"
        #include <stdexcept>
        namespace ns { struct Oops { int code; }; }
        extern "C" int thrower(int x) {
            if (x < 0) throw std::invalid_argument("negative input");
            if (x == 0) throw 42;
            if (x == 1) throw ns::Oops{7};
            if (x == 2) throw std::runtime_error(std::string(1000, 'w'));
            return x * 2;
        }
    "#;

    /// Builds the throwing library with c++; `None` (test skipped) without a compiler.
    fn build_thrower() -> Option<std::path::PathBuf> {
        let dir = std::env::temp_dir().join(format!("ddl-cxxguard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("thrower.cc");
        std::fs::write(&src, THROWER).unwrap();
        let so = dir.join("libthrower.so");
        let ok = Command::new("c++")
            .args(["-O2", "-fPIC", "-shared", "-o"])
            .arg(&so)
            .arg(&src)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(so)
        } else {
            eprintln!("c++ not usable: skipped");
            None
        }
    }

    struct Outcome {
        status: c_int,
        ret: i32,
        ty: String,
        what: String,
    }

    /// Calls `int f(int)` with `x` through the guard and libffi.
    fn call(guard: GuardFn, f: unsafe extern "C" fn(), x: i32, what_len: usize) -> Outcome {
        let mut cif: ffi_cif = Default::default();
        // SAFETY (test): the type objects are libffi's statics.
        let mut atypes: [*mut ffi_type; 1] = [&raw mut types::sint32];
        unsafe {
            prep_cif(
                &mut cif,
                ffi_abi_FFI_DEFAULT_ABI,
                1,
                &raw mut types::sint32,
                atypes.as_mut_ptr(),
            )
        }
        .unwrap();
        let mut arg = x;
        let mut avalue: [*mut c_void; 1] = [(&raw mut arg).cast()];
        let mut rvalue: u64 = 0xdead;
        let mut ty = [0 as c_char; 256];
        let mut what = vec![0 as c_char; what_len];
        let ffi_call: FfiCallFn = {
            let p: unsafe extern "C" fn(
                *mut ffi_cif,
                Option<unsafe extern "C" fn()>,
                *mut c_void,
                *mut *mut c_void,
            ) = libffi::raw::ffi_call;
            // SAFETY (test): same ABI, `void *` for `ffi_cif *`.
            unsafe { std::mem::transmute(p) }
        };
        // SAFETY (test): a prepared cif for int(int), live buffers.
        let status = unsafe {
            guard(
                ffi_call,
                (&raw mut cif).cast(),
                Some(f),
                (&raw mut rvalue).cast(),
                avalue.as_mut_ptr(),
                ty.as_mut_ptr(),
                ty.len(),
                what.as_mut_ptr(),
                what.len(),
            )
        };
        // SAFETY (test): the guard NUL-terminates both buffers.
        let s = |b: &[c_char]| {
            unsafe { CStr::from_ptr(b.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        Outcome {
            status,
            ret: rvalue as u32 as i32,
            ty: s(&ty),
            what: s(&what),
        }
    }

    #[test]
    fn guard_catches_in_the_new_namespace() {
        let Some(so) = build_thrower() else {
            return;
        };
        let path = std::ffi::CString::new(so.to_str().unwrap()).unwrap();
        // SAFETY (test): a valid path.
        let h = unsafe { libc::dlmopen(libc::LM_ID_NEWLM, path.as_ptr(), libc::RTLD_NOW) };
        assert!(!h.is_null(), "{}", dl_error("dlmopen"));
        let mut lmid: libc::Lmid_t = 0;
        // SAFETY (test): a live handle, an Lmid_t to fill.
        let rc = unsafe { libc::dlinfo(h, libc::RTLD_DI_LMID, (&raw mut lmid).cast()) };
        assert_eq!(rc, 0);
        assert_ne!(lmid, 0, "a namespace of its own");
        // SAFETY (test): the namespace exists.
        let guard = unsafe { load_into(lmid) }.unwrap();
        // Loading again gives the same function.
        let again = unsafe { load_into(lmid) }.unwrap();
        assert_eq!(guard as usize, again as usize);
        // SAFETY (test): a live handle and a NUL-terminated name.
        let sym = unsafe { libc::dlsym(h, c"thrower".as_ptr()) };
        assert!(!sym.is_null());
        // SAFETY (test): thrower is `int thrower(int)`.
        let f: unsafe extern "C" fn() = unsafe { std::mem::transmute(sym) };

        let o = call(guard, f, 21, 512);
        assert_eq!((o.status, o.ret), (DDL_CALL_OK, 42));
        assert_eq!((o.ty.as_str(), o.what.as_str()), ("", ""));

        let o = call(guard, f, -5, 512);
        assert_eq!(o.status, DDL_CALL_EXCEPTION);
        assert_eq!(o.ty, "std::invalid_argument");
        assert_eq!(o.what, "negative input");

        let o = call(guard, f, 0, 512);
        assert_eq!(o.status, DDL_CALL_EXCEPTION);
        assert_eq!((o.ty.as_str(), o.what.as_str()), ("int", ""));

        let o = call(guard, f, 1, 512);
        assert_eq!(o.status, DDL_CALL_EXCEPTION);
        assert_eq!((o.ty.as_str(), o.what.as_str()), ("ns::Oops", ""));

        // what() truncated to the buffer, NUL included.
        let o = call(guard, f, 2, 16);
        assert_eq!(o.status, DDL_CALL_EXCEPTION);
        assert_eq!(o.ty, "std::runtime_error");
        assert_eq!(o.what, "w".repeat(15));

        // Still usable after exceptions.
        let o = call(guard, f, 100, 512);
        assert_eq!((o.status, o.ret), (DDL_CALL_OK, 200));
    }
}
