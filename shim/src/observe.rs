//! Observing the old build's outgoing calls (issue 4, item 5: "the old
//! build's outgoing calls through the same functions are captured too
//! (observed, performed as usual), and the arbiter compares the two
//! sequences").
//!
//! [`patch_old_build`] points the old build's own `JUMP_SLOT` and
//! `GLOB_DAT` references (base namespace) to the functions of
//! [`crate::contain::intercepted`] that have an observer (the table's
//! `observer` column: one table, in `contain.rs`) at that observer. An
//! observer always performs the real call, exactly as without DDL: the
//! function the slot held (resolved the way ld.so would when the slot was
//! still lazy), with the caller's arguments, its return value and `errno`.
//! Only when a mirrored call's old function is running on the calling
//! thread (`wrapper::mirrored_in_flight`) does it first record the call,
//! with the target naming and the record fields of the new build's
//! replacement (`contain.rs`): function name, target (`fd:N`, `stdout`/
//! `stderr` for the process's streams, a path, `pid:N`…), the first bytes,
//! the total length and the FNV-1a hash. So a `printf` of the old build and
//! a `printf` of the new build give the same record (`printf`, `stdout`,
//! the formatted text), and a write to a descriptor the build opened for
//! write is named by the path it gave on both sides.
//!
//! The records go to a per-thread list: `runtime::before_call` discards
//! stale ones when a mirrored call starts ([`discard_observed`]),
//! `runtime::after_call`/`after_throw` drain them ([`take_observed`]) into
//! the primary's `Outcome::outgoing` when [`patched`] (else it stays `None`
//! and the arbiter compares nothing).
//!
//! The variadic functions are observed in C (`csrc/observe.c`): the printf
//! and syslog families format the text with libddl's `vsnprintf` (as the
//! replacement does) and then call libddl's libc's `v` form (`vprintf`,
//! `__vfprintf_chk`…): the same code glibc's own `printf` runs. Their slots
//! are patched only when they hold libc's definition (an application's own
//! `printf` is left alone). `open`/`openat` call the real function with
//! the mode.
//!
//! Limits:
//! - Calls libc makes internally (`printf` reaching `write`, `exit`
//!   flushing) are not seen: the same limit as the shadow side.
//! - Not observed: the exits, `sigprocmask`/`pthread_sigmask`/
//!   `sigaltstack` (the shadow records nothing for them either), `vfork`
//!   (a wrapper frame cannot survive the child's return), `execl`/
//!   `execlp`/`execle` (their variadic arguments cannot be forwarded), and
//!   the names of `sandbox.intercept`.
//! - Only the thread of the mirrored call is observed: threads the old
//!   build starts are not.
//! - A format with `%n` stores its count twice (the text is formatted once
//!   for the record, once by the real call).
//! - A `GLOB_DAT` slot pointed at an observer changes `&write` as the old
//!   build sees it (the observer's address).
//! - A record made from a signal handler that interrupted the recording
//!   is skipped (a per-thread reentrancy flag).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use arbiter::compare::Outgoing;

use crate::contain::{
    bad_signal, iov_ok, mode_writes, opens_for_write, remember_devnull, Capture, SigName, Target,
    MAX_PENDING,
};
use crate::elf::LoadedObject;
use crate::interpose::{real_dlclose, real_dlopen, real_dlsym, real_dlvsym};
use crate::rebind::{read_slot, write_slot};

// ---------------------------------------------------------------------------
// The per-thread list.

thread_local! {
    static OBSERVED: RefCell<Vec<Outgoing>> = const { RefCell::new(Vec::new()) };
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

#[cfg(test)]
thread_local! {
    /// Tests: record as if a mirrored call were in flight on this thread.
    static FORCE: Cell<bool> = const { Cell::new(false) };
}

static DROPPED: AtomicU64 = AtomicU64::new(0);
static PATCHED: AtomicBool = AtomicBool::new(false);
/// The old build last patched: (link_map, load address, one patched slot
/// and the observer it holds; 0, 0 when none was patched). A new
/// incarnation loaded at the same addresses has that slot unpatched.
type Sentinel = (usize, usize, usize, usize);
static PATCHED_AT: Mutex<Option<Sentinel>> = Mutex::new(None);

/// Drains the calling thread's observed calls of the old build, oldest first.
pub fn take_observed() -> Vec<Outgoing> {
    OBSERVED
        .try_with(|c| std::mem::take(&mut *c.borrow_mut()))
        .unwrap_or_default()
}

/// Drops the calling thread's observed calls (stale ones, made while a
/// mirrored call that never reached its post hook was still marked in
/// flight): called when a mirrored call starts.
pub fn discard_observed() {
    let _ = OBSERVED.try_with(|c| {
        if let Ok(mut v) = c.try_borrow_mut() {
            v.clear();
        }
    });
}

/// Is the old build's side observed: its slots patched (by
/// [`patch_old_build`]) while the new build's namespace is contained?
/// When false the primary's `outgoing` stays `None`.
pub fn patched() -> bool {
    PATCHED.load(Ordering::Acquire)
}

/// The flag [`patched`] reads, for the wrapper's assembly ring path
/// (which records it in each slot).
pub fn patched_flag() -> &'static AtomicBool {
    &PATCHED
}

/// Observed calls not recorded because the thread's list was full
/// ([`MAX_PENDING`]).
pub fn observed_dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// While a record is being made on this thread: restores `errno` and the
/// reentrancy flag on drop.
struct Guard {
    errno: c_int,
}

impl Guard {
    /// A guard when this call is to be recorded: a mirrored call is in
    /// flight on this thread and no record is being made already.
    fn enter() -> Option<Guard> {
        let on = crate::wrapper::mirrored_in_flight();
        #[cfg(test)]
        let on = on || FORCE.with(|f| f.get());
        if !on {
            return None;
        }
        let free = RECORDING.try_with(|r| !r.replace(true)).unwrap_or(false);
        // SAFETY: this thread's errno.
        free.then(|| Guard {
            errno: unsafe { *libc::__errno_location() },
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = RECORDING.try_with(|r| r.set(false));
        // SAFETY: this thread's errno.
        unsafe { *libc::__errno_location() = self.errno };
    }
}

fn commit(function: &str, target: &Target, cap: &Capture) {
    let rec = Outgoing {
        function: function.to_string(),
        target: target.describe(),
        len: cap.total,
        hash: cap.hash,
        head: cap.kept[..cap.kept_len].to_vec(),
    };
    crate::wrapper::note_observed();
    let _ = OBSERVED.try_with(|c| {
        let mut v = c.borrow_mut();
        if v.len() < MAX_PENDING {
            v.push(rec);
        } else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// # Safety
/// `p` readable for `n` bytes (or NULL with `n` 0).
unsafe fn data(function: &str, target: Target, p: *const c_void, n: usize) {
    let mut cap = Capture::new();
    cap.feed(p as *const u8, n);
    commit(function, &target, &cap);
}

fn detail(function: &str, target: Target, args: std::fmt::Arguments) {
    let mut cap = Capture::new();
    cap.text(args);
    commit(function, &target, &cap);
}

/// # Safety
/// `iov` points to `cnt` iovecs with readable buffers.
unsafe fn iov(function: &str, target: Target, iov: *const libc::iovec, cnt: usize) {
    let mut cap = Capture::new();
    for i in 0..cnt {
        let v = &*iov.add(i);
        cap.feed(v.iov_base as *const u8, v.iov_len);
    }
    commit(function, &target, &cap);
}

extern "C" {
    static stdout: *mut libc::FILE;
    static stderr: *mut libc::FILE;
}

/// A `FILE *` of the base namespace: `stdout`/`stderr` when it is the
/// process's, else as `contain` names a stream (its descriptor).
///
/// # Safety
/// `fp` NULL or a glibc `FILE`.
unsafe fn stream(fp: *mut c_void) -> Target {
    if !fp.is_null() && fp == stdout as *mut c_void {
        return Target::Named("stdout");
    }
    if !fp.is_null() && fp == stderr as *mut c_void {
        return Target::Named("stderr");
    }
    Target::stream(fp)
}

/// Records an open for write (after the real call gave `fd`): the path,
/// `flags=… mode=…`; the descriptor is named by that path from now on.
///
/// # Safety
/// `path` a C string.
unsafe fn opened(
    function: &str,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
    fd: c_int,
) {
    if !opens_for_write(flags) {
        return;
    }
    let target = Target::path(dirfd, path);
    if fd >= 0 {
        remember_devnull(fd, &target);
    }
    detail(
        function,
        target,
        format_args!("flags={flags:#o} mode={mode:#o}"),
    );
}

/// Records a `fopen`/`freopen` for write (after the real call gave `fp`).
///
/// # Safety
/// `path` NULL or a C string, `mode` a C string, `fp` NULL or a `FILE`.
unsafe fn fopened(function: &str, path: *const c_char, mode: *const c_char, fp: *mut c_void) {
    if path.is_null() || mode.is_null() || !mode_writes(CStr::from_ptr(mode).to_bytes()) {
        return;
    }
    let target = Target::path(libc::AT_FDCWD, path);
    if !fp.is_null() {
        let fd = libc::fileno(fp as *mut libc::FILE);
        if fd >= 0 {
            remember_devnull(fd, &target);
        }
    }
    let mut cap = Capture::new();
    cap.feed_bytes(b"mode=");
    cap.feed_cstr(mode);
    commit(function, &target, &cap);
}

/// The record of a signal disposition change, as `contain` makes it.
fn signal_set(function: &str, sig: c_int, handler: libc::sighandler_t, flags: c_int) {
    let what = match handler {
        libc::SIG_DFL => "SIG_DFL",
        libc::SIG_IGN => "SIG_IGN",
        _ => "handler",
    };
    detail(
        function,
        Target::Signal(sig),
        format_args!("{what} flags={flags:#x}"),
    );
}

fn kill_rec(function: &str, kind: &'static str, id: i64, sig: c_int) {
    if sig == 0 || !(1..65).contains(&sig) {
        return; // a probe (performed on both sides), or EINVAL
    }
    detail(
        function,
        Target::Id(kind, id),
        format_args!("{}", SigName(sig)),
    );
}

/// # Safety
/// `argv` NULL or a NULL-terminated array of C strings.
unsafe fn exec_rec(function: &str, target: Target, argv: *const *const c_char) {
    let mut cap = Capture::new();
    if !argv.is_null() {
        let mut i = 0;
        while !(*argv.add(i)).is_null() && i < 4096 {
            if i > 0 {
                cap.feed_bytes(b" ");
            }
            cap.feed_cstr(*argv.add(i));
            i += 1;
        }
    }
    commit(function, &target, &cap);
}

// ---------------------------------------------------------------------------
// The observers. Each is a module with the real function's address (`REAL`,
// filled by `patch_old_build` before the slot is written) and `f`, the
// observer with the C signature of the function it observes: it records
// (when `Guard::enter` says so, with errno kept), then tail-calls the real
// function with the same arguments.
//
// Safety (all of them): only ever reached through a slot of the old build
// that `patch_old_build` pointed at it, by a caller passing what libc's
// function expects; `REAL` is then that function.

/// The table's observer of module `$m` of this file.
macro_rules! ob {
    ($m:ident) => {
        $crate::contain::Observer {
            function: $crate::observe::$m::f as *const () as usize,
            real: Some(&$crate::observe::$m::REAL),
        }
    };
}
pub(crate) use ob;

/// The table's observer `$f` of `csrc/observe.c` (and its real function's
/// cell `$r`, when it has one).
macro_rules! obc {
    ($f:ident) => {
        $crate::contain::Observer {
            function: $crate::observe::c::$f as *const () as usize,
            real: None,
        }
    };
    ($f:ident, $r:ident) => {
        $crate::contain::Observer {
            function: $crate::observe::c::$f as *const () as usize,
            // SAFETY: a word of csrc/observe.c, never freed.
            real: Some(unsafe { &$crate::observe::c::$r }),
        }
    };
}
pub(crate) use obc;

macro_rules! observed {
    ($m:ident, ($($a:ident : $t:ty),*) -> $r:ty, $rec:block) => {
        #[allow(non_snake_case, clippy::missing_safety_doc)]
        #[doc = concat!("The observer of `", stringify!($m), "` (see the module doc).")]
        pub mod $m {
            #[allow(unused_imports)]
            use super::*;
            /// The real function (set before any slot points at [`f`]).
            pub static REAL: AtomicUsize = AtomicUsize::new(0);
            /// The observer.
            ///
            /// # Safety
            /// Called as the real function would be.
            #[allow(unused_unsafe, clippy::redundant_closure_call)]
            pub unsafe extern "C" fn f($($a: $t),*) -> $r {
                if let Some(_g) = Guard::enter() {
                    // SAFETY: the caller's own arguments, as the real
                    // function would read them.
                    unsafe { $rec }
                }
                // SAFETY: REAL is the function this slot held.
                let real: unsafe extern "C" fn($($t),*) -> $r =
                    unsafe { std::mem::transmute(REAL.load(Ordering::Relaxed)) };
                unsafe { real($($a),*) }
            }
        }
    };
}

/// An observer whose record comes after the real call (`$post` sees its
/// result as `ret`).
macro_rules! observed_after {
    ($m:ident, ($($a:ident : $t:ty),*) -> $r:ty, |$ret:ident| $post:block) => {
        #[allow(non_snake_case, clippy::missing_safety_doc)]
        #[doc = concat!("The observer of `", stringify!($m), "` (see the module doc).")]
        pub mod $m {
            #[allow(unused_imports)]
            use super::*;
            /// The real function (set before any slot points at [`f`]).
            pub static REAL: AtomicUsize = AtomicUsize::new(0);
            /// The observer.
            ///
            /// # Safety
            /// Called as the real function would be.
            #[allow(unused_unsafe)]
            pub unsafe extern "C" fn f($($a: $t),*) -> $r {
                // SAFETY: REAL is the function this slot held.
                let real: unsafe extern "C" fn($($t),*) -> $r =
                    unsafe { std::mem::transmute(REAL.load(Ordering::Relaxed)) };
                let $ret = unsafe { real($($a),*) };
                if let Some(_g) = Guard::enter() {
                    // SAFETY: the caller's own arguments, as the real
                    // function read them.
                    unsafe { $post }
                }
                $ret
            }
        }
    };
}

// Writes.
observed!(o_write, (fd: c_int, buf: *const c_void, n: usize) -> isize, {
    data("write", Target::Fd(fd), buf, n)
});
observed!(o_pwrite, (fd: c_int, buf: *const c_void, n: usize, off: i64) -> isize, {
    let _ = off;
    data("pwrite", Target::Fd(fd), buf, n)
});
observed!(o_pwrite64, (fd: c_int, buf: *const c_void, n: usize, off: i64) -> isize, {
    let _ = off;
    data("pwrite64", Target::Fd(fd), buf, n)
});
macro_rules! writev_obs {
    ($m:ident, $name:literal $(, $x:ident : $t:ty)*) => {
        observed!($m, (fd: c_int, v: *const libc::iovec, cnt: c_int $(, $x: $t)*) -> isize, {
            $(let _ = $x;)*
            if iov_ok(cnt) {
                iov($name, Target::Fd(fd), v, cnt as usize)
            }
        });
    };
}
writev_obs!(o_writev, "writev");
writev_obs!(o_pwritev, "pwritev", off: i64);
writev_obs!(o_pwritev64, "pwritev64", off: i64);
writev_obs!(o_pwritev2, "pwritev2", off: i64, fl: c_int);
writev_obs!(o_pwritev64v2, "pwritev64v2", off: i64, fl: c_int);
observed!(o_send, (fd: c_int, buf: *const c_void, n: usize, fl: c_int) -> isize, {
    let _ = fl;
    data("send", Target::Fd(fd), buf, n)
});
observed!(o_sendto, (fd: c_int, buf: *const c_void, n: usize, fl: c_int, a: *const c_void, al: u32) -> isize, {
    let _ = (fl, a, al);
    data("sendto", Target::Fd(fd), buf, n)
});
observed!(o_sendmsg, (fd: c_int, msg: *const libc::msghdr, fl: c_int) -> isize, {
    let _ = fl;
    if !msg.is_null() {
        iov("sendmsg", Target::Fd(fd), (*msg).msg_iov, (*msg).msg_iovlen)
    }
});
observed!(o_sendmmsg, (fd: c_int, vec: *mut libc::mmsghdr, vlen: c_uint, fl: c_int) -> c_int, {
    let _ = fl;
    for i in 0..vlen as usize {
        let h = &*vec.add(i);
        iov("sendmmsg", Target::Fd(fd), h.msg_hdr.msg_iov, h.msg_hdr.msg_iovlen);
    }
});
macro_rules! fwrite_obs {
    ($m:ident, $name:literal) => {
        observed!($m, (p: *const c_void, size: usize, nmemb: usize, fp: *mut c_void) -> usize, {
            if size != 0 && nmemb != 0 {
                data($name, stream(fp), p, size.saturating_mul(nmemb))
            }
        });
    };
}
fwrite_obs!(o_fwrite, "fwrite");
fwrite_obs!(o_fwrite_unlocked, "fwrite_unlocked");
macro_rules! fputs_obs {
    ($m:ident, $name:literal) => {
        observed!($m, (s: *const c_char, fp: *mut c_void) -> c_int, {
            data($name, stream(fp), s as *const c_void, libc::strlen(s))
        });
    };
}
fputs_obs!(o_fputs, "fputs");
fputs_obs!(o_fputs_unlocked, "fputs_unlocked");
macro_rules! fputc_obs {
    ($m:ident, $name:literal) => {
        observed!($m, (ch: c_int, fp: *mut c_void) -> c_int, {
            let b = ch as u8;
            data($name, stream(fp), &b as *const u8 as *const c_void, 1)
        });
    };
}
fputc_obs!(o_fputc, "fputc");
fputc_obs!(o_fputc_unlocked, "fputc_unlocked");
fputc_obs!(o_putc, "putc");
fputc_obs!(o_putc_unlocked, "putc_unlocked");
fputc_obs!(o__IO_putc, "_IO_putc");
macro_rules! putchar_obs {
    ($m:ident, $name:literal) => {
        observed!($m, (ch: c_int) -> c_int, {
            let b = ch as u8;
            data($name, Target::Named("stdout"), &b as *const u8 as *const c_void, 1)
        });
    };
}
putchar_obs!(o_putchar, "putchar");
putchar_obs!(o_putchar_unlocked, "putchar_unlocked");
observed!(o_puts, (s: *const c_char) -> c_int, {
    let mut cap = Capture::new();
    cap.feed(s as *const u8, libc::strlen(s));
    cap.feed_bytes(b"\n");
    commit("puts", &Target::Named("stdout"), &cap)
});
observed!(o_perror, (s: *const c_char) -> (), {
    let e = *libc::__errno_location();
    let mut cap = Capture::new();
    if !s.is_null() && *s != 0 {
        cap.feed_cstr(s);
        cap.feed_bytes(b": ");
    }
    let mut buf = [0 as c_char; 256];
    if libc::strerror_r(e, buf.as_mut_ptr(), buf.len()) == 0 {
        cap.feed_cstr(buf.as_ptr());
    } else {
        cap.text(format_args!("Unknown error {e}"));
    }
    cap.feed_bytes(b"\n");
    commit("perror", &Target::Named("stderr"), &cap)
});

// The file system.
observed_after!(o___open_2, (path: *const c_char, flags: c_int) -> c_int, |fd| {
    opened("__open_2", libc::AT_FDCWD, path, flags, 0, fd)
});
observed_after!(o___open64_2, (path: *const c_char, flags: c_int) -> c_int, |fd| {
    opened("__open64_2", libc::AT_FDCWD, path, flags, 0, fd)
});
observed_after!(o___openat_2, (dirfd: c_int, path: *const c_char, flags: c_int) -> c_int, |fd| {
    opened("__openat_2", dirfd, path, flags, 0, fd)
});
observed_after!(o___openat64_2, (dirfd: c_int, path: *const c_char, flags: c_int) -> c_int, |fd| {
    opened("__openat64_2", dirfd, path, flags, 0, fd)
});
observed_after!(o_creat, (path: *const c_char, mode: c_uint) -> c_int, |fd| {
    opened("creat", libc::AT_FDCWD, path, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, mode, fd)
});
observed_after!(o_creat64, (path: *const c_char, mode: c_uint) -> c_int, |fd| {
    opened("creat64", libc::AT_FDCWD, path, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, mode, fd)
});
observed_after!(o_fopen, (path: *const c_char, mode: *const c_char) -> *mut c_void, |fp| {
    fopened("fopen", path, mode, fp)
});
observed_after!(o_fopen64, (path: *const c_char, mode: *const c_char) -> *mut c_void, |fp| {
    fopened("fopen64", path, mode, fp)
});
observed_after!(o_freopen, (path: *const c_char, mode: *const c_char, s: *mut c_void) -> *mut c_void, |fp| {
    let _ = s;
    fopened("freopen", path, mode, fp)
});
observed_after!(o_freopen64, (path: *const c_char, mode: *const c_char, s: *mut c_void) -> *mut c_void, |fp| {
    let _ = s;
    fopened("freopen64", path, mode, fp)
});
observed!(o_unlink, (path: *const c_char) -> c_int, {
    data("unlink", Target::path(libc::AT_FDCWD, path), std::ptr::null(), 0)
});
observed!(o_unlinkat, (dirfd: c_int, path: *const c_char, flags: c_int) -> c_int, {
    detail("unlinkat", Target::path(dirfd, path), format_args!("flags={flags:#x}"))
});
observed!(o_remove, (path: *const c_char) -> c_int, {
    data("remove", Target::path(libc::AT_FDCWD, path), std::ptr::null(), 0)
});
/// # Safety
/// Both paths C strings.
unsafe fn rename_rec(function: &str, od: c_int, old: *const c_char, nd: c_int, new: *const c_char) {
    let mut cap = Capture::new();
    if nd != libc::AT_FDCWD && !new.is_null() && *new != b'/' as c_char {
        cap.text(format_args!("fd:{nd}/"));
    }
    cap.feed_cstr(new);
    commit(function, &Target::path(od, old), &cap);
}
observed!(o_rename, (old: *const c_char, new: *const c_char) -> c_int, {
    rename_rec("rename", libc::AT_FDCWD, old, libc::AT_FDCWD, new)
});
observed!(o_renameat, (od: c_int, old: *const c_char, nd: c_int, new: *const c_char) -> c_int, {
    rename_rec("renameat", od, old, nd, new)
});
observed!(o_renameat2, (od: c_int, old: *const c_char, nd: c_int, new: *const c_char, fl: c_uint) -> c_int, {
    let _ = fl;
    rename_rec("renameat2", od, old, nd, new)
});
observed!(o_truncate, (path: *const c_char, len: i64) -> c_int, {
    detail("truncate", Target::path(libc::AT_FDCWD, path), format_args!("length={len}"))
});
observed!(o_truncate64, (path: *const c_char, len: i64) -> c_int, {
    detail("truncate64", Target::path(libc::AT_FDCWD, path), format_args!("length={len}"))
});
observed!(o_ftruncate, (fd: c_int, len: i64) -> c_int, {
    detail("ftruncate", Target::Fd(fd), format_args!("length={len}"))
});
observed!(o_ftruncate64, (fd: c_int, len: i64) -> c_int, {
    detail("ftruncate64", Target::Fd(fd), format_args!("length={len}"))
});
observed!(o_mkdir, (path: *const c_char, mode: c_uint) -> c_int, {
    let _ = mode;
    data("mkdir", Target::path(libc::AT_FDCWD, path), std::ptr::null(), 0)
});
observed!(o_rmdir, (path: *const c_char) -> c_int, {
    data("rmdir", Target::path(libc::AT_FDCWD, path), std::ptr::null(), 0)
});
observed!(o_chmod, (path: *const c_char, mode: c_uint) -> c_int, {
    let _ = mode;
    data("chmod", Target::path(libc::AT_FDCWD, path), std::ptr::null(), 0)
});
observed!(o_chown, (path: *const c_char, uid: c_uint, gid: c_uint) -> c_int, {
    let _ = (uid, gid);
    data("chown", Target::path(libc::AT_FDCWD, path), std::ptr::null(), 0)
});
observed!(o_chdir, (path: *const c_char) -> c_int, {
    data("chdir", Target::path(libc::AT_FDCWD, path), std::ptr::null(), 0)
});
observed!(o_link, (a: *const c_char, b: *const c_char) -> c_int, {
    let mut cap = Capture::new();
    cap.feed_cstr(a);
    commit("link", &Target::path(libc::AT_FDCWD, b), &cap)
});
observed!(o_symlink, (a: *const c_char, b: *const c_char) -> c_int, {
    let mut cap = Capture::new();
    cap.feed_cstr(a);
    commit("symlink", &Target::path(libc::AT_FDCWD, b), &cap)
});

// Processes.
observed!(o_kill, (id: c_int, sig: c_int) -> c_int, { kill_rec("kill", "pid", id as i64, sig) });
observed!(o_killpg, (id: c_int, sig: c_int) -> c_int, { kill_rec("killpg", "pgrp", id as i64, sig) });
observed!(o_sigqueue, (pid: c_int, sig: c_int, val: usize) -> c_int, {
    let _ = val;
    kill_rec("sigqueue", "pid", pid as i64, sig)
});
observed!(o_tgkill, (tgid: c_int, tid: c_int, sig: c_int) -> c_int, {
    let _ = tgid;
    kill_rec("tgkill", "tid", tid as i64, sig)
});
observed!(o_fork, () -> c_int, { commit("fork", &Target::None, &Capture::new()) });
observed!(o__Fork, () -> c_int, { commit("_Fork", &Target::None, &Capture::new()) });
observed!(o_system, (cmd: *const c_char) -> c_int, {
    if !cmd.is_null() {
        let mut cap = Capture::new();
        cap.feed_cstr(cmd);
        commit("system", &Target::Named("sh"), &cap)
    }
});
observed!(o_popen, (cmd: *const c_char, ty: *const c_char) -> *mut c_void, {
    let _ = ty;
    let mut cap = Capture::new();
    cap.feed_cstr(cmd);
    commit("popen", &Target::Named("sh"), &cap)
});
macro_rules! exec_obs {
    ($m:ident, $name:literal $(, $x:ident : $t:ty)*) => {
        observed!($m, (path: *const c_char, argv: *const *const c_char $(, $x: $t)*) -> c_int, {
            $(let _ = $x;)*
            exec_rec($name, Target::path(libc::AT_FDCWD, path), argv)
        });
    };
}
exec_obs!(o_execv, "execv");
exec_obs!(o_execvp, "execvp");
exec_obs!(o_execve, "execve", envp: usize);
exec_obs!(o_execvpe, "execvpe", envp: usize);
observed!(o_fexecve, (fd: c_int, argv: *const *const c_char, envp: usize) -> c_int, {
    let _ = envp;
    exec_rec("fexecve", Target::Fd(fd), argv)
});
observed!(o_execveat, (dirfd: c_int, path: *const c_char, argv: *const *const c_char, envp: usize, fl: c_int) -> c_int, {
    let _ = (envp, fl);
    exec_rec("execveat", Target::path(dirfd, path), argv)
});
macro_rules! spawn_obs {
    ($m:ident, $name:literal) => {
        observed!($m, (pid: *mut libc::pid_t, path: *const c_char, fa: usize, attr: usize, argv: *const *const c_char, envp: usize) -> c_int, {
            let _ = (pid, fa, attr, envp);
            exec_rec($name, Target::path(libc::AT_FDCWD, path), argv)
        });
    };
}
spawn_obs!(o_posix_spawn, "posix_spawn");
spawn_obs!(o_posix_spawnp, "posix_spawnp");

// Signal dispositions.
macro_rules! sigaction_obs {
    ($m:ident, $name:literal) => {
        observed!($m, (sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int, {
            let _ = old;
            if !act.is_null() && !bad_signal(sig, true) {
                signal_set($name, sig, (*act).sa_sigaction, (*act).sa_flags)
            }
        });
    };
}
sigaction_obs!(o_sigaction, "sigaction");
sigaction_obs!(o___sigaction, "__sigaction");
macro_rules! signal_obs {
    ($m:ident, $name:literal, $flags:expr) => {
        observed!($m, (sig: c_int, h: libc::sighandler_t) -> libc::sighandler_t, {
            if !bad_signal(sig, true) && !($name == "sigset" && h == 2) {
                signal_set($name, sig, h, $flags)
            }
        });
    };
}
signal_obs!(o_signal, "signal", libc::SA_RESTART);
signal_obs!(o_bsd_signal, "bsd_signal", libc::SA_RESTART);
signal_obs!(
    o_sysv_signal,
    "sysv_signal",
    libc::SA_RESETHAND | libc::SA_NODEFER
);
signal_obs!(
    o___sysv_signal,
    "__sysv_signal",
    libc::SA_RESETHAND | libc::SA_NODEFER
);
signal_obs!(o_sigset, "sigset", 0);

// ---------------------------------------------------------------------------
// The C half (csrc/observe.c).

/// The observers written in C and their real functions' cells.
#[allow(missing_docs)]
pub mod c {
    use std::sync::atomic::AtomicUsize;
    extern "C" {
        pub fn ddl_observe_printf();
        pub fn ddl_observe_vprintf();
        pub fn ddl_observe_printf_chk();
        pub fn ddl_observe_vprintf_chk();
        pub fn ddl_observe_fprintf();
        pub fn ddl_observe_vfprintf();
        pub fn ddl_observe_fprintf_chk();
        pub fn ddl_observe_vfprintf_chk();
        pub fn ddl_observe_dprintf();
        pub fn ddl_observe_vdprintf();
        pub fn ddl_observe_dprintf_chk();
        pub fn ddl_observe_vdprintf_chk();
        pub fn ddl_observe_syslog();
        pub fn ddl_observe_vsyslog();
        pub fn ddl_observe_syslog_chk();
        pub fn ddl_observe_vsyslog_chk();
        pub fn ddl_observe_open();
        pub fn ddl_observe_open64();
        pub fn ddl_observe_openat();
        pub fn ddl_observe_openat64();
        pub static ddl_observe_real_open: AtomicUsize;
        pub static ddl_observe_real_open64: AtomicUsize;
        pub static ddl_observe_real_openat: AtomicUsize;
        pub static ddl_observe_real_openat64: AtomicUsize;
    }
}

#[repr(C)]
struct Hooks {
    observing: unsafe extern "C" fn() -> c_int,
    done: unsafe extern "C" fn(c_int),
    record: unsafe extern "C" fn(*const c_char, c_int, usize, *const c_char, usize),
    open: unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, c_uint, c_int),
}

extern "C" {
    fn ddl_observe_set_hooks(h: *const Hooks);
}

/// C: is this call recorded? Non-zero: the C side calls `done` after
/// recording (with the errno to put back).
unsafe extern "C" fn c_observing() -> c_int {
    match Guard::enter() {
        Some(g) => {
            std::mem::forget(g);
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn c_done(errno: c_int) {
    drop(Guard { errno });
}

unsafe extern "C" fn c_record(
    function: *const c_char,
    kind: c_int,
    target: usize,
    bytes: *const c_char,
    len: usize,
) {
    let t = match kind {
        crate::contain::TARGET_FD => Target::Fd(target as c_int),
        crate::contain::TARGET_STREAM => stream(target as *mut c_void),
        crate::contain::TARGET_STDOUT => Target::Named("stdout"),
        crate::contain::TARGET_SYSLOG => Target::Syslog(target as c_int),
        _ => Target::None,
    };
    data(
        crate::contain::static_name(function),
        t,
        bytes as *const c_void,
        len,
    );
}

unsafe extern "C" fn c_open(
    function: *const c_char,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
    fd: c_int,
) {
    opened(
        crate::contain::static_name(function),
        dirfd,
        path,
        flags,
        mode,
        fd,
    );
}

fn install_hooks() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let h = Hooks {
            observing: c_observing,
            done: c_done,
            record: c_record,
            open: c_open,
        };
        // SAFETY: the C side copies the struct.
        unsafe { ddl_observe_set_hooks(&h) };
    });
}

// ---------------------------------------------------------------------------
// Patching the old build.

/// Points the old build's own `JUMP_SLOT` and `GLOB_DAT` references to the
/// table's observed functions at their observers (see the module doc);
/// `None` (the old build is gone) marks the primary as not observed.
/// Called by `runtime::objects_changed_locked` (under the session's state
/// lock, the old build held open) after the old build's other slots.
/// Patches each incarnation of the old build once; does nothing while the
/// new build's namespace is not contained (the shadow would record
/// nothing to compare with).
pub fn patch_old_build(old: Option<&LoadedObject>) {
    let Some(obj) = old else {
        PATCHED.store(false, Ordering::Release);
        *PATCHED_AT.lock().unwrap_or_else(|e| e.into_inner()) = None;
        return;
    };
    let mut at = PATCHED_AT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((lmap, base, slot, value)) = *at {
        // SAFETY: the slot of the old build, held open by the caller.
        if (lmap, base) == (obj.lmap, obj.base)
            && (slot == 0 || unsafe { read_slot(slot) } == value)
        {
            return;
        }
    }
    if !crate::contain::namespace_patched() {
        PATCHED.store(false, Ordering::Release);
        return;
    }
    install_hooks();
    match patch_object(obj) {
        Ok((n, sentinel)) => {
            crate::runtime::log_info(&format!("{}: {n} slots observed", obj.short_name()));
            *at = Some((obj.lmap, obj.base, sentinel.0, sentinel.1));
            PATCHED.store(true, Ordering::Release);
        }
        Err(e) => {
            crate::runtime::log_info(&format!(
                "the old build's outgoing calls are not observed: {e}"
            ));
            PATCHED.store(false, Ordering::Release);
        }
    }
}

/// Patches `obj`'s slots; returns how many point at an observer now, and
/// one of them with its observer ((0, 0) when none).
pub(crate) fn patch_object(obj: &LoadedObject) -> Result<(usize, (usize, usize)), String> {
    let table: HashMap<&'static str, crate::contain::Observer> = crate::contain::intercepted()
        .iter()
        .filter_map(|e| e.observer.map(|o| (e.name, o)))
        .collect();
    let wanted = |n: &str| table.contains_key(n);
    let names = crate::elf::NameFilter::new(table.keys().copied(), &wanted);
    let info = crate::elf::object_info(obj, &names)?;
    let libc_h = {
        let h = real_dlopen(c"libc.so.6", libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if h.is_null() {
            return Err("libc.so.6 is not loaded".into());
        }
        h
    };
    let mut n = 0;
    let mut sentinel = (0, 0);
    for slot in &info.slots {
        use goblin::elf::reloc::{R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT};
        if slot.r_type != R_X86_64_JUMP_SLOT && slot.r_type != R_X86_64_GLOB_DAT {
            continue;
        }
        let Some(o) = table.get(slot.name.as_str()) else {
            continue;
        };
        // SAFETY: a relocated slot of the old build, held open by the caller.
        let cur = unsafe { read_slot(slot.addr) };
        if cur == o.function {
            n += 1;
            sentinel = (slot.addr, o.function);
            continue;
        }
        if cur == 0 {
            continue;
        }
        let Ok(name) = CString::new(slot.name.as_str()) else {
            continue;
        };
        let version = slot.version.as_deref().and_then(|v| CString::new(v).ok());
        let lookup = |h: *mut c_void| match &version {
            Some(v) => match real_dlvsym(h, &name, v) {
                0 => real_dlsym(h, &name),
                r => r,
            },
            None => real_dlsym(h, &name),
        };
        // A lazy slot not resolved yet points into the object (its PLT):
        // resolve it as ld.so would (the global scope).
        let real = if cur >= info.span.0 && cur < info.span.1 {
            lookup(libc::RTLD_DEFAULT)
        } else {
            cur
        };
        if real == 0 {
            continue;
        }
        match o.real {
            Some(cell) => {
                let had = cell.load(Ordering::Acquire);
                if had == 0 {
                    cell.store(real, Ordering::Release);
                } else if had != real {
                    crate::runtime::log_info(&format!(
                        "{}: {} resolves to {real:#x}, not {had:#x}: not observed",
                        obj.short_name(),
                        slot.name
                    ));
                    continue;
                }
            }
            // Observed through libddl's own libc: only libc's definition.
            None if real != lookup(libc_h) => continue,
            None => {}
        }
        // SAFETY: as above; RELRO is lifted for the write only.
        if let Err(e) = unsafe { write_slot(slot.addr, o.function, info.relro) } {
            real_dlclose(libc_h);
            return Err(e);
        }
        n += 1;
        sentinel = (slot.addr, o.function);
    }
    real_dlclose(libc_h);
    Ok((n, sentinel))
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
