//! Reused capture buffers.
//!
//! A captured buffer (`Value::Buf`) is allocated on the application's
//! thread and freed on the shadow's once judged. For large buffers every
//! fresh allocation is memory the allocator has returned to the kernel in
//! the meantime, which the kernel must clear again on first touch
//! (measured on a mirrored call with a 64 KiB input: page faults and
//! `clear_page_erms` cost more than the copy itself). The shadow gives
//! judged buffers back here ([`give`]), and captures take them from here
//! ([`take`], [`copy_of`]).
//!
//! Buffers are kept per size class (powers of two from [`MIN_CLASS`] to
//! [`MAX_CLASS`] bytes), the one given back longest ago taken first (its
//! lines have had the most time to leave the shadow core's caches, so the
//! application's thread gets them sooner for writing), and the pool is
//! bounded: at most [`POOL_BYTES`] bytes in all its classes together (a
//! class may always keep two buffers); beyond that a buffer is freed. The
//! bound is the shadow queue's default byte budget (`queue_bytes`): the
//! buffers a burst leaves in the queue (the shadow descheduled for a few
//! milliseconds by other work on its core) all come back to the pool, and
//! the next burst reuses them instead of freeing them and faulting in
//! fresh pages the kernel must clear (measured with a 16 MiB bound per
//! class, on a loaded machine: one 64 KiB capture in ten missed, and
//! `clear_page_erms` took 6 to 8 % of the caller's time). Neither side ever
//! waits: each class is a bounded lock-free queue. A buffer is in the pool only while
//! nobody owns it: ownership of the `Vec` moves in and out, so one handed
//! out can never be handed out again before it comes back.
//!
//! An application thread's capture of its inputs ([`copy_streamed`]), from
//! [`STREAM_MIN`] bytes on, is written with
//! non-temporal stores ([`stream_copy`]): the pooled buffer's lines were last
//! read on the shadow's core, and an ordinary store must first take each
//! line back from that core (a read for ownership) before writing it, which
//! made the caller's copy of 64 KiB two to three times slower than a
//! `memcpy` between two buffers of its own. Non-temporal stores write whole
//! lines to memory without reading them; the shadow reads them from there.
//! They are weakly ordered: whoever hands such a buffer to another thread
//! calls [`publish_fence`] first (`Shadow::submit` does, for every
//! invocation). The fence waits there, after the primary call, for stores
//! long done, instead of right after the copy (measured: ~0.5 µs per 64 KiB
//! capture when the fence ended the copy).
//! Only the application's threads stream (`marshal::capture_inputs`): the
//! outputs the shadow captures are judged on its own core at once, and
//! want their lines in its cache.
//!
//! A fresh buffer's pages are cleared by the kernel when first touched, on
//! the thread that touches them (on a VM whose host has not backed that
//! memory yet, each such page costs far more). So that the application's
//! thread does not pay for it, a thread of DDL's, the keeper ([`keep`]),
//! fills the process's pool with buffers it has touched itself: at start,
//! a few of the larger classes when the boundary has buffers, and then,
//! woken by a capture that found its class empty, spare buffers of that
//! class for the next captures.

use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Smallest pooled size class, log2 (smaller buffers: the allocator's
/// small pages serve them well).
const MIN_LOG: u32 = 12;
/// Largest pooled size class, log2.
const MAX_LOG: u32 = 24;
/// Smallest pooled buffer capacity (4 KiB).
pub const MIN_CLASS: usize = 1 << MIN_LOG;
/// Largest pooled buffer capacity (16 MiB).
pub const MAX_CLASS: usize = 1 << MAX_LOG;
/// Bytes of buffers the pool may keep, all classes together (the shadow
/// queue's default `queue_bytes`).
pub const POOL_BYTES: usize = 64 << 20;
/// Captures of at least this many bytes are copied with non-temporal
/// stores ([`copy_streamed`], [`stream_copy`]).
pub const STREAM_MIN: usize = 4096;

const CLASSES: usize = (MAX_LOG - MIN_LOG + 1) as usize;

/// A bounded pool of byte buffers by size class.
pub struct BufPool {
    /// Per class, made at its first use: a bounded lock-free queue.
    classes: [OnceLock<ArrayQueue<Vec<u8>>>; CLASSES],
    /// Bytes (capacities) of the buffers in the classes' queues.
    kept: AtomicUsize,
    /// The most `kept` may reach (a class may keep two buffers beyond it).
    budget: usize,
    /// Per class: takes that found it empty, not yet seen by the keeper.
    missed: [AtomicU32; CLASSES],
}

impl Default for BufPool {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's pool: captures on the application's threads take from
/// it, the shadow gives back to it.
static POOL: BufPool = BufPool::new();

/// The shadow's own pool: the buffers it materialises a call's arguments
/// in stay on its side (written by the shadow's core, they would cost the
/// application's thread a transfer of every line to write them again).
static SHADOW: BufPool = BufPool::new();

/// The size class of a buffer of `n` bytes (`None`: not pooled).
fn class_of_len(n: usize) -> Option<usize> {
    if !(MIN_CLASS / 2 < n && n <= MAX_CLASS) {
        return None;
    }
    let log = n.next_power_of_two().trailing_zeros().max(MIN_LOG);
    Some((log - MIN_LOG) as usize)
}

/// The size class a buffer of capacity `cap` belongs to (`None`: not a
/// class's capacity, so never pooled).
fn class_of_cap(cap: usize) -> Option<usize> {
    (cap.is_power_of_two() && (MIN_CLASS..=MAX_CLASS).contains(&cap))
        .then(|| (cap.trailing_zeros() - MIN_LOG) as usize)
}

/// How many buffers class `k` may keep within `budget` bytes.
fn limit(budget: usize, k: usize) -> usize {
    (budget >> (k as u32 + MIN_LOG)).max(2)
}

impl BufPool {
    /// An empty pool of at most [`POOL_BYTES`].
    pub const fn new() -> BufPool {
        BufPool::with_budget(POOL_BYTES)
    }

    /// An empty pool that keeps at most `budget` bytes of buffers (and
    /// always two per class).
    pub const fn with_budget(budget: usize) -> BufPool {
        BufPool {
            classes: [const { OnceLock::new() }; CLASSES],
            kept: AtomicUsize::new(0),
            budget,
            missed: [const { AtomicU32::new(0) }; CLASSES],
        }
    }

    fn class(&self, k: usize) -> &ArrayQueue<Vec<u8>> {
        self.classes[k].get_or_init(|| ArrayQueue::new(limit(self.budget, k)))
    }

    /// An empty buffer with room for at least `n` bytes: a pooled one of
    /// `n`'s size class when there is one (the one given back longest
    /// ago), else a fresh one (of the class's capacity, so that it can be
    /// pooled when given back).
    pub fn take(&self, n: usize) -> Vec<u8> {
        let Some(k) = class_of_len(n) else {
            return Vec::with_capacity(n);
        };
        match self.class(k).pop() {
            Some(mut v) => {
                self.kept.fetch_sub(v.capacity(), Ordering::Relaxed);
                v.clear();
                v
            }
            None => {
                if self.missed[k].fetch_add(1, Ordering::Relaxed) == 0 {
                    if let Some(keeper) = self.keeper() {
                        keeper.unpark();
                    }
                }
                Vec::with_capacity(1 << (k as u32 + MIN_LOG))
            }
        }
    }

    /// The keeper thread of this pool, when it has one (only the process's
    /// pool does, once [`keep`] started it).
    fn keeper(&self) -> Option<&'static std::thread::Thread> {
        std::ptr::eq(self, &POOL).then(|| KEEPER.get()).flatten()
    }

    /// Adds touched buffers to class `k` until it keeps `want` (at most its
    /// limit).
    fn fill(&self, k: usize, want: usize) {
        let q = self.class(k);
        while q.len() < want {
            let before = q.len();
            // Within the pool's budget, as any buffer given back.
            self.give(touched(1 << (k as u32 + MIN_LOG)));
            if q.len() <= before {
                break;
            }
        }
    }

    /// A copy of `src` in a buffer from [`BufPool::take`], written with
    /// ordinary stores (for copies the same thread uses next: its lines
    /// stay in this core's cache).
    pub fn copy_of(&self, src: &[u8]) -> Vec<u8> {
        let mut v = self.take(src.len());
        v.extend_from_slice(src);
        v
    }

    /// A copy of `src` in a buffer from [`BufPool::take`] for another
    /// thread to read: from [`STREAM_MIN`] bytes on, written with
    /// non-temporal stores ([`stream_copy`]), else as [`BufPool::copy_of`].
    /// Call [`publish_fence`] before another thread may read it.
    pub fn copy_streamed(&self, src: &[u8]) -> Vec<u8> {
        if src.len() < STREAM_MIN {
            return self.copy_of(src);
        }
        let mut v = self.take(src.len());
        // SAFETY: `take` gave room for `src.len()` bytes; `stream_copy`
        // writes every one of them (this thread sees them at once; others
        // after `publish_fence`).
        unsafe {
            stream_copy(v.as_mut_ptr(), src.as_ptr(), src.len());
            v.set_len(src.len());
        }
        v
    }

    /// Gives a buffer back for reuse; freed instead when its capacity is
    /// not a class's, or the pool holds its budget and the class two
    /// buffers already.
    pub fn give(&self, v: Vec<u8>) {
        let cap = v.capacity();
        let Some(k) = class_of_cap(cap) else { return };
        let q = self.class(k);
        // Counted before it is pushed, so that a take (which uncounts what
        // it pops) never brings `kept` below zero.
        if self.kept.fetch_add(cap, Ordering::Relaxed) + cap > self.budget && q.len() >= 2 {
            self.kept.fetch_sub(cap, Ordering::Relaxed);
            return;
        }
        if q.push(v).is_err() {
            self.kept.fetch_sub(cap, Ordering::Relaxed);
        }
    }

    /// Buffers kept in the class of `n`-byte buffers (0 when not pooled).
    pub fn kept(&self, n: usize) -> usize {
        class_of_len(n).map_or(0, |k| self.class(k).len())
    }
}

/// An empty buffer of capacity `cap` whose every page this thread has
/// written (so the kernel has cleared them here, not on the thread that
/// fills the buffer).
fn touched(cap: usize) -> Vec<u8> {
    let mut v: Vec<u8> = Vec::with_capacity(cap);
    for b in v.spare_capacity_mut().iter_mut().step_by(4096) {
        b.write(0);
    }
    v
}

/// The keeper thread, once started.
static KEEPER: OnceLock<std::thread::Thread> = OnceLock::new();

/// Classes (log2 of their capacity) the keeper fills at start, and how
/// many buffers each: 3 each of 64 KiB .. 1 MiB, 5.8 MiB in all (a matrix
/// call, numpy's `gemm`, takes three buffers of one class at once: an
/// input, the in-out matrix before and after the call).
const START_LOGS: std::ops::RangeInclusive<u32> = 16..=20;
const START_EACH: usize = 3;

/// Spare buffers the keeper makes for a class whose takes found it empty
/// (on top of what the shadow gives back).
const SPARES: usize = 2;

/// Starts the keeper of the process's pool (once; later calls do nothing):
/// a thread that makes and touches buffers for it. `warm`: the boundary
/// has buffers, fill the larger classes now. `spawn` makes the thread (the
/// caller's way: DDL's threads block every signal).
pub fn keep(
    warm: bool,
    spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> std::io::Result<std::thread::Thread>,
) -> std::io::Result<()> {
    static STARTED: std::sync::Once = std::sync::Once::new();
    let mut r = Ok(());
    STARTED.call_once(|| {
        let body = Box::new(move || {
            // Every class's queue made here (their slots are 256 KiB in all,
            // which the first capture of each class faulted in otherwise).
            for k in 0..CLASSES {
                POOL.class(k);
            }
            if warm {
                // A burst at start: off the application's CPU while it lasts.
                let _off = crate::affinity::off_app_cpu();
                for log in START_LOGS.rev() {
                    POOL.fill((log - MIN_LOG) as usize, START_EACH);
                }
            }
            loop {
                for k in 0..CLASSES {
                    if POOL.missed[k].swap(0, Ordering::Relaxed) != 0 {
                        POOL.fill(k, SPARES);
                    }
                }
                std::thread::park();
            }
        });
        match spawn(body) {
            Ok(t) => {
                let _ = KEEPER.set(t);
            }
            Err(e) => r = Err(e),
        }
    });
    r
}

/// [`BufPool::take`] on the process's pool.
pub fn take(n: usize) -> Vec<u8> {
    POOL.take(n)
}

/// [`BufPool::copy_of`] on the process's pool.
pub fn copy_of(src: &[u8]) -> Vec<u8> {
    POOL.copy_of(src)
}

/// [`BufPool::copy_streamed`] on the process's pool: an application
/// thread's capture of its inputs, for the shadow to read on its own core
/// (after [`publish_fence`]).
pub fn copy_streamed(src: &[u8]) -> Vec<u8> {
    POOL.copy_streamed(src)
}

/// Orders this thread's earlier non-temporal stores ([`stream_copy`])
/// before its later stores (`sfence`): call it before publishing a
/// buffer they wrote to another thread. Cheap when nothing is pending.
#[inline]
pub fn publish_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` only orders stores; SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    }
}

/// Copies `n` bytes from `src` to `dst`, the whole 64-byte lines of `dst`
/// with non-temporal stores (SSE2 `movntdq`, part of every x86-64: no
/// feature check), the unaligned head and tail with ordinary ones. This
/// thread reads the copy as usual; another thread may read it only once
/// [`publish_fence`] has run after this returns and the buffer has then
/// been published (a release store, a locked instruction).
///
/// A non-temporal store writes a whole line to memory through the
/// write-combining buffers without reading it first and removes it from
/// every cache, this core's included: the writer does not take the line
/// back from the core that read it last, and the copy does not evict the
/// writer's own working set. Other architectures: `copy_nonoverlapping`.
///
/// # Safety
/// `src` must be valid for reading and `dst` for writing `n` bytes, and
/// the two ranges must not overlap; [`publish_fence`] before another
/// thread reads `dst`.
pub unsafe fn stream_copy(dst: *mut u8, src: *const u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let head = dst.align_offset(64).min(n);
        std::ptr::copy_nonoverlapping(src, dst, head);
        let mut i = head;
        while i + 64 <= n {
            let s = src.add(i) as *const __m128i;
            let d = dst.add(i) as *mut __m128i;
            let (a, b) = (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)));
            let (c, e) = (_mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
            _mm_stream_si128(d, a);
            _mm_stream_si128(d.add(1), b);
            _mm_stream_si128(d.add(2), c);
            _mm_stream_si128(d.add(3), e);
            i += 64;
        }
        std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), n - i);
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::ptr::copy_nonoverlapping(src, dst, n);
}

/// [`BufPool::give`] on the process's pool.
pub fn give(v: Vec<u8>) {
    POOL.give(v)
}

/// The shadow's pool ([`SHADOW`]), for buffers that never leave its thread.
pub fn shadow() -> &'static BufPool {
    &SHADOW
}

/// Gives back every buffer a captured value holds (the value is spent).
pub fn give_value(v: crate::value::Value) {
    match v {
        crate::value::Value::Buf { bytes, .. } => give(bytes),
        crate::value::Value::Struct(fs) => fs.into_iter().for_each(give_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_their_sizes() {
        assert_eq!(class_of_len(100), None);
        assert_eq!(class_of_len(2048), None);
        assert_eq!(class_of_len(2049), Some(0));
        assert_eq!(class_of_len(4096), Some(0));
        assert_eq!(class_of_len(4097), Some(1));
        assert_eq!(class_of_len(65536), Some(4));
        assert_eq!(class_of_len(MAX_CLASS), Some(CLASSES - 1));
        assert_eq!(class_of_len(MAX_CLASS + 1), None);
        assert_eq!(class_of_cap(65536), Some(4));
        assert_eq!(class_of_cap(65535), None);
        assert_eq!(limit(16 << 20, 4), 256);
        assert_eq!(limit(POOL_BYTES, 4), 1024);
        assert_eq!(limit(POOL_BYTES, CLASSES - 1), 4);
        assert_eq!(limit(16 << 20, CLASSES - 1), 2);
    }

    #[test]
    fn a_buffer_in_use_is_never_handed_out() {
        let pool = BufPool::new();
        let a = pool.copy_of(&[1u8; 65536]);
        let b = pool.take(65536);
        assert_eq!(a.capacity(), 65536);
        assert_ne!(a.as_ptr(), b.as_ptr());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        pool.give(b);
        // Only the buffer given back comes back, emptied; `a` is still ours.
        let c = pool.take(40000);
        assert_eq!(c.as_ptr(), pb);
        assert!(c.is_empty() && c.capacity() == 65536);
        let d = pool.take(65536);
        assert_ne!(d.as_ptr(), pa);
        assert_ne!(d.as_ptr(), pb);
        assert_eq!(a, vec![1u8; 65536]);
        // Given back longest ago, taken first.
        let (pc, pd) = (c.as_ptr(), d.as_ptr());
        pool.give(c);
        pool.give(d);
        let (e, f) = (pool.take(65536), pool.take(65536));
        assert_eq!((e.as_ptr(), f.as_ptr()), (pc, pd));
        assert_eq!(pool.kept(65536), 0);
    }

    /// Lengths around a line and the threshold, a 64 KiB class, and more.
    const LENGTHS: [usize; 11] = [0, 1, 63, 64, 65, 4095, 4096, 4097, 65535, 65536, 100_001];

    #[test]
    fn streamed_copies_are_exact() {
        let pool = BufPool::new();
        let src: Vec<u8> = (0..200_000u32).map(|i| (i * 131 + 7) as u8).collect();
        // Every alignment of the source, lengths around the lines and the
        // threshold, head and tail shorter than a line.
        for off in [0, 1, 15, 16, 63] {
            for n in LENGTHS {
                let s = &src[off..off + n];
                let v = pool.copy_streamed(s);
                assert_eq!(v.as_slice(), s, "offset {off}, {n} bytes");
                pool.give(v);
            }
        }
        // An unaligned destination.
        let mut dst = vec![0u8; 10_000];
        // SAFETY: 9,000 bytes from offset 3 of 10,000, from a distinct vector.
        unsafe { stream_copy(dst.as_mut_ptr().add(3), src.as_ptr(), 9_000) };
        publish_fence();
        assert_eq!(&dst[3..9_003], &src[..9_000]);
        assert!(dst[..3].iter().chain(&dst[9_003..]).all(|&b| b == 0));
    }

    #[test]
    fn a_take_that_finds_its_class_empty_is_counted() {
        let pool = BufPool::new();
        let a = pool.take(100_000);
        assert_eq!(
            pool.missed[class_of_len(100_000).unwrap()].load(Ordering::Relaxed),
            1
        );
        pool.give(a);
        let _b = pool.take(100_000);
        assert_eq!(
            pool.missed[class_of_len(100_000).unwrap()].load(Ordering::Relaxed),
            1
        );
        pool.fill(class_of_len(5000).unwrap(), 3);
        assert_eq!(pool.kept(5000), 3);
        let c = pool.take(5000);
        assert!(c.is_empty() && c.capacity() == 8192);
    }

    #[test]
    fn the_pool_is_bounded() {
        let pool = BufPool::with_budget(16 << 20);
        let n = 1 << 20;
        let bufs: Vec<Vec<u8>> = (0..20).map(|_| pool.take(n)).collect();
        for b in bufs {
            pool.give(b);
        }
        assert_eq!(pool.kept(n), 16);
        // The budget is the pool's, over all classes: another class keeps
        // its two buffers, no more.
        let m = 1 << 16;
        let bufs: Vec<Vec<u8>> = (0..20).map(|_| pool.take(m)).collect();
        for b in bufs {
            pool.give(b);
        }
        assert_eq!(pool.kept(m), 2);
        // Taking makes room again.
        let taken: Vec<Vec<u8>> = (0..4).map(|_| pool.take(n)).collect();
        assert_eq!(pool.kept(n), 12);
        let bufs: Vec<Vec<u8>> = (0..80).map(|_| pool.take(m)).collect();
        for b in bufs {
            pool.give(b);
        }
        // The two it had, and what the four taken left room for.
        assert_eq!(pool.kept(m), 2 + (4 * n - 2 * m) / m);
        drop(taken);
        // Buffers that are not a class's capacity are freed, not kept.
        pool.give(Vec::with_capacity(3000));
        pool.give(Vec::with_capacity(100));
        assert_eq!(pool.kept(3000), 0);
    }
}
