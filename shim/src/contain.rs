//! Containing the new build's dealings with the outside world (issue 4,
//! items 2, 3 and 5): its exits, its signal functions and its side effects.
//!
//! [`patch_namespace`] walks every object of the new build's namespace
//! (`dlinfo(RTLD_DI_LINKMAP)`, then the `l_prev`/`l_next` chain; ld.so, the
//! vdso and libddl are skipped) and points each `JUMP_SLOT`, `GLOB_DAT` and
//! `R_X86_64_64` reference to one of the functions of [`intercepted`] (one
//! table, name → replacement → what it records and answers) at DDL's
//! replacement — but only a slot that holds that namespace's own libc
//! definition of the name (with the reference's symbol version), so a
//! definition of the build's own is left alone. Names from the config's
//! `sandbox.intercept` get a generic replacement: it records the call (the
//! name only) and returns 0.
//!
//! What a replacement does:
//! - **exits** (`exit`, `_exit`, `_Exit`, `quick_exit`, in C:
//!   `csrc/contain.c`): inside a sandboxed call, the call is abandoned and
//!   comes back as `CallFailure::Exit` (no `atexit` handler of any
//!   namespace runs); on any other thread (one the new build started, or a
//!   shadow thread outside a sandboxed call) the thread is parked for ever
//!   (`arbiter::sandbox::parked_threads` counts them): it never ends the
//!   process. Exits from inside libc (`error(1, …)`, whose `exit` is an
//!   internal call no slot sees) are caught by the seccomp backstop,
//!   `arbiter::sandbox::install_thread_backstop`.
//! - **signal functions**: `sigaction`/`signal` and kin are recorded in a
//!   per-namespace table and answered as if they succeeded (a later query
//!   returns what the new build set; a signal it never set reads as the
//!   process's disposition, or `SIG_DFL` for DDL's own signals); nothing is
//!   installed. `sigprocmask`/`pthread_sigmask` are performed with DDL's
//!   fault signals and timer signal taken out of the set. `sigaltstack` is
//!   answered from a per-thread record and never changes the thread's
//!   alternate stack (DDL's, which contains stack overflows).
//! - **threads** (`pthread_create`, `thrd_create`): started by the
//!   namespace's own `pthread_create` on the sandbox's trampoline
//!   (`arbiter::sandbox::spawn_thread`): a fault or exit in the start
//!   routine ends that thread only (`pthread_join` gets
//!   `PTHREAD_CANCELED`) and is recorded for the shadow
//!   (`arbiter::sandbox::take_thread_faults`); such a namespace is never
//!   unloaded ([`started_threads`]).
//! - **side effects**: not performed, recorded as the shadow's outgoing
//!   calls ([`take_outgoing`]), answered as if they succeeded: see the
//!   table. Opening for write (`O_WRONLY`/`O_RDWR`/`O_CREAT`/`O_TRUNC`/
//!   `O_APPEND`, or a mode with `w`, `a` or `+`) opens `/dev/null` instead
//!   (`O_WRONLY`, or `O_RDWR` when asked for; a stream through the
//!   namespace's own `fdopen`): the caller gets a working descriptor whose
//!   later writes are intercepted too and recorded under the path it gave
//!   (reads on it see an empty file). Opening for read is performed.
//!
//! Records: per call, the function, the target (`fd:N`; the path given to
//! an intercepted open, for a descriptor DDL gave out; `stdout`/`stderr`
//! for the namespace's streams; a `FILE *` as its descriptor; a path; a
//! process), the first [`KEEP`] bytes, the total length and a 64-bit
//! FNV-1a hash of all the bytes. They go to a list of the calling thread
//! (at most [`MAX_PENDING`] until drained; more are counted,
//! [`outgoing_dropped`]) when that thread is a prepared shadow thread
//! (`sandbox::thread_init`); elsewhere (threads the new build started) the
//! call is still intercepted, and only counted ([`outgoing_elsewhere`]).
//!
//! Which namespace a replacement serves (for `errno`, the signal table
//! and the namespace's own `fopen`/`fdopen`/`freopen`) is the namespace of
//! the function the thread's current sandboxed call called; outside one,
//! the namespace patched last.
//!
//! Replacements run libddl's code inside a sandboxed call, where a timeout
//! may jump out at any instruction: everything that allocates or locks runs
//! with the timer deferred (`sandbox::deferred`), and nothing that reads
//! the new build's memory does (a bad pointer faults there, outside DDL's
//! state, and the call comes back as a fault).
//!
//! Limits:
//! - Calls that libc makes internally are not intercepted: `printf`
//!   reaches libc's own `write` without a slot, so intercepting at the new
//!   build's reference is what counts. So libc's own messages (`assert`,
//!   `abort`'s, malloc's "double free detected", `error()`'s text) and a
//!   `fflush`/`fclose`/`exit` flushing a stream's buffer go to the
//!   namespace's streams: the namespace's `stdout`/`stderr` are silenced by
//!   `namespace::NewBuild::load`; a stream opened for write is on
//!   `/dev/null`. A stream the new build opened on an application
//!   descriptor (`fdopen`) and writes through macros (`putc_unlocked`) or
//!   wide functions (`fputws`, `wprintf`: not in the table) is not.
//! - Not intercepted: `close` (of the application's descriptors too),
//!   `dup2`/`dup3`, `fcntl`, `ioctl`, `mmap` of files, `clone`, `raise`,
//!   `pthread_kill`, `abort` (a contained fault), `pthread_exit`,
//!   `setuid` and kin, `umask`, `openlog`. `sandbox.intercept` adds any of
//!   them (generic: recorded by name, 0 returned).
//! - The new build's constructors run at `dlmopen`, before
//!   `patch_namespace`: what they do is not contained. Objects the new
//!   build loads later into its namespace are patched when
//!   `patch_namespace` runs again (it is idempotent).
//! - A replacement reading a bad buffer pointer faults (the call comes
//!   back as a fault) where the real call would fail with `EFAULT`.
//! - Text is formatted with libddl's libc (the application's locale).
//! - An `exit` through a patched slot leaves the call where it was; one
//!   through the backstop has run the namespace's `atexit` handlers and
//!   stream flushing first (it is libc's `exit`): either way the namespace
//!   should be treated as poisoned.
//! - At most [`MAX_EXTRA`] distinct `sandbox.intercept` names per process.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use arbiter::sandbox;

use crate::elf::{object_info, LinkMap, LoadedObject, NameFilter};
use crate::interpose::{real_dlsym, real_dlvsym};
use crate::rebind::{read_slot, write_slot};

/// Bytes kept per outgoing call (the rest is counted and hashed).
pub const KEEP: usize = 4096;
/// Records kept per thread until [`take_outgoing`] drains them.
pub const MAX_PENDING: usize = 1024;
/// Distinct `sandbox.intercept` names per process.
pub const MAX_EXTRA: usize = 64;
const MAX_NS: usize = 64;
const MAX_SPANS: usize = 64;
const NSIG: usize = 65;

/// One outgoing call of the new build: intercepted, not performed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The function called (`write`, `printf`, `unlink`…).
    pub function: &'static str,
    /// Its target: `fd:N`; the path given to an intercepted open (for a
    /// descriptor DDL gave out in its place); `stdout`/`stderr` (the
    /// namespace's streams, `printf`, `puts`); a path (`unlink`, `open`…;
    /// `fd:N/path` relative to a directory descriptor); `pid:N`, `pgrp:N`,
    /// `tid:N` (`kill` and kin); `syslog:PRI`; a signal name (`sigaction`);
    /// `sh` (`system`, `popen`); empty for a generic replacement.
    pub target: String,
    /// The first [`KEEP`] bytes: the data written; for other calls a
    /// detail (the new path of a `rename`, `flags=… mode=…` of an open,
    /// the signal of a `kill`, the arguments of an `exec`, the length of a
    /// `truncate`, the disposition set by a `sigaction`).
    pub bytes: Vec<u8>,
    /// The total length of that data (equal to `bytes.len()` up to [`KEEP`]).
    pub len: usize,
    /// 64-bit FNV-1a of all `len` bytes.
    pub hash: u64,
}

/// What kind of call an [`Intercepted`] function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Ends the process.
    Exit,
    /// Signal dispositions and masks.
    Signal,
    /// Writes data.
    Write,
    /// Changes the file system (or opens for write).
    File,
    /// Starts or signals processes.
    Process,
    /// Recorded by name only, answered 0.
    Generic,
    /// Starts a thread of the new build's (run contained, see
    /// `arbiter::sandbox::spawn_thread`).
    Thread,
}

/// One function of the table.
#[derive(Clone, Debug)]
pub struct Intercepted {
    /// Its name (as the new build's references spell it).
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// What is recorded.
    pub records: &'static str,
    /// What the caller gets.
    pub answer: &'static str,
    /// The replacement's address.
    pub replacement: usize,
    /// The old build's observer (`crate::observe`): performs the real call
    /// and, while a mirrored call is in flight on the thread, records it as
    /// the replacement would. `None`: not observed.
    pub observer: Option<Observer>,
}

/// The old build's side of an [`Intercepted`] function (`crate::observe`).
#[derive(Clone, Copy, Debug)]
pub struct Observer {
    /// The observer's address (what the old build's slot is pointed at).
    pub function: usize,
    /// Where the observer finds the real function: filled from the slot it
    /// replaces. `None`: the observer calls libddl's libc itself (the
    /// variadic printf and syslog families, through their `v` forms).
    pub real: Option<&'static AtomicUsize>,
}

impl Intercepted {
    fn observed(mut self, o: Observer) -> Intercepted {
        self.observer = Some(o);
        self
    }
}

/// What [`patch_namespace`] did.
#[derive(Clone, Debug, Default)]
pub struct ContainReport {
    /// The namespace (`Lmid_t`).
    pub lmid: i64,
    /// The objects whose slots were examined.
    pub objects: Vec<String>,
    /// (object, function) of every slot pointed at a replacement now.
    pub patched: Vec<(String, &'static str)>,
    /// Slots that already pointed at a replacement (an earlier run).
    pub already: usize,
    /// Objects or slots left alone, with the reason.
    pub skipped: Vec<String>,
}

// ---------------------------------------------------------------------------
// The C half (csrc/contain.c).

#[repr(C)]
struct Hooks {
    record: unsafe extern "C" fn(*const c_char, c_int, usize, *const c_char, usize),
    open: unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, c_uint) -> c_int,
}

pub(crate) const TARGET_FD: c_int = 0;
pub(crate) const TARGET_STREAM: c_int = 1;
pub(crate) const TARGET_STDOUT: c_int = 2;
pub(crate) const TARGET_SYSLOG: c_int = 3;

extern "C" {
    fn ddl_contain_set_hooks(h: *const Hooks);
    fn ddl_contain_exit(status: c_int) -> !;
    fn ddl_contain__exit(status: c_int) -> !;
    fn ddl_contain__Exit(status: c_int) -> !;
    fn ddl_contain_quick_exit(status: c_int) -> !;
    fn ddl_contain_printf();
    fn ddl_contain_vprintf();
    fn ddl_contain_printf_chk();
    fn ddl_contain_vprintf_chk();
    fn ddl_contain_fprintf();
    fn ddl_contain_vfprintf();
    fn ddl_contain_fprintf_chk();
    fn ddl_contain_vfprintf_chk();
    fn ddl_contain_dprintf();
    fn ddl_contain_vdprintf();
    fn ddl_contain_dprintf_chk();
    fn ddl_contain_vdprintf_chk();
    fn ddl_contain_syslog();
    fn ddl_contain_vsyslog();
    fn ddl_contain_syslog_chk();
    fn ddl_contain_vsyslog_chk();
    fn ddl_contain_open();
    fn ddl_contain_open64();
    fn ddl_contain_openat();
    fn ddl_contain_openat64();
}

// ---------------------------------------------------------------------------
// Namespaces.

/// One patched namespace. Never freed (a replacement on any thread may be
/// reading it); [`forget_namespace`] marks it dead.
struct Ns {
    handle: usize,
    lmid: libc::Lmid_t,
    alive: AtomicBool,
    spans: [(AtomicUsize, AtomicUsize); MAX_SPANS],
    nspans: AtomicUsize,
    errno_location: usize,
    stdout_var: usize,
    stderr_var: usize,
    fopen: usize,
    fopen64: usize,
    freopen: usize,
    freopen64: usize,
    fdopen: usize,
    /// The namespace's own `pthread_create` (the threads it starts).
    pthread_create: usize,
    /// Threads started through [`r_pthread_create`]/[`r_thrd_create`]:
    /// such a namespace is never unloaded ([`started_threads`]).
    threads: AtomicUsize,
    /// What the new build set with `sigaction`/`signal`, by signal. Locked
    /// only with the timer deferred.
    sig: Mutex<[Option<libc::sigaction>; NSIG]>,
}

impl Ns {
    fn contains(&self, addr: usize) -> bool {
        let n = self.nspans.load(Ordering::Acquire).min(MAX_SPANS);
        self.spans[..n]
            .iter()
            .any(|(s, e)| addr >= s.load(Ordering::Relaxed) && addr < e.load(Ordering::Relaxed))
    }

    fn add_span(&self, span: (usize, usize)) {
        let n = self.nspans.load(Ordering::Acquire);
        if self.spans[..n.min(MAX_SPANS)].iter().any(|(s, e)| {
            s.load(Ordering::Relaxed) == span.0 && e.load(Ordering::Relaxed) == span.1
        }) || n >= MAX_SPANS
        {
            return;
        }
        self.spans[n].0.store(span.0, Ordering::Relaxed);
        self.spans[n].1.store(span.1, Ordering::Relaxed);
        self.nspans.store(n + 1, Ordering::Release);
    }
}

static REGISTRY: [AtomicPtr<Ns>; MAX_NS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_NS];
static REG_LEN: AtomicUsize = AtomicUsize::new(0);
static PATCH_LOCK: Mutex<()> = Mutex::new(());
static FALLBACK_SIG: Mutex<[Option<libc::sigaction>; NSIG]> = Mutex::new([None; NSIG]);

fn live_namespaces() -> impl Iterator<Item = &'static Ns> {
    let n = REG_LEN.load(Ordering::Acquire).min(MAX_NS);
    (0..n).rev().filter_map(|i| {
        let p = REGISTRY[i].load(Ordering::Acquire);
        // SAFETY: entries are leaked boxes, never freed.
        (!p.is_null())
            .then(|| unsafe { &*p })
            .filter(|ns| ns.alive.load(Ordering::Acquire))
    })
}

/// The namespace the calling replacement serves (see the module doc).
fn current_ns() -> Option<&'static Ns> {
    let f = sandbox::current_fn();
    let mut last = None;
    for ns in live_namespaces() {
        if f != 0 && ns.contains(f) {
            return Some(ns);
        }
        if last.is_none() {
            last = Some(ns);
        }
    }
    last
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets `errno` as the caller (the new build) sees it: its namespace's.
fn set_errno(e: c_int) {
    if let Some(ns) = current_ns() {
        if ns.errno_location != 0 {
            // SAFETY: the namespace's own `__errno_location`.
            unsafe {
                let f: unsafe extern "C" fn() -> *mut c_int =
                    std::mem::transmute(ns.errno_location);
                *f() = e;
            }
        }
    }
    // SAFETY: libddl's own errno, on this thread.
    unsafe { *libc::__errno_location() = e };
}

/// The caller's `errno` (its namespace's).
fn caller_errno() -> c_int {
    if let Some(ns) = current_ns() {
        if ns.errno_location != 0 {
            // SAFETY: the namespace's own `__errno_location`.
            return unsafe {
                let f: unsafe extern "C" fn() -> *mut c_int =
                    std::mem::transmute(ns.errno_location);
                *f()
            };
        }
    }
    errno()
}

// ---------------------------------------------------------------------------
// Recording.

static STRAY: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static OUT: Cell<Vec<Outgoing>> = const { Cell::new(Vec::new()) };
    static ALTSTACK: Cell<(usize, c_int, usize)> = const { Cell::new((0, libc::SS_DISABLE, 0)) };
}

/// Drains the calling thread's outgoing calls, oldest first.
pub fn take_outgoing() -> Vec<Outgoing> {
    // Most calls record nothing: no deferral, no allocation then.
    let empty = OUT.try_with(|c| {
        let v = c.take();
        let empty = v.is_empty();
        c.set(v);
        empty
    });
    if empty.unwrap_or(true) {
        return Vec::new();
    }
    sandbox::deferred(|| OUT.try_with(|c| c.take()).unwrap_or_default())
}

/// Outgoing calls intercepted on threads that are not prepared shadow
/// threads (the new build's own): not recorded, only counted.
pub fn outgoing_elsewhere() -> u64 {
    STRAY.load(Ordering::Relaxed)
}

/// Outgoing calls not recorded because the thread's list was full
/// ([`MAX_PENDING`]).
pub fn outgoing_dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Does this thread record? Counts the call when not.
fn recording() -> bool {
    if sandbox::thread_state().prepared {
        true
    } else {
        STRAY.fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// The data of one call: the kept prefix, the length and the hash. Plain
/// old data on the stack: filled from the new build's memory outside any
/// deferred section.
pub(crate) struct Capture {
    pub(crate) kept: [u8; KEEP],
    pub(crate) kept_len: usize,
    pub(crate) total: usize,
    pub(crate) hash: u64,
}

impl Capture {
    pub(crate) fn new() -> Capture {
        Capture {
            kept: [0; KEEP],
            kept_len: 0,
            total: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    pub(crate) fn feed_bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.hash = (self.hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let n = s.len().min(KEEP - self.kept_len);
        self.kept[self.kept_len..self.kept_len + n].copy_from_slice(&s[..n]);
        self.kept_len += n;
        self.total += s.len();
    }

    /// # Safety
    /// `p` must be readable for `n` bytes (a fault is the call's fault).
    pub(crate) unsafe fn feed(&mut self, p: *const u8, n: usize) {
        if n == 0 || p.is_null() {
            return;
        }
        self.feed_bytes(std::slice::from_raw_parts(p, n));
    }

    /// # Safety
    /// `s` must be NULL or a C string.
    pub(crate) unsafe fn feed_cstr(&mut self, s: *const c_char) {
        if !s.is_null() {
            self.feed_bytes(CStr::from_ptr(s).to_bytes());
        }
    }

    pub(crate) fn text(&mut self, args: std::fmt::Arguments) {
        let mut t = StackText::new();
        let _ = t.write_fmt(args);
        self.feed_bytes(t.bytes());
    }
}

/// A small formatting buffer on the stack (no allocation).
struct StackText {
    buf: [u8; 256],
    len: usize,
}

impl StackText {
    fn new() -> StackText {
        StackText {
            buf: [0; 256],
            len: 0,
        }
    }
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Where an outgoing call went, as plain data (made into text later, in a
/// deferred section). Large on purpose: a path is copied onto the stack,
/// never into an allocation, outside the deferred section.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Target {
    None,
    Fd(c_int),
    Named(&'static str),
    Stream(usize),
    Path {
        dirfd: c_int,
        buf: [u8; KEEP],
        len: usize,
    },
    Id(&'static str, i64),
    Syslog(c_int),
    Signal(c_int),
}

impl Target {
    /// # Safety
    /// `p` must be NULL or a C string.
    pub(crate) unsafe fn path(dirfd: c_int, p: *const c_char) -> Target {
        let mut buf = [0u8; KEEP];
        let mut len = 0;
        if !p.is_null() {
            let s = CStr::from_ptr(p).to_bytes();
            len = s.len().min(KEEP);
            buf[..len].copy_from_slice(&s[..len]);
        }
        Target::Path { dirfd, buf, len }
    }

    /// A `FILE *` of the new build's namespace: `stdout`/`stderr` when it
    /// is one of a namespace's, else its descriptor.
    ///
    /// # Safety
    /// `fp` must be NULL or a glibc `FILE`.
    pub(crate) unsafe fn stream(fp: *mut c_void) -> Target {
        if fp.is_null() {
            return Target::Stream(0);
        }
        for ns in live_namespaces() {
            if ns.stdout_var != 0 && *(ns.stdout_var as *const usize) == fp as usize {
                return Target::Named("stdout");
            }
            if ns.stderr_var != 0 && *(ns.stderr_var as *const usize) == fp as usize {
                return Target::Named("stderr");
            }
        }
        // The namespace's libc is the same file as libddl's: the same FILE
        // layout, and fileno takes no lock.
        let fd = libc::fileno(fp as *mut libc::FILE);
        if fd >= 0 {
            Target::Fd(fd)
        } else {
            Target::Stream(fp as usize)
        }
    }

    /// The text of the target. Allocates and locks: deferred sections only.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::None => String::new(),
            Target::Fd(fd) => devnull_path(*fd).unwrap_or_else(|| format!("fd:{fd}")),
            Target::Named(s) => (*s).to_string(),
            Target::Stream(p) => format!("FILE:{p:#x}"),
            Target::Path { dirfd, buf, len } => {
                let p = String::from_utf8_lossy(&buf[..*len]).into_owned();
                if p.starts_with('/') || *dirfd == libc::AT_FDCWD {
                    p
                } else {
                    format!("fd:{dirfd}/{p}")
                }
            }
            Target::Id(kind, n) => format!("{kind}:{n}"),
            Target::Syslog(pri) => format!("syslog:{pri}"),
            Target::Signal(sig) => sandbox::signal_name(*sig),
        }
    }
}

/// Adds the record to the thread's list (timer deferred).
fn commit(function: &'static str, target: &Target, cap: &Capture) {
    sandbox::deferred(|| {
        let rec = Outgoing {
            function,
            target: target.describe(),
            bytes: cap.kept[..cap.kept_len].to_vec(),
            len: cap.total,
            hash: cap.hash,
        };
        let _ = OUT.try_with(|c| {
            let mut v = c.take();
            if v.len() < MAX_PENDING {
                v.push(rec);
            } else {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            c.set(v);
        });
    })
}

/// Records `n` bytes at `p` written by `function` to `target`.
///
/// # Safety
/// As [`Capture::feed`].
unsafe fn out_data(function: &'static str, target: Target, p: *const c_void, n: usize) {
    if !recording() {
        return;
    }
    let mut cap = Capture::new();
    cap.feed(p as *const u8, n);
    commit(function, &target, &cap);
}

/// Records a call with a detail text.
fn out_detail(function: &'static str, target: Target, detail: std::fmt::Arguments) {
    if !recording() {
        return;
    }
    let mut cap = Capture::new();
    cap.text(detail);
    commit(function, &target, &cap);
}

/// Records the bytes of `cnt` iovecs; returns their total length.
///
/// # Safety
/// `iov` must point to `cnt` iovecs (a fault is the call's fault).
unsafe fn out_iov(
    function: &'static str,
    target: Target,
    iov: *const libc::iovec,
    cnt: usize,
) -> usize {
    let mut total = 0usize;
    let rec = recording();
    let mut cap = Capture::new();
    for i in 0..cnt {
        let v = &*iov.add(i);
        total = total.saturating_add(v.iov_len);
        if rec {
            cap.feed(v.iov_base as *const u8, v.iov_len);
        }
    }
    if rec {
        commit(function, &target, &cap);
    }
    total
}

// Descriptors of /dev/null DDL gave out for opens for write: fd → (path as
// given, st_dev, st_ino). An entry whose descriptor no longer is that
// /dev/null (closed, reused) is dropped when met.
type DevNullMap = HashMap<c_int, (String, u64, u64)>;
static DEVNULL: Mutex<Option<DevNullMap>> = Mutex::new(None);

fn fd_identity(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: fstat into a local.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

/// Deferred sections only.
fn devnull_path(fd: c_int) -> Option<String> {
    let mut g = DEVNULL.lock().ok()?;
    let map = g.as_mut()?;
    let (path, dev, ino) = map.get(&fd)?.clone();
    if fd_identity(fd) == Some((dev, ino)) {
        Some(path)
    } else {
        map.remove(&fd);
        None
    }
}

pub(crate) fn remember_devnull(fd: c_int, target: &Target) {
    sandbox::deferred(|| {
        let Some((dev, ino)) = fd_identity(fd) else {
            return;
        };
        let path = target.describe();
        if let Ok(mut g) = DEVNULL.lock() {
            g.get_or_insert_with(HashMap::new)
                .insert(fd, (path, dev, ino));
        }
    })
}

/// The table's `&'static str` for a name the C side passes.
pub(crate) fn static_name(p: *const c_char) -> &'static str {
    if p.is_null() {
        return "?";
    }
    // SAFETY: the C side passes string literals.
    let s = unsafe { CStr::from_ptr(p) }.to_bytes();
    table()
        .iter()
        .find(|e| e.name.as_bytes() == s)
        .map(|e| e.name)
        .unwrap_or("?")
}

unsafe extern "C" fn c_record(
    function: *const c_char,
    kind: c_int,
    target: usize,
    bytes: *const c_char,
    len: usize,
) {
    if !recording() {
        return;
    }
    let t = match kind {
        TARGET_FD => Target::Fd(target as c_int),
        TARGET_STREAM => Target::stream(target as *mut c_void),
        TARGET_STDOUT => Target::Named("stdout"),
        TARGET_SYSLOG => Target::Syslog(target as c_int),
        _ => Target::None,
    };
    let mut cap = Capture::new();
    cap.feed(bytes as *const u8, len);
    commit(static_name(function), &t, &cap);
}

// ---------------------------------------------------------------------------
// Replacements. Each `r_*` has the C signature of the libc function it
// replaces (trailing arguments it does not use may be left out: the System V
// caller cleans up) and is only ever reached through a slot
// `patch_namespace` pointed at it, from the new build's namespace.
//
// Safety (all of them): the caller passes what libc's function would get
// (valid strings, buffers of the sizes given); a bad pointer faults inside
// the replacement, outside any deferred section, and the sandboxed call
// comes back as a fault.

// Writes.

unsafe extern "C" fn r_write(fd: c_int, buf: *const c_void, n: usize) -> isize {
    out_data("write", Target::Fd(fd), buf, n);
    n as isize
}
unsafe extern "C" fn r_pwrite(fd: c_int, buf: *const c_void, n: usize, _off: i64) -> isize {
    out_data("pwrite", Target::Fd(fd), buf, n);
    n as isize
}
unsafe extern "C" fn r_pwrite64(fd: c_int, buf: *const c_void, n: usize, _off: i64) -> isize {
    out_data("pwrite64", Target::Fd(fd), buf, n);
    n as isize
}

/// The iovec count check the kernel makes.
pub(crate) fn iov_ok(cnt: c_int) -> bool {
    (0..=libc::UIO_MAXIOV).contains(&cnt)
}

macro_rules! writev_like {
    ($fname:ident, $name:literal $(, $extra:ident : $ty:ty)*) => {
        unsafe extern "C" fn $fname(fd: c_int, iov: *const libc::iovec, cnt: c_int $(, $extra: $ty)*) -> isize {
            $(let _ = $extra;)*
            if !iov_ok(cnt) {
                set_errno(libc::EINVAL);
                return -1;
            }
            out_iov($name, Target::Fd(fd), iov, cnt as usize) as isize
        }
    };
}
writev_like!(r_writev, "writev");
writev_like!(r_pwritev, "pwritev", _off: i64);
writev_like!(r_pwritev64, "pwritev64", _off: i64);
writev_like!(r_pwritev2, "pwritev2", _off: i64, _flags: c_int);
writev_like!(r_pwritev64v2, "pwritev64v2", _off: i64, _flags: c_int);

unsafe extern "C" fn r_send(fd: c_int, buf: *const c_void, n: usize, _flags: c_int) -> isize {
    out_data("send", Target::Fd(fd), buf, n);
    n as isize
}
unsafe extern "C" fn r_sendto(
    fd: c_int,
    buf: *const c_void,
    n: usize,
    _flags: c_int,
    _addr: *const c_void,
    _alen: u32,
) -> isize {
    out_data("sendto", Target::Fd(fd), buf, n);
    n as isize
}
unsafe extern "C" fn r_sendmsg(fd: c_int, msg: *const libc::msghdr, _flags: c_int) -> isize {
    if msg.is_null() {
        set_errno(libc::EFAULT);
        return -1;
    }
    let m = &*msg;
    out_iov("sendmsg", Target::Fd(fd), m.msg_iov, m.msg_iovlen) as isize
}
unsafe extern "C" fn r_sendmmsg(
    fd: c_int,
    vec: *mut libc::mmsghdr,
    vlen: c_uint,
    _flags: c_int,
) -> c_int {
    for i in 0..vlen as usize {
        let h = &mut *vec.add(i);
        let n = out_iov(
            "sendmmsg",
            Target::Fd(fd),
            h.msg_hdr.msg_iov,
            h.msg_hdr.msg_iovlen,
        );
        h.msg_len = n as c_uint;
    }
    vlen as c_int
}

macro_rules! fwrite_like {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname(
            p: *const c_void,
            size: usize,
            nmemb: usize,
            fp: *mut c_void,
        ) -> usize {
            if size == 0 || nmemb == 0 {
                return 0;
            }
            out_data($name, Target::stream(fp), p, size.saturating_mul(nmemb));
            nmemb
        }
    };
}
fwrite_like!(r_fwrite, "fwrite");
fwrite_like!(r_fwrite_unlocked, "fwrite_unlocked");

macro_rules! fputs_like {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname(s: *const c_char, fp: *mut c_void) -> c_int {
            let n = libc::strlen(s);
            out_data($name, Target::stream(fp), s as *const c_void, n);
            1
        }
    };
}
fputs_like!(r_fputs, "fputs");
fputs_like!(r_fputs_unlocked, "fputs_unlocked");

macro_rules! fputc_like {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname(c: c_int, fp: *mut c_void) -> c_int {
            let b = c as u8;
            out_data(
                $name,
                Target::stream(fp),
                &b as *const u8 as *const c_void,
                1,
            );
            b as c_int
        }
    };
}
fputc_like!(r_fputc, "fputc");
fputc_like!(r_fputc_unlocked, "fputc_unlocked");
fputc_like!(r_putc, "putc");
fputc_like!(r_putc_unlocked, "putc_unlocked");
fputc_like!(r_io_putc, "_IO_putc");

macro_rules! putchar_like {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname(c: c_int) -> c_int {
            let b = c as u8;
            out_data(
                $name,
                Target::Named("stdout"),
                &b as *const u8 as *const c_void,
                1,
            );
            b as c_int
        }
    };
}
putchar_like!(r_putchar, "putchar");
putchar_like!(r_putchar_unlocked, "putchar_unlocked");

unsafe extern "C" fn r_puts(s: *const c_char) -> c_int {
    let n = libc::strlen(s);
    if recording() {
        let mut cap = Capture::new();
        cap.feed(s as *const u8, n);
        cap.feed_bytes(b"\n");
        commit("puts", &Target::Named("stdout"), &cap);
    }
    (n + 1).min(i32::MAX as usize) as c_int
}

unsafe extern "C" fn r_perror(s: *const c_char) {
    let e = caller_errno();
    if !recording() {
        return;
    }
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
    commit("perror", &Target::Named("stderr"), &cap);
}

// ---------------------------------------------------------------------------
// Replacements: the file system.

unsafe extern "C" fn r_unlink(path: *const c_char) -> c_int {
    out_data(
        "unlink",
        Target::path(libc::AT_FDCWD, path),
        std::ptr::null(),
        0,
    );
    0
}
unsafe extern "C" fn r_unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    out_detail(
        "unlinkat",
        Target::path(dirfd, path),
        format_args!("flags={flags:#x}"),
    );
    0
}
unsafe extern "C" fn r_remove(path: *const c_char) -> c_int {
    out_data(
        "remove",
        Target::path(libc::AT_FDCWD, path),
        std::ptr::null(),
        0,
    );
    0
}

/// Records a rename: the old path as the target, the new one as the bytes.
///
/// # Safety
/// Both paths must be C strings.
unsafe fn out_rename(
    function: &'static str,
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
) {
    if !recording() {
        return;
    }
    let mut cap = Capture::new();
    if nd != libc::AT_FDCWD && !new.is_null() && *new != b'/' as c_char {
        cap.text(format_args!("fd:{nd}/"));
    }
    cap.feed_cstr(new);
    commit(function, &Target::path(od, old), &cap);
}
unsafe extern "C" fn r_rename(old: *const c_char, new: *const c_char) -> c_int {
    out_rename("rename", libc::AT_FDCWD, old, libc::AT_FDCWD, new);
    0
}
unsafe extern "C" fn r_renameat(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
) -> c_int {
    out_rename("renameat", od, old, nd, new);
    0
}
unsafe extern "C" fn r_renameat2(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    _flags: c_uint,
) -> c_int {
    out_rename("renameat2", od, old, nd, new);
    0
}

macro_rules! truncate_like {
    ($fname:ident, $name:literal, path) => {
        unsafe extern "C" fn $fname(path: *const c_char, len: i64) -> c_int {
            out_detail(
                $name,
                Target::path(libc::AT_FDCWD, path),
                format_args!("length={len}"),
            );
            0
        }
    };
    ($fname:ident, $name:literal, fd) => {
        unsafe extern "C" fn $fname(fd: c_int, len: i64) -> c_int {
            out_detail($name, Target::Fd(fd), format_args!("length={len}"));
            0
        }
    };
}
truncate_like!(r_truncate, "truncate", path);
truncate_like!(r_truncate64, "truncate64", path);
truncate_like!(r_ftruncate, "ftruncate", fd);
truncate_like!(r_ftruncate64, "ftruncate64", fd);

/// Path-first functions answered 0 and recorded with the path (and the
/// second path, for `link`/`symlink`).
macro_rules! path_op {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname(path: *const c_char) -> c_int {
            out_data(
                $name,
                Target::path(libc::AT_FDCWD, path),
                std::ptr::null(),
                0,
            );
            0
        }
    };
    ($fname:ident, $name:literal, two) => {
        unsafe extern "C" fn $fname(a: *const c_char, b: *const c_char) -> c_int {
            if recording() {
                let mut cap = Capture::new();
                cap.feed_cstr(a);
                commit($name, &Target::path(libc::AT_FDCWD, b), &cap);
            }
            0
        }
    };
}
path_op!(r_mkdir, "mkdir");
path_op!(r_rmdir, "rmdir");
path_op!(r_chmod, "chmod");
path_op!(r_chown, "chown");
path_op!(r_chdir, "chdir");
path_op!(r_link, "link", two);
path_op!(r_symlink, "symlink", two);

/// Does an `open` with `flags` write?
pub(crate) fn opens_for_write(flags: c_int) -> bool {
    let acc = flags & libc::O_ACCMODE;
    acc == libc::O_WRONLY
        || acc == libc::O_RDWR
        || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0
}

/// Does a `fopen` mode write?
pub(crate) fn mode_writes(m: &[u8]) -> bool {
    m.iter().any(|c| matches!(c, b'w' | b'a' | b'+'))
}

/// Opens `/dev/null` in place of a file opened for write.
fn open_devnull(rdwr: bool, cloexec: bool) -> c_int {
    let flags = if rdwr { libc::O_RDWR } else { libc::O_WRONLY }
        | if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: a constant path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), flags) };
    if fd < 0 {
        set_errno(errno());
    }
    fd
}

/// # Safety
/// `path` must be a C string.
unsafe fn do_open(
    function: &'static str,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    if !opens_for_write(flags) {
        let fd = libc::openat(dirfd, path, flags, mode);
        if fd < 0 {
            set_errno(errno());
        }
        return fd;
    }
    let fd = open_devnull(
        flags & libc::O_ACCMODE == libc::O_RDWR,
        flags & libc::O_CLOEXEC != 0,
    );
    if fd < 0 {
        return -1;
    }
    let target = Target::path(dirfd, path);
    remember_devnull(fd, &target);
    if recording() {
        let mut cap = Capture::new();
        cap.text(format_args!("flags={flags:#o} mode={mode:#o}"));
        commit(function, &target, &cap);
    }
    fd
}

unsafe extern "C" fn open_hook(
    function: *const c_char,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    do_open(static_name(function), dirfd, path, flags, mode)
}

unsafe extern "C" fn r_open_2(path: *const c_char, flags: c_int) -> c_int {
    do_open("__open_2", libc::AT_FDCWD, path, flags, 0)
}
unsafe extern "C" fn r_open64_2(path: *const c_char, flags: c_int) -> c_int {
    do_open("__open64_2", libc::AT_FDCWD, path, flags, 0)
}
unsafe extern "C" fn r_openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    do_open("__openat_2", dirfd, path, flags, 0)
}
unsafe extern "C" fn r_openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    do_open("__openat64_2", dirfd, path, flags, 0)
}
unsafe extern "C" fn r_creat(path: *const c_char, mode: c_uint) -> c_int {
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
    do_open("creat", libc::AT_FDCWD, path, flags, mode)
}
unsafe extern "C" fn r_creat64(path: *const c_char, mode: c_uint) -> c_int {
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
    do_open("creat64", libc::AT_FDCWD, path, flags, mode)
}

type FopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut c_void;
type FreopenFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void) -> *mut c_void;
type FdopenFn = unsafe extern "C" fn(c_int, *const c_char) -> *mut c_void;

/// # Safety
/// `path` and `mode` must be C strings.
unsafe fn do_fopen(
    function: &'static str,
    path: *const c_char,
    mode: *const c_char,
    real: fn(&Ns) -> usize,
) -> *mut c_void {
    let Some(ns) = current_ns() else {
        set_errno(libc::ENOSYS);
        return std::ptr::null_mut();
    };
    let m = CStr::from_ptr(mode).to_bytes();
    if !mode_writes(m) {
        let f: FopenFn = std::mem::transmute(real(ns));
        return f(path, mode);
    }
    let plus = m.contains(&b'+');
    let fd = open_devnull(plus, m.contains(&b'e'));
    if fd < 0 {
        return std::ptr::null_mut();
    }
    let base: &CStr = match (m.first(), plus) {
        (Some(b'a'), false) => c"a",
        (Some(b'a'), true) => c"a+",
        (Some(b'r'), true) => c"r+",
        (_, true) => c"w+",
        _ => c"w",
    };
    let fdopen: FdopenFn = std::mem::transmute(ns.fdopen);
    let fp = fdopen(fd, base.as_ptr());
    if fp.is_null() {
        libc::close(fd);
        return fp;
    }
    let target = Target::path(libc::AT_FDCWD, path);
    remember_devnull(fd, &target);
    if recording() {
        let mut cap = Capture::new();
        cap.feed_bytes(b"mode=");
        cap.feed_bytes(m);
        commit(function, &target, &cap);
    }
    fp
}

unsafe extern "C" fn r_fopen(path: *const c_char, mode: *const c_char) -> *mut c_void {
    do_fopen("fopen", path, mode, |ns| ns.fopen)
}
unsafe extern "C" fn r_fopen64(path: *const c_char, mode: *const c_char) -> *mut c_void {
    do_fopen("fopen64", path, mode, |ns| ns.fopen64)
}

/// # Safety
/// `mode` a C string, `path` NULL or one, `stream` a `FILE` of the
/// caller's namespace.
unsafe fn do_freopen(
    function: &'static str,
    path: *const c_char,
    mode: *const c_char,
    stream: *mut c_void,
    real: fn(&Ns) -> usize,
) -> *mut c_void {
    let Some(ns) = current_ns() else {
        set_errno(libc::ENOSYS);
        return std::ptr::null_mut();
    };
    let f: FreopenFn = std::mem::transmute(real(ns));
    if path.is_null() || !mode_writes(CStr::from_ptr(mode).to_bytes()) {
        return f(path, mode, stream);
    }
    let fp = f(c"/dev/null".as_ptr(), mode, stream);
    if fp.is_null() {
        return fp;
    }
    let target = Target::path(libc::AT_FDCWD, path);
    let fd = libc::fileno(fp as *mut libc::FILE);
    if fd >= 0 {
        remember_devnull(fd, &target);
    }
    if recording() {
        let mut cap = Capture::new();
        cap.feed_bytes(b"mode=");
        cap.feed_cstr(mode);
        commit(function, &target, &cap);
    }
    fp
}

unsafe extern "C" fn r_freopen(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut c_void,
) -> *mut c_void {
    do_freopen("freopen", path, mode, stream, |ns| ns.freopen)
}
unsafe extern "C" fn r_freopen64(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut c_void,
) -> *mut c_void {
    do_freopen("freopen64", path, mode, stream, |ns| ns.freopen64)
}

// ---------------------------------------------------------------------------
// Replacements: processes.

macro_rules! kill_like {
    ($fname:ident, $name:literal, $kind:literal) => {
        unsafe extern "C" fn $fname(id: c_int, sig: c_int) -> c_int {
            kill_common($name, $kind, id as i64, sig)
        }
    };
}

/// Signal 0 only probes (no side effect): performed. Anything else is
/// recorded and answered 0.
fn kill_common(function: &'static str, kind: &'static str, id: i64, sig: c_int) -> c_int {
    if sig == 0 {
        // SAFETY: a probe, no signal is sent.
        let rc = unsafe {
            if kind == "pgrp" {
                libc::killpg(id as libc::pid_t, 0)
            } else {
                libc::kill(id as libc::pid_t, 0)
            }
        };
        if rc != 0 {
            set_errno(errno());
        }
        return rc;
    }
    if !(1..NSIG as c_int).contains(&sig) {
        set_errno(libc::EINVAL);
        return -1;
    }
    if recording() {
        let mut cap = Capture::new();
        cap.text(format_args!("{}", SigName(sig)));
        commit(function, &Target::Id(kind, id), &cap);
    }
    0
}

/// A signal's name without allocating.
pub(crate) struct SigName(pub(crate) c_int);

impl std::fmt::Display for SigName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: sigabbrev_np returns NULL or a static string.
        let p = unsafe { sigabbrev_np(self.0) };
        if p.is_null() {
            write!(f, "signal {}", self.0)
        } else {
            // SAFETY: as above.
            let s = unsafe { CStr::from_ptr(p) };
            write!(f, "SIG{}", s.to_str().unwrap_or("?"))
        }
    }
}

extern "C" {
    fn sigabbrev_np(sig: c_int) -> *const c_char;
}

kill_like!(r_kill, "kill", "pid");
kill_like!(r_killpg, "killpg", "pgrp");
unsafe extern "C" fn r_sigqueue(pid: c_int, sig: c_int, _val: usize) -> c_int {
    kill_common("sigqueue", "pid", pid as i64, sig)
}
unsafe extern "C" fn r_tgkill(_tgid: c_int, tid: c_int, sig: c_int) -> c_int {
    kill_common("tgkill", "tid", tid as i64, sig)
}

macro_rules! fork_like {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname() -> c_int {
            if recording() {
                commit($name, &Target::None, &Capture::new());
            }
            set_errno(libc::EAGAIN);
            -1
        }
    };
}
fork_like!(r_fork, "fork");
fork_like!(r_vfork, "vfork");
fork_like!(r_fork_c, "_Fork");

unsafe extern "C" fn r_system(cmd: *const c_char) -> c_int {
    if cmd.is_null() {
        return 0; // "no shell": nothing will be run
    }
    if recording() {
        let mut cap = Capture::new();
        cap.feed_cstr(cmd);
        commit("system", &Target::Named("sh"), &cap);
    }
    set_errno(libc::EAGAIN);
    -1
}
unsafe extern "C" fn r_popen(cmd: *const c_char, _ty: *const c_char) -> *mut c_void {
    if recording() {
        let mut cap = Capture::new();
        cap.feed_cstr(cmd);
        commit("popen", &Target::Named("sh"), &cap);
    }
    set_errno(libc::EAGAIN);
    std::ptr::null_mut()
}

/// Records an exec: the path as the target, the arguments (space
/// separated) as the bytes; answers -1, `EAGAIN`.
///
/// # Safety
/// `argv` NULL or a NULL-terminated array of C strings.
unsafe fn exec_common(function: &'static str, target: Target, argv: *const *const c_char) -> c_int {
    if recording() {
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
    set_errno(libc::EAGAIN);
    -1
}

macro_rules! exec_v {
    ($fname:ident, $name:literal $(, $extra:ident : $ty:ty)*) => {
        unsafe extern "C" fn $fname(path: *const c_char, argv: *const *const c_char $(, $extra: $ty)*) -> c_int {
            $(let _ = $extra;)*
            exec_common($name, Target::path(libc::AT_FDCWD, path), argv)
        }
    };
}
exec_v!(r_execv, "execv");
exec_v!(r_execvp, "execvp");
exec_v!(r_execve, "execve", _envp: usize);
exec_v!(r_execvpe, "execvpe", _envp: usize);
macro_rules! exec_l {
    ($fname:ident, $name:literal) => {
        // The arguments are variadic: only the path is recorded.
        unsafe extern "C" fn $fname(path: *const c_char) -> c_int {
            exec_common($name, Target::path(libc::AT_FDCWD, path), std::ptr::null())
        }
    };
}
exec_l!(r_execl, "execl");
exec_l!(r_execlp, "execlp");
exec_l!(r_execle, "execle");
unsafe extern "C" fn r_fexecve(fd: c_int, argv: *const *const c_char, _envp: usize) -> c_int {
    exec_common("fexecve", Target::Fd(fd), argv)
}
unsafe extern "C" fn r_execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    _envp: usize,
    _flags: c_int,
) -> c_int {
    exec_common("execveat", Target::path(dirfd, path), argv)
}

macro_rules! spawn_like {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname(
            _pid: *mut libc::pid_t,
            path: *const c_char,
            _fa: usize,
            _attr: usize,
            argv: *const *const c_char,
            _envp: usize,
        ) -> c_int {
            exec_common($name, Target::path(libc::AT_FDCWD, path), argv);
            libc::EAGAIN // posix_spawn returns the error number
        }
    };
}
spawn_like!(r_posix_spawn, "posix_spawn");
spawn_like!(r_posix_spawnp, "posix_spawnp");

// ---------------------------------------------------------------------------
// Replacements: signals.

/// What a query of `sig` answers before the new build set anything: the
/// process's disposition, or `SIG_DFL` for DDL's own signals.
fn initial_action(sig: c_int) -> libc::sigaction {
    // SAFETY: a query into a zeroed local.
    unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        if !sandbox::is_managed(sig) {
            libc::sigaction(sig, std::ptr::null(), &mut cur);
        }
        cur
    }
}

/// Swaps the namespace's recorded action for `sig` (None: query only) and
/// returns the previous one. Records a change as an outgoing call.
fn swap_action(
    function: &'static str,
    sig: c_int,
    act: Option<libc::sigaction>,
) -> libc::sigaction {
    let prev = sandbox::deferred(|| {
        let table = current_ns().map(|ns| &ns.sig).unwrap_or(&FALLBACK_SIG);
        let Ok(mut t) = table.lock() else {
            return initial_action(sig);
        };
        let prev = t[sig as usize].unwrap_or_else(|| initial_action(sig));
        if let Some(a) = act {
            t[sig as usize] = Some(a);
        }
        prev
    });
    if let Some(a) = act {
        let h = a.sa_sigaction;
        let what: &dyn std::fmt::Display = match h {
            libc::SIG_DFL => &"SIG_DFL",
            libc::SIG_IGN => &"SIG_IGN",
            _ => &"handler",
        };
        out_detail(
            function,
            Target::Signal(sig),
            format_args!("{what} flags={:#x}", a.sa_flags),
        );
    }
    prev
}

pub(crate) fn bad_signal(sig: c_int, setting: bool) -> bool {
    !(1..NSIG as c_int).contains(&sig)
        || (setting && (sig == libc::SIGKILL || sig == libc::SIGSTOP))
}

macro_rules! sigaction_like {
    ($fname:ident, $name:literal) => {
        unsafe extern "C" fn $fname(
            sig: c_int,
            act: *const libc::sigaction,
            old: *mut libc::sigaction,
        ) -> c_int {
            if bad_signal(sig, !act.is_null()) {
                set_errno(libc::EINVAL);
                return -1;
            }
            let a = (!act.is_null()).then(|| *act);
            let prev = swap_action($name, sig, a);
            if !old.is_null() {
                *old = prev;
            }
            0
        }
    };
}
sigaction_like!(r_sigaction, "sigaction");
sigaction_like!(r_sigaction_, "__sigaction");

/// `signal` and kin: the action with `flags`; `sigset`'s `SIG_HOLD` (2)
/// changes nothing.
fn signal_common(
    function: &'static str,
    sig: c_int,
    handler: libc::sighandler_t,
    flags: c_int,
) -> libc::sighandler_t {
    if bad_signal(sig, true) {
        set_errno(libc::EINVAL);
        return libc::SIG_ERR;
    }
    if function == "sigset" && handler == 2 {
        return swap_action(function, sig, None).sa_sigaction;
    }
    // SAFETY: a zeroed sigaction is valid.
    let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
    a.sa_sigaction = handler;
    a.sa_flags = flags;
    swap_action(function, sig, Some(a)).sa_sigaction
}

macro_rules! signal_like {
    ($fname:ident, $name:literal, $flags:expr) => {
        unsafe extern "C" fn $fname(sig: c_int, h: libc::sighandler_t) -> libc::sighandler_t {
            signal_common($name, sig, h, $flags)
        }
    };
}
signal_like!(r_signal, "signal", libc::SA_RESTART);
signal_like!(r_bsd_signal, "bsd_signal", libc::SA_RESTART);
signal_like!(
    r_sysv_signal,
    "sysv_signal",
    libc::SA_RESETHAND | libc::SA_NODEFER
);
signal_like!(
    r_sysv_signal_,
    "__sysv_signal",
    libc::SA_RESETHAND | libc::SA_NODEFER
);
signal_like!(r_sigset, "sigset", 0);

/// Performs the mask change without DDL's signals in the set.
///
/// # Safety
/// `set` NULL or a sigset, `old` NULL or writable.
unsafe fn mask_common(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int {
    if set.is_null() {
        return libc::pthread_sigmask(how, std::ptr::null(), old);
    }
    let mut s = *set;
    if how != libc::SIG_UNBLOCK {
        sandbox::strip_managed(&mut s);
    }
    libc::pthread_sigmask(how, &s, old)
}
unsafe extern "C" fn r_pthread_sigmask(
    how: c_int,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> c_int {
    mask_common(how, set, old)
}
unsafe extern "C" fn r_sigprocmask(
    how: c_int,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> c_int {
    let rc = mask_common(how, set, old);
    if rc != 0 {
        set_errno(rc);
        return -1;
    }
    0
}

unsafe extern "C" fn r_sigaltstack(ss: *const libc::stack_t, old: *mut libc::stack_t) -> c_int {
    let cur = ALTSTACK
        .try_with(|c| c.get())
        .unwrap_or((0, libc::SS_DISABLE, 0));
    if !ss.is_null() {
        let s = *ss;
        if s.ss_flags & !libc::SS_DISABLE != 0 {
            set_errno(libc::EINVAL);
            return -1;
        }
        if s.ss_flags & libc::SS_DISABLE == 0 && s.ss_size < libc::MINSIGSTKSZ {
            set_errno(libc::ENOMEM);
            return -1;
        }
        let _ = ALTSTACK.try_with(|c| c.set((s.ss_sp as usize, s.ss_flags, s.ss_size)));
    }
    if !old.is_null() {
        (*old).ss_sp = cur.0 as *mut c_void;
        (*old).ss_flags = cur.1;
        (*old).ss_size = cur.2;
    }
    0
}

// ---------------------------------------------------------------------------
// Replacements: threads.

/// `pthread_create` (`c11` false) or `thrd_create` for the new build: the
/// thread is started by its namespace's own `pthread_create` on the
/// sandbox's trampoline (`arbiter::sandbox::spawn_thread`), so a fault or
/// an exit in it ends that thread only (`pthread_join` gets
/// `PTHREAD_CANCELED`, `thrd_join` -1) and is recorded for the shadow.
///
/// # Safety
/// `pthread_create`'s arguments.
unsafe fn spawn_common(
    thr: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: usize,
    arg: *mut c_void,
    c11: bool,
) -> c_int {
    let Some(ns) = current_ns() else {
        return if c11 { 2 } else { libc::EAGAIN };
    };
    let rc = sandbox::spawn_thread(thr, attr, start, arg, c11, ns.lmid, ns.pthread_create);
    if rc == 0 {
        ns.threads.fetch_add(1, Ordering::Relaxed);
    }
    rc
}

unsafe extern "C" fn r_pthread_create(
    thr: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: usize,
    arg: *mut c_void,
) -> c_int {
    spawn_common(thr, attr, start, arg, false)
}

unsafe extern "C" fn r_thrd_create(
    thr: *mut libc::pthread_t,
    start: usize,
    arg: *mut c_void,
) -> c_int {
    spawn_common(thr, std::ptr::null(), start, arg, true)
}

/// Did the namespace of `handle` start threads through DDL's
/// `pthread_create`/`thrd_create` (its code may be running on them: it must
/// not be unloaded)?
pub fn started_threads(handle: *mut c_void) -> bool {
    let n = REG_LEN.load(Ordering::Acquire).min(MAX_NS);
    (0..n).any(|i| {
        let p = REGISTRY[i].load(Ordering::Acquire);
        // SAFETY: entries are leaked boxes, never freed.
        !p.is_null()
            && unsafe { &*p }.handle == handle as usize
            && unsafe { &*p }.threads.load(Ordering::Relaxed) > 0
    })
}

// ---------------------------------------------------------------------------
// Generic replacements for `sandbox.intercept` names.

static EXTRA_NAMES: [OnceLock<&'static str>; MAX_EXTRA] = [const { OnceLock::new() }; MAX_EXTRA];
static EXTRA_USED: AtomicUsize = AtomicUsize::new(0);

fn generic_extra(i: usize) -> usize {
    if recording() {
        let name = EXTRA_NAMES[i].get().copied().unwrap_or("?");
        commit(name, &Target::None, &Capture::new());
    }
    0
}

macro_rules! extra_stubs {
    ($($i:literal)*) => {
        const EXTRA_STUBS: [unsafe extern "C" fn() -> usize; MAX_EXTRA] = [$({
            unsafe extern "C" fn stub() -> usize {
                generic_extra($i)
            }
            stub
        }),*];
    };
}
extra_stubs!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
    30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
    60 61 62 63);

/// The generic stub for `name` (allocated once per name).
fn extra_stub(name: &str) -> Option<usize> {
    let n = EXTRA_USED.load(Ordering::Acquire);
    for (i, stub) in EXTRA_STUBS.iter().enumerate().take(n) {
        if EXTRA_NAMES[i].get().copied() == Some(name) {
            return Some(*stub as usize);
        }
    }
    if n >= MAX_EXTRA {
        return None;
    }
    let _ = EXTRA_NAMES[n].set(Box::leak(name.to_string().into_boxed_str()));
    EXTRA_USED.store(n + 1, Ordering::Release);
    Some(EXTRA_STUBS[n] as usize)
}

// ---------------------------------------------------------------------------
// The table.

/// Every function intercepted by default: name, kind, what is recorded,
/// what the caller gets, and the replacement. The one place that says so.
pub fn intercepted() -> &'static [Intercepted] {
    table()
}

fn table() -> &'static [Intercepted] {
    static TABLE: OnceLock<Vec<Intercepted>> = OnceLock::new();
    TABLE.get_or_init(|| {
        use Kind::*;
        const EXIT_R: &str = "nothing (the call comes back as CallFailure::Exit)";
        const EXIT_A: &str =
            "never returns: the sandboxed call is abandoned; on other threads the thread is parked";
        const W: &str = "target (fd, path of a DDL /dev/null, stream), bytes";
        const FMT: &str = "the formatted text (libddl's vsnprintf)";
        const PATH: &str = "the path";
        const SIG: &str = "a change: the signal, SIG_DFL/SIG_IGN/handler and flags";
        const OPEN_R: &str = "for write: the path, flags and mode; for read: nothing";
        const OPEN_A: &str = "for write: a descriptor of /dev/null (writes to it intercepted too); \
                              for read: performed";
        const FOPEN_A: &str = "for write: a stream on /dev/null (the namespace's fdopen); for read: \
                               performed";
        const EXEC: &str = "the path (or fd) and the arguments";
        let e = |name, kind, replacement: *const (), records, answer| Intercepted {
            name,
            kind,
            records,
            answer,
            replacement: replacement as usize,
            observer: None,
        };
        vec![
            e("exit", Exit, ddl_contain_exit as *const (), EXIT_R, EXIT_A),
            e("_exit", Exit, ddl_contain__exit as *const (), EXIT_R, EXIT_A),
            e("_Exit", Exit, ddl_contain__Exit as *const (), EXIT_R, EXIT_A),
            e("quick_exit", Exit, ddl_contain_quick_exit as *const (), EXIT_R, EXIT_A),
            e("sigaction", Signal, r_sigaction as *const (), SIG, "0; old = what the new build set last (else the process's, SIG_DFL for DDL's signals); never installed").observed(crate::observe::ob!(o_sigaction)),
            e("__sigaction", Signal, r_sigaction_ as *const (), SIG, "as sigaction").observed(crate::observe::ob!(o___sigaction)),
            e("signal", Signal, r_signal as *const (), SIG, "the previous handler as recorded; never installed").observed(crate::observe::ob!(o_signal)),
            e("bsd_signal", Signal, r_bsd_signal as *const (), SIG, "as signal").observed(crate::observe::ob!(o_bsd_signal)),
            e("sysv_signal", Signal, r_sysv_signal as *const (), SIG, "as signal").observed(crate::observe::ob!(o_sysv_signal)),
            e("__sysv_signal", Signal, r_sysv_signal_ as *const (), SIG, "as signal").observed(crate::observe::ob!(o___sysv_signal)),
            e("sigset", Signal, r_sigset as *const (), SIG, "as signal; SIG_HOLD changes nothing").observed(crate::observe::ob!(o_sigset)),
            e("sigprocmask", Signal, r_sigprocmask as *const (), "nothing", "performed without DDL's fault and timer signals in the set"),
            e("pthread_sigmask", Signal, r_pthread_sigmask as *const (), "nothing", "as sigprocmask"),
            e("sigaltstack", Signal, r_sigaltstack as *const (), "nothing", "0; per-thread record, the thread's real alternate stack (DDL's) unchanged"),
            e("write", Write, r_write as *const (), W, "the size asked for").observed(crate::observe::ob!(o_write)),
            e("pwrite", Write, r_pwrite as *const (), W, "the size asked for").observed(crate::observe::ob!(o_pwrite)),
            e("pwrite64", Write, r_pwrite64 as *const (), W, "the size asked for").observed(crate::observe::ob!(o_pwrite64)),
            e("writev", Write, r_writev as *const (), W, "the total size").observed(crate::observe::ob!(o_writev)),
            e("pwritev", Write, r_pwritev as *const (), W, "the total size").observed(crate::observe::ob!(o_pwritev)),
            e("pwritev64", Write, r_pwritev64 as *const (), W, "the total size").observed(crate::observe::ob!(o_pwritev64)),
            e("pwritev2", Write, r_pwritev2 as *const (), W, "the total size").observed(crate::observe::ob!(o_pwritev2)),
            e("pwritev64v2", Write, r_pwritev64v2 as *const (), W, "the total size").observed(crate::observe::ob!(o_pwritev64v2)),
            e("send", Write, r_send as *const (), W, "the size asked for").observed(crate::observe::ob!(o_send)),
            e("sendto", Write, r_sendto as *const (), W, "the size asked for").observed(crate::observe::ob!(o_sendto)),
            e("sendmsg", Write, r_sendmsg as *const (), W, "the total size").observed(crate::observe::ob!(o_sendmsg)),
            e("sendmmsg", Write, r_sendmmsg as *const (), "one record per message", "vlen; each msg_len set").observed(crate::observe::ob!(o_sendmmsg)),
            e("fwrite", Write, r_fwrite as *const (), W, "nmemb").observed(crate::observe::ob!(o_fwrite)),
            e("fwrite_unlocked", Write, r_fwrite_unlocked as *const (), W, "nmemb").observed(crate::observe::ob!(o_fwrite_unlocked)),
            e("fputs", Write, r_fputs as *const (), W, "1").observed(crate::observe::ob!(o_fputs)),
            e("fputs_unlocked", Write, r_fputs_unlocked as *const (), W, "1").observed(crate::observe::ob!(o_fputs_unlocked)),
            e("fputc", Write, r_fputc as *const (), W, "the character").observed(crate::observe::ob!(o_fputc)),
            e("fputc_unlocked", Write, r_fputc_unlocked as *const (), W, "the character").observed(crate::observe::ob!(o_fputc_unlocked)),
            e("putc", Write, r_putc as *const (), W, "the character").observed(crate::observe::ob!(o_putc)),
            e("putc_unlocked", Write, r_putc_unlocked as *const (), W, "the character").observed(crate::observe::ob!(o_putc_unlocked)),
            e("_IO_putc", Write, r_io_putc as *const (), W, "the character").observed(crate::observe::ob!(o__IO_putc)),
            e("putchar", Write, r_putchar as *const (), W, "the character").observed(crate::observe::ob!(o_putchar)),
            e("putchar_unlocked", Write, r_putchar_unlocked as *const (), W, "the character").observed(crate::observe::ob!(o_putchar_unlocked)),
            e("puts", Write, r_puts as *const (), "stdout, the text and a newline", "length + 1").observed(crate::observe::ob!(o_puts)),
            e("perror", Write, r_perror as *const (), "stderr, \"s: strerror(errno)\\n\"", "nothing (void)").observed(crate::observe::ob!(o_perror)),
            e("printf", Write, ddl_contain_printf as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_printf)),
            e("vprintf", Write, ddl_contain_vprintf as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_vprintf)),
            e("__printf_chk", Write, ddl_contain_printf_chk as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_printf_chk)),
            e("__vprintf_chk", Write, ddl_contain_vprintf_chk as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_vprintf_chk)),
            e("fprintf", Write, ddl_contain_fprintf as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_fprintf)),
            e("vfprintf", Write, ddl_contain_vfprintf as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_vfprintf)),
            e("__fprintf_chk", Write, ddl_contain_fprintf_chk as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_fprintf_chk)),
            e("__vfprintf_chk", Write, ddl_contain_vfprintf_chk as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_vfprintf_chk)),
            e("dprintf", Write, ddl_contain_dprintf as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_dprintf)),
            e("vdprintf", Write, ddl_contain_vdprintf as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_vdprintf)),
            e("__dprintf_chk", Write, ddl_contain_dprintf_chk as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_dprintf_chk)),
            e("__vdprintf_chk", Write, ddl_contain_vdprintf_chk as *const (), FMT, "the count of characters").observed(crate::observe::obc!(ddl_observe_vdprintf_chk)),
            e("syslog", Write, ddl_contain_syslog as *const (), FMT, "nothing (void)").observed(crate::observe::obc!(ddl_observe_syslog)),
            e("vsyslog", Write, ddl_contain_vsyslog as *const (), FMT, "nothing (void)").observed(crate::observe::obc!(ddl_observe_vsyslog)),
            e("__syslog_chk", Write, ddl_contain_syslog_chk as *const (), FMT, "nothing (void)").observed(crate::observe::obc!(ddl_observe_syslog_chk)),
            e("__vsyslog_chk", Write, ddl_contain_vsyslog_chk as *const (), FMT, "nothing (void)").observed(crate::observe::obc!(ddl_observe_vsyslog_chk)),
            e("open", File, ddl_contain_open as *const (), OPEN_R, OPEN_A).observed(crate::observe::obc!(ddl_observe_open, ddl_observe_real_open)),
            e("open64", File, ddl_contain_open64 as *const (), OPEN_R, OPEN_A).observed(crate::observe::obc!(ddl_observe_open64, ddl_observe_real_open64)),
            e("openat", File, ddl_contain_openat as *const (), OPEN_R, OPEN_A).observed(crate::observe::obc!(ddl_observe_openat, ddl_observe_real_openat)),
            e("openat64", File, ddl_contain_openat64 as *const (), OPEN_R, OPEN_A).observed(crate::observe::obc!(ddl_observe_openat64, ddl_observe_real_openat64)),
            e("__open_2", File, r_open_2 as *const (), OPEN_R, OPEN_A).observed(crate::observe::ob!(o___open_2)),
            e("__open64_2", File, r_open64_2 as *const (), OPEN_R, OPEN_A).observed(crate::observe::ob!(o___open64_2)),
            e("__openat_2", File, r_openat_2 as *const (), OPEN_R, OPEN_A).observed(crate::observe::ob!(o___openat_2)),
            e("__openat64_2", File, r_openat64_2 as *const (), OPEN_R, OPEN_A).observed(crate::observe::ob!(o___openat64_2)),
            e("creat", File, r_creat as *const (), OPEN_R, OPEN_A).observed(crate::observe::ob!(o_creat)),
            e("creat64", File, r_creat64 as *const (), OPEN_R, OPEN_A).observed(crate::observe::ob!(o_creat64)),
            e("fopen", File, r_fopen as *const (), "for write: the path and mode", FOPEN_A).observed(crate::observe::ob!(o_fopen)),
            e("fopen64", File, r_fopen64 as *const (), "for write: the path and mode", FOPEN_A).observed(crate::observe::ob!(o_fopen64)),
            e("freopen", File, r_freopen as *const (), "for write: the path and mode", "for write: the stream reopened on /dev/null; else performed").observed(crate::observe::ob!(o_freopen)),
            e("freopen64", File, r_freopen64 as *const (), "for write: the path and mode", "as freopen").observed(crate::observe::ob!(o_freopen64)),
            e("unlink", File, r_unlink as *const (), PATH, "0").observed(crate::observe::ob!(o_unlink)),
            e("unlinkat", File, r_unlinkat as *const (), "the path, flags", "0").observed(crate::observe::ob!(o_unlinkat)),
            e("remove", File, r_remove as *const (), PATH, "0").observed(crate::observe::ob!(o_remove)),
            e("rename", File, r_rename as *const (), "the old path; the new one as bytes", "0").observed(crate::observe::ob!(o_rename)),
            e("renameat", File, r_renameat as *const (), "the old path; the new one as bytes", "0").observed(crate::observe::ob!(o_renameat)),
            e("renameat2", File, r_renameat2 as *const (), "the old path; the new one as bytes", "0").observed(crate::observe::ob!(o_renameat2)),
            e("truncate", File, r_truncate as *const (), "the path, length=N", "0").observed(crate::observe::ob!(o_truncate)),
            e("truncate64", File, r_truncate64 as *const (), "the path, length=N", "0").observed(crate::observe::ob!(o_truncate64)),
            e("ftruncate", File, r_ftruncate as *const (), "the fd, length=N", "0").observed(crate::observe::ob!(o_ftruncate)),
            e("ftruncate64", File, r_ftruncate64 as *const (), "the fd, length=N", "0").observed(crate::observe::ob!(o_ftruncate64)),
            e("mkdir", File, r_mkdir as *const (), PATH, "0").observed(crate::observe::ob!(o_mkdir)),
            e("rmdir", File, r_rmdir as *const (), PATH, "0").observed(crate::observe::ob!(o_rmdir)),
            e("chmod", File, r_chmod as *const (), PATH, "0").observed(crate::observe::ob!(o_chmod)),
            e("chown", File, r_chown as *const (), PATH, "0").observed(crate::observe::ob!(o_chown)),
            e("chdir", File, r_chdir as *const (), PATH, "0").observed(crate::observe::ob!(o_chdir)),
            e("link", File, r_link as *const (), "the new path; the old one as bytes", "0").observed(crate::observe::ob!(o_link)),
            e("symlink", File, r_symlink as *const (), "the link path; its target as bytes", "0").observed(crate::observe::ob!(o_symlink)),
            e("kill", Process, r_kill as *const (), "pid:N, the signal", "0 (signal 0, a probe: performed)").observed(crate::observe::ob!(o_kill)),
            e("killpg", Process, r_killpg as *const (), "pgrp:N, the signal", "0 (signal 0: performed)").observed(crate::observe::ob!(o_killpg)),
            e("sigqueue", Process, r_sigqueue as *const (), "pid:N, the signal", "0 (signal 0: performed)").observed(crate::observe::ob!(o_sigqueue)),
            e("tgkill", Process, r_tgkill as *const (), "tid:N, the signal", "0 (signal 0: performed)").observed(crate::observe::ob!(o_tgkill)),
            e("fork", Process, r_fork as *const (), "the call", "-1, EAGAIN").observed(crate::observe::ob!(o_fork)),
            e("vfork", Process, r_vfork as *const (), "the call", "-1, EAGAIN"),
            e("_Fork", Process, r_fork_c as *const (), "the call", "-1, EAGAIN").observed(crate::observe::ob!(o__Fork)),
            e("system", Process, r_system as *const (), "sh, the command", "-1, EAGAIN (system(NULL): 0, no shell)").observed(crate::observe::ob!(o_system)),
            e("popen", Process, r_popen as *const (), "sh, the command", "NULL, EAGAIN").observed(crate::observe::ob!(o_popen)),
            e("execve", Process, r_execve as *const (), EXEC, "-1, EAGAIN").observed(crate::observe::ob!(o_execve)),
            e("execv", Process, r_execv as *const (), EXEC, "-1, EAGAIN").observed(crate::observe::ob!(o_execv)),
            e("execvp", Process, r_execvp as *const (), EXEC, "-1, EAGAIN").observed(crate::observe::ob!(o_execvp)),
            e("execvpe", Process, r_execvpe as *const (), EXEC, "-1, EAGAIN").observed(crate::observe::ob!(o_execvpe)),
            e("execl", Process, r_execl as *const (), "the path (the arguments are variadic: not kept)", "-1, EAGAIN"),
            e("execlp", Process, r_execlp as *const (), "the path (the arguments are variadic: not kept)", "-1, EAGAIN"),
            e("execle", Process, r_execle as *const (), "the path (the arguments are variadic: not kept)", "-1, EAGAIN"),
            e("fexecve", Process, r_fexecve as *const (), EXEC, "-1, EAGAIN").observed(crate::observe::ob!(o_fexecve)),
            e("execveat", Process, r_execveat as *const (), EXEC, "-1, EAGAIN").observed(crate::observe::ob!(o_execveat)),
            e("posix_spawn", Process, r_posix_spawn as *const (), EXEC, "EAGAIN (returned)").observed(crate::observe::ob!(o_posix_spawn)),
            e("pthread_create", Thread, r_pthread_create as *const (), "nothing (a fault or exit of the thread: a shadow_thread_fault event)", "performed by the namespace's pthread_create, the routine run contained: a fault or exit ends the thread, pthread_join gets PTHREAD_CANCELED"),
            e("thrd_create", Thread, r_thrd_create as *const (), "as pthread_create", "as pthread_create (thrd_join gets -1)"),
            e("posix_spawnp", Process, r_posix_spawnp as *const (), EXEC, "EAGAIN (returned)").observed(crate::observe::ob!(o_posix_spawnp)),
        ]
    })
}

fn is_replacement(addr: usize) -> bool {
    table().iter().any(|e| e.replacement == addr) || EXTRA_STUBS.iter().any(|s| *s as usize == addr)
}

// ---------------------------------------------------------------------------
// Patching.

/// One object of the namespace's chain.
struct NsObject {
    obj: LoadedObject,
}

/// The namespace's chain from any of its `link_map`s, read under ld.so's
/// write lock (inside a `dl_iterate_phdr` callback).
///
/// # Safety
/// `lm` must be a live `link_map`.
unsafe fn namespace_chain(lm: *mut LinkMap) -> Vec<NsObject> {
    struct Walk {
        lm: *mut LinkMap,
        out: Vec<NsObject>,
    }
    unsafe extern "C" fn cb(
        _info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        let w = &mut *(data as *mut Walk);
        let mut l = w.lm;
        while !(*l).l_prev.is_null() {
            l = (*l).l_prev;
        }
        while !l.is_null() {
            let name = if (*l).l_name.is_null() {
                String::new()
            } else {
                CStr::from_ptr((*l).l_name).to_string_lossy().into_owned()
            };
            w.out.push(NsObject {
                obj: LoadedObject {
                    base: (*l).l_addr,
                    path: PathBuf::from(&name),
                    name,
                    lmap: l as usize,
                },
            });
            l = (*l).l_next;
        }
        1
    }
    let mut w = Walk {
        lm,
        out: Vec::new(),
    };
    libc::dl_iterate_phdr(Some(cb), &mut w as *mut Walk as *mut c_void);
    w.out
}

fn skip_reason(name: &str) -> Option<&'static str> {
    let file = name.rsplit('/').next().unwrap_or(name);
    if name.is_empty() {
        Some("no file name")
    } else if file.starts_with("ld-linux") || file.starts_with("ld.so") {
        Some("the dynamic loader")
    } else if file.starts_with("linux-vdso") || file.starts_with("linux-gate") {
        Some("the vdso")
    } else if file.contains("libddl") {
        Some("DDL's own")
    } else {
        None
    }
}

fn install_hooks() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let h = Hooks {
            record: c_record,
            open: open_hook,
        };
        // SAFETY: the C side copies the struct.
        unsafe { ddl_contain_set_hooks(&h) };
        sandbox::set_write_hook(trapped_write);
    });
}

/// The backstop's write trap (`arbiter::sandbox::set_write_hook`): a write
/// to fd 1 or 2 that the new build's libc made by itself inside a
/// sandboxed call, recorded under the syscall's name with target
/// `stdout`/`stderr`. Runs in the SIGSYS handler (DDL's signals blocked).
unsafe extern "C" fn trapped_write(
    nr: c_int,
    fd: c_int,
    bytes: *const c_char,
    copied: usize,
    total: usize,
) {
    if !recording() {
        return;
    }
    let function = match nr as libc::c_long {
        libc::SYS_writev => "writev",
        libc::SYS_pwrite64 => "pwrite64",
        _ => "write",
    };
    let mut cap = Capture::new();
    cap.feed(bytes as *const u8, copied);
    cap.total = total;
    let target = Target::Named(if fd == 1 { "stdout" } else { "stderr" });
    commit(function, &target, &cap);
}

/// Points every reference of the new build's namespace (the namespace of
/// `handle`) to a function of [`intercepted`], and to each of `extra` (the
/// config's `sandbox.intercept`: generic replacement, recorded by name,
/// answered 0), at DDL's replacement. See the module doc.
///
/// A built-in name's slot is patched only when it holds the namespace's
/// libc definition of that name (with the reference's version); an extra
/// name's, when it points outside the referring object. Idempotent: run it
/// again after the namespace loaded more objects. Run it before the first
/// call into the namespace and outside any sandboxed call (it reads the
/// objects' relocations from memory and takes ld.so's lock briefly).
///
/// # Safety
/// `handle` must be a live `dlmopen` handle of a namespace other than the
/// base one, and no thread may be inside ld.so relocating that namespace.
pub unsafe fn patch_namespace(
    handle: *mut c_void,
    extra: &[String],
) -> Result<ContainReport, String> {
    let _g = PATCH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    install_hooks();
    let mut lmid: libc::Lmid_t = 0;
    if libc::dlinfo(
        handle,
        libc::RTLD_DI_LMID,
        &mut lmid as *mut _ as *mut c_void,
    ) != 0
    {
        return Err(format!(
            "contain: dlinfo(RTLD_DI_LMID): {}",
            crate::namespace::dlerror()
        ));
    }
    if lmid == libc::LM_ID_BASE {
        return Err("contain: the handle is in the base namespace".into());
    }
    let mut lm: *mut LinkMap = std::ptr::null_mut();
    if libc::dlinfo(
        handle,
        libc::RTLD_DI_LINKMAP,
        &mut lm as *mut _ as *mut c_void,
    ) != 0
        || lm.is_null()
    {
        return Err(format!(
            "contain: dlinfo(RTLD_DI_LINKMAP): {}",
            crate::namespace::dlerror()
        ));
    }
    let chain = namespace_chain(lm);
    let mut report = ContainReport {
        lmid: lmid as i64,
        ..Default::default()
    };
    let Some(libc_obj) = chain.iter().find(|o| {
        let f = o.obj.name.rsplit('/').next().unwrap_or("");
        f.starts_with("libc.so") || f.starts_with("libc-")
    }) else {
        // A build that links no libc calls none of libc's functions:
        // nothing to patch (its raw system calls are beyond any table).
        report
            .skipped
            .push("the namespace has no libc: nothing to patch".into());
        return Ok(report);
    };
    // A handle of the namespace's libc (a dependency's link_map is no
    // handle: its search list is empty); the reference is dropped at the
    // end, so the namespace can still be unloaded.
    let libc_path =
        std::ffi::CString::new(libc_obj.obj.name.as_str()).map_err(|e| e.to_string())?;
    let libc_h = libc::dlmopen(lmid, libc_path.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_NOW);
    if libc_h.is_null() {
        return Err(format!(
            "contain: the namespace's libc: {}",
            crate::namespace::dlerror()
        ));
    }
    struct Unref(*mut c_void);
    impl Drop for Unref {
        fn drop(&mut self) {
            crate::interpose::real_dlclose(self.0);
        }
    }
    let _unref = Unref(libc_h);
    let sym = |n: &CStr| real_dlsym(libc_h, n);

    // The namespace's entry: the same handle again keeps its table.
    let ns: &'static Ns = match live_namespaces().find(|n| n.handle == handle as usize) {
        Some(ns) => ns,
        None => {
            for old in live_namespaces().filter(|n| n.lmid == lmid) {
                old.alive.store(false, Ordering::Release);
            }
            // A slot of an unloaded namespace is reused (its entry stays
            // leaked: a reader may still hold it); else the next free one.
            let len = REG_LEN.load(Ordering::Acquire);
            let reuse = (0..len.min(MAX_NS)).find(|&i| {
                let p = REGISTRY[i].load(Ordering::Acquire);
                // SAFETY: entries are leaked boxes, never freed.
                p.is_null() || !unsafe { &*p }.alive.load(Ordering::Acquire)
            });
            let n = reuse.unwrap_or(len);
            if n >= MAX_NS {
                return Err("contain: too many namespaces patched".into());
            }
            let ns: &'static Ns = Box::leak(Box::new(Ns {
                handle: handle as usize,
                lmid,
                alive: AtomicBool::new(true),
                spans: std::array::from_fn(|_| (AtomicUsize::new(0), AtomicUsize::new(0))),
                nspans: AtomicUsize::new(0),
                errno_location: sym(c"__errno_location"),
                stdout_var: sym(c"stdout"),
                stderr_var: sym(c"stderr"),
                fopen: sym(c"fopen"),
                fopen64: sym(c"fopen64"),
                freopen: sym(c"freopen"),
                freopen64: sym(c"freopen64"),
                fdopen: sym(c"fdopen"),
                pthread_create: sym(c"pthread_create"),
                threads: AtomicUsize::new(0),
                sig: Mutex::new([None; NSIG]),
            }));
            // Faults of the threads it starts poison it (arbiter::shadow).
            sandbox::set_namespace(lmid as i64);
            if ns.fopen == 0 || ns.fdopen == 0 || ns.freopen == 0 {
                return Err("contain: the namespace's libc lacks fopen/fdopen/freopen".into());
            }
            REGISTRY[n].store(ns as *const Ns as *mut Ns, Ordering::Release);
            if n == len {
                REG_LEN.store(n + 1, Ordering::Release);
            }
            ns
        }
    };

    // name → (replacement, built-in?)
    let mut wanted: HashMap<String, (usize, bool)> = table()
        .iter()
        .map(|e| (e.name.to_string(), (e.replacement, true)))
        .collect();
    for x in extra {
        if wanted.contains_key(x.as_str()) {
            continue;
        }
        match extra_stub(x) {
            Some(stub) => {
                wanted.insert(x.clone(), (stub, false));
            }
            None => report.skipped.push(format!(
                "sandbox.intercept {x}: more than {MAX_EXTRA} names"
            )),
        }
    }

    for o in &chain {
        let label = o.obj.name.clone();
        if let Some(why) = skip_reason(&o.obj.name) {
            report.skipped.push(format!("{label}: {why}"));
            continue;
        }
        let is_wanted = |n: &str| wanted.contains_key(n);
        let names = NameFilter::new(wanted.keys().map(String::as_str), &is_wanted);
        let info = match object_info(&o.obj, &names) {
            Ok(i) => i,
            Err(e) => {
                report.skipped.push(format!("{label}: {e}"));
                continue;
            }
        };
        ns.add_span(info.span);
        report.objects.push(label.clone());
        for slot in &info.slots {
            let Some(&(repl, builtin)) = wanted.get(slot.name.as_str()) else {
                continue;
            };
            let cur = read_slot(slot.addr);
            if cur == repl {
                report.already += 1;
                continue;
            }
            if is_replacement(cur) || cur == 0 {
                continue;
            }
            if builtin {
                let Ok(n) = std::ffi::CString::new(slot.name.as_str()) else {
                    continue;
                };
                let def = match slot
                    .version
                    .as_deref()
                    .and_then(|v| std::ffi::CString::new(v).ok())
                {
                    Some(v) => match real_dlvsym(libc_h, &n, &v) {
                        0 => real_dlsym(libc_h, &n),
                        d => d,
                    },
                    None => real_dlsym(libc_h, &n),
                };
                if def != cur {
                    report.skipped.push(format!(
                        "{label}: {} does not hold libc's definition",
                        slot.name
                    ));
                    continue;
                }
            } else if cur >= info.span.0 && cur < info.span.1 {
                continue; // the object's own definition
            }
            write_slot(slot.addr, repl, info.relro)
                .map_err(|e| format!("contain: {label}: {}: {e}", slot.name))?;
            let name = table()
                .iter()
                .find(|e| e.name == slot.name)
                .map(|e| e.name)
                .or_else(|| {
                    EXTRA_NAMES
                        .iter()
                        .filter_map(|n| n.get().copied())
                        .find(|n| *n == slot.name)
                })
                .unwrap_or("?");
            report.patched.push((label.clone(), name));
        }
    }
    Ok(report)
}

/// Is a namespace of the new build contained now (patched by
/// [`patch_namespace`], not forgotten)?
pub fn namespace_patched() -> bool {
    live_namespaces().next().is_some()
}

/// Forgets the namespace of `handle` (before `dlclose` unloads it): its
/// signal table and address ranges no longer count.
pub fn forget_namespace(handle: *mut c_void) {
    let _g = PATCH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for ns in live_namespaces().filter(|n| n.handle == handle as usize) {
        ns.alive.store(false, Ordering::Release);
    }
}

#[cfg(test)]
#[path = "contain_tests.rs"]
mod tests;
