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
//! bounded: at most [`CLASS_BYTES`] bytes (and at least two buffers) per
//! class; beyond that a buffer is freed. Neither side ever waits: each
//! class is a bounded lock-free queue. A buffer is in the pool only while
//! nobody owns it: ownership of the `Vec` moves in and out, so one handed
//! out can never be handed out again before it comes back.
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
use std::sync::atomic::{AtomicU32, Ordering};
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
/// Bytes of buffers each class may keep.
pub const CLASS_BYTES: usize = 16 << 20;

const CLASSES: usize = (MAX_LOG - MIN_LOG + 1) as usize;

/// A bounded pool of byte buffers by size class.
pub struct BufPool {
    /// Per class, made at its first use: a bounded lock-free queue.
    classes: [OnceLock<ArrayQueue<Vec<u8>>>; CLASSES],
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

/// How many buffers class `k` may keep.
fn limit(k: usize) -> usize {
    (CLASS_BYTES >> (k as u32 + MIN_LOG)).max(2)
}

impl BufPool {
    /// An empty pool.
    pub const fn new() -> BufPool {
        BufPool {
            classes: [const { OnceLock::new() }; CLASSES],
            missed: [const { AtomicU32::new(0) }; CLASSES],
        }
    }

    fn class(&self, k: usize) -> &ArrayQueue<Vec<u8>> {
        self.classes[k].get_or_init(|| ArrayQueue::new(limit(k)))
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
        while q.len() < want.min(limit(k)) {
            if q.push(touched(1 << (k as u32 + MIN_LOG))).is_err() {
                break;
            }
        }
    }

    /// A copy of `src` in a buffer from [`BufPool::take`].
    pub fn copy_of(&self, src: &[u8]) -> Vec<u8> {
        let mut v = self.take(src.len());
        v.extend_from_slice(src);
        v
    }

    /// Gives a buffer back for reuse; freed instead when its capacity is
    /// not a class's or its class is full.
    pub fn give(&self, v: Vec<u8>) {
        if let Some(k) = class_of_cap(v.capacity()) {
            let _ = self.class(k).push(v);
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
        assert_eq!(limit(4), 256);
        assert_eq!(limit(CLASSES - 1), 2);
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
        let pool = BufPool::new();
        let n = 1 << 20;
        let bufs: Vec<Vec<u8>> = (0..20).map(|_| pool.take(n)).collect();
        for b in bufs {
            pool.give(b);
        }
        assert_eq!(pool.kept(n), CLASS_BYTES / n);
        // Buffers that are not a class's capacity are freed, not kept.
        pool.give(Vec::with_capacity(3000));
        pool.give(Vec::with_capacity(100));
        assert_eq!(pool.kept(3000), 0);
    }
}
