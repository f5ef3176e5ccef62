//! Per-function wrappers that enter the arbiter.
//!
//! A wrapper is a 32-byte thunk, generated at run time, that loads its
//! [`FnCtx`] into `r11` (free at a call boundary in the System V ABI) and
//! jumps to one shared assembly entry, `ddl_wrapper_entry`.
//!
//! The entry first tries the **fast path**, in a few instructions and
//! without saving a register or calling Rust, for the calls that will not
//! be mirrored:
//!
//! - the wrapper is not armed (its first calls), or every call of its
//!   function is mirrored, or the session is inactive (the old build gone,
//!   after the at-exit drain, in a forked child: [`disarm_all`]): the slow
//!   path, which forwards an inactive session's calls uncounted;
//! - the thread is busy (DDL's own thread, or a call nested in a mirrored
//!   one on this thread): forward, not counted;
//! - the function is sampled per call and this call is not drawn: count it
//!   in `sampled_out` (the thread's own counter, one plain increment; the
//!   summary counts each as a call and a skip), forward.
//!
//! Forwarding is a tail jump to the old function, which returns straight
//! to the application: DDL is then off the call entirely.
//!
//! A drawn call of a wrapper armed for it takes the **ring path**, also
//! without calling Rust: a scalar C function whose calls go through the
//! callers' rings (`Shadow::takes_ring`: its arguments in `rdi..r9` and
//! the low eightbyte of `xmm0..3`, its result in `rax`/`xmm0`) when every
//! call is mirrored (sampling 1). The entry counts the call in the
//! thread's `calls[func]`, saves the argument registers and the FP control
//! state in a frame, marks the thread busy and the frame in flight (as the
//! slow path does), calls the old function, takes a sequence number and
//! writes one 128-byte slot of the thread's ring field by field
//! (`arbiter::ring::Ring::push`'s protocol: the stamp last), then returns
//! the result. A full ring counts the call in `dropped[func]`. When the
//! old build made outgoing calls during the call (`observe`), the call is
//! handed to the general path instead (`ddl_ring_outgoing`), which carries
//! them. The thread stays busy until the slot is published, so that a
//! signal handler's boundary call never pushes into the ring under it.
//!
//! Everything else (the first calls of a wrapper or a thread, a drawn call
//! of a function not armed for the ring path, a function every call of
//! which is mirrored, a busy thread whose mirrored call may have been
//! abandoned) takes the **slow path**: the entry saves every
//! argument register into a [`Frame`] and asks `ddl_wrapper_pre`, which may
//! still forward, or mirror: copy the stack arguments down, call the old
//! function, save its return registers, call `ddl_wrapper_post` to capture
//! the outcome and enqueue the invocation, restore the return registers and
//! return.
//!
//! The per-thread state the fast path reads lives in [`FastTls`], a block
//! of initial-exec TLS defined by the assembly itself (`ddl_fast_tls` in
//! `.tbss`, reached through a `R_X86_64_GOTTPOFF` slot and `fs:`): one load
//! from libddl's GOT for the block's offset, no `__tls_get_addr` (the model
//! of a Rust `thread_local!` in a shared object). This is sound because
//! libddl.so is loaded at start-up (`LD_PRELOAD`), so its TLS is in the
//! static TLS area of every thread; the object carries `DF_STATIC_TLS`,
//! and a `dlopen` of it (not a supported use) would still find room in
//! glibc's surplus static TLS for these 64 bytes (`ddl replay` does
//! dlopen it: its TLS and the new build's libc must fit there).
//!
//! The entry never needs to know a signature: the pre hook tells it the
//! target and how many bytes of stack arguments to copy. Capture then reads
//! the frame through `arbiter::marshal::Layout`. Frame offsets are shared
//! with `arbiter::marshal::Frame` (tested below).

use std::cell::{Cell, RefCell};
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};

use arbiter::marshal::Frame;
use arbiter::ring::{FnTarget, ScalarCall, FP_WATCHED, RING_LAYOUT};

/// Per-wrapper context: one per (boundary function, symbol version).
/// Made only by [`make_thunks`]'s callers and handed to it: every `FnCtx`
/// DDL uses is the first field of a leaked [`Wrapped`].
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
    /// A C++ symbol (it may throw): never takes the assembly ring path,
    /// whose calls an exception would leave unaccounted.
    pub cxx: bool,
}

/// What the fast path knows of a wrapper, right after its [`FnCtx`] (the
/// thunk's `r11` points at a [`Wrapped`]). Filled by the slow path the
/// first time a call of the wrapper reaches the sampling decision
/// ([`decide`]): until then every call of it takes the slow path.
#[repr(C)]
struct FastCtx {
    /// [`MODE_PER_CALL`]: armed, the function sampled per call (the fast
    /// path may skip a call); [`MODE_EVERY_CALL`]: armed, every call is
    /// mirrored (a call given a handle: its create call was sampled): the
    /// slow path; 0: not armed, or the session is not active
    /// ([`disarm_all`]): the slow path, which forwards.
    mode: AtomicU8,
    /// 1: a drawn call takes the **ring path** (see the module's comment):
    /// a scalar C function whose calls go through the callers' rings
    /// (`Shadow::takes_ring`), every call mirrored (sampling 1, so a
    /// thread's countdown stays at 1). The pointers below are set.
    ring: AtomicU8,
    /// 1: the result is in `xmm0` (a floating-point return), else `rax`.
    ret_sse: AtomicU8,
    /// 1: the function is given handles (every call mirrored): a call the
    /// ring path drops parts them (`ddl_ring_dropped`).
    parts: AtomicU8,
    /// 1: every argument is in `rdi`/`rsi`: the ring path writes only the
    /// slot's first line (`arbiter::ring::Slot`).
    narrow: AtomicU8,
    /// For a function given exactly one handle: its register's index in
    /// the frame's `gpr` (a drop on the handle this thread parted last,
    /// `Ring::parted_last` of its ring, needs no Rust); 0xff otherwise.
    handle_at: AtomicU8,
    /// That handle's class.
    handle_class: std::sync::atomic::AtomicU32,
    /// The shadow's `pairings` counter (`Shadow::pairings_counter`).
    pairings: AtomicPtr<AtomicU64>,
    /// `func * 8`: the byte offset of this function's counter in a
    /// thread's `sampled_out`, `calls` and `dropped` arrays.
    counter_offset: u64,
    /// The shadow's `seq` counter (ring path).
    seq: AtomicPtr<AtomicU64>,
    /// The shadow's `stopped` flag: a drawn call is then skipped (by the
    /// slow path).
    stopped: AtomicPtr<AtomicBool>,
    /// The shadow's `sleeping` flag: the ring path wakes it once a batch
    /// has piled up.
    sleeping: AtomicPtr<AtomicBool>,
    /// Whether the old build's outgoing calls are watched
    /// (`observe::patched`), for the slot's [`FP_WATCHED`] bit.
    watched: AtomicPtr<AtomicBool>,
    /// What the ring path's slots name (the function and its new build's
    /// address, in the [`FnCtx`] before this).
    target: FnTarget,
}

/// [`FastCtx::mode`]: the function is sampled per call.
const MODE_PER_CALL: u8 = 1;
/// [`FastCtx::mode`]: every call of the function is mirrored.
const MODE_EVERY_CALL: u8 = 2;

/// What [`decide`]'s caller arms a wrapper's ring path with.
#[derive(Clone, Copy)]
pub struct RingArm {
    /// The result is in `xmm0`.
    pub ret_sse: bool,
    /// The function is given handles: a dropped call parts them.
    pub parts: bool,
    /// Its arguments are all in `rdi`/`rsi` (`Shadow::ring_narrow`).
    pub narrow: bool,
    /// Its one handle's register in a slot's `gpr`, and class
    /// (`Shadow::ring_handle`).
    pub handle: Option<(u8, u32)>,
    /// `Shadow::pairings_counter`.
    pub pairings: *const AtomicU64,
    /// The shadow's `seq`, `stopped` and `sleeping`
    /// (`Shadow::raw_flags`).
    pub flags: (*const AtomicU64, *const AtomicBool, *const AtomicBool),
    /// `observe::patched`'s flag.
    pub watched: &'static AtomicBool,
}

/// A wrapper's context as the thunks see it: the [`FnCtx`] the rest of DDL
/// knows, then the fast path's part. Leaked, never freed.
#[repr(C)]
struct Wrapped {
    ctx: FnCtx,
    fast: FastCtx,
}

/// The per-thread state the assembly fast path reads and writes, in
/// initial-exec TLS (`ddl_fast_tls`, see the module's comment). Only its own
/// thread touches it (and signal handlers on that thread: every field is an
/// atomic, accessed with plain loads and stores, so no access is torn or
/// cached across a handler).
#[repr(C)]
pub struct FastTls {
    /// Calls of per-call-sampled functions left until the next drawn one,
    /// that one included: >= 2, the fast path skips this call and
    /// decrements; 1, this call is drawn (the ring path, or the slow
    /// path); 0, not armed (no counters yet, or the thread's state is
    /// gone): slow path.
    countdown: AtomicU64,
    /// This thread's `sampled_out[func]` counters, each a call and a skip
    /// (null until armed).
    sampled_out: AtomicPtr<AtomicU64>,
    /// While a mirrored call runs the old function: its frame's address
    /// (0 otherwise). Lets a new call tell a call nested in it from a call
    /// made after it was abandoned by `longjmp` or an exception (see
    /// [`abandoned`]).
    inflight_at: AtomicU64,
    /// The cookie written in that frame (`Frame::_pad`).
    inflight_cookie: AtomicU64,
    /// This thread's `calls[func]` counters (the ring path counts there).
    calls: AtomicPtr<AtomicU64>,
    /// This thread's `dropped[func]` counters (a full ring).
    dropped: AtomicPtr<AtomicU64>,
    /// This thread's ring of scalar calls (an `arbiter::ring::Ring`).
    ring: AtomicPtr<std::ffi::c_void>,
    /// Set while this thread is inside DDL's own work or inside a mirrored
    /// boundary call: any boundary call made meanwhile is forwarded.
    busy: AtomicBool,
    /// Set by `observe` when the old build makes an outgoing call during a
    /// mirrored call: the ring path then hands the call to the general
    /// path, which carries the calls.
    observed: AtomicBool,
}

/// Bytes from the entry's `rsp` down to the slow path's [`Frame`]: `rbp`,
/// `r11` and `rbx` pushed, then the frame reserved.
const FRAME_BELOW: usize = 3 * 8 + arbiter::marshal::FRAME_SIZE;

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

/// The old function's return registers into the frame (`Frame::ret_rax`
/// and after), kept across a call of DDL's.
macro_rules! save_ret {
    () => {
        concat!(
            "mov [rbx+208], rax\n",
            "mov [rbx+216], rdx\n",
            "movdqu [rbx+224], xmm0\n",
            "movdqu [rbx+240], xmm1",
        )
    };
}

/// The frame of the slow and the ring path: `rbp`, the `Wrapped` (`r11`)
/// and `rbx` pushed, a [`Frame`] reserved at `rbx`, the integer argument
/// registers saved in it (with the unwind information of each step).
macro_rules! frame_prologue {
    () => {
        concat!(
            "push rbp\n",
            ".cfi_def_cfa_offset 16\n",
            ".cfi_offset rbp, -16\n",
            "mov rbp, rsp\n",
            ".cfi_def_cfa_register rbp\n",
            "push r11\n",
            "push rbx\n",
            ".cfi_offset rbx, -32\n",
            "sub rsp, 272\n",
            "mov rbx, rsp\n",
            "mov [rbx+0], rdi\n",
            "mov [rbx+8], rsi\n",
            "mov [rbx+16], rdx\n",
            "mov [rbx+24], rcx\n",
            "mov [rbx+32], r8\n",
            "mov [rbx+40], r9",
        )
    };
}

std::arch::global_asm!(
    // This thread's `FastTls` (64 bytes, zero: not armed, not busy).
    ".section .tbss,\"awT\",@nobits",
    ".p2align 6",
    ".local ddl_fast_tls",
    ".type ddl_fast_tls,@object",
    ".size ddl_fast_tls, 64",
    "ddl_fast_tls:",
    ".zero 64",
    ".text",
    // The current thread's `FastTls` address, for Rust (`fast`): the
    // thread pointer (`fs:0` holds it, x86-64 TLS variant II) plus the
    // block's offset from it (a GOT slot filled by ld.so, R_X86_64_TPOFF64).
    ".globl ddl_fast_tls_addr",
    ".hidden ddl_fast_tls_addr",
    ".type ddl_fast_tls_addr,@function",
    "ddl_fast_tls_addr:",
    ".cfi_startproc",
    "mov rax, qword ptr fs:0",
    "add rax, qword ptr [rip + ddl_fast_tls@GOTTPOFF]",
    "ret",
    ".cfi_endproc",
    ".size ddl_fast_tls_addr, .-ddl_fast_tls_addr",
    //
    ".globl ddl_wrapper_entry",
    ".hidden ddl_wrapper_entry",
    ".type ddl_wrapper_entry,@function",
    "ddl_wrapper_entry:",
    ".cfi_startproc",
    // --- fast path: r11 = the Wrapped; only r10, r11 and the flags may be
    // changed before the slow path or the tail jump (rax carries `al` for
    // a variadic callee; everything else is an argument or callee-saved).
    // rax and rcx are borrowed through the red zone below rsp (this code is
    // a leaf until it jumps away; a signal frame never touches the red
    // zone).
    //
    // Armed and sampled per call? (Not armed, the session not active, or
    // every call mirrored: the slow path.)
    "cmp byte ptr [r11 + {fast_mode}], {mode_per_call}",
    "jne 20f",
    // r10 = this thread's FastTls, as an offset from the thread pointer.
    "mov r10, qword ptr [rip + ddl_fast_tls@GOTTPOFF]",
    "cmp byte ptr fs:[r10 + {t_busy}], 0",
    "jne 4f", // busy thread
    "cmp qword ptr fs:[r10 + {t_countdown}], 1",
    "jb 5f", // 0: the thread is not armed
    "je 8f", // 1: this call is drawn
    "dec qword ptr fs:[r10 + {t_countdown}]",
    // Sampled out: sampled_out[func] += 1, a call and a skip (a counter
    // only this thread writes; the summary reads it with relaxed loads,
    // like `arbiter::shadow::ThreadCounts`, whose own increments are a
    // relaxed load and store: an aligned 8-byte `inc` is never seen torn).
    // r10 = &sampled_out[func]: no other register is touched.
    "mov r10, qword ptr fs:[r10 + {t_sampled_out}]",
    "add r10, qword ptr [r11 + {fast_counter_offset}]",
    "inc qword ptr [r10]",
    // Forward: tail-jump to the old function (the application's return
    // address is still on top of the stack).
    "3:",
    "jmp qword ptr [r11 + {ctx_target}]",
    // Every call mirrored (a function given handles): armed for the ring
    // path, a thread that is not busy and is armed (its counters made)
    // takes it; the countdown is left alone (it draws the calls of the
    // functions sampled per call).
    "20:",
    "cmp byte ptr [r11 + {fast_mode}], {mode_every_call}",
    "jne 5f",
    "cmp byte ptr [r11 + {fast_ring}], 0",
    "je 5f",
    "mov r10, qword ptr [rip + ddl_fast_tls@GOTTPOFF]",
    "cmp byte ptr fs:[r10 + {t_busy}], 0",
    "jne 4f", // busy thread
    "cmp qword ptr fs:[r10 + {t_countdown}], 0",
    "je 5f", // the thread is not armed
    "jmp 8f",
    // Busy thread. No mirrored call in flight: DDL's own work, forward. A
    // mirrored call in flight: forward when this call is nested in it (the
    // frame the slow path would make is below the in-flight frame, whose
    // cookie is intact); otherwise the slow path decides whether it was
    // abandoned (`abandoned`).
    "4:",
    "mov qword ptr [rsp - 8], rax",
    "mov qword ptr [rsp - 16], rcx",
    "mov rax, qword ptr fs:[r10 + {t_at}]",
    "test rax, rax",
    "jz 6f",
    "lea rcx, [rsp - {frame_below}]",
    "cmp rcx, rax",
    "jae 7f",
    "mov rcx, qword ptr fs:[r10 + {t_cookie}]",
    "cmp rcx, qword ptr [rax + {frame_pad}]",
    "jne 7f",
    "6:",
    "mov rcx, qword ptr [rsp - 16]",
    "mov rax, qword ptr [rsp - 8]",
    "jmp qword ptr [r11 + {ctx_target}]",
    "7:",
    "mov rcx, qword ptr [rsp - 16]",
    "mov rax, qword ptr [rsp - 8]",
    // --- slow path: every register as the application left it but r10.
    "5:",
    frame_prologue!(),
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
    // No stack arguments (the common case): skip `rep movsq`, whose
    // start-up cost alone was a third of the entry's samples.
    "test rcx, rcx",
    "jz 3f",
    "sub rsp, rcx",
    "lea rsi, [rbp+16]",
    "mov rdi, rsp",
    "shr rcx, 3",
    "cld",
    "rep movsq",
    "3:",
    restore_args!(),
    "mov r11, [rbx+256]",
    "call r11",
    // Where the old function returns to in a mirrored call (see `app_caller`).
    ".globl ddl_wrapper_ret",
    ".hidden ddl_wrapper_ret",
    "ddl_wrapper_ret:",
    save_ret!(),
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
    // --- ring path: a drawn call of a wrapper armed for it (`FastCtx::ring`).
    // r11 = the Wrapped, r10 = the FastTls offset; rax is free (no
    // variadic function takes the ring) and borrowed through the red zone
    // until mirroring is known not to have stopped.
    ".cfi_restore rbp",
    ".cfi_restore rbx",
    "8:",
    "cmp byte ptr [r11 + {fast_ring}], 0",
    "je 5b",
    "mov qword ptr [rsp - 8], rax",
    "mov rax, qword ptr [r11 + {fast_stopped}]",
    "cmp byte ptr [rax], 0",
    "mov rax, qword ptr [rsp - 8]",
    "jne 5b", // stopped: the slow path counts it skipped
    // A full ring drops the call before anything is saved: the call and
    // its drop are counted, and the old function is tail-jumped to as a
    // sampled-out call is (the arguments are untouched; rax and rcx are
    // borrowed through the red zone). Not when the shadow sleeps (the drop
    // below wakes it), nor for a call on a handle unless its drop has
    // nothing new to say (the test below, with the handle still in `rdi`
    // or `rsi`): otherwise the handle is parted below.
    "mov qword ptr [rsp - 8], rax",
    "mov qword ptr [rsp - 16], rcx",
    "mov rax, qword ptr fs:[r10 + {t_ring}]",
    "mov rcx, qword ptr [rax + {r_tail}]",
    "sub rcx, qword ptr [rax + {r_cached}]",
    "cmp rcx, qword ptr [rax + {r_mask}]",
    "jbe 23f", // room as last seen
    "mov rcx, qword ptr [rax + {r_head}]",
    "mov qword ptr [rax + {r_cached}], rcx",
    "neg rcx",
    "add rcx, qword ptr [rax + {r_tail}]",
    "cmp rcx, qword ptr [rax + {r_mask}]",
    "jbe 23f", // the consumer has made room
    "mov rcx, qword ptr [r11 + {fast_sleeping}]",
    "cmp byte ptr [rcx], 0",
    "jne 23f",
    "cmp byte ptr [r11 + {fast_parts}], 0",
    "je 24f",
    "movzx ecx, byte ptr [r11 + {fast_handle_at}]",
    "cmp ecx, 1",
    "ja 23f", // not one handle in rdi or rsi
    "mov rcx, rdi",
    "jne 25f", // (flags of the cmp) in rdi
    "mov rcx, rsi",
    "25:",
    "cmp rcx, qword ptr [rax + {r_part_handle}]",
    "jne 23f",
    "mov ecx, dword ptr [r11 + {fast_handle_class}]",
    "cmp rcx, qword ptr [rax + {r_part_class}]",
    "jne 23f",
    "mov rcx, qword ptr [r11 + {fast_pairings}]",
    "mov rcx, qword ptr [rcx]",
    "cmp rcx, qword ptr [rax + {r_part_pairings}]",
    "jne 23f",
    "24:",
    "mov rax, qword ptr fs:[r10 + {t_calls}]",
    "add rax, qword ptr [r11 + {fast_counter_offset}]",
    "inc qword ptr [rax]",
    "mov rax, qword ptr fs:[r10 + {t_dropped}]",
    "add rax, qword ptr [r11 + {fast_counter_offset}]",
    "inc qword ptr [rax]",
    "mov rcx, qword ptr [rsp - 16]",
    "mov rax, qword ptr [rsp - 8]",
    "jmp qword ptr [r11 + {ctx_target}]",
    "23:",
    "mov rcx, qword ptr [rsp - 16]",
    "mov rax, qword ptr [rsp - 8]",
    // The slow path's frame: the arguments (as `Frame` holds them, the
    // low eightbyte of xmm0..3: a ring function has no others), the FP
    // control state at `xmm[4]`, the return address.
    frame_prologue!(),
    "movq qword ptr [rbx+80], xmm0",
    "movq qword ptr [rbx+96], xmm1",
    "movq qword ptr [rbx+112], xmm2",
    "movq qword ptr [rbx+128], xmm3",
    "stmxcsr dword ptr [rbx+{fp_at}]",
    "fnstcw word ptr [rbx+{fp_at}+4]",
    "mov word ptr [rbx+{fp_at}+6], 0",
    "mov rax, [rbp+8]",
    "mov [rbx+64], rax",
    "lea rax, [rbp+16]",
    "mov [rbx+56], rax",
    // calls[func] += 1 (the thread's own counter).
    "mov rax, qword ptr fs:[r10 + {t_calls}]",
    "add rax, qword ptr [r11 + {fast_counter_offset}]",
    "inc qword ptr [rax]",
    // Busy first (a signal handler's boundary call from here on is
    // forwarded: DDL's own work until the frame is in flight, then nested
    // in it), then in flight as the slow path marks it: the frame and its
    // cookie.
    "mov byte ptr fs:[r10 + {t_busy}], 1",
    "mov byte ptr fs:[r10 + {t_observed}], 0",
    "mov rax, rbx",
    "rol rax, 17",
    "xor rax, r11",
    "mov [rbx+{frame_pad}], rax",
    "mov qword ptr fs:[r10 + {t_cookie}], rax",
    "mov qword ptr fs:[r10 + {t_at}], rbx",
    // The arguments are still in their registers.
    "call qword ptr [r11 + {ctx_target}]",
    // Where the old function returns to in a ring-path call (`app_caller`).
    ".globl ddl_wrapper_ring_ret",
    ".hidden ddl_wrapper_ring_ret",
    "ddl_wrapper_ring_ret:",
    // From here on only rcx, rsi, rdi, r8-r11 are used: rax, rdx, xmm0
    // and xmm1 (the result) are left alone.
    "mov r11, [rbp-8]",
    "mov r10, qword ptr [rip + ddl_fast_tls@GOTTPOFF]",
    "cmp byte ptr fs:[r10 + {t_observed}], 0",
    "jne 10f", // the old build made outgoing calls: the general path
    // No longer in flight, still busy until the slot is published: a
    // signal handler's boundary call meanwhile is forwarded (it must not
    // push into the ring under this push).
    "mov qword ptr fs:[r10 + {t_at}], 0",
    // Push (arbiter::ring::Ring::push, field by field): rdi = the ring,
    // rsi = its tail.
    "mov rdi, qword ptr fs:[r10 + {t_ring}]",
    "mov rsi, qword ptr [rdi + {r_tail}]",
    "mov rcx, rsi",
    "sub rcx, qword ptr [rdi + {r_cached}]",
    "cmp rcx, qword ptr [rdi + {r_mask}]",
    "ja 11f", // full as last seen: read the consumer's position
    "12:",
    "mov rcx, rsi",
    "and rcx, qword ptr [rdi + {r_mask}]",
    "shl rcx, 7",
    "add rcx, qword ptr [rdi + {r_slots}]",
    // rcx = the slot; r9 = the call's sequence number.
    "mov r8, qword ptr [r11 + {fast_seq}]",
    "mov r9d, 1",
    "lock xadd qword ptr [r8], r9",
    "inc r9",
    "mov [rcx + {s_seq}], r9",
    "mov r8, [rbx+64]",
    "mov [rcx + {s_caller}], r8",
    "lea r8, [r11 + {fast_target}]",
    "mov [rcx + {s_target}], r8",
    "mov r8, qword ptr [r11 + {fast_watched}]",
    "movzx r8d, byte ptr [r8]",
    "shl r8, {watched_shift}",
    "or r8, [rbx+{fp_at}]",
    "mov [rcx + {s_fp}], r8",
    "mov r8, rax",
    "cmp byte ptr [r11 + {fast_ret_sse}], 0",
    "je 13f",
    "movq r8, xmm0",
    "13:",
    "mov [rcx + {s_ret}], r8",
    "mov r8, [rbx+0]",
    "mov [rcx + {s_gpr}], r8",
    "mov r8, [rbx+8]",
    "mov [rcx + {s_gpr} + 8], r8",
    // Every argument in rdi/rsi: the slot's second line is left alone.
    "cmp byte ptr [r11 + {fast_narrow}], 0",
    "jne 19f",
    "mov r8, [rbx+16]",
    "mov [rcx + {s_gpr} + 16], r8",
    "mov r8, [rbx+24]",
    "mov [rcx + {s_gpr} + 24], r8",
    "mov r8, [rbx+32]",
    "mov [rcx + {s_gpr} + 32], r8",
    "mov r8, [rbx+40]",
    "mov [rcx + {s_gpr} + 40], r8",
    "mov r8, [rbx+80]",
    "mov [rcx + {s_xmm}], r8",
    "mov r8, [rbx+96]",
    "mov [rcx + {s_xmm} + 8], r8",
    "mov r8, [rbx+112]",
    "mov [rcx + {s_xmm} + 16], r8",
    "mov r8, [rbx+128]",
    "mov [rcx + {s_xmm} + 24], r8",
    // Publish: the stamp last (a plain store is a release on x86-64).
    "19:",
    "lea r8, [rsi + 1]",
    "mov [rcx], r8",
    "mov [rdi + {r_tail}], r8",
    // A sleeping shadow is woken once a batch has piled up.
    "test r9, {batch_mask}",
    "jz 15f",
    "16:",
    "mov byte ptr fs:[r10 + {t_busy}], 0",
    "mov rbx, [rbp-16]",
    "leave",
    ".cfi_def_cfa rsp, 8",
    "ret",
    ".cfi_def_cfa rbp, 16",
    "15:",
    "mov r8, qword ptr [r11 + {fast_sleeping}]",
    "cmp byte ptr [r8], 0",
    "je 16b",
    save_ret!(),
    "mov rdi, r11",
    "call {ring_wake}",
    "jmp 17f",
    // The ring looked full: read the consumer's position (Acquire: a
    // plain load on x86-64).
    "11:",
    "mov rcx, qword ptr [rdi + {r_head}]",
    "mov qword ptr [rdi + {r_cached}], rcx",
    "mov r8, rsi",
    "sub r8, rcx",
    "cmp r8, qword ptr [rdi + {r_mask}]",
    "jbe 12b",
    // Full: dropped (the thread's own counter); never wait. A sleeping
    // shadow is woken (no sequence number is taken, so the test above
    // would not).
    "mov rcx, qword ptr fs:[r10 + {t_dropped}]",
    "add rcx, qword ptr [r11 + {fast_counter_offset}]",
    "inc qword ptr [rcx]",
    "cmp byte ptr [r11 + {fast_parts}], 0",
    "je 15b",
    // A call given one handle, the one this thread's drops parted last,
    // and no call that may pair handles since (the counter is bumped
    // before such a call takes its number, so a drop that follows it in
    // the application's order sees the bump): nothing new to say.
    "movzx ecx, byte ptr [r11 + {fast_handle_at}]",
    "cmp ecx, 6",
    "jae 18f", // not exactly one handle, in a register
    // rdi is still the ring (`Ring::parted_last`, its producer's side).
    "mov rcx, qword ptr [rbx + rcx * 8]",
    "cmp rcx, qword ptr [rdi + {r_part_handle}]",
    "jne 18f",
    "mov ecx, dword ptr [r11 + {fast_handle_class}]",
    "cmp rcx, qword ptr [rdi + {r_part_class}]",
    "jne 18f",
    "mov rcx, qword ptr [r11 + {fast_pairings}]",
    "mov rcx, qword ptr [rcx]",
    "cmp rcx, qword ptr [rdi + {r_part_pairings}]",
    "je 15b",
    // Otherwise they part (`ddl_ring_dropped`, which wakes a sleeping
    // shadow too).
    "18:",
    save_ret!(),
    "mov rdi, r11",
    "mov rsi, rbx",
    "call {ring_dropped}",
    "jmp 17f",
    // Outgoing calls were observed: the general path takes the call
    // (and ends it as `ddl_wrapper_post` does: busy, in flight).
    "10:",
    save_ret!(),
    "mov rdi, r11",
    "mov rsi, rbx",
    "call {ring_outgoing}",
    "17:",
    "mov r10, qword ptr [rip + ddl_fast_tls@GOTTPOFF]",
    "mov rax, [rbx+208]",
    "mov rdx, [rbx+216]",
    "movdqu xmm0, [rbx+224]",
    "movdqu xmm1, [rbx+240]",
    "jmp 16b",
    ".cfi_endproc",
    ".size ddl_wrapper_entry, .-ddl_wrapper_entry",
    pre = sym ddl_wrapper_pre,
    post = sym ddl_wrapper_post,
    ring_wake = sym ddl_ring_wake,
    ring_outgoing = sym ddl_ring_outgoing,
    ring_dropped = sym ddl_ring_dropped,
    fast_parts = const size_of::<FnCtx>() + offset_of!(FastCtx, parts),
    fast_narrow = const size_of::<FnCtx>() + offset_of!(FastCtx, narrow),
    fast_handle_at = const size_of::<FnCtx>() + offset_of!(FastCtx, handle_at),
    fast_handle_class = const size_of::<FnCtx>() + offset_of!(FastCtx, handle_class),
    fast_pairings = const size_of::<FnCtx>() + offset_of!(FastCtx, pairings),
    r_part_handle = const RING_LAYOUT.part_handle,
    r_part_class = const RING_LAYOUT.part_class,
    r_part_pairings = const RING_LAYOUT.part_pairings,
    mode_every_call = const MODE_EVERY_CALL,
    fast_ring = const size_of::<FnCtx>() + offset_of!(FastCtx, ring),
    fast_ret_sse = const size_of::<FnCtx>() + offset_of!(FastCtx, ret_sse),
    fast_seq = const size_of::<FnCtx>() + offset_of!(FastCtx, seq),
    fast_stopped = const size_of::<FnCtx>() + offset_of!(FastCtx, stopped),
    fast_sleeping = const size_of::<FnCtx>() + offset_of!(FastCtx, sleeping),
    fast_watched = const size_of::<FnCtx>() + offset_of!(FastCtx, watched),
    fast_target = const size_of::<FnCtx>() + offset_of!(FastCtx, target),
    t_calls = const offset_of!(FastTls, calls),
    t_dropped = const offset_of!(FastTls, dropped),
    t_ring = const offset_of!(FastTls, ring),
    t_observed = const offset_of!(FastTls, observed),
    r_tail = const RING_LAYOUT.tail,
    r_cached = const RING_LAYOUT.cached_head,
    r_mask = const RING_LAYOUT.mask,
    r_slots = const RING_LAYOUT.slots,
    r_head = const RING_LAYOUT.head,
    s_seq = const RING_LAYOUT.call + offset_of!(ScalarCall, seq),
    s_caller = const RING_LAYOUT.call + offset_of!(ScalarCall, caller),
    s_target = const RING_LAYOUT.call + offset_of!(ScalarCall, target),
    s_fp = const RING_LAYOUT.call + offset_of!(ScalarCall, fp),
    s_ret = const RING_LAYOUT.call + offset_of!(ScalarCall, ret),
    s_gpr = const RING_LAYOUT.call + offset_of!(ScalarCall, gpr),
    s_xmm = const RING_LAYOUT.call + offset_of!(ScalarCall, xmm),
    fp_at = const FP_AT,
    watched_shift = const FP_WATCHED.trailing_zeros(),
    batch_mask = const arbiter::shadow::WAKE_BATCH - 1,
    fast_mode = const size_of::<FnCtx>() + offset_of!(FastCtx, mode),
    mode_per_call = const MODE_PER_CALL,
    fast_counter_offset = const size_of::<FnCtx>() + offset_of!(FastCtx, counter_offset),
    ctx_target = const offset_of!(FnCtx, target),
    t_countdown = const offset_of!(FastTls, countdown),
    t_sampled_out = const offset_of!(FastTls, sampled_out),
    t_at = const offset_of!(FastTls, inflight_at),
    t_cookie = const offset_of!(FastTls, inflight_cookie),
    t_busy = const offset_of!(FastTls, busy),
    frame_below = const FRAME_BELOW,
    frame_pad = const offset_of!(Frame, _pad),
);

extern "C" {
    fn ddl_wrapper_entry();
    fn ddl_wrapper_ret();
    fn ddl_wrapper_ring_ret();
    fn ddl_fast_tls_addr() -> *const FastTls;
}

/// Where the ring path keeps the caller's FP control state in its frame
/// (MXCSR, then the x87 control word): `Frame::xmm[4]`, unused by a ring
/// function (its floating-point arguments are in xmm0..3).
const FP_AT: usize = offset_of!(Frame, xmm) + 4 * 16;

// The layout the assembly relies on.
const _: () = {
    assert!(offset_of!(Wrapped, fast) == size_of::<FnCtx>());
    assert!(size_of::<FastTls>() <= 64);
    assert!(size_of::<arbiter::ring::Slot>() == 128);
    // The narrow push writes the first line only: gpr[0..2] must be in it.
    assert!(RING_LAYOUT.call + offset_of!(ScalarCall, gpr) + 16 <= 64);
    assert!(arbiter::ring::GPRS == 6 && arbiter::ring::XMMS == 4);
    assert!(arbiter::shadow::WAKE_BATCH.is_power_of_two());
};

/// What a ring call's slot names for the wrapper `ctx` (the slow path
/// writes slots too).
pub fn ring_target(ctx: &'static FnCtx) -> &'static FnTarget {
    // SAFETY: every FnCtx is the first field of a leaked `Wrapped`
    // (`make_thunks`, `#[repr(C)]`).
    unsafe { &(*(ctx as *const FnCtx as *const Wrapped)).fast.target }
}

/// The current thread's [`FastTls`].
///
/// The reference must stay on this thread (the block is the thread's own
/// static TLS, which lives as long as the thread); it is only used by this
/// module's functions, for the duration of a hook.
fn fast() -> &'static FastTls {
    // SAFETY: the address of this thread's block in static TLS: mapped,
    // aligned, zero-initialised at thread creation (all-zero is a valid
    // FastTls: atomics only), alive until the thread ends.
    unsafe { &*ddl_fast_tls_addr() }
}

/// The application's return address when `ret` is the wrapper entry's own
/// (a mirrored call's old function that tail-calls `dlopen`/`dlsym`: glibc
/// takes the return address as the caller, and without DDL that is the
/// application's call site, whose RUNPATH and namespace apply).
pub fn app_caller(ret: usize) -> usize {
    if ret != ddl_wrapper_ret as *const () as usize
        && ret != ddl_wrapper_ring_ret as *const () as usize
    {
        return ret;
    }
    match fast().inflight_at.load(Ordering::Relaxed) as usize {
        0 => ret,
        // SAFETY: the in-flight frame is live (its old function is running
        // on this thread: it is what made this call).
        at => unsafe { (*(at as *const Frame)).ret_addr as usize },
    }
}

/// Is a mirrored call's old function running on this thread (its frame in
/// flight)? Cheap (initial-exec TLS): `observe` asks it on every call of
/// the old build's observed functions.
pub fn mirrored_in_flight() -> bool {
    fast().inflight_at.load(Ordering::Relaxed) != 0
}

/// The caller's path's per-thread state, in one thread-local block so that
/// each hook looks it up once (a `__tls_get_addr` call in a shared object).
/// What the assembly fast path needs is in [`FastTls`] instead.
pub struct ThreadState {
    /// `errno` when the application made the current call.
    pub entry_errno: Cell<i32>,
    /// `errno` as the primary call left it.
    pub primary_errno: Cell<i32>,
    /// The sampling generator's state (splitmix64; 0 = not seeded yet).
    pub rng: Cell<u64>,
    /// The thread's id (0 = not asked yet).
    pub tid: Cell<u32>,
    /// What the pre hook captured, waiting for the primary call to return.
    pub pending: RefCell<Option<crate::runtime::Pending>>,
    /// What the pre hook kept of a call whose function takes the ring
    /// (argument bits only: no allocation, nothing to drop).
    pub ring_pending: Cell<Option<crate::runtime::RingPending>>,
    /// The wrapper context of the mirrored call in flight (0 otherwise).
    pub inflight_ctx: Cell<usize>,
    /// The C++ exception this thread threw last while a mirrored call was
    /// in flight (`__cxa_throw`), until it is caught.
    pub thrown: RefCell<Option<arbiter::compare::Exception>>,
    /// This thread's call counters (made at its first boundary call; the
    /// assembly fast path increments them through [`FastTls`]).
    pub counts: RefCell<Option<arbiter::shadow::ThreadCounts>>,
    /// Set by [`decide`] for the pre hook: arm the current wrapper's fast
    /// path with (the session's `active` flag, sampled per call).
    arm: Cell<Option<(&'static AtomicBool, bool)>>,
    /// Set by the pre hook's caller with it: arm the wrapper's ring path
    /// too ([`arm_ring`]).
    arm_ring: Cell<Option<RingArm>>,
}

impl ThreadState {
    /// A thread's state before its first boundary call.
    const fn new() -> ThreadState {
        ThreadState {
            entry_errno: Cell::new(0),
            primary_errno: Cell::new(0),
            rng: Cell::new(0),
            tid: Cell::new(0),
            pending: RefCell::new(None),
            ring_pending: Cell::new(None),
            inflight_ctx: Cell::new(0),
            thrown: RefCell::new(None),
            counts: RefCell::new(None),
            arm: Cell::new(None),
            arm_ring: Cell::new(None),
        }
    }
}

impl Drop for ThreadState {
    /// The thread's state is going away (its thread-locals are destroyed):
    /// the fast path must not count into the counters about to be freed,
    /// so it is disarmed first (its calls then take the slow path, which
    /// only forwards without a state).
    fn drop(&mut self) {
        let f = fast();
        f.countdown.store(0, Ordering::Relaxed);
        f.sampled_out.store(std::ptr::null_mut(), Ordering::Relaxed);
        f.calls.store(std::ptr::null_mut(), Ordering::Relaxed);
        f.dropped.store(std::ptr::null_mut(), Ordering::Relaxed);
        f.ring.store(std::ptr::null_mut(), Ordering::Relaxed);
    }
}

thread_local! {
    static STATE: ThreadState = const { ThreadState::new() };
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

/// Sets the busy flag and returns its previous value.
pub fn set_busy(v: bool) -> bool {
    fast().busy.swap(v, Ordering::Relaxed)
}

/// The sampling decision of a call that reached the slow path (called by
/// `runtime::before_call` once the session is active), the same the
/// assembly fast path takes for the calls it skips: counts the call in
/// `calls`, and returns false, counted in `skipped`, when it is not to be
/// mirrored (`stopped`: mirroring has stopped; or `per_call`, the function
/// is sampled per call, and this call is not drawn). Makes the thread's
/// counters with `make_counts` at its first call, and arms the fast path
/// of the thread and, through the pre hook, of the wrapper.
///
/// `threshold` is the sampling rate as a fraction of 2^64 (`u64::MAX`:
/// every call). The draw is per call and unbiased: each thread keeps a
/// countdown to its next drawn call, a geometric gap drawn with
/// probability `threshold / 2^64` (the same as drawing every call, by the
/// memorylessness of the geometric law), which is what lets the fast path
/// skip a call with a decrement.
pub fn decide(
    t: &ThreadState,
    func: u32,
    per_call: bool,
    threshold: u64,
    active: &'static AtomicBool,
    stopped: bool,
    make_counts: impl FnOnce() -> arbiter::shadow::ThreadCounts,
) -> bool {
    let f = fast();
    let mut counts = t.counts.borrow_mut();
    let counts = counts.get_or_insert_with(|| {
        let c = make_counts();
        let (calls, dropped, ring) = c.raw_parts();
        f.calls.store(calls as *mut AtomicU64, Ordering::Relaxed);
        f.dropped
            .store(dropped as *mut AtomicU64, Ordering::Relaxed);
        f.ring
            .store(ring as *mut std::ffi::c_void, Ordering::Relaxed);
        f.sampled_out.store(
            c.sampled_out_counters() as *mut AtomicU64,
            Ordering::Relaxed,
        );
        c
    });
    t.arm.set(Some((active, per_call)));
    counts.call(func);
    let mirror = !stopped && (!per_call || draw(t, f, threshold));
    if !mirror {
        counts.skipped(func);
    }
    mirror
}

/// Asks the pre hook to arm the current wrapper's ring path along with its
/// fast path (called by `runtime::before_call` after [`decide`], for a
/// scalar C function whose every call is mirrored).
pub fn arm_ring(t: &ThreadState, arm: RingArm) {
    t.arm_ring.set(Some(arm));
}

/// Is this call of a per-call-sampled function drawn? Advances the
/// thread's countdown (see [`FastTls::countdown`]); arms it (>= 1) when it
/// was not.
fn draw(t: &ThreadState, f: &FastTls, threshold: u64) -> bool {
    let mut left = f.countdown.load(Ordering::Relaxed);
    if left == 0 {
        left = gap(t, threshold);
    }
    if left == 1 {
        f.countdown.store(gap(t, threshold), Ordering::Relaxed);
        true
    } else {
        f.countdown.store(left - 1, Ordering::Relaxed);
        false
    }
}

/// Calls until the next drawn one, that one included (>= 1): 1 + a
/// geometric number of failures with success probability
/// `p = threshold / 2^64`, by inversion: `floor(ln U / ln(1 - p))` with `U`
/// uniform in (0, 1] has `P(>= k) = (1 - p)^k`.
fn gap(t: &ThreadState, threshold: u64) -> u64 {
    if threshold == u64::MAX {
        return 1;
    }
    if threshold == 0 {
        return u64::MAX;
    }
    let p = threshold as f64 / 18_446_744_073_709_551_616.0;
    let u = ((next_random(t) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let failures = (u.ln() / (-p).ln_1p()).floor();
    if failures >= (u64::MAX - 1) as f64 {
        u64::MAX
    } else {
        failures as u64 + 1
    }
}

/// The thread's next 64 random bits (splitmix64, seeded from the process
/// id and the thread's state address).
fn next_random(t: &ThreadState) -> u64 {
    let mut s = t.rng.get();
    if s == 0 {
        s = ((std::process::id() as u64) << 32) ^ (t as *const ThreadState as u64) | 1;
    }
    s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    t.rng.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the pre hook decided, for the entry.
const FORWARD: u64 = 0;
const MIRROR: u64 = 1;

/// Called by the entry's slow path with the arguments saved.
///
/// # Safety
/// Only the assembly entry calls it, with `w` from a thunk (a leaked,
/// never freed [`Wrapped`]) and `frame` on its own stack.
unsafe extern "C" fn ddl_wrapper_pre(w: *const Wrapped, frame: *mut Frame) -> u64 {
    let errno = *libc::__errno_location();
    let w = &*w;
    let ctx = &w.ctx;
    let frame = &mut *frame;
    frame.target = ctx.target.load(Ordering::Relaxed);
    frame.copy_bytes = ctx.copy_bytes;
    let Some(t) = state() else { return FORWARD };
    let f = fast();
    t.entry_errno.set(errno);
    // The flag is this thread's own (a signal handler on this thread that
    // makes a boundary call leaves it as it found it): a load and a store,
    // not a locked exchange (which was three quarters of this hook).
    let was_busy = f.busy.load(Ordering::Relaxed);
    f.busy.store(true, Ordering::Relaxed);
    if was_busy {
        if !abandoned(f, frame) {
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
        t.ring_pending.set(None);
        f.inflight_at.store(0, Ordering::Relaxed);
        crate::observe::discard_observed();
    }
    // Nothing may unwind into the assembly entry.
    let decision = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::runtime::before_call(ctx, frame, t)
    })) {
        Ok(true) => MIRROR,
        _ => FORWARD,
    };
    // Arm the wrapper's fast path once the sampling decision was reached
    // (`decide`), while the session is active: the ring path's fields
    // first, then `mode`, which the assembly checks first.
    let ring = t.arm_ring.take();
    if let Some((active, per_call)) = t.arm.take() {
        if w.fast.mode.load(Ordering::Relaxed) == 0 && active.load(Ordering::Acquire) {
            if let Some(r) = ring.filter(|_| !ctx.cxx) {
                let (seq, stopped, sleeping) = r.flags;
                w.fast.seq.store(seq as *mut AtomicU64, Ordering::Relaxed);
                w.fast
                    .stopped
                    .store(stopped as *mut AtomicBool, Ordering::Relaxed);
                w.fast
                    .sleeping
                    .store(sleeping as *mut AtomicBool, Ordering::Relaxed);
                w.fast.watched.store(
                    r.watched as *const AtomicBool as *mut AtomicBool,
                    Ordering::Relaxed,
                );
                w.fast.ret_sse.store(r.ret_sse as u8, Ordering::Relaxed);
                w.fast.parts.store(r.parts as u8, Ordering::Relaxed);
                w.fast.narrow.store(r.narrow as u8, Ordering::Relaxed);
                let (at, class) = r.handle.unwrap_or((0xff, 0));
                w.fast.handle_at.store(at, Ordering::Relaxed);
                w.fast.handle_class.store(class, Ordering::Relaxed);
                w.fast
                    .pairings
                    .store(r.pairings as *mut AtomicU64, Ordering::Relaxed);
                w.fast.ring.store(1, Ordering::Relaxed);
                crate::runtime::log_info(&format!(
                    "{}: calls take the ring path",
                    crate::runtime::function_name(ctx.func)
                ));
            }
            let mode = if per_call {
                MODE_PER_CALL
            } else {
                MODE_EVERY_CALL
            };
            w.fast.mode.store(mode, Ordering::Release);
        }
    }
    if decision == FORWARD {
        f.busy.store(false, Ordering::Relaxed);
    } else {
        let at = frame as *mut Frame as usize;
        let cookie = (at as u64).rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
        frame._pad = cookie;
        f.inflight_cookie.store(cookie, Ordering::Relaxed);
        f.inflight_at.store(at as u64, Ordering::Relaxed);
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
        if fast().inflight_at.load(Ordering::Relaxed) != 0 {
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
    let f = fast();
    let at = f.inflight_at.load(Ordering::Relaxed) as usize;
    if at == 0 || sp <= at {
        return; // caught inside the old build, or no call in flight
    }
    let Some(ex) = t.thrown.borrow_mut().take() else {
        return;
    };
    let ctx = t.inflight_ctx.replace(0);
    f.inflight_at.store(0, Ordering::Relaxed);
    if ctx != 0 {
        // SAFETY: wrapper contexts are leaked, never freed.
        let ctx: &'static FnCtx = unsafe { &*(ctx as *const FnCtx) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::runtime::after_throw(ctx, t, ex)
        }));
    }
    f.busy.store(false, Ordering::Relaxed);
}

/// Is the mirrored call in flight on this thread (if any) abandoned, as
/// seen from a new call whose frame is `frame`? A call nested in it (a
/// callback of the old function calling the boundary) has its frame
/// strictly below the in-flight frame, which is intact. A frame at or above
/// it, or an in-flight frame whose cookie was overwritten, means the stack
/// was unwound past it. A call from a signal handler on the alternate
/// stack is never taken for a new one. (The assembly fast path forwards
/// the nested case itself, with the same test.)
fn abandoned(f: &FastTls, frame: &Frame) -> bool {
    let at = f.inflight_at.load(Ordering::Relaxed) as usize;
    if at == 0 {
        return false;
    }
    let cookie = f.inflight_cookie.load(Ordering::Relaxed);
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
    // Wrapper contexts are leaked: they live as long as the process.
    let ctx: &'static FnCtx = &*ctx;
    let frame = &mut *frame;
    if let Some(t) = state() {
        let f = fast();
        f.inflight_at.store(0, Ordering::Relaxed);
        t.inflight_ctx.set(0);
        t.primary_errno.set(errno);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::runtime::after_call(ctx, frame, t)
        }));
        f.busy.store(false, Ordering::Relaxed);
    }
    *libc::__errno_location() = errno;
}

/// The ring path found the shadow asleep with a batch piled up.
///
/// # Safety
/// Only the assembly entry calls it.
unsafe extern "C" fn ddl_ring_wake(_w: *const Wrapped) {
    let errno = *libc::__errno_location();
    let _ = std::panic::catch_unwind(crate::runtime::wake_shadow);
    *libc::__errno_location() = errno;
}

/// The ring path's call made outgoing calls in the old build (`observe`):
/// they go with the call, which the general path takes from here (the
/// same end as [`ddl_wrapper_post`]). `frame` holds what the ring path
/// saved: the argument registers, the FP control state at [`FP_AT`], the
/// return registers.
///
/// # Safety
/// Only the assembly entry calls it, with `w` from a thunk and `frame` on
/// its own stack.
unsafe extern "C" fn ddl_ring_outgoing(w: *const Wrapped, frame: *mut Frame) {
    if let Some(t) = state() {
        let fp = std::ptr::read_unaligned((frame as *const u8).add(FP_AT) as *const u64);
        crate::runtime::ring_call_pending(t, &*frame, fp);
    }
    ddl_wrapper_post(&(*w).ctx, frame);
}

/// The ring path dropped a call of a function given handles (its thread's
/// ring was full): they part (`runtime::ring_dropped`). `frame` holds the
/// argument registers the ring path saved.
///
/// # Safety
/// Only the assembly entry calls it, with `w` from a thunk and `frame` on
/// its own stack.
unsafe extern "C" fn ddl_ring_dropped(w: *const Wrapped, frame: *const Frame) {
    let errno = *libc::__errno_location();
    if let Some(t) = state() {
        // Nothing may unwind into the assembly entry.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::runtime::ring_dropped(t, &(*w).ctx, &*frame)
        }));
    }
    *libc::__errno_location() = errno;
}

/// The old build made an outgoing call on this thread while a mirrored
/// call is in flight (`observe` records it): the ring path then hands the
/// call to the general path.
pub fn note_observed() {
    fast().observed.store(true, Ordering::Relaxed);
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

/// The session stopped being active (at exit, in a forked child, the old
/// build gone): every wrapper's fast and ring paths are disarmed, so that
/// their calls take the slow path, which forwards them uncounted. A later
/// activation arms them again, call by call.
pub fn disarm_all() {
    for (s, l) in &REGIONS {
        let start = s.load(Ordering::Acquire) as usize;
        if start == 0 {
            return;
        }
        let len = l.load(Ordering::Relaxed) as usize;
        for thunk in (start..start + len).step_by(THUNK) {
            if let Some((ctx, _)) = wrapper_at(thunk) {
                // SAFETY: every FnCtx is the first field of a leaked
                // `Wrapped` (`make_thunks`, `#[repr(C)]`).
                let w = unsafe { &*(ctx as *const FnCtx as *const Wrapped) };
                w.fast.mode.store(0, Ordering::Release);
                w.fast.ring.store(0, Ordering::Relaxed);
            }
        }
    }
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
    let ws: Vec<&'static Wrapped> = ctxs
        .into_iter()
        .map(|ctx| {
            static UNSET: AtomicU64 = AtomicU64::new(0);
            let counter_offset = ctx.func as u64 * 8;
            let func = ctx.func;
            let w = Wrapped {
                ctx,
                fast: FastCtx {
                    mode: AtomicU8::new(0),
                    ring: AtomicU8::new(0),
                    ret_sse: AtomicU8::new(0),
                    parts: AtomicU8::new(0),
                    narrow: AtomicU8::new(0),
                    handle_at: AtomicU8::new(0xff),
                    handle_class: std::sync::atomic::AtomicU32::new(0),
                    pairings: AtomicPtr::new(std::ptr::null_mut()),
                    counter_offset,
                    seq: AtomicPtr::new(std::ptr::null_mut()),
                    stopped: AtomicPtr::new(std::ptr::null_mut()),
                    sleeping: AtomicPtr::new(std::ptr::null_mut()),
                    watched: AtomicPtr::new(std::ptr::null_mut()),
                    target: FnTarget {
                        new_fn: &UNSET,
                        func,
                    },
                },
            };
            let w: &'static mut Wrapped = Box::leak(Box::new(w));
            // SAFETY: the context is leaked (never freed, never moved):
            // the slot's target names its `new_fn` for the process's life.
            w.fast.target.new_fn = unsafe { &*(&w.ctx.new_fn as *const AtomicU64) };
            &*w
        })
        .collect();
    let len = (ws.len() * THUNK).div_ceil(4096).max(1) * 4096;
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
        let mut out = Vec::with_capacity(ws.len());
        for (i, w) in ws.into_iter().enumerate() {
            let t = base.add(i * THUNK);
            let mut code = [0xccu8; THUNK];
            // movabs r11, imm64: the Wrapped (its FnCtx first)
            code[0] = 0x49;
            code[1] = 0xbb;
            code[2..10].copy_from_slice(&(w as *const Wrapped as u64).to_le_bytes());
            // jmp qword ptr [rip+0]; .quad entry
            code[10..16].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
            code[16..24].copy_from_slice(&entry.to_le_bytes());
            std::ptr::copy_nonoverlapping(code.as_ptr(), t, THUNK);
            out.push((&w.ctx, t as usize));
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

    /// A fresh thread's state (its FastTls is zero: not armed).
    fn fresh_state() -> ThreadState {
        ThreadState::new()
    }

    #[test]
    fn gap_bounds() {
        let t = fresh_state();
        assert_eq!(gap(&t, u64::MAX), 1);
        assert_eq!(gap(&t, 0), u64::MAX);
        for _ in 0..10_000 {
            assert!(gap(&t, 1 << 40) >= 1);
        }
    }

    /// The countdown draws each call with probability `threshold / 2^64`:
    /// the fraction drawn over many calls, and the mean gap, are those of
    /// drawing every call on its own.
    #[test]
    fn draw_fraction_is_the_sampling_rate() {
        std::thread::spawn(|| {
            for p in [0.5f64, 0.3, 0.01, 0.001] {
                let t = fresh_state();
                let threshold = (p * u64::MAX as f64) as u64;
                let n = 2_000_000u64;
                let drawn = (0..n).filter(|_| draw(&t, fast(), threshold)).count() as f64;
                let want = p * n as f64;
                let sd = (n as f64 * p * (1.0 - p)).sqrt();
                assert!(
                    (drawn - want).abs() < 5.0 * sd,
                    "p {p}: {drawn} drawn of {n}, want {want} +- {sd}"
                );
                fast().countdown.store(0, Ordering::Relaxed);
            }
            // sampling 1: every call; sampling 0: none.
            let t = fresh_state();
            assert!((0..1000).all(|_| draw(&t, fast(), u64::MAX)));
            fast().countdown.store(0, Ordering::Relaxed);
            assert!((0..1000).all(|_| !draw(&t, fast(), 0)));
        })
        .join()
        .unwrap();
    }

    /// Each thread has its own FastTls, zero at start.
    #[test]
    fn fast_tls_is_per_thread() {
        let here = fast() as *const FastTls as usize;
        fast().countdown.store(7, Ordering::Relaxed);
        let there = std::thread::spawn(|| {
            assert_eq!(fast().countdown.load(Ordering::Relaxed), 0);
            assert!(!fast().busy.load(Ordering::Relaxed));
            fast() as *const FastTls as usize
        })
        .join()
        .unwrap();
        assert_ne!(here, there);
        assert_eq!(fast().countdown.load(Ordering::Relaxed), 7);
        fast().countdown.store(0, Ordering::Relaxed);
    }
}
