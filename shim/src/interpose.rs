//! `dlopen` / `dlsym` / `dlvsym` / `dlclose` and `__libc_start_main`
//! interposition, so that late loads and lookups are rebound too.
//!
//! glibc resolves `RTLD_NEXT`, `$ORIGIN`, the caller's `DT_RUNPATH` and the
//! caller's namespace relative to the *return address* of `dlopen`/`dlsym`.
//! An interposer that simply calls the real function would make libddl the
//! caller and change those answers. DDL keeps them exact:
//!
//! 1. each interposer is a naked function that passes its own return address
//!    (the real caller's) on as an extra argument to a Rust hook;
//! 2. the hook calls the real function through `ddl_call_as`, which enters it
//!    with a return address *inside the caller's object*: a `ret` byte
//!    (0xC3) found in that object's executable segment, which returns on to
//!    DDL. glibc then sees a caller in the right object, which is all it
//!    looks at (`_dl_find_dso_for_object`).
//!
//! The real functions are found in libc's own dynamic symbol table (in
//! memory, with a GNU hash lookup and no allocation): calling `dlsym` from
//! libddl would find libddl's interposer.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::elf::{LinkMap, RDebug};

std::arch::global_asm!(
    ".text",
    ".globl ddl_call_as",
    ".hidden ddl_call_as",
    ".type ddl_call_as,@function",
    // u64 ddl_call_as(gadget, fn, a0, a1, a2): calls fn(a0, a1, a2) with
    // `gadget` as its return address; the gadget's `ret` comes back to 1:.
    "ddl_call_as:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "mov rax, rsi",
    "mov r11, rdi",
    "mov rdi, rdx",
    "mov rsi, rcx",
    "mov rdx, r8",
    "and rsp, -16",
    "sub rsp, 8",
    "lea r10, [rip + 1f]",
    "push r10",
    "push r11",
    "jmp rax",
    "1:",
    "mov rsp, rbp",
    "pop rbp",
    ".cfi_def_cfa rsp, 8",
    "ret",
    ".cfi_endproc",
    ".size ddl_call_as, .-ddl_call_as",
);

extern "C" {
    fn ddl_call_as(gadget: usize, f: usize, a0: usize, a1: usize, a2: usize) -> usize;
}

/// libc's own dynamic-linking functions.
struct Real {
    dlopen: AtomicUsize,
    dlsym: AtomicUsize,
    dlvsym: AtomicUsize,
    dlclose: AtomicUsize,
    dladdr: AtomicUsize,
    dladdr1: AtomicUsize,
    /// `_dl_find_object` (glibc 2.35), 0 when libc has none.
    find_object: AtomicUsize,
    start_main: AtomicUsize,
}

static REAL: Real = Real {
    dlopen: AtomicUsize::new(0),
    dlsym: AtomicUsize::new(0),
    dlvsym: AtomicUsize::new(0),
    dlclose: AtomicUsize::new(0),
    dladdr: AtomicUsize::new(0),
    dladdr1: AtomicUsize::new(0),
    find_object: AtomicUsize::new(0),
    start_main: AtomicUsize::new(0),
};

extern "C" {
    static _r_debug: RDebug;
}

/// Finds libc's definitions once. Allocation-free, so it is safe however
/// early the first `dlsym` comes (Rust's own runtime uses it).
fn real() -> &'static Real {
    if REAL.dlsym.load(Ordering::Acquire) == 0 {
        // SAFETY: walking ld.so's chain of the base namespace, which only
        // grows or shrinks under ld.so's lock; libc is loaded before libddl
        // runs any code and is never unloaded.
        unsafe {
            let mut l = std::ptr::addr_of!(_r_debug).read_volatile().r_map;
            while !l.is_null() {
                let name = if (*l).l_name.is_null() {
                    &b""[..]
                } else {
                    CStr::from_ptr((*l).l_name).to_bytes()
                };
                if name.ends_with(b"/libc.so.6") {
                    let find =
                        |n: &[u8]| crate::elf::gnu_lookup(l as *const LinkMap, n).unwrap_or(0);
                    REAL.dlopen.store(find(b"dlopen"), Ordering::Relaxed);
                    REAL.dlvsym.store(find(b"dlvsym"), Ordering::Relaxed);
                    REAL.dlclose.store(find(b"dlclose"), Ordering::Relaxed);
                    REAL.start_main
                        .store(find(b"__libc_start_main"), Ordering::Relaxed);
                    REAL.dladdr.store(find(b"dladdr"), Ordering::Relaxed);
                    REAL.dladdr1.store(find(b"dladdr1"), Ordering::Relaxed);
                    REAL.find_object
                        .store(find(b"_dl_find_object"), Ordering::Relaxed);
                    for (slot, name) in EXEC_REAL.iter().zip(EXEC_NAMES) {
                        slot.store(find(name.as_bytes()), Ordering::Relaxed);
                    }
                    REAL.dlsym.store(find(b"dlsym"), Ordering::Release);
                    break;
                }
                l = (*l).l_next;
            }
        }
    }
    &REAL
}

/// Finds a `ret` instruction inside the executable segment of the object
/// that contains `addr`, to stand in as the caller's return address.
/// Returns 0 when `addr` belongs to no object (the call then goes direct).
fn gadget_for(addr: usize) -> usize {
    const N: usize = 64;
    static CACHE: [(AtomicUsize, AtomicUsize); N] =
        [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; N];
    let fbase = object_start(addr);
    if fbase == 0 {
        return 0;
    }
    let slot = (fbase >> 12) % N;
    if CACHE[slot].0.load(Ordering::Acquire) == fbase {
        let g = CACHE[slot].1.load(Ordering::Relaxed);
        // The object at `fbase` may not be the one the entry was made for
        // (unloaded, another loaded at the same address; or a racing
        // writer of the same slot): use the gadget only if it is still a
        // `ret` inside this object's executable segment.
        // SAFETY: `fbase` is the start of the loaded object that contains `addr`.
        if unsafe { is_ret_in_text(fbase, g) } {
            return g;
        }
    }
    // SAFETY: `fbase` is where the object's first PT_LOAD (file offset 0,
    // so the ELF header and program headers) is mapped.
    let g = unsafe { find_ret(fbase) };
    if g != 0 {
        CACHE[slot].1.store(g, Ordering::Relaxed);
        CACHE[slot].0.store(fbase, Ordering::Release);
    }
    g
}

/// glibc's `struct dl_find_object` (x86-64: no `dlfo_eh_dbase`).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *mut c_void,
    eh_frame: *mut c_void,
    reserved: [u64; 7],
}

/// Where the loaded object that contains `addr` starts (`dli_fbase`), in
/// any namespace; 0 if no object contains it. `_dl_find_object` when libc
/// has it: a lookup in ld.so's sorted table, where `dladdr` also walks the
/// object's symbol table for the nearest symbol (Python's `dlsym` of each
/// extension module's `PyInit_` spent ~20 µs there).
fn object_start(addr: usize) -> usize {
    let f = real().find_object.load(Ordering::Relaxed);
    if f != 0 {
        // SAFETY: libc's `_dl_find_object(void *, struct dl_find_object *)`,
        // given a result it fills (all-zero is valid plain data); it only
        // reads ld.so's tables.
        unsafe {
            let find: unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> libc::c_int =
                std::mem::transmute(f);
            let mut r: DlFindObject = std::mem::zeroed();
            return if find(addr as *mut c_void, &mut r) == 0 {
                r.map_start as usize
            } else {
                0
            };
        }
    }
    // SAFETY: dladdr only reads ld.so's tables; `info` is plain data.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(addr as *const c_void, &mut info) } == 0 {
        return 0;
    }
    info.dli_fbase as usize
}

/// The executable PT_LOAD ranges `[start, start + filesz)` of the ELF
/// object mapped at `fbase` (empty if there is no ELF header there).
///
/// # Safety
/// `fbase` must be the start of a loaded ELF object.
unsafe fn exec_ranges(fbase: usize) -> impl Iterator<Item = (usize, usize)> {
    let eh = &*(fbase as *const libc::Elf64_Ehdr);
    // Allocation-free: this runs inside dlsym, however early it is called.
    let phdrs: &'static [libc::Elf64_Phdr] = if &eh.e_ident[..4] != b"\x7fELF" {
        &[]
    } else {
        std::slice::from_raw_parts(
            (fbase + eh.e_phoff as usize) as *const libc::Elf64_Phdr,
            eh.e_phnum as usize,
        )
    };
    // The bias: the first PT_LOAD's p_vaddr is mapped at fbase.
    let first = phdrs
        .iter()
        .find(|p| p.p_type == libc::PT_LOAD)
        .map(|p| p.p_vaddr as usize)
        .unwrap_or(0);
    let bias = fbase - (first & !0xfff);
    phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0)
        .map(move |p| {
            (
                bias + p.p_vaddr as usize,
                bias + (p.p_vaddr + p.p_filesz) as usize,
            )
        })
}

/// Scans the executable PT_LOAD of the ELF object mapped at `fbase` for 0xC3.
///
/// # Safety
/// `fbase` must be the start of a loaded ELF object.
unsafe fn find_ret(fbase: usize) -> usize {
    for (start, end) in exec_ranges(fbase) {
        let text = std::slice::from_raw_parts(start as *const u8, end - start);
        if let Some(i) = text.iter().position(|b| *b == 0xc3) {
            return start + i;
        }
    }
    0
}

/// Is `g` a 0xC3 byte inside an executable PT_LOAD of the ELF object mapped at `fbase`?
///
/// # Safety
/// `fbase` must be the start of a loaded ELF object.
unsafe fn is_ret_in_text(fbase: usize, g: usize) -> bool {
    exec_ranges(fbase).any(|(start, end)| g >= start && g < end && *(g as *const u8) == 0xc3)
}

/// Calls libc's function `f` as if from `caller`'s object.
///
/// # Safety
/// `f` must take up to three word-sized arguments and return one.
unsafe fn call_real(caller: usize, f: usize, a0: usize, a1: usize, a2: usize) -> usize {
    let caller = crate::wrapper::app_caller(caller);
    let mut g = gadget_for(caller);
    if g == 0 {
        // A caller in no object (JIT code): glibc takes the main program
        // as the caller then (its RUNPATH, its namespace), so stand in as
        // the main program, not as libddl. Its entry point is in its text.
        g = gadget_for(libc::getauxval(libc::AT_ENTRY) as usize);
    }
    if g == 0 {
        let f: extern "C" fn(usize, usize, usize) -> usize = std::mem::transmute(f);
        return f(a0, a1, a2);
    }
    ddl_call_as(g, f, a0, a1, a2)
}

/// libc's `dlsym`, called by DDL itself (caller: libddl; for handles and
/// `RTLD_DEFAULT` in the base namespace the caller does not matter).
pub fn real_dlsym(handle: *mut c_void, name: &CStr) -> usize {
    let f = real().dlsym.load(Ordering::Relaxed);
    // SAFETY: libc's dlsym with a valid C string.
    let f: extern "C" fn(*mut c_void, *const c_char) -> usize = unsafe { std::mem::transmute(f) };
    f(handle, name.as_ptr())
}

/// libc's `dlvsym`, called by DDL itself.
pub fn real_dlvsym(handle: *mut c_void, name: &CStr, version: &CStr) -> usize {
    let f = real().dlvsym.load(Ordering::Relaxed);
    // SAFETY: libc's dlvsym with valid C strings.
    let f: extern "C" fn(*mut c_void, *const c_char, *const c_char) -> usize =
        unsafe { std::mem::transmute(f) };
    f(handle, name.as_ptr(), version.as_ptr())
}

/// libc's `dlopen`, called by DDL itself (only with absolute paths or
/// `RTLD_NOLOAD`, where the caller does not matter).
pub fn real_dlopen(path: &CStr, mode: c_int) -> *mut c_void {
    let f = real().dlopen.load(Ordering::Relaxed);
    // SAFETY: libc's dlopen with a valid C string.
    let f: extern "C" fn(*const c_char, c_int) -> *mut c_void = unsafe { std::mem::transmute(f) };
    f(path.as_ptr(), mode)
}

/// libc's `dlclose`.
pub fn real_dlclose(handle: *mut c_void) -> c_int {
    let f = real().dlclose.load(Ordering::Relaxed);
    // SAFETY: libc's dlclose on a handle it gave.
    let f: extern "C" fn(*mut c_void) -> c_int = unsafe { std::mem::transmute(f) };
    f(handle)
}

/// `dlopen`: passes the caller's return address to `dlopen_hook`.
///
/// # Safety
/// The contract of libc's function of the same name: called by C code
/// with its arguments.
#[unsafe(naked)]
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void {
    std::arch::naked_asm!("mov rdx, [rsp]", "jmp {hook}", hook = sym dlopen_hook)
}

/// `dlsym`: passes the caller's return address to `dlsym_hook`.
///
/// # Safety
/// The contract of libc's function of the same name: called by C code
/// with its arguments.
#[unsafe(naked)]
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    std::arch::naked_asm!("mov rdx, [rsp]", "jmp {hook}", hook = sym dlsym_hook)
}

/// `dlvsym`: passes the caller's return address to `dlvsym_hook`.
///
/// # Safety
/// The contract of libc's function of the same name: called by C code
/// with its arguments.
#[unsafe(naked)]
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dlvsym(
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
) -> *mut c_void {
    std::arch::naked_asm!("mov rcx, [rsp]", "jmp {hook}", hook = sym dlvsym_hook)
}

/// The real `dlopen` for the real caller, then rebinding of whatever arrived.
extern "C" fn dlopen_hook(file: *const c_char, mode: c_int, caller: usize) -> *mut c_void {
    let f = real().dlopen.load(Ordering::Relaxed);
    // SAFETY: forwarding the application's own arguments to libc's dlopen.
    let h = unsafe { call_real(caller, f, file as usize, mode as usize, 0) } as *mut c_void;
    if !h.is_null() {
        crate::runtime::objects_changed();
    }
    h
}

/// The real `dlsym` for the real caller; a boundary function's answer is
/// replaced by its wrapper.
extern "C" fn dlsym_hook(handle: *mut c_void, name: *const c_char, caller: usize) -> *mut c_void {
    let f = real().dlsym.load(Ordering::Relaxed);
    // SAFETY: forwarding the application's own arguments to libc's dlsym.
    let r = unsafe { call_real(caller, f, handle as usize, name as usize, 0) };
    if r == 0 || name.is_null() {
        return r as *mut c_void;
    }
    // SAFETY: dlsym succeeded, so `name` is a valid C string.
    crate::runtime::lookup_answer(unsafe { CStr::from_ptr(name) }, None, r) as *mut c_void
}

/// As [`dlsym_hook`], for a versioned lookup.
extern "C" fn dlvsym_hook(
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
    caller: usize,
) -> *mut c_void {
    let f = real().dlvsym.load(Ordering::Relaxed);
    // SAFETY: forwarding the application's own arguments to libc's dlvsym.
    let r = unsafe { call_real(caller, f, handle as usize, name as usize, version as usize) };
    if r == 0 || name.is_null() || version.is_null() {
        return r as *mut c_void;
    }
    // SAFETY: dlvsym succeeded, so both are valid C strings.
    let (n, v) = unsafe { (CStr::from_ptr(name), CStr::from_ptr(version)) };
    crate::runtime::lookup_answer(n, Some(v), r) as *mut c_void
}

/// `dlclose`: the caller does not matter to it; afterwards DDL notices an
/// old build that went away (its wrappers then stand down).
///
/// # Safety
/// The contract of libc's function of the same name: called by C code
/// with its arguments.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    let r = real_dlclose(handle);
    if r == 0 {
        crate::runtime::objects_changed();
    }
    r
}

type MainFn = extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
type StartMain = extern "C" fn(
    MainFn,
    c_int,
    *mut *mut c_char,
    Option<extern "C" fn()>,
    Option<extern "C" fn()>,
    Option<extern "C" fn()>,
    *mut c_void,
) -> c_int;

static REAL_MAIN: AtomicUsize = AtomicUsize::new(0);

/// Set once the program's `main` has started (through [`__libc_start_main`]).
static MAIN_STARTED: AtomicBool = AtomicBool::new(false);

/// Has the program's `main` started? Until then ld.so may still be running
/// the initial objects' constructors, and DDL loads the new build on the
/// thread that finds the old one (`runtime::activate`).
pub fn main_started() -> bool {
    MAIN_STARTED.load(Ordering::Acquire)
}

extern "C" fn main_wrapper(argc: c_int, argv: *mut *mut c_char, envp: *mut *mut c_char) -> c_int {
    // Registered once main starts, so it runs before `_dl_fini` (which
    // __libc_start_main registered earlier) finalises the new build: the
    // drain and the summary happen while the shadow can still call it.
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(crate::runtime::at_exit) };
    MAIN_STARTED.store(true, Ordering::Release);
    // SAFETY: the program's own main, as __libc_start_main was given it.
    let main: MainFn = unsafe { std::mem::transmute(REAL_MAIN.load(Ordering::Relaxed)) };
    main(argc, argv, envp)
}

/// `__libc_start_main`: wraps `main` so DDL's at-exit work runs before
/// `_dl_fini` (DESIGN.md, "Leaving").
///
/// # Safety
/// The contract of libc's function of the same name: called by C code
/// with its arguments.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __libc_start_main(
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: Option<extern "C" fn()>,
    fini: Option<extern "C" fn()>,
    rtld_fini: Option<extern "C" fn()>,
    stack_end: *mut c_void,
) -> c_int {
    let real: StartMain = std::mem::transmute(real().start_main.load(Ordering::Relaxed));
    REAL_MAIN.store(main as usize, Ordering::Relaxed);
    real(main_wrapper, argc, argv, init, fini, rtld_fini, stack_end)
}

/// The exec family, in the order of [`EXEC_REAL`].
const EXEC_NAMES: [&str; 9] = [
    "execve", "execv", "execvp", "execvpe", "execl", "execlp", "execle", "fexecve",
    // glibc 2.34+: without it the exec'd image's summary was the last one and
    // the calls made before the exec were lost.
    "execveat",
];

/// libc's exec functions, filled by [`real`].
static EXEC_REAL: [AtomicUsize; 9] = [const { AtomicUsize::new(0) }; 9];

/// Runs before the process image is replaced: the report gets its summary
/// (CONFIG.md: "a summary line is also written … before `exec`"). Keeps
/// every register the exec call was given; the exec functions are variadic
/// or take pointers only, so no vector register carries an argument.
extern "C" fn before_exec() {
    real();
    crate::runtime::before_exec();
}

/// Defines an exec-family interposer: save the argument registers, run
/// [`before_exec`], restore them and jump to libc's function (the variadic
/// ones included, whose arguments are never touched).
macro_rules! exec_interposer {
    ($name:ident, $idx:expr) => {
        #[doc = concat!("`", stringify!($name), "`: writes DDL's summary, then libc's `", stringify!($name), "`.")]
        ///
        /// # Safety
        /// The contract of libc's function of the same name: called by C code
        /// with its arguments.
        #[unsafe(naked)]
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name() {
            std::arch::naked_asm!(
                "push rdi", "push rsi", "push rdx", "push rcx", "push r8", "push r9", "push rax",
                "call {hook}",
                "pop rax", "pop r9", "pop r8", "pop rcx", "pop rdx", "pop rsi", "pop rdi",
                "jmp qword ptr [rip + {real} + {off}]",
                hook = sym before_exec,
                real = sym EXEC_REAL,
                off = const $idx * 8,
            )
        }
    };
}

exec_interposer!(execve, 0);
exec_interposer!(execv, 1);
exec_interposer!(execvp, 2);
exec_interposer!(execvpe, 3);
exec_interposer!(execl, 4);
exec_interposer!(execlp, 5);
exec_interposer!(execle, 6);
exec_interposer!(fexecve, 7);
exec_interposer!(execveat, 8);

/// `dladdr`: a wrapper's address (what `dlsym` answers for a boundary
/// function) is described as the old function it stands for, with
/// `dli_saddr` the wrapper itself, so `info.dli_saddr == ptr` still holds.
///
/// # Safety
/// The contract of libc's function of the same name: called by C code
/// with its arguments.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dladdr(addr: *const c_void, info: *mut libc::Dl_info) -> c_int {
    let f = real().dladdr.load(Ordering::Relaxed);
    let f: extern "C" fn(*const c_void, *mut libc::Dl_info) -> c_int = std::mem::transmute(f);
    match crate::wrapper::wrapper_at(addr as usize) {
        Some((ctx, thunk)) if !info.is_null() => {
            let target = ctx.target.load(Ordering::Relaxed) as usize;
            let r = f((target + (addr as usize - thunk)) as *const c_void, info);
            if r != 0 && (*info).dli_saddr as usize == target {
                (*info).dli_saddr = thunk as *mut c_void;
            }
            r
        }
        _ => f(addr, info),
    }
}

/// `dladdr1`: as [`dladdr`], with the extra information of the old function.
///
/// # Safety
/// The contract of libc's function of the same name: called by C code
/// with its arguments.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dladdr1(
    addr: *const c_void,
    info: *mut libc::Dl_info,
    extra: *mut *mut c_void,
    flags: c_int,
) -> c_int {
    let f = real().dladdr1.load(Ordering::Relaxed);
    let f: extern "C" fn(*const c_void, *mut libc::Dl_info, *mut *mut c_void, c_int) -> c_int =
        std::mem::transmute(f);
    match crate::wrapper::wrapper_at(addr as usize) {
        Some((ctx, thunk)) if !info.is_null() => {
            let target = ctx.target.load(Ordering::Relaxed) as usize;
            let r = f(
                (target + (addr as usize - thunk)) as *const c_void,
                info,
                extra,
                flags,
            );
            if r != 0 && (*info).dli_saddr as usize == target {
                (*info).dli_saddr = thunk as *mut c_void;
            }
            r
        }
        _ => f(addr, info, extra, flags),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `_dl_find_object` (libc has it here) finds the object `dladdr` names,
    /// for libc's code, this test binary's and a data address, and no
    /// object for an address nothing is mapped at.
    #[test]
    fn object_start_is_dladdrs_base() {
        assert_ne!(
            real().find_object.load(Ordering::Relaxed),
            0,
            "glibc >= 2.35"
        );
        let addrs = [
            libc::strlen as *const () as usize,
            object_start as *const () as usize,
            std::ptr::addr_of!(REAL) as usize,
        ];
        for a in addrs {
            // SAFETY: plain data, all-zero valid; dladdr only reads ld.so's tables.
            let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
            assert_ne!(unsafe { libc::dladdr(a as *const c_void, &mut info) }, 0);
            assert_eq!(object_start(a), info.dli_fbase as usize, "{a:#x}");
        }
        assert_eq!(object_start(16), 0);
    }
}
