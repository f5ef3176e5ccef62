//! Containing the shadow call: faults and signal-accepting hangs of the new
//! build become statuses ([`CallFailure`]) instead of ending the process.
//!
//! The work is done in C (`csrc/sandbox.c`, built by `build.rs`): a
//! process-wide handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
//! SIGSYS, SIGTRAP and a real-time timer signal acts only on a thread that
//! is inside a sandboxed call, and `siglongjmp`s back to
//! `ddl_sandbox_call`'s frame; the jump never crosses a Rust frame, Rust
//! only sees the status. Everywhere else the handler chains to what would
//! have run without DDL (the application's handlers, installed before or
//! after DDL's, or the default action): see the comment at the top of
//! `sandbox.c` for how, and for the limits.
//!
//! Exits: a call that tries to end the process comes back as
//! [`CallFailure::Exit`] — through the exit functions `shim::contain`
//! patches in the new build's namespace, or through the `exit_group`
//! backstop ([`install_thread_backstop`]) for exits from inside libc.
//!
//! Use: [`install`] once (idempotent), [`thread_init`] on each thread that
//! makes sandboxed calls (it unblocks the fault and timer signals there, so
//! a shadow thread started with every signal blocked is fine), then
//! [`call`] (or `Invoker::call_sandboxed`, which builds the [`DdlCall`]).

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::mem::MaybeUninit;

/// `ddl_call.h`'s `ddl_ffi_call_fn`: libffi's `ffi_call`.
pub type FfiCallFn = unsafe extern "C" fn(
    *mut c_void,
    Option<unsafe extern "C" fn()>,
    *mut c_void,
    *mut *mut c_void,
);

/// `ddl_call.h`'s `ddl_guard_fn`: the C++ exception guard, which calls
/// `call(cif, fn, rvalue, avalue)` inside `try`/`catch` and returns
/// [`CALL_OK`] or [`CALL_EXCEPTION`] (type and `what()` in the buffers).
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

/// `DDL_CALL_OK`: the call returned.
pub const CALL_OK: c_int = 0;
/// `DDL_CALL_EXCEPTION`: the guard caught a C++ exception.
pub const CALL_EXCEPTION: c_int = 1;
/// `DDL_CALL_FAULT`: a fault signal ended the call.
pub const CALL_FAULT: c_int = 2;
/// `DDL_CALL_TIMEOUT`: the call ran past its time limit and was interrupted.
pub const CALL_TIMEOUT: c_int = 3;
/// `DDL_CALL_EXIT`: the call tried to end the process (an exit function
/// through a reference `contain` patched, or `exit_group` under the
/// backstop, [`install_thread_backstop`]).
pub const CALL_EXIT: c_int = 4;

/// `ddl_call.h`'s `struct ddl_call`: one call as the sandbox makes it.
#[repr(C)]
pub struct DdlCall {
    /// The prepared `ffi_cif`.
    pub cif: *mut c_void,
    /// The function called.
    pub func: Option<unsafe extern "C" fn()>,
    /// Where the return value goes (room for an `ffi_arg` at least).
    pub rvalue: *mut c_void,
    /// One pointer per argument, to its value.
    pub avalue: *mut *mut c_void,
    /// libffi's `ffi_call`.
    pub ffi_call: FfiCallFn,
    /// The C++ guard, or `None` to call `ffi_call` directly.
    pub guard: Option<GuardFn>,
    /// The caught exception's type (NUL-terminated), for [`CALL_EXCEPTION`].
    /// Left uninitialised by [`DdlCall::new`] (zeroing 768 bytes was a
    /// sixth of a sandboxed call): `ddl_sandbox_call` empties both strings
    /// before the call, and only the bytes up to the NUL are read.
    pub exc_type: [MaybeUninit<c_char>; 256],
    /// Its `what()` (NUL-terminated), for [`CALL_EXCEPTION`].
    pub exc_what: [MaybeUninit<c_char>; 512],
}

impl DdlCall {
    /// A call of `func` through `ffi_call` with `cif`, `rvalue` and
    /// `avalue`, guarded by `guard` when given.
    pub fn new(
        ffi_call: FfiCallFn,
        cif: *mut c_void,
        func: Option<unsafe extern "C" fn()>,
        rvalue: *mut c_void,
        avalue: *mut *mut c_void,
        guard: Option<GuardFn>,
    ) -> DdlCall {
        DdlCall {
            cif,
            func,
            rvalue,
            avalue,
            ffi_call,
            guard,
            exc_type: [MaybeUninit::uninit(); 256],
            exc_what: [MaybeUninit::uninit(); 512],
        }
    }
}

/// `sandbox.h`'s `struct ddl_fault`: what ended a call that faulted or
/// timed out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// The signal (for a timeout: the timer signal, [`timer_signal`]).
    pub signal: i32,
    /// Its `si_code` (`SEGV_MAPERR`, `SI_TKILL` for `raise`/`abort`,
    /// `SI_TIMER` for a timeout…).
    pub code: i32,
    /// `si_addr`: the faulting data address for SIGSEGV/SIGBUS, the
    /// faulting instruction for SIGILL/SIGFPE; 0 for a timeout.
    pub addr: usize,
    /// The instruction pointer when the signal arrived (for a timeout:
    /// where the call was interrupted; for an exit: the exit function's
    /// return address, or the `exit_group` syscall's instruction).
    pub pc: usize,
    /// For an exit: the status the new build asked for.
    pub exit_status: i32,
    /// For an exit: `sandbox.h`'s `enum ddl_exit_how` (see [`exit_how_name`]).
    pub exit_how: i32,
}

/// The name of `sandbox.h`'s `enum ddl_exit_how` value `how`: "exit",
/// "_exit", "_Exit", "quick_exit", "exit_group" (the backstop: an exit from
/// inside libc, e.g. `error()`), or "?".
pub fn exit_how_name(how: i32) -> &'static str {
    match how {
        1 => "exit",
        2 => "_exit",
        3 => "_Exit",
        4 => "quick_exit",
        5 => "exit_group",
        _ => "?",
    }
}

impl Fault {
    /// The signal's name ([`signal_name`]).
    pub fn signal_name(&self) -> String {
        signal_name(self.signal)
    }
}

/// Why a sandboxed call produced no result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// A C++ exception left the function (caught by the guard).
    Exception {
        /// The exception's type, demangled.
        ty: String,
        /// `what()` for a `std::exception`, else empty.
        what: String,
    },
    /// A fault signal ended the call.
    Fault(Fault),
    /// The call ran past its time limit and was interrupted where
    /// `Fault::pc` says.
    Timeout(Fault),
    /// The call tried to end the process; the process lives on (the
    /// call was abandoned where it exited: the new build's namespace may be
    /// left inconsistent, as after a fault).
    Exit {
        /// The exit status asked for.
        status: i32,
        /// How: "exit", "_exit", "_Exit", "quick_exit" (the new build's
        /// reference, patched by `contain`), or "exit_group" (the syscall,
        /// caught by the backstop: e.g. `error(1, …)` inside libc).
        how: &'static str,
        /// Where: the exit function's return address (the call site in
        /// the new build, or further up for a tail call), or the syscall
        /// instruction inside libc for "exit_group".
        pc: usize,
    },
    /// The thread could not be prepared for sandboxed calls (the errno),
    /// or a sandboxed call was made from inside one (EBUSY). Nothing was
    /// called.
    Unavailable(i32),
}

mod ffi {
    use super::{DdlCall, Fault};
    use std::ffi::{c_int, c_uint, c_ulong};
    extern "C" {
        pub fn ddl_sandbox_install() -> c_int;
        pub fn ddl_sandbox_thread_init() -> c_int;
        pub fn ddl_sandbox_call(c: *mut DdlCall, f: *mut Fault, timeout_ms: c_uint) -> c_int;
        pub fn ddl_sandbox_timer_signal() -> c_int;
        pub fn ddl_sandbox_foreign_handlers() -> c_ulong;
        pub fn ddl_sandbox_retaken_handlers() -> c_ulong;
        pub fn ddl_sandbox_set_recheck(every: c_uint);
        pub fn ddl_sandbox_handlers_changed();
        pub fn ddl_sandbox_parked() -> c_ulong;
        pub fn ddl_sandbox_state() -> c_int;
        pub fn ddl_sandbox_current_fn() -> *mut std::ffi::c_void;
        pub fn ddl_sandbox_defer_begin();
        pub fn ddl_sandbox_defer_end();
        pub fn ddl_sandbox_deferred_timeouts() -> c_ulong;
        pub fn ddl_sandbox_strip_managed(set: *mut libc::sigset_t);
        pub fn ddl_sandbox_is_managed(sig: c_int) -> c_int;
        pub fn ddl_sandbox_install_backstop() -> c_int;
        pub fn ddl_sandbox_set_write_hook(f: Option<super::TrappedWriteFn>);
        pub fn ddl_sandbox_swallowed_writes() -> std::ffi::c_ulong;
        pub fn ddl_sandbox_diag(buf: *const std::ffi::c_char, len: usize);
        pub fn ddl_sandbox_spawn(
            thr: *mut libc::pthread_t,
            attr: *const libc::pthread_attr_t,
            start: *mut std::ffi::c_void,
            arg: *mut std::ffi::c_void,
            c11: c_int,
            tag: std::ffi::c_long,
            create: *mut std::ffi::c_void,
        ) -> c_int;
        pub fn ddl_sandbox_take_thread_faults(out: *mut super::RawThreadFault, max: usize)
            -> usize;
        pub fn ddl_sandbox_thread_faults_lost() -> c_ulong;
        pub fn ddl_sandbox_new_build_threads() -> c_ulong;
        pub fn ddl_sandbox_set_namespace(tag: std::ffi::c_long);
        pub fn ddl_sandbox_current_namespace() -> std::ffi::c_long;
    }
}

fn errno_text(rc: c_int) -> String {
    std::io::Error::from_raw_os_error(-rc).to_string()
}

/// Installs the process-wide handlers and picks the timer signal.
/// Idempotent and thread-safe. Errors name the failing step's errno.
pub fn install() -> Result<(), String> {
    // SAFETY: takes no arguments; installs handlers under its own lock.
    let rc = unsafe { ffi::ddl_sandbox_install() };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "sandbox: cannot install the signal handlers: {}",
            errno_text(rc)
        ))
    }
}

/// Prepares the calling thread for sandboxed calls (installing the handlers
/// if need be): an alternate signal stack with a guard page, a timer aimed
/// at this thread, the fault and timer signals unblocked. Idempotent per
/// thread; everything is released when the thread ends.
pub fn thread_init() -> Result<(), String> {
    // SAFETY: acts on the calling thread's own state only.
    let rc = unsafe { ffi::ddl_sandbox_thread_init() };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "sandbox: cannot prepare the thread: {}",
            errno_text(rc)
        ))
    }
}

/// The real-time signal the call timers use (0 before [`install`]).
pub fn timer_signal() -> i32 {
    // SAFETY: reads a value set once under the install lock.
    unsafe { ffi::ddl_sandbox_timer_signal() }
}

/// How many signal handlers installed from another namespace (the new
/// build's own `sigaction`) were found over DDL's and dropped.
pub fn foreign_handlers() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { ffi::ddl_sandbox_foreign_handlers() as u64 }
}

/// How many application handlers installed over DDL's were found and put
/// under DDL's (chained to from then on).
pub fn retaken_handlers() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { ffi::ddl_sandbox_retaken_handlers() as u64 }
}

/// How often a sandboxed call first re-reads the signal dispositions, to
/// put DDL's handlers back over any installed since (and chain to those):
/// 1 (the default) before every call, which costs one `rt_sigaction` per
/// managed signal (8; about 3 µs here); n, every n-th call on each thread
/// and before the next call after [`handlers_changed`]. Anything but 1 is
/// only safe once every change is announced (libddl interposing the
/// application's `sigaction`/`signal`): until then it leaves a window in
/// which a fault of the new build reaches the application's handler.
pub fn set_recheck_every(every: u32) {
    // SAFETY: stores an atomic.
    unsafe { ffi::ddl_sandbox_set_recheck(every as c_uint) }
}

/// Announces that a signal handler may have changed: every thread re-reads
/// the dispositions before its next sandboxed call.
pub fn handlers_changed() {
    // SAFETY: bumps an atomic counter.
    unsafe { ffi::ddl_sandbox_handlers_changed() }
}

/// Makes `c` in the sandbox with a time limit of `timeout_ms` (0: none).
/// `Ok(())`: the call returned and its return value is in `c.rvalue`.
///
/// # Safety
/// `c` must describe a valid call: `cif` prepared for `func`'s signature,
/// `avalue` one valid pointer per argument, `rvalue` large enough, every
/// pointer argument valid for what the callee does with it. The callee is
/// abandoned mid-way on a fault or timeout: whatever state it (or libc in
/// its namespace) was updating may be left inconsistent (locks held,
/// half-written buffers), and it must not share such state with the caller.
pub unsafe fn call(c: &mut DdlCall, timeout_ms: u32) -> Result<(), CallFailure> {
    let mut f = Fault::default();
    // SAFETY: `c` and `f` are valid for the call; the caller vouches for the
    // call itself. The C side never jumps past its own frame.
    let rc = unsafe { ffi::ddl_sandbox_call(c, &mut f, timeout_ms as c_uint) };
    match rc {
        CALL_OK => Ok(()),
        CALL_EXCEPTION => Err(CallFailure::Exception {
            ty: c_text(&c.exc_type),
            what: c_text(&c.exc_what),
        }),
        CALL_FAULT => Err(CallFailure::Fault(f)),
        CALL_TIMEOUT => Err(CallFailure::Timeout(f)),
        CALL_EXIT => Err(CallFailure::Exit {
            status: f.exit_status,
            how: exit_how_name(f.exit_how),
            pc: f.pc,
        }),
        rc if rc < 0 => Err(CallFailure::Unavailable(-rc)),
        // A guard that returned something else: treated as a fault with no
        // signal rather than trusted.
        _ => Err(CallFailure::Fault(Fault::default())),
    }
}

/// Installs the exit backstop on the calling thread: a seccomp filter
/// (`PR_SET_NO_NEW_PRIVS`, then `SECCOMP_SET_MODE_FILTER` without `TSYNC`,
/// so this thread only) that turns the `exit_group` syscall into SIGSYS
/// (`SECCOMP_RET_TRAP`). Inside a sandboxed call that becomes
/// [`CallFailure::Exit`] with `how` "exit_group" and the status from the
/// syscall's first argument: it catches exits from inside libc that no
/// patched reference sees (`error(1, …)`, `exit` reached through libc's
/// own calls). Outside a sandboxed call the thread is parked for ever
/// ([`parked_threads`]) rather than end the process.
///
/// The filter cannot be removed: it stays for the thread's life, and
/// threads created by this thread afterwards inherit it (the new build's
/// own threads, when it starts them from a shadow call: an exit on them
/// parks them). That is fine for a shadow thread: DDL never calls
/// `exit_group` there (the process ends through another thread's
/// `exit_group`, which the filter does not see, or a plain thread `exit`,
/// which it lets through). Call it before spawning any thread of DDL's own
/// from the shadow thread. Idempotent per thread.
///
/// The same filter traps `write`, `writev` and `pwrite64` on fds 1 and 2
/// (what the new build's libc writes there by itself: malloc's "double
/// free detected", `__libc_message`): inside a sandboxed call the write is
/// answered with its byte count and handed to the [`set_write_hook`] hook
/// (the shadow's outgoing calls, target `stdout`/`stderr`); on a prepared
/// thread outside one (DDL's own output, a panic message) the handler
/// performs it through DDL's raw syscall, the one instruction the filter
/// lets write there ([`diag`] writes through it directly); on any other
/// thread that inherited the filter it is answered and counted
/// ([`swallowed_writes`]). A bad buffer gets `EFAULT`, as from the kernel.
pub fn install_thread_backstop() -> Result<(), String> {
    // SAFETY: acts on the calling thread only.
    let rc = unsafe { ffi::ddl_sandbox_install_backstop() };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "sandbox: cannot install the exit backstop: {}",
            errno_text(rc)
        ))
    }
}

/// What the backstop's write trap hands over for a write to fd 1 or 2 made
/// inside a sandboxed call: the syscall number (`SYS_write`, `SYS_writev`,
/// `SYS_pwrite64`), the fd, a copy of the bytes (`copied` of them, at most
/// 16 MiB; NULL when none) and the total length. It runs inside the SIGSYS
/// handler, on the shadow thread, with DDL's signals blocked.
pub type TrappedWriteFn =
    unsafe extern "C" fn(nr: c_int, fd: c_int, bytes: *const c_char, copied: usize, total: usize);

/// Sets the hook that records the writes to fds 1 and 2 the backstop traps
/// inside sandboxed calls (`shim::contain` records them as the shadow's
/// outgoing calls). Without a hook they are answered and not recorded.
pub fn set_write_hook(f: TrappedWriteFn) {
    // SAFETY: stores a function pointer.
    unsafe { ffi::ddl_sandbox_set_write_hook(Some(f)) }
}

/// Writes to fds 1 and 2 trapped on threads that are not DDL's shadow
/// threads (threads the new build started from a shadow call): answered
/// with the byte count, not performed, not recorded.
pub fn swallowed_writes() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { ffi::ddl_sandbox_swallowed_writes() as u64 }
}

/// DDL's own diagnostic line on stderr (`msg` and a newline), written with
/// a raw `write(2, …)` that the backstop's filter lets through: use it for
/// anything DDL says from the shadow thread (an `eprintln!` there is
/// trapped and re-issued by the SIGSYS handler: it works, at the cost of a
/// signal).
pub fn diag(msg: &str) {
    let mut line = String::with_capacity(msg.len() + 1);
    line.push_str(msg);
    line.push('\n');
    // SAFETY: a buffer we own, of that length.
    unsafe { ffi::ddl_sandbox_diag(line.as_ptr() as *const c_char, line.len()) }
}

/// How many threads were parked for ever because they tried to end the
/// process outside a sandboxed call (an exit of a thread the new build
/// started, or on a shadow thread between calls).
pub fn parked_threads() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { ffi::ddl_sandbox_parked() as u64 }
}

/// The calling thread's state for containment (`shim::contain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadState {
    /// [`thread_init`] ran on this thread (a DDL shadow thread).
    pub prepared: bool,
    /// The thread is inside a sandboxed call.
    pub inside: bool,
}

/// The calling thread's [`ThreadState`].
pub fn thread_state() -> ThreadState {
    // SAFETY: reads the calling thread's own state.
    let s = unsafe { ffi::ddl_sandbox_state() };
    ThreadState {
        prepared: s & 1 != 0,
        inside: s & 2 != 0,
    }
}

/// The function the calling thread's current sandboxed call called (0
/// outside one): tells `contain` which namespace a replacement serves.
pub fn current_fn() -> usize {
    // SAFETY: reads the calling thread's own state.
    unsafe { ffi::ddl_sandbox_current_fn() as usize }
}

/// Runs `f` with the timer signal deferred on this thread: a timeout that
/// falls due meanwhile is taken right after `f` returns (the timer is
/// re-armed to fire at once), never inside `f`. For DDL's own code called
/// from inside a sandboxed call (allocating, taking a lock), which a jump
/// must not leave half-way. A fault inside `f` still jumps: `f` must not
/// touch memory it does not own.
pub fn deferred<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: a nesting counter of the calling thread.
    unsafe { ffi::ddl_sandbox_defer_begin() };
    let r = f();
    // SAFETY: as above; may re-arm the thread's own timer.
    unsafe { ffi::ddl_sandbox_defer_end() };
    r
}

/// How many timeouts fell due inside a [`deferred`] section (and were
/// taken right after it).
pub fn deferred_timeouts() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { ffi::ddl_sandbox_deferred_timeouts() as u64 }
}

/// Removes DDL's managed signals (the fault signals and the timer signal)
/// from `set`.
pub fn strip_managed(set: &mut libc::sigset_t) {
    // SAFETY: `set` is a valid sigset.
    unsafe { ffi::ddl_sandbox_strip_managed(set) }
}

/// Is `sig` one of DDL's managed signals (a fault signal or the timer
/// signal)?
pub fn is_managed(sig: i32) -> bool {
    // SAFETY: reads immutable state.
    unsafe { ffi::ddl_sandbox_is_managed(sig) != 0 }
}

/// `sandbox.h`'s `struct ddl_thread_fault`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
#[doc(hidden)]
pub struct RawThreadFault {
    fault: Fault,
    start: usize,
    tag: std::ffi::c_long,
    status: c_int,
    after: c_int,
}

/// A fault (or an exit) of a thread the new build started itself (through
/// its `pthread_create`/`thrd_create`, which `shim::contain` points at
/// [`spawn_thread`]). The thread ended (its `pthread_join` got
/// `PTHREAD_CANCELED`), or, for a fault after its start routine returned
/// (a thread-exit destructor), was parked for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadFault {
    /// What happened: the signal, its code, the address and the pc; for an
    /// exit `signal` 0 (or SIGSYS for `exit_group`), `exit_status` and
    /// `exit_how`.
    pub fault: Fault,
    /// The thread's start routine (in the new build's namespace).
    pub start: usize,
    /// The namespace it belongs to (the tag `spawn_thread` was given:
    /// `shim::contain` uses its `Lmid_t`).
    pub namespace: i64,
    /// That namespace is the one being called now ([`set_namespace`]): it
    /// is poisoned.
    pub current: bool,
    /// It tried to end the process (an exit function, or `exit_group`).
    pub exit: bool,
    /// It happened after the start routine returned; the thread is parked.
    pub after_start: bool,
}

impl ThreadFault {
    /// "SIGSEGV", or "exit(3)" / "exit_group(1)" for an exit.
    pub fn what(&self) -> String {
        if self.exit {
            format!(
                "{}({})",
                exit_how_name(self.fault.exit_how),
                self.fault.exit_status
            )
        } else {
            self.fault.signal_name()
        }
    }
}

/// Takes the faults of the new build's threads recorded since the last
/// call (each is returned once). At most 64 wait; more are counted in
/// [`thread_faults_lost`].
pub fn take_thread_faults() -> Vec<ThreadFault> {
    let mut buf = [RawThreadFault::default(); 64];
    // SAFETY: a buffer of 64 entries of the C struct's layout.
    let n = unsafe { ffi::ddl_sandbox_take_thread_faults(buf.as_mut_ptr(), buf.len()) };
    // SAFETY: reads an atomic.
    let current = unsafe { ffi::ddl_sandbox_current_namespace() } as i64;
    buf[..n]
        .iter()
        .map(|r| ThreadFault {
            fault: r.fault,
            start: r.start,
            namespace: r.tag,
            current: r.tag == current,
            exit: r.status == CALL_EXIT,
            after_start: r.after != 0,
        })
        .collect()
}

/// Faults of the new build's threads that could not be recorded (more than
/// 64 waiting).
pub fn thread_faults_lost() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { ffi::ddl_sandbox_thread_faults_lost() as u64 }
}

/// Threads the new build started through [`spawn_thread`].
pub fn new_build_threads() -> u64 {
    // SAFETY: reads an atomic counter.
    unsafe { ffi::ddl_sandbox_new_build_threads() as u64 }
}

/// Names the namespace being called now (the tag its threads are started
/// with): a [`ThreadFault`] of that namespace is `current`.
pub fn set_namespace(tag: i64) {
    // SAFETY: stores an atomic.
    unsafe { ffi::ddl_sandbox_set_namespace(tag as std::ffi::c_long) }
}

/// `pthread_create` (`c11` false) or `thrd_create` (`c11` true: `start`
/// returns `int`, the result is a `thrd_*` code) on behalf of the new
/// build: `create`, its namespace's own `pthread_create`, starts the thread
/// on the sandbox's trampoline, which prepares it (an alternate signal
/// stack, the fault signals unblocked; the creating shadow thread's
/// seccomp backstop is inherited) and runs `start(arg)` contained: a fault
/// or an exit there ends the thread — `pthread_join` then gets
/// `PTHREAD_CANCELED` (`thrd_join`: -1) — and is recorded
/// ([`take_thread_faults`]). `tag` names the namespace. No time limit.
///
/// # Safety
/// The arguments of the `pthread_create` being replaced; `create` must be
/// a `pthread_create` (of the namespace `start` lives in).
pub unsafe fn spawn_thread(
    thr: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: usize,
    arg: *mut c_void,
    c11: bool,
    tag: i64,
    create: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        ffi::ddl_sandbox_spawn(
            thr,
            attr,
            start as *mut c_void,
            arg,
            c11 as c_int,
            tag as std::ffi::c_long,
            create as *mut c_void,
        )
    }
}

/// The text of a buffer `ddl_sandbox_call` emptied before the call (its
/// first byte set to NUL) and the guard may have filled: the bytes before
/// the first NUL, which are all initialised.
fn c_text(buf: &[MaybeUninit<c_char>]) -> String {
    let mut bytes = Vec::new();
    for b in buf {
        // SAFETY: every byte up to and including the first NUL was written
        // (by ddl_sandbox_call or by the guard, which NUL-terminates).
        let b = unsafe { b.assume_init() } as u8;
        if b == 0 {
            break;
        }
        bytes.push(b);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The name of signal `sig`: "SIGSEGV", "SIGRTMIN+3", or "signal 99".
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => {
            let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
            return if (min..=max).contains(&sig) {
                if sig == min {
                    "SIGRTMIN".into()
                } else {
                    format!("SIGRTMIN+{}", sig - min)
                }
            } else {
                format!("signal {sig}")
            };
        }
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(libc::SIGABRT), "SIGABRT");
        assert_eq!(signal_name(libc::SIGRTMIN()), "SIGRTMIN");
        assert_eq!(signal_name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
        assert_eq!(signal_name(0), "signal 0");
    }

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<Fault>(), 32);
        assert_eq!(std::mem::size_of::<RawThreadFault>(), 32 + 8 + 8 + 4 + 4);
        assert_eq!(exit_how_name(5), "exit_group");
        // ddl_call: 6 pointers, 256 + 512 bytes.
        assert_eq!(std::mem::size_of::<DdlCall>(), 6 * 8 + 256 + 512);
    }
}
