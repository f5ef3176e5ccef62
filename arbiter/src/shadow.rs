//! The shadow executor: its queue, its thread, and the verdicts it reaches.
//!
//! Application threads hand invocations over through one bounded lock-free
//! queue (`crossbeam_queue::ArrayQueue`); a full queue, or captured data past
//! `queue_bytes`, drops the invocation and counts it — the caller never
//! waits. One shadow thread pops invocations, rebuilds their arguments in
//! memory it owns ([`Materialised`]), calls the new build through libffi
//! ([`Invoker`]), captures its outcome exactly as the primary's was
//! captured, judges the two ([`judge`]) and writes verdict records and
//! summaries ([`ReportWriter`]).
//!
//! Counting: application threads count `calls`, `skipped` and `dropped`
//! (atomics); the shadow thread counts every judged verdict (under a lock it
//! shares only with [`Shadow::finish`]). `finish` drains within
//! `timeout_ms`, then counts what is still queued or in flight as `dropped`,
//! so that `calls = mirrored + dropped + skipped` holds in the summary.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_queue::{ArrayQueue, SegQueue};
use crossbeam_utils::CachePadded;

use smallvec::SmallVec;

use crate::bufpool;
use crate::compare::{judge, Comparator, Diff, Exception, Outcome, Spec};
use crate::handles::HandleTable;
use crate::invoke::Invoker;
use crate::marshal::{capture_outputs, shows_as_arg, HandleArg, Inputs, Layout, Materialised, Raw};
use crate::report::{outcome_json, Counters, Record, ReportWriter, Verdict};
use crate::ring::{Ring, ScalarCall, GPRS, MAX_ARGS, XMMS};
use crate::sandbox::CallFailure;
use crate::types::{Effect, Role, Signature, Type};
use crate::value::Value;

/// How long an idle shadow sleeps before it looks at the queue again, the
/// first time: each nap that finds nothing doubles the next, up to
/// `IDLE_PARK << IDLE_DOUBLINGS` (64 ms). A caller wakes it sooner once a
/// batch has piled up, and a queued invocation at once during any nap but
/// the first (`Shadow::deep_nap`); a ring's call that is less than a batch
/// waits out the nap.
const IDLE_PARK: Duration = Duration::from_millis(1);
/// How often an idle shadow's nap doubles ([`IDLE_PARK`]).
const IDLE_DOUBLINGS: u32 = 6;
/// How long the shadow looks for work before it sleeps ([`Shadow::work_soon`]).
const SPIN: Duration = Duration::from_micros(50);
/// How long the shadow lets a ring holding less than a batch fill up before
/// it takes what there is ([`Ring::has_batch`]).
const PARTIAL_PARK: Duration = Duration::from_micros(100);

/// Invocations the shadow thread takes from the queue at once (one
/// `pop_lock` for the batch), and at most judged before their counts are
/// added to the summary's (one `judged` lock per batch; a recorded verdict
/// is counted and written at once).
const BATCH: usize = 32;
/// Every call takes the general path (captured values, the process-wide
/// queue), rings and the wrapper's ring path never: set from
/// `DDL_CALLER_PATH=general` (the tests run every fixture both ways and
/// expect the same verdicts).
static GENERAL_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes every mirrored call take the general path (`true`), or lets the
/// calls of scalar functions take their thread's ring (`false`, the
/// default). Set before the first call.
pub fn use_general_path(on: bool) {
    GENERAL_ONLY.store(on, Ordering::Relaxed);
}

/// A ring's producer wakes a sleeping shadow when its call's sequence
/// number is a multiple of this (the wrapper's assembly tests the low bits).
pub const WAKE_BATCH: u64 = BATCH as u64;
/// Slots of each calling thread's ring of scalar invocations (at most
/// `queue`): 1024 × 128 bytes.
const RING_SLOTS: usize = 1024;
/// The same when calls on handles take the rings ([`Shadow::ordered`]):
/// 8192 × 128 bytes. A dropped call on a handle makes the rest of the
/// handle's life `unmirrored`, so the rings absorb longer bursts (the
/// queue's default is 65536 calls).
const RING_SLOTS_ON_HANDLES: usize = 8192;

/// What the shadow's fast path needs to know of a boundary function,
/// worked out once from its signature and comparator.
#[derive(Clone, Copy, Default)]
struct Facts {
    /// Every parameter a scalar passed by value, the return value a scalar
    /// (or `void`) by value, no effect on handles: the arguments are the
    /// captured bits, no buffer is materialised, nothing is on the heap.
    scalar: bool,
    /// For a scalar function: a shadow return value with the primary's
    /// bits is equal under the comparator (`exact`, `ulps` or `ignore`;
    /// a tolerance goes the general way), so that a call whose return
    /// value has the same bits, without exception, errno difference or
    /// outgoing call, is a `match` without building its outcome.
    quick: bool,
    /// `errno` is compared.
    errno: bool,
    /// A scalar function whose calls go through the callers' rings
    /// ([`Shadow::takes_ring`]): at most [`MAX_ARGS`] parameters, each in
    /// one of the registers a slot keeps, a result in `rax`/`xmm0` or none,
    /// `errno` not compared.
    ring: bool,
    /// For a ring function: where each parameter is in a slot (`0..6`:
    /// `gpr[i]`, `6..10`: `xmm[i - 6]`).
    regs: [u8; MAX_ARGS],
    /// A call on handles with nothing else on the heap: every parameter a
    /// scalar by value or a plain handle ([`Role::Handle`]), the return
    /// value a scalar (or `void`), no create or destroy effect. With
    /// [`Facts::ring`], its calls go through the callers' rings like a
    /// scalar function's, its handles translated by the shadow's table; the
    /// shadow then takes every call in `seq` order ([`Shadow::ordered`]).
    on_handles: bool,
    /// For a function [`Facts::on_handles`]: the handle class of each
    /// parameter that is a handle, [`NO_HANDLE`] for the others.
    handles: [u32; MAX_ARGS],
    /// A call may pair or unpair handles ([`Signature::may_pair`]).
    may_pair: bool,
}

/// [`Facts::handles`] of a parameter that is not a handle.
const NO_HANDLE: u32 = u32::MAX;

/// Where each parameter of a scalar function is in a ring's slot
/// ([`Facts::regs`]), or `None` when one is not in the registers a slot
/// keeps (or the result is not in `rax`/`xmm0`).
fn ring_regs(f: &BoundaryFn) -> Option<[u8; MAX_ARGS]> {
    use crate::marshal::{Loc, Reg};
    if f.sig.params.len() > MAX_ARGS {
        return None;
    }
    let mut regs = [0u8; MAX_ARGS];
    for (i, loc) in f.layout.args.iter().enumerate() {
        regs[i] = crate::ring::slot_reg(loc)?;
    }
    match &f.layout.ret {
        Loc::None => Some(regs),
        Loc::Regs(r) if r.len() == 1 && matches!(r[0], Reg::Gpr(0) | Reg::Sse(0)) => Some(regs),
        _ => None,
    }
}

impl Facts {
    fn of(f: &BoundaryFn) -> Facts {
        let sig = &f.sig;
        let plain = |p: &crate::types::Param| {
            p.role == Role::Value && p.handle.is_none() && matches!(p.ty, Type::Scalar(_))
        };
        let handle_class = |p: &crate::types::Param| match p.role {
            Role::Handle { class } => Some(class),
            _ => None,
        };
        let scalar_call = sig.effect == Effect::None
            && sig.ret_role == Role::Value
            && matches!(sig.ret, Type::Void | Type::Scalar(_));
        let scalar = scalar_call && sig.params.iter().all(plain);
        let on_handles = scalar_call
            && !scalar
            && sig
                .params
                .iter()
                .all(|p| plain(p) || handle_class(p).is_some());
        let mut handles = [NO_HANDLE; MAX_ARGS];
        if on_handles {
            for (h, p) in handles.iter_mut().zip(&sig.params) {
                *h = handle_class(p).unwrap_or(NO_HANDLE);
            }
        }
        let ret_float = matches!(sig.ret, Type::Scalar(s) if s.is_float());
        let quick = (scalar || on_handles)
            && (f.comparator.func.all == Some(Spec::Ignore)
                || matches!(
                    f.comparator.spec_for("ret", ret_float),
                    Spec::Exact | Spec::Ulps(_) | Spec::Ignore
                ));
        let errno = f.comparator.errno_spec().is_some();
        let regs = if (scalar || on_handles) && !errno && !f.wants_errno {
            ring_regs(f)
        } else {
            None
        };
        Facts {
            scalar,
            quick,
            errno,
            ring: regs.is_some(),
            regs: regs.unwrap_or_default(),
            on_handles,
            handles,
            may_pair: sig.may_pair(),
        }
    }
}

/// `taken[i]`'s mark for a ring's call (in `ring_taken[i]`): never a
/// box's address (no allocation is at the type's alignment).
const RING_CALL: *mut Invocation = std::ptr::dangling_mut::<Invocation>();
/// Set in `inflight_call` when the call in flight is a ring's
/// (`inflight_call` is then the address of its `ring_taken` slot).
const RING_INFLIGHT: usize = 1;

/// One ring call of the batch, with its thread's id.
type RingSlot = std::cell::UnsafeCell<std::mem::MaybeUninit<(ScalarCall, u32)>>;

/// The batch's ring calls ([`Shadow::taken`]'s companion).
struct RingTaken(Box<[RingSlot]>);

impl std::ops::Deref for RingTaken {
    type Target = [RingSlot];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

// SAFETY: slot i is written only under `pop_lock` while the batch is being
// filled, and read only by the thread that holds the batch (handed over
// under `pop_lock`, as `taken`'s boxes are), or by the watchdog for the
// call it claimed, which that thread no longer touches.
unsafe impl Sync for RingTaken {}

/// What [`Shadow::judge_ring`] made of a ring's call.
enum RingVerdict {
    /// A match (its outcome not built).
    Match,
    /// Not mirrored (no new build).
    Unmirrored,
    /// To be judged on its invocation: what the call gave, and its
    /// arguments (boxed: the rare case).
    Judge(Box<(NewCall, SmallVec<[Raw; MAX_ARGS]>)>),
}

/// What the new build's call gave ([`Shadow::invoke_new`]).
struct NewCall {
    ret: Result<Raw, CallFailure>,
    /// The calls to the outside world it made (intercepted).
    outgoing: Option<Vec<crate::compare::Outgoing>>,
    /// Its `errno` after the call, when compared.
    errno: Option<i32>,
}

/// Whether two scalar values have the same type and the same bits.
fn same_bits(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Int(s, x), Value::Int(t, y)) => s == t && x == y,
        (Value::UInt(s, x), Value::UInt(t, y)) => s == t && x == y,
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        _ => false,
    }
}

/// A function's verdicts of the current batch not yet added to the
/// summary's counts (`match` and `unmirrored`: the verdicts that write no
/// record). Only the shadow thread writes them, and the watchdog reads
/// them once it has claimed the call in flight (after which that thread
/// never touches them again).
#[derive(Default)]
struct Pending {
    matched: AtomicU64,
    unmirrored: AtomicU64,
}

/// The batch the shadow thread took from the queue (under `pop_lock`).
#[derive(Default)]
struct Inflight {
    /// The function of each invocation of the batch, in order.
    funcs: Vec<u32>,
    /// `funcs[..counted]` are counted (judged, or dropped by `finish`);
    /// the rest is in flight: pending verdicts, the call being made, and
    /// invocations still in `taken`.
    counted: usize,
    /// Calls taken from the queue and the rings but not yet into a batch
    /// ([`Shadow::ordered`]).
    carry: Carry,
}

/// A call the shadow has taken from where it waited, on its way into a
/// batch.
enum Carried {
    /// From the process-wide queue.
    Queued(Box<Invocation>),
    /// From a caller's ring, with its thread's id.
    Ring(ScalarCall, u32),
}

/// The calls [`Shadow::take_ordered`] has taken from the queue and the
/// rings, each source's in its own order, with how many at the front of
/// each may be judged in this round.
#[derive(Default)]
struct Carry {
    /// From the queue: first in, first out.
    queued: VecDeque<Box<Invocation>>,
    queued_ready: usize,
    /// From each caller's ring (by its thread's id): in `seq` order.
    rings: Vec<RingCarry>,
}

/// One ring's part of a [`Carry`].
struct RingCarry {
    tid: u32,
    calls: VecDeque<ScalarCall>,
    ready: usize,
    /// How many of `calls` a round's look had already seen (the calls
    /// after them are new to the next look).
    seen: usize,
}

impl Carry {
    fn len(&self) -> usize {
        self.queued.len() + self.rings.iter().map(|r| r.calls.len()).sum::<usize>()
    }

    fn has_ready(&self) -> bool {
        self.queued_ready != 0 || self.rings.iter().any(|r| r.ready != 0)
    }

    fn push_ring(&mut self, c: &ScalarCall, tid: u32) {
        match self.rings.iter_mut().find(|r| r.tid == tid) {
            Some(r) => r.calls.push_back(*c),
            None => self.rings.push(RingCarry {
                tid,
                calls: VecDeque::from([*c]),
                ready: 0,
                seen: 0,
            }),
        }
    }

    /// The highest `seq` held.
    fn max_seq(&self) -> Option<u64> {
        let q = self.queued.iter().map(|inv| inv.seq).max();
        let r = self
            .rings
            .iter()
            .filter_map(|r| r.calls.back())
            .map(|c| c.seq)
            .max();
        q.max(r)
    }

    /// Lets the calls numbered up to `max` be judged: a prefix of each
    /// ring's (in `seq` order), and of the queue's the longest prefix
    /// numbered up to `max` (the queue's own order is kept).
    fn ready_upto(&mut self, max: u64) {
        self.queued_ready = self
            .queued
            .iter()
            .position(|inv| inv.seq > max)
            .unwrap_or(self.queued.len());
        for r in &mut self.rings {
            r.ready = r.calls.partition_point(|c| c.seq <= max);
        }
        self.rings.retain(|r| !r.calls.is_empty());
    }

    /// The next call to judge: the lowest-numbered at the front of the
    /// sources' ready parts.
    fn pop_next(&mut self) -> Option<Carried> {
        let mut best: Option<(u64, usize)> = None;
        if self.queued_ready != 0 {
            best = self.queued.front().map(|inv| (inv.seq, usize::MAX));
        }
        for (i, r) in self.rings.iter().enumerate() {
            if r.ready != 0 {
                let seq = r.calls[0].seq;
                if best.is_none_or(|(b, _)| seq < b) {
                    best = Some((seq, i));
                }
            }
        }
        let (_, i) = best?;
        if i == usize::MAX {
            self.queued_ready -= 1;
            self.queued.pop_front().map(Carried::Queued)
        } else {
            let r = &mut self.rings[i];
            r.ready -= 1;
            r.calls.pop_front().map(|c| Carried::Ring(c, r.tid))
        }
    }

    /// The function of every call held.
    fn funcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.queued.iter().map(|inv| inv.func).chain(
            self.rings
                .iter()
                .flat_map(|r| r.calls.iter().map(|c| c.target.func)),
        )
    }
}

/// One boundary function, as the shadow and the caller's path need it.
pub struct BoundaryFn {
    /// The function's name (the report's key).
    pub name: String,
    /// Its signature.
    pub sig: Signature,
    /// Where its arguments live in a call (for capture from a frame).
    pub layout: Layout,
    /// How its outcomes are compared.
    pub comparator: Comparator,
    /// How the shadow calls it.
    pub invoker: Invoker,
    /// Whether `errno` is compared.
    pub wants_errno: bool,
    /// Whether sampling is decided at each call ([`Signature::sampled_per_call`]).
    pub per_call_sampling: bool,
    /// What a C++ boundary function needs at run time (learnt when the new
    /// build is loaded).
    pub cxx: CxxFn,
}

impl BoundaryFn {
    /// The boundary function `name` of signature `sig`, compared by
    /// `comparator`: where its arguments live, how the shadow calls it and
    /// whether it is sampled per call follow from the signature; `errno`
    /// is compared when the comparator asks for it.
    pub fn new(name: String, sig: Signature, comparator: Comparator) -> BoundaryFn {
        BoundaryFn {
            name,
            layout: Layout::of(&sig),
            invoker: Invoker::new(&sig),
            wants_errno: comparator.errno_spec().is_some(),
            per_call_sampling: sig.sampled_per_call(),
            cxx: CxxFn::default(),
            comparator,
            sig,
        }
    }
}

/// Run-time facts of a C++ boundary function, set when the new build is
/// loaded (0: not known, or not C++).
#[derive(Default)]
pub struct CxxFn {
    /// A constructor: the size of the new build's object (from its DWARF or
    /// the config's `classes`); 0 makes its calls `unmirrored`.
    pub instance_size: AtomicUsize,
    /// A destructor: the new build's complete-object destructor (D1), run
    /// instead of the deleting one (D0) on an object whose storage is
    /// DDL's, which DDL then frees itself.
    pub new_d1: AtomicUsize,
    /// The exception guard loaded into the new build's namespace
    /// ([`crate::sandbox::GuardFn`]): a C++ function is called through it,
    /// so that an exception it throws becomes a verdict.
    pub guard: AtomicUsize,
}

/// One captured call, on its way to the shadow.
pub struct Invocation {
    /// Process-wide sequence number of the intercepted call.
    pub seq: u64,
    /// Index of the function in the boundary.
    pub func: u32,
    /// The calling thread's id.
    pub tid: u32,
    /// Return address of the call in the application.
    pub caller: u64,
    /// Where the new build's function to call is (resolved with the symbol
    /// version the application's reference carries), read when the shadow
    /// calls it: a fresh namespace that replaces a poisoned one updates it.
    /// 0 makes the call `unmirrored`.
    pub new_fn: &'static AtomicU64,
    /// What the callee could read.
    pub inputs: Inputs,
    /// What the primary produced.
    pub primary: Outcome,
    /// `errno` when the application made the call: the shadow's errno is
    /// set to it before the shadow call, so a callee that leaves errno alone
    /// leaves the same value on both sides.
    pub errno_before: i32,
    /// The call went to a deleting destructor (D0).
    pub deleting: bool,
    /// The caller's floating-point control state when it made the call
    /// (`MXCSR`, x87 control word: rounding mode, FTZ/DAZ, exception
    /// masks); the shadow call runs under the same, so that a caller's
    /// `fesetround` does not make identical builds disagree.
    pub fp_env: FpEnv,
}

/// Floating-point control registers (x86-64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpEnv {
    /// `MXCSR` (SSE).
    pub mxcsr: u32,
    /// x87 control word.
    pub x87_cw: u16,
}

impl FpEnv {
    /// The current thread's.
    #[inline]
    pub fn current() -> FpEnv {
        let mut mxcsr: u32 = 0;
        let mut cw: u16 = 0;
        // SAFETY: stores two control registers into locals.
        unsafe {
            std::arch::asm!(
                "stmxcsr [{m}]",
                "fnstcw [{c}]",
                m = in(reg) &mut mxcsr,
                c = in(reg) &mut cw,
                options(nostack, preserves_flags)
            );
        }
        FpEnv { mxcsr, x87_cw: cw }
    }

    /// Whether the two have the same controls (rounding, flush-to-zero,
    /// denormals-are-zero, exception masks, x87 precision and rounding):
    /// the sticky exception flags aside.
    #[inline]
    pub fn same_controls(self, other: FpEnv) -> bool {
        const FLAGS: u32 = 0x3f;
        (self.mxcsr & !FLAGS, self.x87_cw) == (other.mxcsr & !FLAGS, other.x87_cw)
    }

    /// Makes this the current thread's.
    #[inline]
    pub fn set(self) {
        // SAFETY: loads two control registers from values read by `current`.
        unsafe {
            std::arch::asm!(
                "ldmxcsr [{m}]",
                "fldcw [{c}]",
                m = in(reg) &self.mxcsr,
                c = in(reg) &self.x87_cw,
                options(nostack, preserves_flags)
            );
        }
    }
}

impl Invocation {
    /// The invocation is judged: the buffers it captured go back to the
    /// pool ([`crate::bufpool`]) for the next captures.
    pub fn recycle(self) {
        self.inputs.values.into_iter().for_each(bufpool::give_value);
        recycle_outcome(self.primary);
    }

    /// Bytes of captured data it holds (counted against `queue_bytes`).
    pub fn bytes(&self) -> usize {
        self.inputs.heap_bytes()
            + self
                .primary
                .outputs
                .iter()
                .map(Value::heap_bytes)
                .sum::<usize>()
    }
}

/// Settings of the shadow (from the config).
#[derive(Clone, Debug)]
pub struct ShadowSettings {
    /// Invocations that may wait, across the process.
    pub queue: usize,
    /// Bytes of captured data that may wait.
    pub queue_bytes: usize,
    /// Longest the drain at exit may take.
    pub timeout_ms: u64,
    /// Period of the summary line.
    pub summary_every_s: u64,
}

/// What the shim provides to the shadow thread.
pub struct ShadowHooks {
    /// Run first on the shadow thread (the shim marks it as its own).
    pub thread_init: fn(),
    /// Names an application return address as `object+0xoffset`.
    pub caller_name: fn(u64) -> Option<String>,
    /// The new build's namespace is poisoned (a fault, a hang or an exit
    /// at code address `pc` in it): never call it again, load a fresh one.
    /// `Err` says why none can be had; mirroring then stops.
    pub reload: fn(pc: usize) -> Result<(), String>,
    /// The calls to the outside world the new build made on this thread
    /// since the last time (intercepted in its namespace, not performed).
    pub take_outgoing: fn() -> Vec<crate::compare::Outgoing>,
}

/// Counters the application's threads update. Each function's block has
/// its own cache line, away from everything the shadow thread writes: with
/// the shadow's state on the same line, every atomic increment on the
/// caller's path was a cache-line transfer (measured: 80% of a sampled-out
/// call).
#[derive(Default)]
struct CallerCounts {
    calls: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
}

/// One thread's `calls` and `skipped`, per function, and its ring of
/// scalar invocations.
struct CountBlock {
    calls: Box<[AtomicU64]>,
    skipped: Box<[AtomicU64]>,
    /// Calls dropped because the ring was full (the queue's drops are
    /// counted in the process totals).
    dropped: Box<[AtomicU64]>,
    /// Calls the wrapper's assembly fast path sampled out: each is a call
    /// and a skip (one increment on the fast path instead of two).
    sampled_out: Box<[AtomicU64]>,
    /// The thread's mirrored calls of scalar functions, on their way to the
    /// shadow ([`crate::ring`]).
    ring: Ring,
    /// The thread has ended with calls still in its ring: the consumer
    /// folds its counts in and forgets it once the ring is empty.
    retired: AtomicBool,
    /// The thread's id (its ring's calls were made on it).
    tid: u32,
}

impl CountBlock {
    /// Adds this block's counts to the process totals (under `live`).
    fn fold_into(&self, caller: &[CachePadded<CallerCounts>]) {
        for (i, c) in caller.iter().enumerate() {
            c.calls
                .fetch_add(self.calls[i].load(Ordering::Relaxed), Ordering::Relaxed);
            c.skipped
                .fetch_add(self.skipped[i].load(Ordering::Relaxed), Ordering::Relaxed);
            c.dropped
                .fetch_add(self.dropped[i].load(Ordering::Relaxed), Ordering::Relaxed);
            let so = self.sampled_out[i].load(Ordering::Relaxed);
            c.calls.fetch_add(so, Ordering::Relaxed);
            c.skipped.fetch_add(so, Ordering::Relaxed);
        }
    }
}

/// A calling thread's counters ([`Shadow::thread_counts`]). Only its own
/// thread counts with it; when the thread ends (the handle is dropped with
/// its thread-locals) the counts are folded into the process totals.
pub struct ThreadCounts {
    block: Arc<CountBlock>,
    shadow: Arc<Shadow>,
    /// Used by one thread at a time (it produces into the block's ring).
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl ThreadCounts {
    /// Counts one call of `func`.
    #[inline]
    pub fn call(&self, func: u32) {
        bump(&self.block.calls[func as usize]);
    }

    /// Counts a call of `func` not mirrored by decision (sampling).
    #[inline]
    pub fn skipped(&self, func: u32) {
        bump(&self.block.skipped[func as usize]);
    }

    /// Hands a mirrored call of a scalar function or of a call on handles
    /// ([`Shadow::takes_ring`]) to the shadow through this thread's ring:
    /// no allocation, no lock, no shared write. A full ring drops it
    /// (counted; a call on handles parts them:
    /// [`ThreadCounts::part_dropped`]): the caller never waits and never
    /// takes a slower path because the shadow is behind. Returns whether
    /// it was queued.
    #[inline]
    pub fn submit_scalar(&self, call: ScalarCall) -> bool {
        // SAFETY: a ThreadCounts is used by one thread at a time (it is not
        // Sync), and only through it is this block's ring produced into.
        if unsafe { self.block.ring.push(call) } {
            // A sleeping shadow is woken once a batch has piled up (it
            // also wakes by itself, after 1 to 64 ms: [`IDLE_PARK`]).
            if call.seq.is_multiple_of(WAKE_BATCH) && self.shadow.sleeping.load(Ordering::Relaxed) {
                self.shadow.wake();
            }
            return true;
        }
        // This thread's own counter: no locked instruction on a shared line.
        let func = call.target.func;
        bump(&self.block.dropped[func as usize]);
        if self.shadow.facts[func as usize].on_handles {
            self.part_dropped(func, &call.gpr, &call.xmm);
        }
        false
    }

    /// A call of `func` on handles ([`Shadow::ring_on_handles`]), with
    /// these argument registers, was dropped (its thread's ring was full):
    /// its handles have parted (their later calls are `unmirrored` until
    /// they are created again). The drop takes a sequence number of its own
    /// to say where. A thread that keeps dropping calls on one handle parts
    /// it once, until a call that may pair handles again is made
    /// ([`Shadow::note_pairing`]): that call bumps [`Shadow::pairings`]
    /// before it runs, so a drop the application makes after it returned
    /// sees the bump and parts again (a drop concurrent with it was a race
    /// on the handle in the application, with no order to keep).
    ///
    /// What it remembers is in the thread's ring ([`Ring::parted_last`]),
    /// where the wrapper's assembly reads it too, to drop such calls
    /// without calling Rust while [`Shadow::pairings`] stays the same.
    pub fn part_dropped(&self, func: u32, gpr: &[u64; GPRS], xmm: &[u64; XMMS]) {
        let sh = &self.shadow;
        let ring = &self.block.ring;
        let facts = sh.facts[func as usize];
        let n = sh.functions[func as usize].sig.params.len();
        let mut seq = 0;
        for (&class, &r) in facts.handles[..n].iter().zip(&facts.regs[..n]) {
            let h = crate::ring::reg_bits(gpr, xmm, r);
            if class == NO_HANDLE || h == 0 {
                continue;
            }
            if seq == 0 {
                seq = sh.next_seq();
            }
            let pairings = sh.pairings.load(Ordering::SeqCst);
            // SAFETY: a ThreadCounts is used by its producing thread only.
            if unsafe { ring.parted_last() } == (class, h, pairings) {
                continue;
            }
            // SAFETY: as above.
            unsafe { ring.set_parted_last(class, h, pairings) };
            sh.parted.push((class, h, seq));
        }
    }

    /// What the wrapper's assembly needs to count and push for this
    /// thread without calling Rust: its `calls` and `dropped` counters
    /// (arrays indexed by function) and its ring. They live as long as
    /// this `ThreadCounts`.
    pub fn raw_parts(&self) -> (*const AtomicU64, *const AtomicU64, *const Ring) {
        (
            self.block.calls.as_ptr(),
            self.block.dropped.as_ptr(),
            &self.block.ring,
        )
    }
}

/// Adds one to a counter only its own thread writes: a load and a store,
/// no locked read-modify-write (readers may see the old or the new value).
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Drop for ThreadCounts {
    fn drop(&mut self) {
        // In a forked child the lock may be held by a thread that does not
        // exist there, and the counts are the parent's business anyway.
        if std::process::id() != self.shadow.pid {
            return;
        }
        let mut live = self.shadow.live.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: this is the ring's producing thread.
        if unsafe { self.block.ring.producer_len() } != 0 {
            // Calls still on their way: the consumer folds the counts in
            // once it has taken them (`Shadow::take_from_rings`).
            self.block.retired.store(true, Ordering::Release);
            return;
        }
        self.block.fold_into(&self.shadow.caller);
        live.retain(|b| !Arc::ptr_eq(b, &self.block));
    }
}

/// Judged counters and the report, shared by the shadow thread and `finish`.
struct Judged {
    counters: Vec<Counters>,
    report: Option<ReportWriter>,
    /// Where the report goes; it is created on first use, so that a
    /// process where DDL stands down leaves no file behind.
    report_path: Option<std::path::PathBuf>,
    records_per_signature: u32,
    /// Set by `finish`: the shadow thread discards anything it still judges.
    closed: bool,
}

impl Judged {
    /// The report writer, created on first use (an error is said once).
    fn writer(&mut self) -> Option<&mut ReportWriter> {
        if self.report.is_none() {
            let path = self.report_path.take()?;
            match ReportWriter::create(&path, self.records_per_signature) {
                Ok(w) => self.report = Some(w),
                Err(e) => crate::sandbox::diag(&format!(
                    "ddl: error: cannot create the report {}: {e}",
                    path.display()
                )),
            }
        }
        self.report.as_mut()
    }
}

/// A bounded queue made at its first use ([`Shadow::make_queue`]): its
/// slots (16 bytes each, 1 MiB for the default `queue`) are written when
/// it is made, which the thread that makes it pays in page faults; libddl
/// makes it on a thread of its own before the first call needs it.
struct LazyQueue<T> {
    capacity: usize,
    queue: std::sync::OnceLock<ArrayQueue<T>>,
}

impl<T> LazyQueue<T> {
    fn new(capacity: usize) -> Self {
        LazyQueue {
            capacity,
            queue: std::sync::OnceLock::new(),
        }
    }

    /// The queue if it was made; never makes it (a process that queued
    /// nothing must not fault in its slots at exit: 1 MiB at the default
    /// `queue`).
    fn made(&self) -> Option<&ArrayQueue<T>> {
        self.queue.get()
    }
}

impl<T> std::ops::Deref for LazyQueue<T> {
    type Target = ArrayQueue<T>;
    #[inline]
    fn deref(&self) -> &ArrayQueue<T> {
        self.queue.get_or_init(|| ArrayQueue::new(self.capacity))
    }
}

/// The shadow executor's shared state.
pub struct Shadow {
    functions: Arc<Vec<BoundaryFn>>,
    settings: ShadowSettings,
    queue: LazyQueue<Box<Invocation>>,
    queued_bytes: CachePadded<AtomicUsize>,
    /// Handles a dropped call was made on: `(class, primary, seq)`, for the
    /// shadow's [`HandleTable`] (only the drop path writes here).
    parted: SegQueue<(u32, u64, u64)>,
    /// Per function: `dropped`, and the `calls`/`skipped` of threads that
    /// have ended (folded in from their [`ThreadCounts`]).
    caller: Vec<CachePadded<CallerCounts>>,
    /// The counters of the threads that are calling.
    live: CachePadded<Mutex<Vec<Arc<CountBlock>>>>,
    seq: CachePadded<AtomicU64>,
    judged: CachePadded<Mutex<Judged>>,
    /// Held by the shadow thread while it moves a batch from the queue
    /// into `taken`, and while it counts judged invocations, so that
    /// `finish` sees each one exactly once: queued, in flight or counted.
    pop_lock: CachePadded<Mutex<Inflight>>,
    /// The batch's invocations not yet judged (null: none), as raw boxes:
    /// the shadow thread takes slot `i` before it calls `i`; a watchdog
    /// that gives that thread up leaves the rest to the fresh one.
    taken: Box<[AtomicPtr<Invocation>]>,
    /// A ring's call in the batch: `taken[i]` is [`RING_CALL`] and the call
    /// (with its thread's id) is `ring_taken[i]`, under the same rules.
    ring_taken: RingTaken,
    /// Per function: verdicts judged but not yet counted ([`Pending`]).
    pending: Box<[Pending]>,
    /// Per function: [`Facts`].
    facts: Box<[Facts]>,
    /// The at-exit drain has begun ([`Shadow::finish`]): rings are taken
    /// from whatever they hold, not by whole batches.
    draining: AtomicBool,
    /// Invocations taken from the queue into [`Inflight::carry`], not yet
    /// into a batch: they count against `queue` as if still in it.
    carried: CachePadded<AtomicUsize>,
    /// Some function's calls on handles go through the callers' rings
    /// ([`Facts::on_handles`]): the shadow then judges every call, from
    /// the queue and the rings alike, in `seq` order
    /// ([`Shadow::take_ordered`]), which keeps each handle's calls in the
    /// application's order.
    ordered: bool,
    /// Bumped before a call that may pair or unpair handles takes its
    /// sequence number ([`Signature::may_pair`], while [`Shadow::ordered`]):
    /// a thread that drops calls on a handle parts it once until this
    /// moves ([`ThreadCounts::part_dropped`]).
    pairings: CachePadded<AtomicU64>,
    sleeping: CachePadded<AtomicBool>,
    /// The shadow's nap is a long one (an idle shadow's second and later,
    /// [`IDLE_PARK`]): a caller that queues an invocation wakes it at once
    /// rather than once a batch has piled up (a few expensive calls, BLAS
    /// matrices, would otherwise wait out the nap and be judged at the
    /// exit's drain, while the application waits).
    deep_nap: CachePadded<AtomicBool>,
    /// A caller has woken the sleeping shadow since it last went to sleep:
    /// the other callers that find it still asleep do not wake it again
    /// (a full ring finds it asleep on every call until it runs).
    woken: CachePadded<AtomicBool>,
    /// Invocations judged so far (the at-exit drain watches it progress).
    judged_total: CachePadded<AtomicU64>,
    /// The shadow thread's current call: a number of its own (never 0,
    /// never reused), 0 when no call is being made. The watchdog times how
    /// long it keeps seeing the same number; it and the shadow thread each
    /// exchange that number for 0 to claim the call's verdict: exactly one
    /// does (a given-up thread that comes back finds another number, and
    /// leaves it).
    call_started: CachePadded<AtomicU64>,
    /// Numbers `call_started` (the next call's).
    /// (Written by the shadow thread at every call: on a line of its own,
    /// away from the fields the callers read.)
    call_number: CachePadded<AtomicU64>,
    /// The invocation in flight on the shadow thread (for the watchdog's
    /// record), stored before `call_started`. A shadow thread that was
    /// given up never frees it.
    inflight_call: CachePadded<AtomicUsize>,
    /// The shadow thread's kernel thread id.
    runner_tid: AtomicI32,
    /// The watchdog thread has been started.
    watchdog: AtomicBool,
    /// Queue length at which a caller wakes a sleeping shadow.
    wake_batch: usize,
    thread: Mutex<Option<Thread>>,
    hooks: ShadowHooks,
    /// The new build's `__errno_location` (its namespace has its own errno).
    new_errno: AtomicUsize,
    /// Mirroring has stopped for good (no new build's namespace can be
    /// had): callers count their calls as `skipped`.
    stopped: AtomicBool,
    pid: u32,
    /// The capture log's hook ([`Shadow::set_capture`]), called on the
    /// shadow thread before each call and for each parted handle.
    capture: CachePadded<Mutex<Option<CaptureHook>>>,
    /// `capture` is set (checked without the lock).
    capturing: AtomicBool,
    /// Reduces the shadow's outcome before it is judged (replay of a log
    /// whose outputs were stored reduced: [`Shadow::set_masker`]).
    masker: std::sync::OnceLock<fn(&Invocation, &mut Outcome)>,
}

/// What the capture hook is told about, in the order the shadow meets it.
pub enum CaptureEvent<'a> {
    /// An invocation about to be judged.
    Call(&'a Invocation),
    /// A handle a dropped call was given (`class`, primary handle, `seq`
    /// of the dropped call): its later calls are `unmirrored`.
    Parted(u32, u64, u64),
}

/// The capture log's hook (the shim's: it names symbols and callers).
pub type CaptureHook = Box<dyn FnMut(CaptureEvent<'_>) + Send>;

impl Shadow {
    /// Creates the executor. The report file (`report_path`, `None` for
    /// none) is created when the first record or summary is written.
    pub fn new(
        functions: Arc<Vec<BoundaryFn>>,
        settings: ShadowSettings,
        report_path: Option<std::path::PathBuf>,
        records_per_signature: u32,
        hooks: ShadowHooks,
    ) -> Arc<Shadow> {
        let n = functions.len();
        let wake_batch = (settings.queue / 8).clamp(1, 256);
        let facts: Box<[Facts]> = functions.iter().map(Facts::of).collect();
        Arc::new(Shadow {
            queue: LazyQueue::new(settings.queue.max(1)),
            settings,
            queued_bytes: CachePadded::new(AtomicUsize::new(0)),
            parted: SegQueue::new(),
            live: CachePadded::new(Mutex::new(Vec::new())),
            caller: (0..n)
                .map(|_| CachePadded::new(CallerCounts::default()))
                .collect(),
            seq: CachePadded::new(AtomicU64::new(0)),
            judged: CachePadded::new(Mutex::new(Judged {
                counters: vec![Counters::default(); n],
                report: None,
                report_path,
                records_per_signature,
                closed: false,
            })),
            pop_lock: CachePadded::new(Mutex::new(Inflight {
                funcs: Vec::with_capacity(BATCH),
                counted: 0,
                carry: Carry::default(),
            })),
            taken: (0..BATCH)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            ring_taken: RingTaken(
                (0..BATCH)
                    .map(|_| std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()))
                    .collect(),
            ),
            pending: (0..n).map(|_| Pending::default()).collect(),
            facts: facts.clone(),
            ordered: facts.iter().any(|f| f.ring && f.on_handles),
            pairings: CachePadded::new(AtomicU64::new(0)),
            carried: CachePadded::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
            sleeping: CachePadded::new(AtomicBool::new(false)),
            woken: CachePadded::new(AtomicBool::new(false)),
            deep_nap: CachePadded::new(AtomicBool::new(false)),
            judged_total: CachePadded::new(AtomicU64::new(0)),
            call_started: CachePadded::new(AtomicU64::new(0)),
            call_number: CachePadded::new(AtomicU64::new(0)),
            inflight_call: CachePadded::new(AtomicUsize::new(0)),
            runner_tid: AtomicI32::new(0),
            watchdog: AtomicBool::new(false),
            wake_batch,
            thread: Mutex::new(None),
            hooks,
            new_errno: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            pid: std::process::id(),
            capture: CachePadded::new(Mutex::new(None)),
            capturing: AtomicBool::new(false),
            masker: std::sync::OnceLock::new(),
            functions,
        })
    }

    /// Every invocation the shadow judges, and every handle it learns was
    /// parted, is given to `hook` first, on the shadow thread (off the
    /// caller's path). The hook is dropped by [`Shadow::finish`].
    pub fn set_capture(&self, hook: CaptureHook) {
        *self.capture.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
        self.capturing.store(true, Ordering::Release);
    }

    /// The shadow's outcome of each call is given to `f` before it is
    /// judged (replay: outputs the log stores reduced are reduced the same
    /// way on the shadow's side). Set once, before the first call.
    pub fn set_masker(&self, f: fn(&Invocation, &mut Outcome)) {
        let _ = self.masker.set(f);
    }

    fn captured(&self, e: CaptureEvent<'_>) {
        if let Some(hook) = self
            .capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            hook(e);
        }
    }

    /// A handle the shadow must forget from `seq` on (replay: a dropped
    /// call the log recorded).
    pub fn part(&self, class: u32, handle: u64, seq: u64) {
        self.parted.push((class, handle, seq));
    }

    /// Makes the queue now, on this thread (it is made at its first use
    /// otherwise).
    pub fn make_queue(&self) {
        let _ = &*self.queue;
    }

    /// Invocations waiting in the queue, and their bytes of captured data
    /// (replay waits on these instead of dropping).
    pub fn backlog(&self) -> (usize, usize) {
        (
            self.queue.len() + self.carried.load(Ordering::Relaxed),
            self.queued_bytes.load(Ordering::Relaxed),
        )
    }

    /// The counts per function as the next summary line would give them.
    pub fn totals_now(&self) -> Vec<(String, Counters)> {
        let j = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        self.totals(&j)
    }

    /// Invocations judged so far (counted or not).
    pub fn judged_so_far(&self) -> u64 {
        self.judged_total.load(Ordering::Relaxed)
    }

    /// The boundary functions.
    pub fn functions(&self) -> &Arc<Vec<BoundaryFn>> {
        &self.functions
    }

    /// Tells the shadow where the new build's namespace keeps `errno`.
    pub fn set_new_errno(&self, f: Option<unsafe extern "C" fn() -> *mut libc::c_int>) {
        self.new_errno
            .store(f.map(|f| f as usize).unwrap_or(0), Ordering::Release);
    }

    /// Mirroring has stopped for good: calls are counted as `skipped`.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Stops mirroring for good: said once on stderr and in the report.
    fn stop(&self, reason: &str) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        crate::sandbox::diag(&format!(
            "ddl: mirroring stopped: {reason}; calls are counted as skipped from now on"
        ));
        let mut j = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.seq.load(Ordering::Relaxed);
        let pid = self.pid;
        if let Some(r) = j.writer() {
            r.event(seq, pid, "mirroring_stopped", reason);
        }
    }

    /// Starts the shadow thread.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let me = Arc::clone(self);
        let h = spawn_blocked("ddl-shadow", move || me.run())?;
        *self.thread.lock().unwrap() = Some(h.thread().clone());
        if !self.watchdog.swap(true, Ordering::AcqRel) {
            let me = Arc::clone(self);
            spawn_blocked("ddl-watchdog", move || me.watch())?;
        }
        Ok(())
    }

    /// The watchdog: a shadow call that the sandbox's timer could not
    /// interrupt (the thread blocked the timer's signal behind DDL's back,
    /// or sits in an uninterruptible call) and that runs past three times
    /// `timeout_ms` is given up: its verdict is `shadow_timeout`, its thread
    /// is moved to `SCHED_IDLE` (it only takes idle CPU from then on) and
    /// left to itself, the new build's namespace is replaced, and a fresh
    /// shadow thread takes over the queue. The application never waits.
    fn watch(self: Arc<Self>) {
        (self.hooks.thread_init)();
        let limit = self.settings.timeout_ms.max(1);
        let period = Duration::from_millis((limit / 4).clamp(10, 250));
        // The call seen in flight, and when it was first seen (the shadow
        // thread reads no clock per call: it numbers its calls).
        let mut seen = (0u64, Instant::now());
        loop {
            std::thread::sleep(period);
            if self.judged.lock().unwrap_or_else(|e| e.into_inner()).closed {
                return;
            }
            let started = self.call_started.load(Ordering::Acquire);
            if started == 0 {
                continue;
            }
            if started != seen.0 {
                seen = (started, Instant::now());
                continue;
            }
            let ran = seen.1.elapsed().as_millis() as u64;
            if ran <= 3 * limit {
                continue;
            }
            if self
                .call_started
                .compare_exchange(started, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue; // it came back meanwhile
            }
            self.abandon(ran);
        }
    }

    /// Gives the shadow thread up (see [`Shadow::watch`]).
    fn abandon(self: &Arc<Self>, ran_ms: u64) {
        let tid = self.runner_tid.load(Ordering::Acquire);
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: changes the scheduling policy of one thread of ours.
        unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) };
        // Stored before the claimed call's number (read after the claim).
        let at = self.inflight_call.load(Ordering::Acquire);
        let built;
        let inv = if at & RING_INFLIGHT != 0 {
            // SAFETY: the `ring_taken` slot of the ring's call just claimed:
            // written before the call and not written again before the
            // fresh shadow thread (started below) fills a new batch.
            let (c, tid) =
                unsafe { (*(*((at & !RING_INFLIGHT) as *const RingSlot)).get()).assume_init() };
            built = self.invocation_into(c, tid, None);
            &*built
        } else {
            // SAFETY: the invocation of the call just claimed: its thread
            // never frees it once it lost the claim (it leaks it).
            unsafe { &*(at as *const Invocation) }
        };
        let func = inv.func;
        {
            let mut inflight = self.pop_lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut j = self.judged.lock().unwrap_or_else(|e| e.into_inner());
            // The given-up thread's pending verdicts are counted here; the
            // claimed call comes right after them in its batch; the rest of
            // the batch (still in `taken`) is the fresh thread's.
            let done = self.count_pending(&mut j);
            inflight.counted = (inflight.counted + done as usize + 1).min(inflight.funcs.len());
            if !j.closed {
                let c = &mut j.counters[func as usize];
                c.mirrored += 1;
                c.shadow_timeout += 1;
                let mut extra = serde_json::Map::new();
                extra.insert("timeout_ms".into(), self.settings.timeout_ms.into());
                extra.insert(
                    "abandoned".into(),
                    format!("the call could not be interrupted; after {ran_ms} ms its thread was moved to SCHED_IDLE and a fresh shadow took over").into(),
                );
                let mut rec = self.record_of(inv, Verdict::ShadowTimeout, None, Vec::new());
                rec.extra = extra;
                if let Some(r) = j.writer() {
                    r.record(&rec);
                }
            }
        }
        self.judged_total.fetch_add(1, Ordering::Relaxed);
        if let Err(why) = (self.hooks.reload)(0) {
            self.stop(&why);
        }
        let me = Arc::clone(self);
        match spawn_blocked("ddl-shadow", move || me.run()) {
            Ok(h) => {
                *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h.thread().clone())
            }
            Err(e) => self.stop(&format!("cannot start a fresh shadow thread: {e}")),
        }
    }

    /// A calling thread's own counters, registered so that summaries see
    /// them. The caller's path counts `calls` and `skipped` there with plain
    /// stores, never a locked instruction on a line other threads write.
    pub fn thread_counts(self: &Arc<Self>) -> ThreadCounts {
        let n = self.functions.len();
        let block = Arc::new(CountBlock {
            calls: (0..n).map(|_| AtomicU64::new(0)).collect(),
            skipped: (0..n).map(|_| AtomicU64::new(0)).collect(),
            dropped: (0..n).map(|_| AtomicU64::new(0)).collect(),
            sampled_out: (0..n).map(|_| AtomicU64::new(0)).collect(),
            // No function of the rings, no call in it: the smallest ring
            // (1024 slots are 136 KiB the caller's first call faults in).
            ring: Ring::new(if self.ordered {
                self.settings.queue.min(RING_SLOTS_ON_HANDLES)
            } else if self.facts.iter().any(|f| f.ring) {
                self.settings.queue.min(RING_SLOTS)
            } else {
                2
            }),
            retired: AtomicBool::new(false),
            // SAFETY: gettid has no preconditions.
            tid: unsafe { libc::gettid() } as u32,
        });
        self.live.lock().unwrap().push(Arc::clone(&block));
        ThreadCounts {
            block,
            shadow: Arc::clone(self),
            _not_sync: std::marker::PhantomData,
        }
    }

    /// Whether mirrored calls of `func` go through the caller's ring
    /// ([`ThreadCounts::submit_scalar`]): a scalar function, or one whose
    /// parameters are scalars and plain handles ([`Facts::on_handles`]),
    /// its arguments all in the registers a slot keeps, its result in
    /// `rax`/`xmm0` (or none), `errno` not compared ([`Facts::ring`]).
    #[inline]
    pub fn takes_ring(&self, func: u32) -> bool {
        self.facts[func as usize].ring && !GENERAL_ONLY.load(Ordering::Relaxed)
    }

    /// Whether every argument of ring function `func` is in `rdi` or `rsi`
    /// (`gpr[0..2]`), which share the slot's first line with everything
    /// else the shadow reads: the wrapper's assembly then leaves the
    /// second line alone (its reads for ownership are most of a push's
    /// cost), and the shadow never looks at what it holds.
    pub fn ring_narrow(&self, func: u32) -> bool {
        let f = self.facts[func as usize];
        let n = self.functions[func as usize].sig.params.len();
        f.ring && f.regs[..n].iter().all(|&r| r < 2)
    }

    /// For a function of the rings given exactly one handle
    /// ([`Shadow::ring_on_handles`]): the handle's register in a slot's
    /// `gpr` and its class.
    pub fn ring_handle(&self, func: u32) -> Option<(u8, u32)> {
        let f = self.facts[func as usize];
        if !(f.ring && f.on_handles) {
            return None;
        }
        let n = self.functions[func as usize].sig.params.len();
        let mut it = (0..n).filter(|&i| f.handles[i] != NO_HANDLE);
        match (it.next(), it.next()) {
            (Some(i), None) if (f.regs[i] as usize) < GPRS => Some((f.regs[i], f.handles[i])),
            _ => None,
        }
    }

    /// [`Shadow::pairings`], for the wrapper's assembly (it lives as long
    /// as the shadow).
    pub fn pairings_counter(&self) -> *const AtomicU64 {
        &*self.pairings
    }

    /// Whether `func`'s calls are given handles and take the ring
    /// ([`Facts::on_handles`]): a dropped call of it parts its handles
    /// ([`ThreadCounts::part_dropped`]).
    pub fn ring_on_handles(&self, func: u32) -> bool {
        let f = self.facts[func as usize];
        f.ring && f.on_handles
    }

    /// What the wrapper's assembly needs to take a sequence number, see
    /// whether mirroring stopped and whether the shadow sleeps: the
    /// process-wide `seq` counter (the next number is one more than what
    /// `fetch_add(1)` returns), the `stopped` flag and the `sleeping`
    /// flag. They live as long as the shadow.
    pub fn raw_flags(&self) -> (*const AtomicU64, *const AtomicBool, *const AtomicBool) {
        (&*self.seq, &self.stopped, &*self.sleeping)
    }

    /// Wakes the shadow thread if it sleeps (the assembly's push does it
    /// once a batch has piled up).
    pub fn wake_if_sleeping(&self) {
        if self.sleeping.load(Ordering::Relaxed) && !self.woken.swap(true, Ordering::AcqRel) {
            self.wake();
        }
    }

    /// The invocation a ring's call stands for (what the general path
    /// would have captured). Reuses `reuse` (a judged invocation of a scalar function: its
    /// vectors hold no data, only capacity) when given: the shadow then
    /// allocates nothing per ring call.
    fn invocation_into(
        &self,
        c: ScalarCall,
        tid: u32,
        reuse: Option<Box<Invocation>>,
    ) -> Box<Invocation> {
        let func = c.target.func;
        let f = &self.functions[func as usize];
        let regs = self.facts[func as usize].regs;
        let values = f.sig.params.iter().zip(regs).map(|(p, r)| {
            let bits = crate::ring::reg_bits(&c.gpr, &c.xmm, r);
            match p.ty {
                Type::Scalar(s) => Value::scalar_from_bits(s, bits),
                // A handle, captured as the general path does.
                _ if bits == 0 => Value::Null,
                _ => Value::Opaque(bits),
            }
        });
        let ret = match f.sig.ret {
            Type::Scalar(s) => Value::scalar_from_bits(s, c.ret),
            _ => Value::None,
        };
        let outgoing = c.watched().then(Vec::new);
        match reuse {
            Some(mut inv) => {
                inv.seq = c.seq;
                inv.func = func;
                inv.tid = tid;
                inv.caller = c.caller;
                inv.new_fn = c.target.new_fn;
                inv.inputs.values.clear();
                inv.inputs.values.extend(values);
                inv.inputs.counts.clear();
                inv.inputs.deep.clear();
                inv.inputs.structs.clear();
                inv.primary.ret = ret;
                inv.primary.outputs.clear();
                inv.primary.errno = None;
                inv.primary.exception = None;
                inv.primary.outgoing = outgoing;
                inv.errno_before = 0;
                inv.deleting = false;
                inv.fp_env = c.fp_env();
                inv
            }
            None => Box::new(Invocation {
                seq: c.seq,
                func,
                tid,
                caller: c.caller,
                new_fn: c.target.new_fn,
                inputs: Inputs {
                    values: values.collect(),
                    counts: Vec::new(),
                    deep: Vec::new(),
                    structs: Vec::new(),
                },
                primary: Outcome {
                    ret,
                    outputs: Vec::new(),
                    errno: None,
                    exception: None,
                    outgoing,
                },
                errno_before: 0,
                deleting: false,
                fp_env: c.fp_env(),
            }),
        }
    }

    /// Moves calls from the callers' rings into the batch (`ring_taken`
    /// from slot `from`, marked [`RING_CALL`] in `taken`), up to its end;
    /// forgets rings of ended threads once empty. Called with `pop_lock`
    /// held (the rings' one consumer).
    fn take_from_rings(&self, inflight: &mut Inflight, mut from: usize, whole: bool) {
        self.pop_rings(self.taken.len() - from, whole, |c, tid| {
            inflight.funcs.push(c.target.func);
            // SAFETY: the batch's slots are written under `pop_lock` only
            // while no thread judges them.
            unsafe { (*self.ring_taken[from].get()).write((*c, tid)) };
            self.taken[from].store(RING_CALL, Ordering::Relaxed);
            from += 1;
        });
    }

    /// Takes up to `room` calls from the callers' rings, oldest first in
    /// each ring, lending each (with its thread's id) to `take`; forgets
    /// rings of ended threads once empty. Called with `pop_lock` held (the
    /// rings' one consumer).
    ///
    /// `whole`: only rings holding a whole batch ([`Ring::has_batch`]) are
    /// taken from; the others are not even looked at.
    fn pop_rings(&self, mut room: usize, whole: bool, mut take: impl FnMut(&ScalarCall, u32)) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut emptied_retired = false;
        for b in live.iter() {
            if room == 0 {
                break;
            }
            if whole && !b.retired.load(Ordering::Relaxed) && !b.ring.has_batch(BATCH) {
                continue;
            }
            // SAFETY: the consumer side, under `pop_lock`.
            room -= unsafe { b.ring.pop_batch(room, |c| take(c, b.tid)) };
            emptied_retired |= b.retired.load(Ordering::Acquire) && !b.ring.has_waiting();
        }
        if emptied_retired {
            let caller = &self.caller;
            live.retain(|b| {
                let gone = b.retired.load(Ordering::Acquire) && !b.ring.has_waiting();
                if gone {
                    b.fold_into(caller);
                }
                !gone
            });
        }
    }

    /// The next batch when calls are judged in `seq` order
    /// ([`Shadow::ordered`]). A round takes every call waiting in the queue
    /// and the rings into `carry` (each source's calls in its own order),
    /// and notes the highest `seq` it got, `M`; then looks again, and again
    /// while a look brings a call numbered below `M`. The calls numbered up
    /// to `M` may then be judged, in batches, always the lowest-numbered
    /// at the front of a source first (the queue's calls in the queue's
    /// order). The rest waits for the next round.
    ///
    /// Why this keeps the application's order: a call B the application
    /// makes after a call A returned (on any thread, ordered by its own
    /// synchronisation) was published after A, so A is visible to any look
    /// made after B was seen, and A's `seq` is below B's (a ring's call
    /// takes its number when its old function has returned, a queued call
    /// before it runs; both before they are published). Every call let
    /// through was seen before a later look, and that look found every
    /// call that preceded it. A call published later with a lower `seq`
    /// than one already judged did not precede it: the two were
    /// concurrent, and either order is one the application could have had.
    /// Within the queue, its own order is such an order too.
    ///
    /// The queue's calls in `carry` still count against `queue` (callers
    /// find it full, replay waits: [`Shadow::carried`]). `carry` stays
    /// bounded without dropping anything: a round's first look takes at
    /// most what the queue and the rings hold, and the looks between its
    /// batches stop once `carry` holds `queue` calls (the rings then fill
    /// and drop, counted, on the callers' side).
    ///
    /// A round starts when the queue holds a call or a ring a whole batch
    /// (or `flush`: any call); its later looks take everything.
    fn take_ordered(&self, inflight: &mut Inflight, flush: bool) {
        let carry = &mut inflight.carry;
        if !carry.has_ready() {
            self.drain_sources(carry, !flush);
            let Some(max) = carry.max_seq() else {
                return;
            };
            loop {
                for r in &mut carry.rings {
                    r.seen = r.calls.len();
                }
                let queued = carry.queued.len();
                self.drain_sources(carry, false);
                let below = carry.queued.range(queued..).any(|inv| inv.seq < max)
                    || carry
                        .rings
                        .iter()
                        .any(|r| r.calls.range(r.seen..).any(|c| c.seq < max));
                if !below {
                    break;
                }
            }
            carry.ready_upto(max);
        } else if carry.len() < self.settings.queue {
            // Between the batches of a round, the callers' rings are
            // emptied too, so that they do not overflow while the round
            // is judged; what is taken now waits for the next round (it
            // was published after the round's last look: nothing judged
            // in this round followed it).
            self.drain_sources(carry, true);
        }
        let mut bytes = 0;
        for filled in 0..self.taken.len() {
            let Some(c) = carry.pop_next() else { break };
            match c {
                Carried::Queued(inv) => {
                    bytes += self.bytes_of(&inv);
                    self.carried.fetch_sub(1, Ordering::Relaxed);
                    inflight.funcs.push(inv.func);
                    self.taken[filled].store(Box::into_raw(inv), Ordering::Relaxed);
                }
                Carried::Ring(c, tid) => {
                    inflight.funcs.push(c.target.func);
                    // SAFETY: the batch's slots are written under
                    // `pop_lock` only while no thread judges them.
                    unsafe { (*self.ring_taken[filled].get()).write((c, tid)) };
                    self.taken[filled].store(RING_CALL, Ordering::Relaxed);
                }
            }
        }
        // Queued invocations count against `queue_bytes` until they are
        // judged, in `carry` too.
        if bytes != 0 {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Moves every call waiting in the queue and the rings to `carry`.
    /// Called with `pop_lock` held.
    ///
    /// `whole`: only rings holding a whole batch ([`Shadow::pop_rings`]).
    fn drain_sources(&self, carry: &mut Carry, whole: bool) {
        while let Some(inv) = self.queue.pop() {
            // Counted before it leaves the queue's count: `submit` never
            // sees room that is not there.
            self.carried.fetch_add(1, Ordering::Relaxed);
            carry.queued.push_back(inv);
        }
        self.pop_rings(usize::MAX, whole, |c, tid| carry.push_ring(c, tid));
    }

    /// Looks for work for up to [`SPIN`] before the shadow sleeps: whether
    /// the queue got a call or a ring a whole batch meanwhile (a sleep
    /// costs a caller a wake, a futex call).
    fn work_soon(&self) -> bool {
        let until = Instant::now() + SPIN;
        loop {
            if !self.queue.is_empty() {
                return true;
            }
            {
                let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                if live.iter().any(|b| b.ring.has_batch(BATCH)) {
                    return true;
                }
            }
            if Instant::now() >= until {
                return false;
            }
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }

    /// Whether a caller's ring holds a call.
    fn rings_waiting(&self) -> bool {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.iter().any(|b| b.ring.has_waiting())
    }

    /// A call of `func` on the general path is about to take its sequence
    /// number: when it may pair or unpair handles ([`Signature::may_pair`],
    /// worked out once) and calls on handles take the rings, it bumps
    /// [`Shadow::pairings`].
    #[inline]
    pub fn note_pairing(&self, func: u32) {
        if self.ordered && self.facts[func as usize].may_pair {
            self.pairings.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Takes the next sequence number.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Hands an invocation to the shadow; never blocks. Returns false (and
    /// counts it `dropped`) when the queue or its byte budget is full.
    pub fn submit(&self, inv: Box<Invocation>) -> bool {
        // Its large captures were written with non-temporal stores
        // (bufpool::stream_copy): ordered before the push that publishes it.
        crate::bufpool::publish_fence();
        // An invocation without captured data (a scalar function) leaves
        // the byte budget alone: no locked instruction on its shared line.
        let bytes = self.bytes_of(&inv);
        if bytes != 0 {
            let before = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
            if before + bytes > self.settings.queue_bytes {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.dropped(&inv);
                // Its buffers go back to the pool, not to the allocator.
                inv.recycle();
                return false;
            }
        }
        let full = self.ordered
            && self.queue.len() + self.carried.load(Ordering::Relaxed) >= self.settings.queue;
        if let Err(inv) = if full { Err(inv) } else { self.queue.push(inv) } {
            if bytes != 0 {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            }
            self.dropped(&inv);
            inv.recycle();
            return false;
        }
        // Wake the shadow only when it sleeps and a batch has piled up: it
        // wakes by itself ([`IDLE_PARK`]), and a futex wake per invocation
        // (with the context switch it causes) cost the caller more than
        // everything else on its path (measured: ~35% of a mirrored call).
        if self.sleeping.load(Ordering::Relaxed)
            && (self.queue.len() >= self.wake_batch
                || (self.deep_nap.load(Ordering::Relaxed)
                    && !self.woken.swap(true, Ordering::AcqRel)))
        {
            self.wake();
        }
        true
    }

    /// [`Invocation::bytes`], without looking when the function's
    /// invocations hold nothing on the heap (scalar functions).
    #[inline]
    fn bytes_of(&self, inv: &Invocation) -> usize {
        if self.facts[inv.func as usize].scalar {
            0
        } else {
            inv.bytes()
        }
    }

    /// Adds the pending verdicts ([`Pending`]) to the counts (unless the
    /// session is closed: `finish` counted them as dropped) and zeroes
    /// them. Returns how many there were. Called with `pop_lock` held.
    fn count_pending(&self, j: &mut Judged) -> u64 {
        let mut n = 0;
        for (i, p) in self.pending.iter().enumerate() {
            let (m, u) = (
                p.matched.load(Ordering::Relaxed),
                p.unmirrored.load(Ordering::Relaxed),
            );
            if m + u == 0 {
                continue;
            }
            p.matched.store(0, Ordering::Relaxed);
            p.unmirrored.store(0, Ordering::Relaxed);
            n += m + u;
            if !j.closed {
                let c = &mut j.counters[i];
                c.mirrored += m + u;
                c.matched += m;
                c.unmirrored += u;
            }
        }
        n
    }

    /// Counts the batch's invocations up to `upto` (pending verdicts, and
    /// `judged`: one more, with its record), under `pop_lock` and `judged`.
    fn count_batch(&self, upto: usize, judged: Option<(&Invocation, Judgement)>) {
        let mut inflight = self.pop_lock.lock().unwrap();
        let mut j = self.judged.lock().unwrap();
        let mut n = self.count_pending(&mut j);
        if let Some((inv, jm)) = judged {
            n += 1;
            if !j.closed {
                let Judgement {
                    verdict,
                    shadow,
                    diffs,
                    extra,
                    ..
                } = jm;
                let c = &mut j.counters[inv.func as usize];
                c.mirrored += 1;
                match verdict {
                    Verdict::Match => c.matched += 1,
                    Verdict::Mismatch => c.mismatch += 1,
                    Verdict::ShadowFault => c.shadow_fault += 1,
                    Verdict::ShadowTimeout => c.shadow_timeout += 1,
                    _ => c.unmirrored += 1,
                }
                if verdict.is_recorded() {
                    let mut rec = self.record_of(inv, verdict, shadow.as_ref(), diffs);
                    rec.extra = extra;
                    if let Some(r) = j.writer() {
                        r.record(&rec);
                    }
                }
            }
        }
        inflight.counted = upto;
        drop(j);
        drop(inflight);
        if n != 0 {
            self.judged_total.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts a dropped invocation; the handles it was given have parted.
    fn dropped(&self, inv: &Invocation) {
        let f = &self.functions[inv.func as usize];
        self.caller[inv.func as usize]
            .dropped
            .fetch_add(1, Ordering::Relaxed);
        if f.sig.uses_handles() {
            for (class, h) in handles_of(&f.sig, &inv.inputs) {
                self.parted.push((class, h, inv.seq));
            }
        }
    }

    fn wake(&self) {
        if let Some(t) = self.thread.lock().unwrap().as_ref() {
            t.unpark();
        }
    }

    fn run(self: Arc<Self>) {
        (self.hooks.thread_init)();
        // The floating-point state this thread judges under (each call runs
        // under its caller's).
        let own_fp = FpEnv::current();
        // Faults, exceptions and hangs of the new build are contained on
        // this thread (a call that cannot be contained is `unmirrored`).
        // The seccomp backstop turns an `exit_group` from inside the new
        // build's libc into a contained exit; it stays on this thread.
        if let Err(e) =
            crate::sandbox::thread_init().and_then(|_| crate::sandbox::install_thread_backstop())
        {
            if std::env::var_os("DDL_LOG").is_some() {
                eprintln!("ddl: the shadow thread has no sandbox: {e}");
            }
        }
        // The shadow's objects: DDL's own instances are freed with it when
        // the thread ends; the new build's objects live on in its namespace
        // (nothing of the application runs to release them).
        let mut table = HandleTable::new();
        // Judged invocations of scalar functions, reused for ring calls.
        let mut pool: Vec<Box<Invocation>> = Vec::with_capacity(BATCH);
        // SAFETY: gettid has no preconditions.
        self.runner_tid
            .store(unsafe { libc::gettid() }, Ordering::Release);
        let mut last_summary = Instant::now();
        let mut judged_since_check = 0u64;
        let period = Duration::from_secs(self.settings.summary_every_s.max(1));
        // A ring held less than a batch at the last look: take what there is.
        let mut partial = false;
        // Naps in a row that found nothing ([`IDLE_PARK`]), and whether the
        // shadow judged something since it last slept (only then is more
        // work likely soon enough to be worth [`Shadow::work_soon`]'s spin:
        // an idle process's shadow otherwise spun 50 µs every millisecond).
        let mut idle_naps = 0u32;
        let mut worked = true;
        loop {
            let flush = std::mem::take(&mut partial) || self.draining.load(Ordering::Relaxed);
            // A batch: the rest of one a given-up shadow thread left, or
            // fresh invocations from the queue.
            let (start, end) = {
                let mut inflight = self.pop_lock.lock().unwrap();
                if inflight.counted >= inflight.funcs.len() && self.ordered {
                    inflight.funcs.clear();
                    inflight.counted = 0;
                    self.take_ordered(&mut inflight, flush);
                } else if inflight.counted >= inflight.funcs.len() {
                    inflight.funcs.clear();
                    inflight.counted = 0;
                    let mut bytes = 0;
                    let mut filled = 0;
                    for slot in self.taken.iter() {
                        let Some(inv) = self.queue.pop() else { break };
                        bytes += self.bytes_of(&inv);
                        inflight.funcs.push(inv.func);
                        slot.store(Box::into_raw(inv), Ordering::Relaxed);
                        filled += 1;
                    }
                    if bytes != 0 {
                        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                    }
                    if filled < self.taken.len() {
                        self.take_from_rings(&mut inflight, filled, !flush);
                    }
                }
                (inflight.counted, inflight.funcs.len())
            };
            // Handles of dropped calls: applied once per batch (and before
            // each call of a function that is given handles, `judge_one`),
            // so that scalar functions never look and the list stays short.
            while let Some((class, h, seq)) = self.parted.pop() {
                if self.capturing.load(Ordering::Relaxed) {
                    self.captured(CaptureEvent::Parted(class, h, seq));
                }
                table.part(class, h, seq);
            }
            if start == end {
                if last_summary.elapsed() >= period {
                    last_summary = Instant::now();
                    self.write_summary(false);
                }
                if self.judged.lock().unwrap().closed {
                    return;
                }
                if !flush && std::mem::take(&mut worked) && self.work_soon() {
                    continue;
                }
                self.woken.store(false, Ordering::SeqCst);
                self.deep_nap.store(idle_naps > 0, Ordering::SeqCst);
                self.sleeping.store(true, Ordering::SeqCst);
                if self.queue.is_empty() {
                    if self.rings_waiting() {
                        // Less than a batch waits in a ring: let it fill
                        // (its producer wakes us once a batch has piled up),
                        // then take what there is.
                        std::thread::park_timeout(PARTIAL_PARK);
                        partial = true;
                    } else {
                        std::thread::park_timeout(IDLE_PARK * (1 << idle_naps));
                        idle_naps = (idle_naps + 1).min(IDLE_DOUBLINGS);
                    }
                }
                self.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            idle_naps = 0;
            worked = true;
            for i in start..end {
                // Only the thread that holds the batch touches its slots
                // (handed over under `pop_lock`): no read-modify-write.
                let p = self.taken[i].load(Ordering::Relaxed);
                self.taken[i].store(std::ptr::null_mut(), Ordering::Relaxed);
                if p.is_null() {
                    continue; // never: the slots past `counted` are full
                }
                // The clock is read every 64 invocations, not each one:
                // a periodic summary is at most 64 invocations late.
                judged_since_check += 1;
                if judged_since_check.is_multiple_of(64) && last_summary.elapsed() >= period {
                    last_summary = Instant::now();
                    self.count_batch(i, None);
                    self.write_summary(false);
                }
                let capturing = self.capturing.load(Ordering::Relaxed);
                let (inv, jm, seq, func) = if p == RING_CALL {
                    // SAFETY: written with the tag by `take_from_rings` under
                    // `pop_lock`; only the thread holding the batch reads it.
                    let (c, tid) = unsafe { (*self.ring_taken[i].get()).assume_init_ref() };
                    let (c, tid) = (c, *tid);
                    let func = c.target.func;
                    let facts = self.facts[func as usize];
                    if !facts.quick || capturing {
                        // Judged as the general path's invocation it stands for.
                        (
                            Some(self.invocation_into(*c, tid, pool.pop())),
                            None,
                            c.seq,
                            func,
                        )
                    } else {
                        // The ring's fast path: the call made from the slot's
                        // registers, a match counted without building an
                        // invocation (the watchdog builds one from the slot if
                        // it gives the call up).
                        self.inflight_call.store(
                            self.ring_taken[i].get() as usize | RING_INFLIGHT,
                            Ordering::Relaxed,
                        );
                        let Some(fast) = self.claimed(|| self.judge_ring(c, facts, &table, own_fp))
                        else {
                            return;
                        };
                        match fast {
                            RingVerdict::Match | RingVerdict::Unmirrored => {
                                let p = &self.pending[func as usize];
                                bump(if matches!(fast, RingVerdict::Match) {
                                    &p.matched
                                } else {
                                    &p.unmirrored
                                });
                                if crate::sandbox::new_build_threads() != 0 {
                                    let mut poison = None;
                                    self.thread_faults(c.seq, &mut poison);
                                    self.poisoned(i, poison, &mut table);
                                }
                                continue;
                            }
                            RingVerdict::Judge(judge) => {
                                let (r, raw) = *judge;
                                let inv = self.invocation_into(*c, tid, pool.pop());
                                let f = &self.functions[func as usize];
                                let jm = self.judge_new(f, facts, &inv, &raw, &[], &mut table, r);
                                (Some(inv), Some(jm), c.seq, func)
                            }
                        }
                    }
                } else {
                    // SAFETY: put there by `Box::into_raw` (above, by this or a
                    // given-up shadow thread, under `pop_lock`), taken once.
                    let inv = unsafe { Box::from_raw(p) };
                    let (seq, func) = (inv.seq, inv.func);
                    (Some(inv), None, seq, func)
                };
                let (inv, jm) = match (inv, jm) {
                    (inv, Some(jm)) => (inv, jm),
                    (None, None) => continue, // never: no judgement without an invocation
                    (Some(inv), None) => {
                        if capturing {
                            self.captured(CaptureEvent::Call(&inv));
                        }
                        self.inflight_call
                            .store(&*inv as *const Invocation as usize, Ordering::Relaxed);
                        let Some(jm) = self.claimed(|| self.judge_one(&inv, &mut table)) else {
                            // The watchdog gave this thread up and counted the
                            // call (it may still be reading the invocation:
                            // leaked): a fresh shadow has the queue and the rest
                            // of the batch now.
                            std::mem::forget(inv);
                            return;
                        };
                        (Some(inv), jm)
                    }
                };
                let mut poison = jm.poison;
                match (jm.verdict, &inv) {
                    (Verdict::Match, _) => {
                        bump(&self.pending[func as usize].matched);
                        if let Some(o) = jm.shadow {
                            recycle_outcome(o);
                        }
                    }
                    (Verdict::Unmirrored, _) => bump(&self.pending[func as usize].unmirrored),
                    (_, Some(inv)) => self.count_batch(i + 1, Some((inv, jm))),
                    (_, None) => bump(&self.pending[func as usize].unmirrored), // never
                }
                if crate::sandbox::new_build_threads() != 0 {
                    self.thread_faults(seq, &mut poison);
                }
                self.poisoned(i, poison, &mut table);
                if let Some(inv) = inv {
                    let facts = self.facts[inv.func as usize];
                    if !(facts.scalar || facts.on_handles) {
                        // Its captured buffers go back to the pool, for the
                        // next captures.
                        inv.recycle();
                    } else if pool.len() < BATCH {
                        // A scalar function's invocation holds nothing but
                        // capacity: kept for the next ring call.
                        pool.push(inv);
                    }
                }
            }
            self.count_batch(end, None);
        }
    }

    /// Faults of threads the new build started (contained:
    /// `sandbox::take_thread_faults`), after the call `seq`: an event line
    /// each; one of the namespace being called poisons it (`poison`).
    fn thread_faults(&self, seq: u64, poison: &mut Option<usize>) {
        for tf in crate::sandbox::take_thread_faults() {
            let pc = tf.fault.pc;
            let at = (self.hooks.caller_name)(pc as u64).unwrap_or_else(|| format!("{pc:#x}"));
            let mut j = self.judged.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = (!j.closed).then(|| j.writer()).flatten() {
                r.event(
                    seq,
                    self.pid,
                    "shadow_thread_fault",
                    &format!("{} at {at}", tf.what()),
                );
            }
            if tf.current && poison.is_none() {
                *poison = Some(pc);
            }
        }
    }

    /// After the batch's call `i`: a namespace poisoned at `poison` is
    /// never called again (the batch up to `i` counted first); the
    /// shadow's objects lived there (calls on their handles are
    /// `unmirrored` from now on).
    fn poisoned(&self, i: usize, poison: Option<usize>, table: &mut HandleTable) {
        if let Some(pc) = poison {
            self.count_batch(i + 1, None);
            table.clear();
            if let Err(why) = (self.hooks.reload)(pc) {
                self.stop(&why);
            }
        }
    }

    /// Runs `call` as the call in flight the watchdog watches: numbered in
    /// `call_started` while it runs. `None` when the watchdog gave this
    /// thread up meanwhile (it counted the call; a fresh shadow thread has
    /// the rest of the batch and this one must stop).
    fn claimed<T>(&self, call: impl FnOnce() -> T) -> Option<T> {
        // Only the running shadow thread writes the number (a given-up
        // one never calls again): a load and a store, no locked add.
        let number = self.call_number.load(Ordering::Relaxed) + 1;
        self.call_number.store(number, Ordering::Relaxed);
        self.call_started.store(number, Ordering::Release);
        let out = call();
        // Still our number: the call's verdict is ours. Anything else (0,
        // or the number of a fresh shadow thread's call) means the watchdog
        // claimed it; this thread must leave `call_started` to the fresh one.
        self.call_started
            .compare_exchange(number, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            .then_some(out)
    }

    /// A ring's call of a function with a quick comparison, made straight
    /// from its slot: the arguments are the slot's registers mapped by
    /// [`Facts::regs`], passed as bits ([`Invoker::call_sandboxed_bits`]).
    /// A `match` or an `unmirrored` needs no invocation; anything else
    /// comes back with what the call gave, for [`Shadow::judge_new`] on
    /// the invocation the slot stands for.
    ///
    /// `own_fp` is the shadow thread's own floating-point state.
    fn judge_ring(
        &self,
        c: &ScalarCall,
        facts: Facts,
        table: &HandleTable,
        own_fp: FpEnv,
    ) -> RingVerdict {
        let f = &self.functions[c.target.func as usize];
        let new_fn = c.target.new_fn.load(Ordering::Acquire) as usize;
        if new_fn == 0 || self.is_stopped() {
            return RingVerdict::Unmirrored;
        }
        let n = f.sig.params.len();
        let mut bits = [0u64; MAX_ARGS];
        for (b, &r) in bits.iter_mut().zip(&facts.regs[..n]) {
            *b = crate::ring::reg_bits(&c.gpr, &c.xmm, r);
        }
        if facts.on_handles {
            // Each handle becomes the shadow's own (NULL stays NULL); one
            // the shadow has no pair for makes the call `unmirrored`.
            for (b, &class) in bits.iter_mut().zip(&facts.handles[..n]) {
                if class == NO_HANDLE || *b == 0 {
                    continue;
                }
                *b = match table.lookup(class, *b, c.seq) {
                    HandleArg::Value(s) => s,
                    HandleArg::Instance(at) => at as u64,
                    HandleArg::Unknown => return RingVerdict::Unmirrored,
                };
            }
        }
        // The caller's floating-point state, loaded before every call
        // (whatever the last call left), and the shadow thread's own put
        // back after when its controls differ. Loading is cheaper than
        // reading: `stmxcsr` alone took ~9 ns a call on an AMD EPYC, the
        // load and `fldcw` ~2 ns.
        let fp = c.fp_env();
        fp.set();
        let guard = f.cxx.guard.load(Ordering::Relaxed);
        // SAFETY: `new_fn` is the new build's definition of this scalar
        // function (its signature's invoker), given the primary's argument
        // bits; a guard is the exception guard of its namespace.
        let ret = unsafe {
            let guard: Option<crate::sandbox::GuardFn> =
                (guard != 0).then(|| std::mem::transmute(guard));
            f.invoker.call_sandboxed_bits(
                new_fn as *const libc::c_void,
                &bits[..n],
                guard,
                self.settings.timeout_ms.min(u32::MAX as u64) as u32,
            )
        };
        if !fp.same_controls(own_fp) {
            own_fp.set();
        }
        let outgoing = (self.hooks.take_outgoing)();
        let quick = match &ret {
            Ok(r) => {
                f.comparator.func.all == Some(Spec::Ignore)
                    || ((!c.watched() || outgoing.is_empty())
                        && match (&f.sig.ret, r) {
                            (Type::Void, _) => true,
                            (Type::Scalar(s), Some(b)) => same_bits(
                                &Value::scalar_from_bits(*s, *b),
                                &Value::scalar_from_bits(*s, c.ret),
                            ),
                            _ => false,
                        })
            }
            Err(_) => false,
        };
        if quick {
            return RingVerdict::Match;
        }
        let raw = bits[..n].iter().map(|b| Raw::Bits(*b)).collect();
        let ret = ret.map(|r| r.map_or(Raw::None, Raw::Bits));
        RingVerdict::Judge(Box::new((
            NewCall {
                ret,
                outgoing: Some(outgoing),
                errno: None,
            },
            raw,
        )))
    }

    /// Runs one invocation on the new build and judges it. Nothing is
    /// formatted here: matches, the common case, only count.
    fn judge_one(&self, inv: &Invocation, table: &mut HandleTable) -> Judgement {
        let f = &self.functions[inv.func as usize];
        let new_fn = inv.new_fn.load(Ordering::Acquire) as usize;
        if new_fn == 0 || self.is_stopped() {
            return Judgement::unmirrored();
        }
        let facts = self.facts[inv.func as usize];
        if facts.scalar {
            return self.judge_scalar(f, facts, inv, new_fn, table);
        }
        while let Some((class, h, seq)) = self.parted.pop() {
            if self.capturing.load(Ordering::Relaxed) {
                self.captured(CaptureEvent::Parted(class, h, seq));
            }
            table.part(class, h, seq);
        }
        let mut on_instance = false;
        let m = Materialised::new(&f.sig, &inv.inputs, &mut |i, class, h| {
            let p = &f.sig.params[i];
            let arg = match (f.sig.effect, &p.ty) {
                // A C++ constructor's `this`: the shadow's own object.
                (Effect::Construct { class: c }, _) if c == class && i == 0 => {
                    match f.cxx.instance_size.load(Ordering::Relaxed) {
                        0 => HandleArg::Unknown,
                        size => table.create_instance(class, h, size, inv.seq),
                    }
                }
                // An init function's caller-owned struct: a new instance.
                (Effect::Create { class: c }, Type::Pointer { pointee, .. })
                    if c == class && !matches!(p.role, Role::Handle { .. }) =>
                {
                    match &**pointee {
                        Type::Struct(def) => table.create_instance(class, h, def.size, inv.seq),
                        _ => table.lookup(class, h, inv.seq),
                    }
                }
                _ => table.lookup(class, h, inv.seq),
            };
            on_instance |= matches!(arg, HandleArg::Instance(_));
            arg
        });
        let Some(m) = m else {
            if let Effect::Destroy { class } = f.sig.effect {
                // The pair is over on the primary's side; the shadow's object
                // (if any) is left to its namespace.
                forget(&f.sig, class, inv, table);
            }
            return Judgement::unmirrored();
        };
        // A deleting destructor would free the object with the new build's
        // `operator delete`; on storage DDL allocated, the complete-object
        // destructor runs instead and DDL frees the storage (below).
        let mut target = new_fn;
        if inv.deleting && on_instance {
            target = f.cxx.new_d1.load(Ordering::Relaxed);
            if target == 0 {
                return Judgement::unmirrored();
            }
        }
        self.call_new(f, Facts::default(), inv, target, &m.raw, &m.deep, table)
    }

    /// A scalar function's invocation ([`Facts::scalar`]): its arguments
    /// are the captured bits (what [`Materialised::new`] would pass,
    /// without building it); no handle, nothing on the heap.
    fn judge_scalar(
        &self,
        f: &BoundaryFn,
        facts: Facts,
        inv: &Invocation,
        target: usize,
        table: &mut HandleTable,
    ) -> Judgement {
        let raw: SmallVec<[Raw; 8]> = inv
            .inputs
            .values
            .iter()
            .map(|v| {
                Raw::Bits(if matches!(v, Value::Null) {
                    0
                } else {
                    v.scalar_bits()
                })
            })
            .collect();
        self.call_new(f, facts, inv, target, &raw, &[], table)
    }

    /// Calls the new build's `target` with the shadow's arguments `raw`
    /// (`deep`: [`Materialised::deep`]) and judges its outcome.
    #[allow(clippy::too_many_arguments)]
    fn call_new(
        &self,
        f: &BoundaryFn,
        facts: Facts,
        inv: &Invocation,
        target: usize,
        raw: &[Raw],
        deep: &[Option<Vec<crate::marshal::FieldPtr>>],
        table: &mut HandleTable,
    ) -> Judgement {
        let r = self.invoke_new(f, inv.errno_before, inv.fp_env, target, raw);
        self.judge_new(f, facts, inv, raw, deep, table, r)
    }

    /// Calls the new build's `target` with `raw` in the sandbox, with the
    /// caller's `errno` (when compared) and FP control state.
    fn invoke_new(
        &self,
        f: &BoundaryFn,
        errno_before: i32,
        fp_env: FpEnv,
        target: usize,
        raw: &[Raw],
    ) -> NewCall {
        let loc = self.new_errno.load(Ordering::Acquire);
        if f.wants_errno && loc != 0 {
            // SAFETY: the new namespace's own `__errno_location`, on this thread.
            let loc: unsafe extern "C" fn() -> *mut libc::c_int =
                unsafe { std::mem::transmute(loc) };
            unsafe { *loc() = errno_before };
        }
        // The caller's floating-point state, loaded only when it differs
        // from the shadow thread's (and put back after).
        let own_fp = FpEnv::current();
        let switch_fp = own_fp != fp_env;
        if switch_fp {
            fp_env.set();
        }
        let guard = f.cxx.guard.load(Ordering::Relaxed);
        // SAFETY: `target` is the new build's definition of this boundary
        // function, resolved by name (and version) from its namespace; the
        // arguments point only into DDL's own buffers, sized by the same
        // counts as the primary's. A guard is the exception guard loaded
        // into the new build's namespace.
        let ret = unsafe {
            let guard: Option<crate::sandbox::GuardFn> =
                (guard != 0).then(|| std::mem::transmute(guard));
            f.invoker.call_sandboxed(
                target as *const libc::c_void,
                raw,
                guard,
                self.settings.timeout_ms.min(u32::MAX as u64) as u32,
            )
        };
        if switch_fp {
            own_fp.set();
        }
        let outgoing = Some((self.hooks.take_outgoing)());
        let errno = if ret.is_ok() && f.wants_errno && loc != 0 {
            // SAFETY: the new namespace's own `__errno_location`, called on
            // the thread that made the call.
            let loc: unsafe extern "C" fn() -> *mut libc::c_int =
                unsafe { std::mem::transmute(loc) };
            // SAFETY: as above: a valid errno location of this thread.
            Some(unsafe { *loc() })
        } else {
            None
        };
        NewCall {
            ret,
            outgoing,
            errno,
        }
    }

    /// Judges what the new build's call ([`Shadow::invoke_new`]) gave.
    #[allow(clippy::too_many_arguments)]
    fn judge_new(
        &self,
        f: &BoundaryFn,
        facts: Facts,
        inv: &Invocation,
        raw: &[Raw],
        deep: &[Option<Vec<crate::marshal::FieldPtr>>],
        table: &mut HandleTable,
        r: NewCall,
    ) -> Judgement {
        let NewCall {
            ret,
            outgoing,
            errno,
        } = r;
        let ret = match ret {
            Ok(r) => r,
            Err(CallFailure::Exception { ty, what }) => {
                let ex = Exception { ty, what };
                let shadow = Outcome {
                    ret: Value::None,
                    outputs: vec![Value::None; f.sig.params.len()],
                    errno: None,
                    exception: Some(ex.clone()),
                    outgoing,
                };
                if let Effect::Construct { class } = f.sig.effect {
                    // The object was never made: nothing to pair.
                    forget(&f.sig, class, inv, table);
                }
                if inv.primary.exception.is_some() {
                    let diffs = judge(&f.sig, &f.comparator, &inv.primary, &shadow);
                    return Judgement::of(diffs, shadow);
                }
                let mut extra = serde_json::Map::new();
                extra.insert("fault".into(), "exception".into());
                extra.insert("exception".into(), ex.json());
                return Judgement {
                    verdict: Verdict::ShadowFault,
                    shadow: Some(shadow),
                    diffs: Vec::new(),
                    extra,
                    poison: None,
                };
            }
            Err(CallFailure::Exit { status, how, pc }) => {
                let mut extra = serde_json::Map::new();
                extra.insert("fault".into(), "exit".into());
                extra.insert("status".into(), status.into());
                extra.insert("how".into(), how.into());
                if let Some(at) = (self.hooks.caller_name)(pc as u64) {
                    extra.insert("at".into(), at.into());
                }
                return Judgement {
                    verdict: Verdict::ShadowFault,
                    shadow: None,
                    diffs: Vec::new(),
                    extra,
                    poison: Some(pc),
                };
            }
            Err(CallFailure::Timeout(fault)) => {
                let key = ("timeout_ms", self.settings.timeout_ms.into());
                return self.failure(Verdict::ShadowTimeout, key, fault.pc);
            }
            Err(CallFailure::Fault(fault)) => {
                let key = ("fault", fault.signal_name().into());
                return self.failure(Verdict::ShadowFault, key, fault.pc);
            }
            Err(_) => return Judgement::unmirrored(),
        };
        if facts.quick && quick_match(f, facts, inv, &ret, errno, outgoing.as_deref()) {
            return Judgement::quick_match();
        }
        // SAFETY: the call completed; its pointers are the materialised
        // buffers (none for a scalar function).
        let mut shadow = unsafe { capture_outputs(&f.sig, raw, &ret, &inv.inputs, deep) };
        shadow.errno = errno;
        shadow.outgoing = outgoing;
        match f.sig.effect {
            Effect::Create { class } => pair_created(&f.sig, class, inv, &shadow, table),
            Effect::Destroy { class } => forget(&f.sig, class, inv, table),
            Effect::None | Effect::Construct { .. } => {}
        }
        // A returned handle (a factory's object) is paired whatever the
        // function is called.
        if let Role::Handle { class } = f.sig.ret_role {
            if !matches!(f.sig.effect, Effect::Create { .. }) {
                pair_created(&f.sig, class, inv, &shadow, table);
            }
        }
        if let Some(mask) = self.masker.get() {
            mask(inv, &mut shadow);
        }
        let diffs = judge(&f.sig, &f.comparator, &inv.primary, &shadow);
        Judgement::of(diffs, shadow)
    }

    /// A call that faulted or timed out at `pc` in the new build: its
    /// verdict, with `key` and where it happened (`at`) for the record; the
    /// namespace is poisoned.
    fn failure(&self, verdict: Verdict, key: (&str, serde_json::Value), pc: usize) -> Judgement {
        let mut extra = serde_json::Map::new();
        extra.insert(key.0.into(), key.1);
        if let Some(at) = (self.hooks.caller_name)(pc as u64) {
            extra.insert("at".into(), at.into());
        }
        Judgement {
            verdict,
            shadow: None,
            diffs: Vec::new(),
            extra,
            poison: Some(pc),
        }
    }

    /// The verdict record of a judged invocation.
    fn record_of(
        &self,
        inv: &Invocation,
        verdict: Verdict,
        shadow: Option<&Outcome>,
        diffs: Vec<Diff>,
    ) -> Record {
        let f = &self.functions[inv.func as usize];
        Record {
            seq: inv.seq,
            time: SystemTime::now(),
            pid: self.pid,
            tid: inv.tid,
            function: f.name.clone(),
            verdict,
            args: args_json(&f.sig, &inv.inputs),
            primary: outcome_json(&f.sig, &inv.primary),
            shadow: shadow.map(|o| outcome_json(&f.sig, o)).unwrap_or_default(),
            diffs,
            caller: (self.hooks.caller_name)(inv.caller),
            extra: serde_json::Map::new(),
        }
    }

    fn totals(&self, j: &Judged) -> Vec<(String, Counters)> {
        // Held while reading, so a thread folding its counters on exit is
        // counted once: either in its live block or in the retired totals.
        let live = self.live.lock().unwrap();
        self.functions
            .iter()
            .enumerate()
            .map(|(i, f)| {
                // Judged counts are stable (we hold `judged`); `calls` is
                // read last, so it covers every call whose skip or drop was
                // read before it. What is neither judged, skipped nor dropped
                // is still queued or in flight: were the process to die now,
                // it would be lost, so a summary counts it as `dropped` and
                // `calls = mirrored + dropped + skipped` holds in every line.
                let mut c = j.counters[i];
                let sum = |pick: fn(&CountBlock) -> &[AtomicU64], retired: &AtomicU64| {
                    retired.load(Ordering::SeqCst)
                        + live
                            .iter()
                            .map(|b| pick(b)[i].load(Ordering::SeqCst))
                            .sum::<u64>()
                };
                // A live thread's sampled-out calls are read once and
                // counted as calls and skips alike (retired threads folded
                // them into both).
                let so: u64 = live
                    .iter()
                    .map(|b| b.sampled_out[i].load(Ordering::SeqCst))
                    .sum();
                c.skipped = sum(|b| &b.skipped, &self.caller[i].skipped) + so;
                c.dropped = sum(|b| &b.dropped, &self.caller[i].dropped);
                c.calls = sum(|b| &b.calls, &self.caller[i].calls) + so;
                let accounted = c.mirrored + c.skipped + c.dropped;
                c.dropped += c.calls.saturating_sub(accounted);
                c.calls = c.calls.max(accounted);
                (f.name.clone(), c)
            })
            .collect()
    }

    fn write_summary(&self, _final: bool) {
        let mut j = self.judged.lock().unwrap();
        let totals = self.totals(&j);
        if let Some(r) = j.writer() {
            r.summary(&totals);
        }
    }

    /// Ends the session: drains the queue within `timeout_ms`, counts what
    /// is left as `dropped`, writes the final summary and stops the shadow
    /// thread. Idempotent.
    pub fn finish(&self) {
        // CONFIG.md: what is queued is drained within `timeout_ms`, or
        // counted as dropped.
        let deadline = Instant::now() + Duration::from_millis(self.settings.timeout_ms);
        self.draining.store(true, Ordering::Relaxed);
        let started = self.thread.lock().unwrap().is_some();
        while started && Instant::now() < deadline {
            let busy =
                self.queue.made().is_some_and(|q| !q.is_empty()) || self.rings_waiting() || {
                    let inflight = self.pop_lock.lock().unwrap();
                    inflight.counted < inflight.funcs.len() || inflight.carry.len() != 0
                };
            if !busy {
                break;
            }
            self.wake();
            // Short: the application's exit waits for this look and no
            // longer (the shadow's last call may end at any moment).
            std::thread::sleep(Duration::from_micros(50));
        }
        let inflight = self.pop_lock.lock().unwrap();
        let mut j = self.judged.lock().unwrap();
        if j.closed {
            return;
        }
        j.closed = true;
        while let Some(inv) = self.queue.made().and_then(|q| q.pop()) {
            self.caller[inv.func as usize]
                .dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        for b in self.live.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // SAFETY: the consumer side, under `pop_lock`.
            while let Some(c) = unsafe { b.ring.pop() } {
                self.caller[c.target.func as usize]
                    .dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        // The batch in flight: pending verdicts, the call being made and
        // what is still to be called (the shadow thread counts none of them
        // from now on).
        let carried = inflight.carry.funcs();
        for f in inflight.funcs[inflight.counted.min(inflight.funcs.len())..]
            .iter()
            .copied()
            .chain(carried)
        {
            self.caller[f as usize]
                .dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        drop(inflight);
        let totals = self.totals(&j);
        if let Some(r) = j.writer() {
            r.summary(&totals);
        }
        drop(j);
        self.wake();
        // The capture log gets its end mark (its hook owns the writer).
        self.capturing.store(false, Ordering::Release);
        let hook = self
            .capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(hook);
    }
}

/// Spawns a thread of DDL's with every signal blocked: it takes no signal
/// meant for the process (SIGINT, SIGCHLD, SIGUSR1…); the mask is inherited
/// from this thread's, put back right after.
pub fn spawn_blocked<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    // SAFETY: plain signal-mask calls on sigset_t values we own.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let h = std::thread::Builder::new().name(name.into()).spawn(f);
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    h
}

/// A judged invocation.
struct Judgement {
    verdict: Verdict,
    shadow: Option<Outcome>,
    diffs: Vec<Diff>,
    /// Keys added to the record (`fault`, `at`, `exception`).
    extra: serde_json::Map<String, serde_json::Value>,
    /// The call left the new build's namespace in an unknown state (a
    /// fault, a hang or an exit at this code address).
    poison: Option<usize>,
}

/// Whether a scalar function's call ([`Facts::quick`]) is a `match` as
/// [`judge`] would find it, seen from what it returned without building
/// its outcome: the primary threw nothing, the outgoing calls are not
/// compared or none on either side, errno is not compared or the same,
/// and the return value has the primary's bits (or the comparator ignores
/// the function). `false` says nothing: the call is judged the general way.
fn quick_match(
    f: &BoundaryFn,
    facts: Facts,
    inv: &Invocation,
    ret: &Raw,
    errno: Option<i32>,
    outgoing: Option<&[crate::compare::Outgoing]>,
) -> bool {
    if f.comparator.func.all == Some(Spec::Ignore) {
        return true;
    }
    let p = &inv.primary;
    if p.exception.is_some() {
        return false;
    }
    if let (Some(a), Some(b)) = (&p.outgoing, outgoing) {
        if !a.is_empty() || !b.is_empty() {
            return false;
        }
    }
    if facts.errno && p.errno != errno {
        return false;
    }
    match (&f.sig.ret, ret) {
        (Type::Void, _) => true,
        (Type::Scalar(s), Raw::Bits(b)) => same_bits(&Value::scalar_from_bits(*s, *b), &p.ret),
        _ => false,
    }
}

impl Judgement {
    /// A `match` whose shadow outcome was not built ([`quick_match`]): a
    /// match writes no record, so nothing needs it.
    fn quick_match() -> Judgement {
        Judgement {
            verdict: Verdict::Match,
            shadow: None,
            diffs: Vec::new(),
            extra: Default::default(),
            poison: None,
        }
    }

    fn unmirrored() -> Judgement {
        Judgement {
            verdict: Verdict::Unmirrored,
            shadow: None,
            diffs: Vec::new(),
            extra: Default::default(),
            poison: None,
        }
    }

    /// A match or a mismatch.
    fn of(diffs: Vec<Diff>, shadow: Outcome) -> Judgement {
        Judgement {
            verdict: if diffs.is_empty() {
                Verdict::Match
            } else {
                Verdict::Mismatch
            },
            shadow: Some(shadow),
            diffs,
            extra: Default::default(),
            poison: None,
        }
    }
}

/// Gives the buffers of a spent outcome back to the pool.
fn recycle_outcome(o: Outcome) {
    bufpool::give_value(o.ret);
    o.outputs.into_iter().for_each(bufpool::give_value);
}

/// After a destroy call (or a constructor that threw): the pairs of the
/// handles of `class` it was given are forgotten, DDL's instances freed.
fn forget(sig: &Signature, class: u32, inv: &Invocation, table: &mut HandleTable) {
    for (c, h) in handles_of(sig, &inv.inputs) {
        if c == class {
            table.remove(c, h, inv.seq);
        }
    }
}

/// The handles a call was given: `(class, primary value)` of each non-NULL
/// handle argument and struct with a life.
fn handles_of(sig: &Signature, inputs: &Inputs) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for (i, p) in sig.params.iter().enumerate() {
        match (p.handle, &p.role, &inputs.values[i]) {
            (Some(class), Role::Handle { .. }, Value::Opaque(h)) if *h != 0 => {
                out.push((class, *h))
            }
            _ => {}
        }
    }
    for &(i, addr) in &inputs.structs {
        if let Some(class) = sig.params[i].handle {
            out.push((class, addr));
        }
    }
    out
}

/// After a create call: the handles it returned or stored on each side are
/// paired (a side that got none pairs nothing; the comparison reports it).
fn pair_created(
    sig: &Signature,
    class: u32,
    inv: &Invocation,
    shadow: &Outcome,
    table: &mut HandleTable,
) {
    let both = |p: &Value, s: &Value| match (p, s) {
        (Value::Opaque(p), Value::Opaque(s)) if *p != 0 && *s != 0 => Some((*p, *s)),
        _ => None,
    };
    if sig.ret_role == (Role::Handle { class }) {
        if let Some((p, s)) = both(&inv.primary.ret, &shadow.ret) {
            table.pair(class, p, s, inv.seq);
        }
    }
    for (i, p) in sig.params.iter().enumerate() {
        if p.role == (Role::HandleOut { class }) {
            let (a, b) = (&inv.primary.outputs[i], &shadow.outputs[i]);
            if let Some((p, s)) = both(a, b) {
                table.pair(class, p, s, inv.seq);
            }
        }
    }
}

/// The report's `args`: every parameter the callee reads (not pure outputs).
fn args_json(sig: &Signature, inputs: &Inputs) -> serde_json::Map<String, serde_json::Value> {
    let shown: Vec<Value> = sig
        .params
        .iter()
        .zip(&inputs.values)
        .map(|(p, v)| {
            if shows_as_arg(&p.role) {
                v.clone()
            } else {
                Value::None
            }
        })
        .collect();
    crate::report::args_json(sig, &shown)
}

impl ThreadCounts {
    /// Where this thread's sampled-out counters live: one `AtomicU64` per
    /// boundary function, valid as long as this handle, each increment
    /// counting a call and a skip. The shim's assembly fast path increments
    /// them (one `inc` of an aligned word, only ever on the counting
    /// thread, as [`Self::call`] does its own); readers load them with
    /// relaxed loads.
    pub fn sampled_out_counters(&self) -> *const AtomicU64 {
        self.block.sampled_out.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::FnTarget;

    static NEW: AtomicU64 = AtomicU64::new(0);
    static TARGET: FnTarget = FnTarget {
        new_fn: &NEW,
        func: 0,
    };

    fn ring_call(seq: u64) -> ScalarCall {
        ScalarCall {
            seq,
            caller: 0,
            target: &TARGET,
            fp: 0,
            ret: 0,
            gpr: [0; GPRS],
            xmm: [0; XMMS],
        }
    }

    fn queued(seq: u64) -> Box<Invocation> {
        Box::new(Invocation {
            seq,
            func: 1,
            tid: 0,
            caller: 0,
            new_fn: &NEW,
            inputs: Inputs {
                values: Vec::new(),
                counts: Vec::new(),
                deep: Vec::new(),
                structs: Vec::new(),
            },
            primary: Outcome {
                ret: Value::None,
                outputs: Vec::new(),
                errno: None,
                exception: None,
                outgoing: None,
            },
            errno_before: 0,
            deleting: false,
            fp_env: FpEnv {
                mxcsr: 0x1f80,
                x87_cw: 0x37f,
            },
        })
    }

    fn seqs(carry: &mut Carry) -> Vec<(char, u64)> {
        std::iter::from_fn(|| carry.pop_next())
            .map(|c| match c {
                Carried::Queued(inv) => ('q', inv.seq),
                Carried::Ring(c, tid) => (char::from(b'a' + tid as u8), c.seq),
            })
            .collect()
    }

    /// A shadow of `int add(int, int)`, not started.
    fn add_shadow() -> Arc<Shadow> {
        let types = crate::signature::TypeTable::new();
        let sig = crate::signature::parse_signature("int add(int a, int b)", &types).unwrap();
        let functions = Arc::new(vec![BoundaryFn::new(
            "add".into(),
            sig,
            Comparator::default(),
        )]);
        let settings = ShadowSettings {
            queue: 8,
            queue_bytes: 1 << 20,
            timeout_ms: 10,
            summary_every_s: 3600,
        };
        let hooks = ShadowHooks {
            thread_init: || {},
            caller_name: |_| None,
            reload: |_| Ok(()),
            take_outgoing: Vec::new,
        };
        Shadow::new(functions, settings, None, 8, hooks)
    }

    /// The end of a process that queued nothing does not make the queue
    /// (its slots: 1 MiB at the default size); what was queued and never
    /// judged is counted `dropped`.
    #[test]
    fn finish_makes_no_queue_and_drops_what_waited() {
        let idle = add_shadow();
        idle.finish();
        assert!(idle.queue.made().is_none());
        assert_eq!(idle.totals_now()[0].1.dropped, 0);

        let busy = add_shadow();
        let mut inv = queued(1);
        inv.func = 0;
        assert!(busy.submit(inv));
        busy.finish();
        assert_eq!(busy.totals_now()[0].1.dropped, 1);
    }

    /// Two rings and the queue merged by `seq`, the queue in its own order;
    /// nothing past `max` before the next round.
    #[test]
    fn carry_merges_the_sources_by_seq() {
        let mut carry = Carry::default();
        for s in [2, 5, 9] {
            carry.push_ring(&ring_call(s), 0);
        }
        for s in [3, 4, 12] {
            carry.push_ring(&ring_call(s), 1);
        }
        // The queue's order: 7 was queued before 6 (the two overlapped).
        for s in [1, 7, 6, 11, 8] {
            carry.queued.push_back(queued(s));
        }
        assert_eq!(carry.max_seq(), Some(12));
        carry.ready_upto(9);
        assert_eq!(
            seqs(&mut carry),
            [
                ('q', 1),
                ('a', 2),
                ('b', 3),
                ('b', 4),
                ('a', 5),
                ('q', 7),
                ('q', 6),
                ('a', 9)
            ]
        );
        // The queue's 11 holds back the 8 behind it; ring b's 12 waits too.
        assert_eq!(carry.len(), 3);
        carry.ready_upto(12);
        assert_eq!(seqs(&mut carry), [('q', 11), ('q', 8), ('b', 12)]);
        assert_eq!(carry.len(), 0);
        assert_eq!(carry.funcs().count(), 0);
    }
}
