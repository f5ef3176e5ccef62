//! Loading the new build in its own link-map namespace.
//!
//! `dlmopen(LM_ID_NEWLM)` gives the new build its own copy of every
//! dependency, libc included (its own malloc, errno and stdio), so nothing it
//! does binds to the old build or to the application's libraries
//! (DESIGN.md, "The new version in its own namespace"). `RTLD_NOW`: no lazy
//! binding may ever run inside a shadow call.

use std::ffi::{c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The new build, loaded.
pub struct NewBuild {
    /// The `dlmopen` handle.
    pub handle: *mut c_void,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Its namespace's `__errno_location`.
    pub errno_location: Option<unsafe extern "C" fn() -> *mut libc::c_int>,
    /// Its load address (`link_map.l_addr`).
    pub base: usize,
    /// Threads appeared while it was loaded (its constructors started
    /// some, as OpenBLAS does): unloading it would pull the code from under
    /// them, so it is never unloaded.
    pub starts_threads: bool,
}

// SAFETY: a dlopen handle is an opaque token usable from any thread.
unsafe impl Send for NewBuild {}

/// Threads of the process now.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Reads and clears `dlerror()` (the one place that does).
pub fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a thread-local C string.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown dynamic-linker error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

impl NewBuild {
    /// Loads `path` into a new namespace.
    pub fn load(path: &Path, intercept: &[String]) -> Result<NewBuild, String> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let threads_before = thread_count();
        // SAFETY: dlmopen with a valid path; the namespace lives as long as
        // the process (DDL never unloads the new build while it can be called).
        let handle = unsafe {
            libc::dlmopen(
                libc::LM_ID_NEWLM,
                c.as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        };
        if handle.is_null() {
            return Err(dlerror());
        }
        // The namespace's own libc is a dependency of the new build; its
        // errno lookup is found through the build's handle.
        let errno = crate::interpose::real_dlsym(handle, c"__errno_location");
        let starts_threads = thread_count() > threads_before;
        silence_stdio(handle);
        // Its exits, signal functions and side effects are DDL's from now on.
        // SAFETY: a live dlmopen handle of a namespace of its own, loaded
        // with RTLD_NOW (nothing of it is being relocated).
        // A namespace that cannot be contained is never called.
        if let Err(e) = unsafe { crate::contain::patch_namespace(handle, intercept) } {
            crate::contain::forget_namespace(handle);
            crate::interpose::real_dlclose(handle);
            return Err(format!("its namespace cannot be contained: {e}"));
        }
        let mut lmap: *mut crate::elf::LinkMap = std::ptr::null_mut();
        // SAFETY: dlinfo on the live handle, into a pointer-sized slot.
        unsafe {
            libc::dlinfo(
                handle,
                libc::RTLD_DI_LINKMAP,
                &mut lmap as *mut _ as *mut c_void,
            )
        };
        let base = if lmap.is_null() {
            0
        } else {
            // SAFETY: ld.so's link_map of a loaded object.
            unsafe { (*lmap).l_addr }
        };
        Ok(NewBuild {
            handle,
            path: path.to_path_buf(),
            // SAFETY: `__errno_location` has this signature in every libc.
            errno_location: (errno != 0).then(|| unsafe { std::mem::transmute::<usize, _>(errno) }),
            base,
            starts_threads,
        })
    }

    /// Is `pc` in the new build's own code (not in its libc, its other
    /// dependencies or ld.so)?
    pub fn owns(&self, pc: usize) -> bool {
        // SAFETY: Dl_info is plain data; all-zero is valid.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads ld.so's tables (all namespaces).
        let found = unsafe { libc::dladdr(pc as *const c_void, &mut info) } != 0;
        found && self.base != 0 && info.dli_fbase as usize == self.base
    }

    /// The namespace the new build lives in (`dlinfo` `RTLD_DI_LMID`).
    ///
    /// # Safety
    /// The handle must still be open (it is for the process's life).
    pub unsafe fn lmid(&self) -> Result<libc::Lmid_t, String> {
        let mut lmid: libc::Lmid_t = 0;
        if libc::dlinfo(
            self.handle,
            libc::RTLD_DI_LMID,
            &mut lmid as *mut _ as *mut c_void,
        ) != 0
        {
            return Err(dlerror());
        }
        Ok(lmid)
    }

    /// Resolves a boundary function in the new build, with the symbol
    /// version the application's reference carries when it has one.
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Option<usize> {
        let n = CString::new(name).ok()?;
        let r = match version.and_then(|v| CString::new(v).ok()) {
            Some(v) => match crate::interpose::real_dlvsym(self.handle, &n, &v) {
                0 => crate::interpose::real_dlsym(self.handle, &n),
                r => r,
            },
            None => crate::interpose::real_dlsym(self.handle, &n),
        };
        (r != 0).then_some(r)
    }
}

/// `cookie_io_functions_t` (glibc `<stdio.h>`).
#[repr(C)]
struct CookieIo {
    read: usize,
    write: Option<extern "C" fn(*mut c_void, *const libc::c_char, usize) -> isize>,
    seek: usize,
    close: usize,
}

extern "C" fn discard(_cookie: *mut c_void, _buf: *const libc::c_char, size: usize) -> isize {
    size as isize
}

/// Points the new namespace's own `stdout` and `stderr` (its libc's `FILE`
/// objects, which write to the process's fds 1 and 2) at a stream that
/// discards, so that what the new build prints while it shadows a call does
/// not reach the application's output. No descriptor is opened (the
/// application's descriptor numbers stay as they were). Direct write(2)s
/// on fds 1 and 2 are not caught.
fn silence_stdio(handle: *mut c_void) {
    let fopencookie = crate::interpose::real_dlsym(handle, c"fopencookie");
    if fopencookie == 0 {
        return;
    }
    // SAFETY: the namespace's own fopencookie(cookie, mode, io), whose
    // `write` is a plain function of ours; `stdout`/`stderr` are its libc's
    // `FILE *` variables.
    unsafe {
        let fopencookie: extern "C" fn(*mut c_void, *const libc::c_char, CookieIo) -> *mut c_void =
            std::mem::transmute(fopencookie);
        for name in [c"stdout", c"stderr"] {
            let var = crate::interpose::real_dlsym(handle, name) as *mut *mut c_void;
            if var.is_null() {
                continue;
            }
            let io = CookieIo {
                read: 0,
                write: Some(discard),
                seek: 0,
                close: 0,
            };
            let f = fopencookie(std::ptr::null_mut(), c"w".as_ptr(), io);
            if !f.is_null() {
                *var = f;
            }
        }
    }
}
