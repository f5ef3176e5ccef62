//! C++ boundaries at run time.
//!
//! * Which exported symbols of the old build implement each C++ declaration
//!   of the config (`arbiter::cxx::resolve` over the demangled names), and
//!   which C prototypes the old build exports only with C++ linkage
//!   (`Shape *make_shape(int)` is `_Z10make_shapeidd`).
//! * What the shadow needs from the new build: each constructed class's
//!   size (its DWARF, else the config's `classes`), each destructor's D1,
//!   and the exception guard loaded into its namespace.
//! * Vtables: the application's virtual calls go through the vtable that
//!   `dlsym(RTLD_DEFAULT, "_ZTV…")` finds (a copy in the executable when it
//!   has a COPY relocation for it, which no relocation of ours reaches), so
//!   its entries that hold a boundary method are pointed at the wrappers.
//! * The primary's exceptions: `__cxa_throw` notes the exception a thread
//!   throws; `__cxa_begin_catch` on that thread, with the catching frame
//!   outside the boundary call in flight, means the exception left the old
//!   build: the call's outcome is that exception (`runtime::after_throw`).

// The interposers are exported only outside unit tests (no_mangle would
// take the test binary's own __cxa_throw): there, their helpers are unused.
#![cfg_attr(test, allow(dead_code))]

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::path::Path;

use arbiter::config::{Config, ConfigError};
use arbiter::cxx::{self, CxxDecl, CxxKind, CxxVariant};
use goblin::elf::Elf;

/// One symbol of the old build that implements a boundary function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundarySymbol {
    /// The symbol (mangled for C++).
    pub name: String,
    /// Index of the boundary function.
    pub func: u32,
    /// A deleting destructor (D0).
    pub deleting: bool,
    /// The complete-object destructor (D1) of a destructor declaration.
    pub complete_dtor: bool,
}

/// Defined, exported function symbols of an ELF file (its `.dynsym`).
pub fn exported_functions(path: &Path) -> Result<Vec<String>, String> {
    let map = crate::elf::Mapped::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf = Elf::parse(map.bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for sym in elf.dynsyms.iter() {
        if sym.st_shndx == 0 || sym.st_type() != goblin::elf::sym::STT_FUNC {
            continue;
        }
        if let Some(n) = elf.dynstrtab.get_at(sym.st_name) {
            out.push(n.to_string());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The symbols of the old build (exported by the file at `old_path`) that
/// implement the boundary: C functions by their name, C++ declarations by
/// their mangled names. A declaration no symbol implements is an error
/// naming it.
// Cold path, once per arrival of the old build.
#[allow(clippy::result_large_err)]
pub fn boundary_symbols(
    config: &Config,
    old_path: &Path,
) -> Result<Vec<BoundarySymbol>, ConfigError> {
    let exported = exported_functions(old_path).map_err(|e| config.key_error("old", e))?;
    let refs: Vec<&str> = exported.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for (i, f) in config.functions.iter().enumerate() {
        let func = i as u32;
        if f.cxx.is_none() && exported.binary_search(&f.sig.name).is_ok() {
            out.push(BoundarySymbol {
                name: f.sig.name.clone(),
                func,
                deleting: false,
                complete_dtor: false,
            });
            continue;
        }
        // A C++ declaration, or a C prototype of a function with C++
        // linkage: resolved through the demangled names.
        let decl = match &f.cxx {
            Some(d) => Some(d.clone()),
            None => CxxDecl::parse(&f.sig.text).ok(),
        };
        let found = decl.map(|d| cxx::resolve(&d, &refs)).unwrap_or_default();
        if found.is_empty() {
            return Err(config.function_error(
                i,
                format!(
                    "no symbol of the old build {} implements {}",
                    old_path.display(),
                    f.key
                ),
            ));
        }
        for s in found {
            out.push(BoundarySymbol {
                name: s.mangled,
                func,
                deleting: s.variant == CxxVariant::D0,
                complete_dtor: s.variant == CxxVariant::D1,
            });
        }
    }
    Ok(out)
}

/// [`boundary_symbols`] without reading the old build's file, when every
/// boundary function is a C function the old build (loaded, `old`)
/// exports under its name: looked up in its symbol table in memory. `None`
/// (a C++ declaration, a name it does not export so): ask
/// [`boundary_symbols`].
pub fn c_boundary_symbols(
    config: &Config,
    old: &crate::elf::LoadedObject,
) -> Option<Vec<BoundarySymbol>> {
    let mut out = Vec::with_capacity(config.functions.len());
    for (i, f) in config.functions.iter().enumerate() {
        // SAFETY: `old` is a live link_map of the base namespace (held
        // open by the rescan that found it).
        let found = f.cxx.is_none()
            && unsafe {
                crate::elf::gnu_defines_function(
                    old.lmap as *const crate::elf::LinkMap,
                    f.sig.name.as_bytes(),
                )
            };
        if !found {
            return None;
        }
        out.push(BoundarySymbol {
            name: f.sig.name.clone(),
            func: i as u32,
            deleting: false,
            complete_dtor: false,
        });
    }
    Some(out)
}

/// The size of `class` in the new build: its DWARF, else the config's
/// `classes`.
pub fn new_class_size(config: &Config, new_path: &Path, class: &str) -> Option<usize> {
    if let Ok(Some(n)) = arbiter::dwarf::class_size(new_path, class) {
        return Some(n);
    }
    config
        .classes
        .iter()
        .find(|(n, _)| n == class || n.rsplit("::").next() == Some(class))
        .map(|(_, s)| *s)
}

/// The classes whose vtables may hold boundary methods: every class named
/// by a C++ declaration.
pub fn classes(config: &Config) -> Vec<String> {
    let mut v: Vec<String> = config
        .functions
        .iter()
        .filter_map(|f| f.cxx.as_ref())
        .filter(|d| matches!(d.kind, CxxKind::Method | CxxKind::Dtor | CxxKind::Ctor))
        .map(|d| d.class.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Where a vtable is: its address and size in bytes, as `dlsym` finds it in
/// `handle` (RTLD_DEFAULT: the copy the application uses).
pub fn vtable(handle: *mut c_void, class: &str) -> Option<(usize, usize)> {
    let sym = cxx::vtable_symbol(class)?;
    let name = CString::new(sym).ok()?;
    let addr = crate::interpose::real_dlsym(handle, &name);
    if addr == 0 {
        return None;
    }
    // SAFETY: Dl_info is plain data; all-zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut sym: *const libc::Elf64_Sym = std::ptr::null();
    // SAFETY: dladdr1 only reads ld.so's tables.
    let ok = unsafe {
        libc::dladdr1(
            addr as *const c_void,
            &mut info,
            &mut sym as *mut *const libc::Elf64_Sym as *mut *mut c_void,
            1, // RTLD_DL_SYMENT
        )
    };
    if ok == 0 || sym.is_null() {
        return None;
    }
    // SAFETY: the symbol entry is ld.so's, valid while the object is loaded.
    let size = unsafe { (*sym).st_size } as usize;
    (size >= 16).then_some((addr, size))
}

/// Points every entry of the vtable at `at` (`size` bytes) that holds a key
/// of `wrappers` (an old build's function) at its value (the wrapper).
/// `relro` is the RELRO range of the object that holds the vtable.
///
/// # Safety
/// `at..at+size` must be a loaded vtable.
pub unsafe fn patch_vtable(
    at: usize,
    size: usize,
    wrappers: &HashMap<usize, usize>,
    relro: Option<(usize, usize)>,
) -> Result<usize, String> {
    let mut patched = 0;
    for slot in (at..at + size).step_by(8) {
        let v = crate::rebind::read_slot(slot);
        if let Some(&w) = wrappers.get(&v) {
            crate::rebind::write_slot(slot, w, relro)?;
            patched += 1;
        }
    }
    Ok(patched)
}

/// The name of a type from its `std::type_info` (Itanium ABI: a vtable
/// pointer, then the mangled name without `_Z`), demangled.
///
/// # Safety
/// `tinfo` must be a `std::type_info`.
pub unsafe fn type_name(tinfo: *const c_void) -> String {
    if tinfo.is_null() {
        return "unknown".into();
    }
    let name = *(tinfo as *const *const libc::c_char).add(1);
    if name.is_null() {
        return "unknown".into();
    }
    let raw = CStr::from_ptr(name).to_string_lossy();
    let raw = raw.trim_start_matches('*');
    cpp_type(raw)
}

/// A mangled type name (`St16invalid_argument`) as C++ writes it.
fn cpp_type(raw: &str) -> String {
    let builtin = match raw {
        "i" => "int",
        "j" => "unsigned int",
        "l" => "long",
        "m" => "unsigned long",
        "x" => "long long",
        "y" => "unsigned long long",
        "c" => "char",
        "b" => "bool",
        "d" => "double",
        "f" => "float",
        "PKc" => "char const*",
        "Pc" => "char*",
        _ => "",
    };
    if !builtin.is_empty() {
        return builtin.to_string();
    }
    match cpp_demangle::Symbol::new(format!("_Z{raw}").as_bytes())
        .ok()
        .and_then(|s| s.demangle(&Default::default()).ok())
    {
        // `_Z` + a type demangles as a "function" named by the type.
        Some(d) => d,
        None => match raw.as_bytes().first() {
            Some(b'0'..=b'9') => {
                let digits: String = raw.chars().take_while(char::is_ascii_digit).collect();
                raw[digits.len()..].to_string()
            }
            _ => raw.to_string(),
        },
    }
}

/// `what()` of a thrown object when its type derives from `std::exception`
/// (found by walking the Itanium type_info hierarchy: single and
/// non-virtual multiple inheritance), else an empty string.
///
/// # Safety
/// `obj` must be a thrown object of the type `tinfo` describes.
pub unsafe fn what(obj: *mut c_void, tinfo: *const c_void) -> String {
    let Some(exc) = std_exception_typeinfo() else {
        return String::new();
    };
    let Some(off) = base_offset(tinfo, exc, 0) else {
        return String::new();
    };
    // SAFETY: `off` is where the std::exception base sits inside an object
    // of this type (the type_info hierarchy says so), and `obj` is one.
    let base = (obj as *mut u8).offset(off) as *mut c_void;
    // std::exception's vtable: [0] ~exception (D1), [1] D0, [2] what.
    // SAFETY: a polymorphic base starts with its vtable pointer; `what` is
    // its third entry, a `const char *(const std::exception *)`.
    let vptr = *(base as *const *const usize);
    let what: unsafe extern "C" fn(*mut c_void) -> *const libc::c_char =
        std::mem::transmute(*vptr.add(2));
    let s = what(base);
    if s.is_null() {
        String::new()
    } else {
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
}

fn std_exception_typeinfo() -> Option<*const c_void> {
    let a = crate::interpose::real_dlsym(libc::RTLD_DEFAULT, c"_ZTISt9exception");
    (a != 0).then_some(a as *const c_void)
}

/// The offset of the `target` base inside an object of type `tinfo`.
unsafe fn base_offset(tinfo: *const c_void, target: *const c_void, depth: u32) -> Option<isize> {
    // SAFETY (whole function): `tinfo` and `target` are std::type_info
    // objects (the ABI's __class_type_info family), read only within the
    // layouts the Itanium C++ ABI gives them.
    if tinfo == target || (!tinfo.is_null() && same_type(tinfo, target)) {
        return Some(0);
    }
    if depth > 32 || tinfo.is_null() {
        return None;
    }
    let vptr = *(tinfo as *const usize);
    let si = abi_vtable(c"_ZTVN10__cxxabiv120__si_class_type_infoE");
    let vmi = abi_vtable(c"_ZTVN10__cxxabiv121__vmi_class_type_infoE");
    if Some(vptr) == si {
        // { vptr, name, const __class_type_info *base }
        let b = *(tinfo as *const *const c_void).add(2);
        return base_offset(b, target, depth + 1);
    }
    if Some(vptr) == vmi {
        // { vptr, name, u32 flags, u32 count, { base, long offset_flags }[] }
        let count = *((tinfo as *const u8).add(20) as *const u32);
        let bases = (tinfo as *const u8).add(24) as *const [usize; 2];
        for k in 0..count.min(64) as usize {
            let [b, flags] = *bases.add(k);
            let is_virtual = flags & 1 != 0;
            let is_public = flags & 2 != 0;
            if is_virtual || !is_public {
                continue;
            }
            if let Some(o) = base_offset(b as *const c_void, target, depth + 1) {
                return Some(o + ((flags as isize) >> 8));
            }
        }
    }
    None
}

unsafe fn same_type(a: *const c_void, b: *const c_void) -> bool {
    // SAFETY: both are std::type_info: a vtable pointer, then the name.
    let na = *(a as *const *const libc::c_char).add(1);
    let nb = *(b as *const *const libc::c_char).add(1);
    !na.is_null() && !nb.is_null() && CStr::from_ptr(na) == CStr::from_ptr(nb)
}

fn abi_vtable(name: &CStr) -> Option<usize> {
    // The type_info's vptr points two words into its class's vtable.
    let a = crate::interpose::real_dlsym(libc::RTLD_DEFAULT, name);
    (a != 0).then_some(a + 16)
}

/// `__cxa_throw`, interposed: notes the exception when a mirrored call is
/// in flight on this thread, then throws it with libstdc++'s own. The
/// "C-unwind" ABI lets the exception pass through this frame.
///
/// # Safety
/// Called by compiled C++ code as libstdc++'s `__cxa_throw`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C-unwind" fn __cxa_throw(
    obj: *mut c_void,
    tinfo: *mut c_void,
    dest: Option<unsafe extern "C" fn(*mut c_void)>,
) -> ! {
    crate::wrapper::exception_thrown(|| arbiter::compare::Exception {
        // SAFETY: a thrown object and its type, as the ABI passes them.
        ty: unsafe { type_name(tinfo) },
        // SAFETY: as above.
        what: unsafe { what(obj, tinfo) },
    });
    let real = next(&REAL_THROW, c"__cxa_throw");
    if real == 0 {
        libc::abort();
    }
    // SAFETY: libstdc++'s `__cxa_throw` (found by name after libddl), of
    // this signature; the caller's arguments are passed on as is.
    let real: unsafe extern "C-unwind" fn(
        *mut c_void,
        *mut c_void,
        Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> ! = std::mem::transmute(real);
    real(obj, tinfo, dest)
}

/// `__cxa_begin_catch`, interposed: a catch that begins above the frame of
/// the mirrored call in flight ends that call with the exception
/// (`wrapper::exception_caught`), then libstdc++'s own runs.
///
/// # Safety
/// Called by compiled C++ landing pads as libstdc++'s `__cxa_begin_catch`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __cxa_begin_catch(header: *mut c_void) -> *mut c_void {
    let here = 0u8;
    crate::wrapper::exception_caught(&here as *const u8 as usize);
    let real = next(&REAL_BEGIN_CATCH, c"__cxa_begin_catch");
    if real == 0 {
        libc::abort();
    }
    // SAFETY: libstdc++'s `__cxa_begin_catch` (found by name after libddl),
    // of this signature; the landing pad's argument is passed on as is.
    let real: unsafe extern "C" fn(*mut c_void) -> *mut c_void = std::mem::transmute(real);
    real(header)
}

static REAL_THROW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static REAL_BEGIN_CATCH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The definition of `name` after libddl's (libstdc++'s), cached.
fn next(cache: &std::sync::atomic::AtomicUsize, name: &CStr) -> usize {
    use std::sync::atomic::Ordering;
    let mut f = cache.load(Ordering::Relaxed);
    if f == 0 {
        f = crate::interpose::real_dlsym(libc::RTLD_NEXT, name);
        cache.store(f, Ordering::Relaxed);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(cpp_type("St16invalid_argument"), "std::invalid_argument");
        assert_eq!(cpp_type("N2ns4OopsE"), "ns::Oops");
        assert_eq!(cpp_type("i"), "int");
    }
}
