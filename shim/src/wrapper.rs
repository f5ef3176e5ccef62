//! Per-function wrappers that enter the arbiter.
//!
//! A wrapper is a 32-byte thunk, generated at run time, that loads its
//! [`FnCtx`] into `r11` (free at a call boundary in the System V ABI) and
//! jumps to one shared assembly entry, `ddl_wrapper_entry`. The entry saves
//! every argument register into a [`Frame`] and asks `ddl_wrapper_pre`
//! what to do:
//!
//! - forward (sampled out, re-entrant, standing down): restore the registers
//!   and tail-jump to the old function, which returns straight to the
//!   application; DDL is then off the call entirely;
//! - mirror: copy the stack arguments down, call the old function, save its
//!   return registers, call `ddl_wrapper_post` to capture the outcome and
//!   enqueue the invocation, restore the return registers and return.
//!
//! The entry never needs to know a signature: the pre hook tells it the
//! target and how many bytes of stack arguments to copy. Capture then reads
//! the frame through `arbiter::marshal::Layout`. Frame offsets are shared
//! with `arbiter::marshal::Frame` (tested below).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use arbiter::marshal::Frame;

/// Per-wrapper context: one per (boundary function, symbol version).
#[repr(C)]
pub struct FnCtx {
    /// Address of the old build's function this wrapper forwards to.
    pub target: AtomicU64,
    /// Address of the new build's function the shadow calls (0: unmirrored).
    pub new_fn: AtomicU64,
    /// Bytes of stack arguments the entry copies when it calls the target itself.
    pub copy_bytes: u64,
    /// Index of the function in the boundary.
    pub func: u32,
    /// A C++ deleting destructor (D0): the shadow frees no storage of DDL's
    /// with the new build's `operator delete`.
    pub deleting: bool,
}

/// The argument registers back from the `Frame` at `rbx`, exactly as the
/// application passed them (both the forwarding and the mirroring path).
macro_rules! restore_args {
    () => {
        concat!(
            "mov rdi, [rbx+0]\n",
            "mov rsi, [rbx+8]\n",
            "mov rdx, [rbx+16]\n",
            "mov rcx, [rbx+24]\n",
            "mov r8, [rbx+32]\n",
            "mov r9, [rbx+40]\n",
            "mov rax, [rbx+48]\n",
            "movdqu xmm0, [rbx+80]\n",
            "movdqu xmm1, [rbx+96]\n",
            "movdqu xmm2, [rbx+112]\n",
            "movdqu xmm3, [rbx+128]\n",
            "movdqu xmm4, [rbx+144]\n",
            "movdqu xmm5, [rbx+160]\n",
            "movdqu xmm6, [rbx+176]\n",
            "movdqu xmm7, [rbx+192]",
        )
    };
}

std::arch::global_asm!(
    ".text",
    ".globl ddl_wrapper_entry",
    ".hidden ddl_wrapper_entry",
    ".type ddl_wrapper_entry,@function",
    "ddl_wrapper_entry:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "push r11",
    "push rbx",
    ".cfi_offset rbx, -32",
    "sub rsp, 272",
    "mov rbx, rsp",
    "mov [rbx+0], rdi",
    "mov [rbx+8], rsi",
    "mov [rbx+16], rdx",
    "mov [rbx+24], rcx",
    "mov [rbx+32], r8",
    "mov [rbx+40], r9",
    "mov [rbx+48], rax",
    "lea rax, [rbp+16]",
    "mov [rbx+56], rax",
    "mov rax, [rbp+8]",
    "mov [rbx+64], rax",
    "movdqu [rbx+80], xmm0",
    "movdqu [rbx+96], xmm1",
    "movdqu [rbx+112], xmm2",
    "movdqu [rbx+128], xmm3",
    "movdqu [rbx+144], xmm4",
    "movdqu [rbx+160], xmm5",
    "movdqu [rbx+176], xmm6",
    "movdqu [rbx+192], xmm7",
    "mov rdi, r11",
    "mov rsi, rbx",
    "call {pre}",
    "test rax, rax",
    "jnz 2f",
    // Forward: restore the arguments exactly and tail-jump to the target.
    "mov r11, [rbx+256]",
    restore_args!(),
    "mov rbx, [rbp-16]",
    "leave",
    ".cfi_def_cfa rsp, 8",
    "jmp r11",
    ".cfi_def_cfa rbp, 16",
    // Mirror: call the target ourselves with a copy of the stack arguments.
    "2:",
    "mov rcx, [rbx+72]",
    "sub rsp, rcx",
    "lea rsi, [rbp+16]",
    "mov rdi, rsp",
    "shr rcx, 3",
    "cld",
    "rep movsq",
    restore_args!(),
    "mov r11, [rbx+256]",
    "call r11",
    // Where the old function returns to in a mirrored call (see `app_caller`).
    ".globl ddl_wrapper_ret",
    ".hidden ddl_wrapper_ret",
    "ddl_wrapper_ret:",
    "mov [rbx+208], rax",
    "mov [rbx+216], rdx",
    "movdqu [rbx+224], xmm0",
    "movdqu [rbx+240], xmm1",
    "mov rdi, [rbp-8]",
    "mov rsi, rbx",
    "call {post}",
    "mov rax, [rbx+208]",
    "mov rdx, [rbx+216]",
    "movdqu xmm0, [rbx+224]",
    "movdqu xmm1, [rbx+240]",
    "mov rbx, [rbp-16]",
    "leave",
    ".cfi_def_cfa rsp, 8",
    "ret",
    ".cfi_endproc",
    ".size ddl_wrapper_entry, .-ddl_wrapper_entry",
    pre = sym ddl_wrapper_pre,
    post = sym ddl_wrapper_post,
);

extern "C" {
    fn ddl_wrapper_entry();
    fn ddl_wrapper_ret();
}

/// The application's return address when `ret` is the wrapper entry's own
/// (a mirrored call's old function that tail-calls `dlopen`/`dlsym`: glibc
/// takes the return address as the caller, and without DDL that is the
/// application's call site, whose RUNPATH and namespace apply).
pub fn app_caller(ret: usize) -> usize {
    if ret != ddl_wrapper_ret as *const () as usize {
        return ret;
    }
    match state().map(|t| t.inflight.get()) {
        // SAFETY: the in-flight frame is live (its old function is running
        // on this thread: it is what made this call).
        Some((at, _)) if at != 0 => unsafe { (*(at as *const Frame)).ret_addr as usize },
        _ => ret,
    }
}

/// The caller's path's per-thread state, in one thread-local block so that
/// each hook looks it up once (a `__tls_get_addr` call in a shared object).
pub struct ThreadState {
    /// Set while this thread is inside DDL's own work or inside a mirrored
    /// boundary call: any boundary call made meanwhile is forwarded.
    pub busy: Cell<bool>,
    /// `errno` when the application made the current call.
    pub entry_errno: Cell<i32>,
    /// `errno` as the primary call left it.
    pub primary_errno: Cell<i32>,
    /// The sampling generator's state (xorshift64; 0 = not seeded yet).
    pub rng: Cell<u64>,
    /// The thread's id (0 = not asked yet).
    pub tid: Cell<u32>,
    /// What the pre hook captured, waiting for the primary call to return.
    pub pending: RefCell<Option<crate::runtime::Pending>>,
    /// While a mirrored call runs the old function: its frame's address and
    /// the cookie written in the frame (0, 0 otherwise). Lets the pre hook
    /// tell a call nested in it from a call made after it was abandoned by
    /// `longjmp` or an exception (see [`abandoned`]).
    pub inflight: Cell<(usize, u64)>,
    /// The wrapper context of the mirrored call in flight (0 otherwise).
    pub inflight_ctx: Cell<usize>,
    /// The C++ exception this thread threw last while a mirrored call was
    /// in flight (`__cxa_throw`), until it is caught.
    pub thrown: RefCell<Option<arbiter::compare::Exception>>,
    /// This thread's call counters (made at its first boundary call).
    pub counts: RefCell<Option<arbiter::shadow::ThreadCounts>>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            busy: Cell::new(false),
            entry_errno: Cell::new(0),
            primary_errno: Cell::new(0),
            rng: Cell::new(0),
            tid: Cell::new(0),
            pending: RefCell::new(None),
            inflight: Cell::new((0, 0)),
            inflight_ctx: Cell::new(0),
            thrown: RefCell::new(None),
            counts: RefCell::new(None),
        }
    };
}

/// The current thread's state; `None` while the thread is being torn down
/// (its thread-locals already destroyed): DDL then only forwards.
fn state() -> Option<&'static ThreadState> {
    // SAFETY: the reference is used only on this thread and only during the
    // hook that asked for it, while the thread-local is alive.
    STATE
        .try_with(|t| unsafe { &*(t as *const ThreadState) })
        .ok()
}

/// Marks the current thread as DDL's own (the shadow and writer threads):
/// boundary calls it makes are always forwarded, never mirrored.
pub fn mark_thread_busy() {
    set_busy(true);
}

/// Sets the busy flag and returns its previous value (true when the
/// thread's state is gone: nothing is mirrored then).
pub fn set_busy(v: bool) -> bool {
    state().map(|t| t.busy.replace(v)).unwrap_or(true)
}

/// What the pre hook decided, for the entry.
const FORWARD: u64 = 0;
const MIRROR: u64 = 1;

/// Called by the entry with the arguments saved.
///
/// # Safety
/// Only the assembly entry calls it, with `ctx` from a thunk (leaked, never
/// freed) and `frame` on its own stack.
unsafe extern "C" fn ddl_wrapper_pre(ctx: *const FnCtx, frame: *mut Frame) -> u64 {
    let errno = *libc::__errno_location();
    let ctx = &*ctx;
    let frame = &mut *frame;
    frame.target = ctx.target.load(Ordering::Relaxed);
    frame.copy_bytes = ctx.copy_bytes;
    let Some(t) = state() else { return FORWARD };
    t.entry_errno.set(errno);
    if t.busy.replace(true) {
        if !abandoned(t, frame) {
            return FORWARD;
        }
        // The mirrored call in flight was left by `longjmp` (an error
        // handler jumping out of the component, libjpeg style) or an
        // exception, so its post hook never ran: without this the thread
        // stayed busy for good and every later boundary call on it went
        // unmirrored and uncounted. Its capture is discarded; it was counted
        // in `calls` and is reported as `dropped` (the summary counts what
        // never reached a verdict as dropped).
        drop(t.pending.borrow_mut().take());
        t.inflight.set((0, 0));
    }
    // Nothing may unwind into the assembly entry.
    let decision = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::runtime::before_call(ctx, frame, t)
    })) {
        Ok(true) => MIRROR,
        _ => FORWARD,
    };
    if decision == FORWARD {
        t.busy.set(false);
    } else {
        let at = frame as *mut Frame as usize;
        let cookie = (at as u64).rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
        frame._pad = cookie;
        t.inflight.set((at, cookie));
        t.inflight_ctx.set(ctx as *const FnCtx as usize);
        t.thrown.borrow_mut().take();
    }
    *libc::__errno_location() = errno;
    decision
}

/// A C++ exception is thrown on this thread (`__cxa_throw`): noted while a
/// mirrored call is in flight, as it may leave the old build.
pub fn exception_thrown(ex: impl FnOnce() -> arbiter::compare::Exception) {
    if let Some(t) = state() {
        if t.inflight.get().0 != 0 {
            *t.thrown.borrow_mut() = Some(ex());
        }
    }
}

/// A C++ exception is being caught (`__cxa_begin_catch`) by a frame at
/// stack address `sp`. When that is above the frame of the mirrored call in
/// flight, the exception left the old build on its way to the application:
/// the call's outcome is that exception, and it is handed to the shadow
/// now (its post hook never runs).
pub fn exception_caught(sp: usize) {
    let Some(t) = state() else { return };
    let (at, _) = t.inflight.get();
    if at == 0 || sp <= at {
        return; // caught inside the old build, or no call in flight
    }
    let Some(ex) = t.thrown.borrow_mut().take() else {
        return;
    };
    let ctx = t.inflight_ctx.replace(0);
    t.inflight.set((0, 0));
    if ctx != 0 {
        // SAFETY: wrapper contexts are leaked, never freed.
        let ctx = unsafe { &*(ctx as *const FnCtx) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::runtime::after_throw(ctx, t, ex)
        }));
    }
    t.busy.set(false);
}

/// Is the mirrored call in flight on this thread (if any) abandoned, as
/// seen from a new call whose frame is `frame`? A call nested in it (a
/// callback of the old function calling the boundary) has its frame
/// strictly below the in-flight frame, which is intact. A frame at or above
/// it, or an in-flight frame whose cookie was overwritten, means the stack
/// was unwound past it. A call from a signal handler on the alternate
/// stack is never taken for a new one.
fn abandoned(t: &ThreadState, frame: &Frame) -> bool {
    let (at, cookie) = t.inflight.get();
    if at == 0 {
        return false;
    }
    let here = frame as *const Frame as usize;
    let gone = here >= at || {
        // SAFETY: `at` is above this frame on the same stack, so inside
        // the live part of the thread's stack.
        unsafe {
            std::ptr::read_volatile(std::ptr::addr_of!((*(at as *const Frame))._pad)) != cookie
        }
    };
    if !gone {
        return false;
    }
    // SAFETY: stack_t is plain data; all-zero is valid.
    let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: querying the alternate signal stack only.
    let on_alt = unsafe { libc::sigaltstack(std::ptr::null(), &mut ss) } == 0
        && ss.ss_flags & libc::SS_ONSTACK != 0;
    !on_alt
}

/// Called by the entry after the old function returned, with its return
/// registers saved in `frame`.
///
/// # Safety
/// As [`ddl_wrapper_pre`]; only called after it returned `MIRROR`.
unsafe extern "C" fn ddl_wrapper_post(ctx: *const FnCtx, frame: *mut Frame) {
    let errno = *libc::__errno_location();
    let ctx = &*ctx;
    let frame = &mut *frame;
    if let Some(t) = state() {
        t.inflight.set((0, 0));
        t.inflight_ctx.set(0);
        t.primary_errno.set(errno);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::runtime::after_call(ctx, frame, t)
        }));
        t.busy.set(false);
    }
    *libc::__errno_location() = errno;
}

/// Size of one thunk.
const THUNK: usize = 32;

/// The mappings that hold thunks, so that an address can be recognised as
/// a wrapper (`dladdr` on a `dlsym` answer must describe the old function).
/// Every `dlsym` of a boundary function not yet wrapped makes a mapping of
/// its own; with only 64 entries, the 65th wrapper was handed out
/// unregistered and `dladdr` failed on it. A wrapper is now only handed out
/// once registered (callers fall back to the real address otherwise).
static REGIONS: [(AtomicU64, AtomicU64); 4096] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; 4096];

/// Registers a thunk mapping; false when the table is full. Called under
/// the runtime's state lock (one writer at a time).
fn register_region(start: usize, len: usize) -> bool {
    for (s, l) in &REGIONS {
        if s.load(Ordering::Acquire) == 0 {
            l.store(len as u64, Ordering::Relaxed);
            s.store(start as u64, Ordering::Release);
            return true;
        }
    }
    false
}

/// If `addr` is a wrapper (or inside one), the context of that wrapper and
/// the wrapper's own address.
pub fn wrapper_at(addr: usize) -> Option<(&'static FnCtx, usize)> {
    for (s, l) in &REGIONS {
        let start = s.load(Ordering::Acquire) as usize;
        if start == 0 {
            return None;
        }
        let len = l.load(Ordering::Relaxed) as usize;
        if addr >= start && addr < start + len {
            let thunk = start + (addr - start) / THUNK * THUNK;
            // SAFETY: every thunk starts `movabs r11, imm64` whose immediate
            // (bytes 2..10) is its leaked, never-freed FnCtx; unused slots are
            // 0xcc filled and fail the opcode check.
            unsafe {
                let code = thunk as *const u8;
                if *code != 0x49 || *code.add(1) != 0xbb {
                    return None;
                }
                let ctx = std::ptr::read_unaligned(code.add(2) as *const u64) as *const FnCtx;
                return Some((&*ctx, thunk));
            }
        }
    }
    None
}

/// Builds executable thunks, one per context, and returns their addresses.
///
/// The contexts are leaked: wrappers live as long as the process, since a
/// GOT slot or a `dlsym` answer may point at them at any time.
pub fn make_thunks(ctxs: Vec<FnCtx>) -> std::io::Result<Vec<(&'static FnCtx, usize)>> {
    let ctxs: Vec<&'static FnCtx> = ctxs.into_iter().map(|c| &*Box::leak(Box::new(c))).collect();
    let len = (ctxs.len() * THUNK).div_ceil(4096).max(1) * 4096;
    // SAFETY: a fresh private anonymous mapping, written before it becomes
    // executable (never writable and executable at once).
    unsafe {
        let mem = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = mem as *mut u8;
        std::ptr::write_bytes(base, 0xcc, len);
        let entry = ddl_wrapper_entry as *const () as u64;
        let mut out = Vec::with_capacity(ctxs.len());
        for (i, ctx) in ctxs.into_iter().enumerate() {
            let t = base.add(i * THUNK);
            let mut code = [0xccu8; THUNK];
            // movabs r11, imm64
            code[0] = 0x49;
            code[1] = 0xbb;
            code[2..10].copy_from_slice(&(ctx as *const FnCtx as u64).to_le_bytes());
            // jmp qword ptr [rip+0]; .quad entry
            code[10..16].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
            code[16..24].copy_from_slice(&entry.to_le_bytes());
            std::ptr::copy_nonoverlapping(code.as_ptr(), t, THUNK);
            out.push((ctx, t as usize));
        }
        if libc::mprotect(mem, len, libc::PROT_READ | libc::PROT_EXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if !register_region(base as usize, len) {
            libc::munmap(mem, len);
            return Err(std::io::Error::other("too many wrapper mappings"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn frame_offsets_match_the_assembly() {
        assert_eq!(offset_of!(Frame, gpr), 0);
        assert_eq!(offset_of!(Frame, rax), 48);
        assert_eq!(offset_of!(Frame, stack), 56);
        assert_eq!(offset_of!(Frame, ret_addr), 64);
        assert_eq!(offset_of!(Frame, copy_bytes), 72);
        assert_eq!(offset_of!(Frame, xmm), 80);
        assert_eq!(offset_of!(Frame, ret_rax), 208);
        assert_eq!(offset_of!(Frame, ret_rdx), 216);
        assert_eq!(offset_of!(Frame, ret_xmm0), 224);
        assert_eq!(offset_of!(Frame, ret_xmm1), 240);
        assert_eq!(offset_of!(Frame, target), 256);
        assert_eq!(std::mem::size_of::<Frame>(), arbiter::marshal::FRAME_SIZE);
    }
}
