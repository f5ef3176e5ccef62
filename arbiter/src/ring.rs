//! Per-thread rings of scalar invocations: the caller's path of a mirrored
//! call of a scalar function (every parameter and the return value a
//! scalar by value, no handle: [`crate::shadow`]'s `Facts::scalar`) writes
//! one fixed-size slot in its own thread's ring — no allocation, no lock,
//! no write to a cache line another thread writes.
//!
//! Single producer (the calling thread), single consumer (whoever holds
//! the shadow's `pop_lock`: the shadow thread, a fresh one after the
//! watchdog, or `finish`). Each slot carries a stamp (position + 1) that
//! the producer stores last, with `Release`: the consumer knows a slot is
//! full from the slot itself, so the producer never publishes a shared
//! index. The producer reads the consumer's position only when its cached
//! copy says the ring is full. (A ring publishing its tail per record cost
//! 57 ns a call on this kind of machine, spiking to 400: the consumer's
//! reads of the tail's line bounced it between the cores.)

use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::shadow::FpEnv;

/// Most parameters a call in a ring can have (more go the general way).
pub const MAX_ARGS: usize = 6;
/// Integer argument registers a slot keeps (`rdi rsi rdx rcx r8 r9`).
pub const GPRS: usize = 6;
/// SSE argument registers a slot keeps (the low eightbyte of `xmm0..3`):
/// a function with a floating-point parameter in `xmm4..7` goes the
/// general way.
pub const XMMS: usize = 4;

/// Where an argument at `loc` is in a slot's registers (`0..6`:
/// `gpr[i]`, `6..10`: `xmm[i - 6]`), or `None` when a slot does not keep
/// it (not a single register of those).
pub fn slot_reg(loc: &crate::marshal::Loc) -> Option<u8> {
    use crate::marshal::{Loc, Reg};
    match loc {
        Loc::Regs(r) if r.len() == 1 => match r[0] {
            Reg::Gpr(g) if (g as usize) < GPRS => Some(g),
            Reg::Sse(x) if (x as usize) < XMMS => Some(GPRS as u8 + x),
            _ => None,
        },
        _ => None,
    }
}

/// The bits of the register `reg` ([`slot_reg`]) among `gpr` and `xmm`.
#[inline]
pub fn reg_bits(gpr: &[u64; GPRS], xmm: &[u64; XMMS], reg: u8) -> u64 {
    match reg as usize {
        g if g < GPRS => gpr[g],
        x => xmm[x - GPRS],
    }
}

/// What a slot says of the function called: one per wrapper (a function
/// and symbol version), leaked by whoever makes it, so that a slot names
/// it with one word.
#[repr(C)]
#[derive(Debug)]
pub struct FnTarget {
    /// The new build's function ([`crate::shadow::Invocation::new_fn`]).
    pub new_fn: &'static AtomicU64,
    /// Index of the function.
    pub func: u32,
}

/// `ScalarCall::fp` bit: the old build's outgoing calls were watched (and
/// there were none).
pub const FP_WATCHED: u64 = 1 << 48;

/// One mirrored call of a scalar function, as the caller's path left it:
/// the argument registers as the application passed them (the shadow maps
/// them to parameters with the function's layout), the return register,
/// and what the shadow needs to make the same call. `#[repr(C)]`: the
/// wrapper's assembly writes it field by field (offsets checked in
/// `shim/src/wrapper.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ScalarCall {
    /// Sequence number of the call.
    pub seq: u64,
    /// Return address in the application.
    pub caller: u64,
    /// The function called.
    pub target: &'static FnTarget,
    /// The caller's floating-point control state: MXCSR in bits 0..32,
    /// the x87 control word in bits 32..48, [`FP_WATCHED`].
    pub fp: u64,
    /// The primary's return register (`rax`, or `xmm0`'s low eightbyte
    /// for a floating-point result; 0 for `void`).
    pub ret: u64,
    /// `rdi rsi rdx rcx r8 r9` at the call.
    pub gpr: [u64; GPRS],
    /// The low eightbyte of `xmm0..3` at the call.
    pub xmm: [u64; XMMS],
}

impl ScalarCall {
    /// The caller's floating-point control state.
    pub fn fp_env(&self) -> FpEnv {
        FpEnv {
            mxcsr: self.fp as u32,
            x87_cw: (self.fp >> 32) as u16,
        }
    }

    /// [`ScalarCall::fp`] of an environment and the watched flag.
    pub fn fp_word(env: FpEnv, watched: bool) -> u64 {
        env.mxcsr as u64 | (env.x87_cw as u64) << 32 | if watched { FP_WATCHED } else { 0 }
    }

    /// Whether the old build's outgoing calls were watched.
    pub fn watched(&self) -> bool {
        self.fp & FP_WATCHED != 0
    }
}

/// 128 bytes: two cache lines. `#[repr(C)]`: the wrapper's assembly
/// writes slots (the call at offset 8). The first line holds the stamp,
/// `seq`, `caller`, `target`, `fp`, `ret` and `gpr[0..2]`: a call whose
/// arguments are all in `rdi`/`rsi` is written there only (the second
/// line then holds whatever an earlier call left, never read for it;
/// `shim/src/wrapper.rs` asserts the split).
#[repr(C, align(64))]
pub struct Slot {
    /// `position + 1` once the slot holds the call of that position.
    stamp: AtomicU64,
    call: UnsafeCell<MaybeUninit<ScalarCall>>,
}

/// The producer's side, on a line of its own.
#[repr(C)]
pub struct Producer {
    /// Next position to write.
    tail: Cell<u64>,
    /// The consumer's position when last read.
    cached_head: Cell<u64>,
    /// The handle this thread's dropped calls parted last, its class and
    /// the shadow's `pairings` then ([`Ring::parted_last`]).
    part_handle: Cell<u64>,
    part_class: Cell<u64>,
    part_pairings: Cell<u64>,
}

/// A bounded single-producer single-consumer ring of [`ScalarCall`]s.
/// `#[repr(C)]`: the wrapper's assembly pushes into it ([`RING_LAYOUT`]).
#[repr(C)]
pub struct Ring {
    /// The first slot.
    slots: *mut Slot,
    /// Slots - 1 (a power of two - 1).
    mask: u64,
    producer: CachePadded<Producer>,
    /// Next position to read; stored by the consumer after each read.
    head: CachePadded<AtomicU64>,
    /// Owns the slots (`slots` points into it).
    _owner: Box<[Slot]>,
}

/// Byte offsets the wrapper's assembly uses to push into a [`Ring`]
/// without calling Rust: (slots pointer, mask, producer's tail, producer's
/// cached head, consumer's head, a slot's call).
pub const RING_LAYOUT: RingLayout = RingLayout {
    slots: std::mem::offset_of!(Ring, slots),
    mask: std::mem::offset_of!(Ring, mask),
    tail: std::mem::offset_of!(Ring, producer) + std::mem::offset_of!(Producer, tail),
    cached_head: std::mem::offset_of!(Ring, producer) + std::mem::offset_of!(Producer, cached_head),
    head: std::mem::offset_of!(Ring, head),
    call: std::mem::offset_of!(Slot, call),
    part_handle: std::mem::offset_of!(Ring, producer) + std::mem::offset_of!(Producer, part_handle),
    part_class: std::mem::offset_of!(Ring, producer) + std::mem::offset_of!(Producer, part_class),
    part_pairings: std::mem::offset_of!(Ring, producer)
        + std::mem::offset_of!(Producer, part_pairings),
};

/// See [`RING_LAYOUT`].
pub struct RingLayout {
    /// `Ring::slots`.
    pub slots: usize,
    /// `Ring::mask`.
    pub mask: usize,
    /// The producer's next position.
    pub tail: usize,
    /// The producer's copy of the consumer's position.
    pub cached_head: usize,
    /// The consumer's position.
    pub head: usize,
    /// The call in a [`Slot`] (its stamp is at 0).
    pub call: usize,
    /// The producer's last parted handle, its class, the `pairings` then.
    pub part_handle: usize,
    /// See `part_handle`.
    pub part_class: usize,
    /// See `part_handle`.
    pub part_pairings: usize,
}

// SAFETY: the producer's cells are touched only by the one producing
// thread (`push`, `producer_len`: unsafe, documented); slots are handed
// over through their stamps (Release/Acquire) and the consumer's position
// (Release/Acquire), so a slot is never read and written at once.
unsafe impl Sync for Ring {}
// SAFETY: as above; the ring owns plain data.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring of `capacity` slots (rounded up to a power of two, at least 2).
    pub fn new(capacity: usize) -> Ring {
        let cap = capacity.clamp(2, 1 << 20).next_power_of_two();
        let mut owner: Box<[Slot]> = (0..cap)
            .map(|i| Slot {
                // Position i is written when the stamp is i + 1: start
                // one lap behind (no slot looks full).
                stamp: AtomicU64::new((i as u64 + 1).wrapping_sub(cap as u64)),
                call: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            slots: owner.as_mut_ptr(),
            _owner: owner,
            mask: cap as u64 - 1,
            producer: CachePadded::new(Producer {
                tail: Cell::new(0),
                cached_head: Cell::new(0),
                part_handle: Cell::new(0),
                part_class: Cell::new(0),
                part_pairings: Cell::new(0),
            }),
            head: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// The handle the producing thread's dropped calls parted last, its
    /// class and the shadow's `pairings` counter then (all zero at first:
    /// no handle is 0). The wrapper's assembly reads them ([`RING_LAYOUT`])
    /// to drop another call on that handle without calling Rust.
    ///
    /// # Safety
    ///
    /// Only the producing thread may call it (as [`Ring::push`]).
    pub unsafe fn parted_last(&self) -> (u32, u64, u64) {
        let p = &self.producer;
        (
            p.part_class.get() as u32,
            p.part_handle.get(),
            p.part_pairings.get(),
        )
    }

    /// Sets what [`Ring::parted_last`] gives.
    ///
    /// # Safety
    ///
    /// Only the producing thread may call it (as [`Ring::push`]).
    pub unsafe fn set_parted_last(&self, class: u32, handle: u64, pairings: u64) {
        let p = &self.producer;
        p.part_class.set(class as u64);
        p.part_handle.set(handle);
        p.part_pairings.set(pairings);
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.mask as usize + 1
    }

    /// The slot of position `pos`.
    #[inline]
    fn slot(&self, pos: u64) -> &Slot {
        // SAFETY: `pos & mask` is below the number of slots, which live as
        // long as the ring (`_owner`).
        unsafe { &*self.slots.add((pos & self.mask) as usize) }
    }

    /// Appends a call; `false` when the ring is full (the caller counts it
    /// dropped).
    ///
    /// # Safety
    ///
    /// Only one thread, always the same, may call `push` (and
    /// [`Ring::producer_len`]) on a ring.
    #[inline]
    pub unsafe fn push(&self, call: ScalarCall) -> bool {
        let p = &self.producer;
        let t = p.tail.get();
        if t - p.cached_head.get() > self.mask {
            let h = self.head.load(Ordering::Acquire);
            p.cached_head.set(h);
            if t - h > self.mask {
                return false;
            }
        }
        let slot = self.slot(t);
        // SAFETY: position t - capacity was read (head > t - capacity, read
        // with Acquire above or earlier): nobody reads this slot until its
        // stamp says t + 1.
        unsafe { (*slot.call.get()).write(call) };
        slot.stamp.store(t + 1, Ordering::Release);
        p.tail.set(t + 1);
        true
    }

    /// Calls written and not yet read, as the producer sees it.
    ///
    /// # Safety
    ///
    /// Only the producing thread may call it.
    pub unsafe fn producer_len(&self) -> u64 {
        self.producer.tail.get() - self.head.load(Ordering::Acquire)
    }

    /// Takes the oldest call, if one is there.
    ///
    /// # Safety
    ///
    /// Only one consumer at a time (the shadow serialises them with its
    /// `pop_lock`).
    #[inline]
    pub unsafe fn pop(&self) -> Option<ScalarCall> {
        let h = self.head.load(Ordering::Relaxed);
        let slot = self.slot(h);
        if slot.stamp.load(Ordering::Acquire) != h + 1 {
            return None;
        }
        // SAFETY: the stamp says the producer wrote position h (Release,
        // read with Acquire) and will not write this slot again before
        // `head` passes h.
        let call = unsafe { (*slot.call.get()).assume_init_read() };
        self.head.store(h + 1, Ordering::Release);
        Some(call)
    }

    /// Takes up to `max` calls, oldest first, lending each to `take`, and
    /// publishes the new position once for all of them (a store per call
    /// kept the position's line moving between the cores while the
    /// producer, finding the ring full, kept reading it). Returns how many.
    ///
    /// # Safety
    ///
    /// As [`Ring::pop`]: one consumer at a time.
    #[inline]
    pub unsafe fn pop_batch(&self, max: usize, mut take: impl FnMut(&ScalarCall)) -> usize {
        let start = self.head.load(Ordering::Relaxed);
        let mut h = start;
        while ((h - start) as usize) < max {
            let slot = self.slot(h);
            if slot.stamp.load(Ordering::Acquire) != h + 1 {
                break;
            }
            // SAFETY: as in `pop`: the stamp says position h is written,
            // and the producer does not reuse the slot before `head` passes h.
            take(unsafe { (*slot.call.get()).assume_init_ref() });
            h += 1;
        }
        if h != start {
            self.head.store(h, Ordering::Release);
        }
        (h - start) as usize
    }

    /// Whether `n` calls (at least one) are waiting (consumer's view): the
    /// stamp of the `n`-th is read, not the first's. A consumer that waits
    /// for whole batches this way leaves alone the slot the producer is
    /// writing: reading its stamp takes the slot's line away from the
    /// producer's core while it writes it, and a consumer that keeps up
    /// and looks at every slot does that for every call.
    pub fn has_batch(&self, n: usize) -> bool {
        let h = self.head.load(Ordering::Relaxed);
        let last = h + n.max(1) as u64 - 1;
        self.slot(last).stamp.load(Ordering::Acquire) == last + 1
    }

    /// Whether a call is waiting (consumer's view).
    pub fn has_waiting(&self) -> bool {
        let h = self.head.load(Ordering::Relaxed);
        self.slot(h).stamp.load(Ordering::Acquire) == h + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SLOT: AtomicU64 = AtomicU64::new(0);
    static TARGET: FnTarget = FnTarget {
        new_fn: &SLOT,
        func: 0,
    };

    fn call(seq: u64) -> ScalarCall {
        ScalarCall {
            seq,
            caller: 0,
            target: &TARGET,
            fp: 0,
            ret: seq * 2,
            gpr: [seq; GPRS],
            xmm: [seq; XMMS],
        }
    }

    #[test]
    fn a_slot_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>(), 128);
        assert_eq!(RING_LAYOUT.call, 8);
    }

    #[test]
    fn fp_word_round_trips() {
        let env = FpEnv {
            mxcsr: 0x1f80,
            x87_cw: 0x037f,
        };
        for watched in [false, true] {
            let mut c = call(1);
            c.fp = ScalarCall::fp_word(env, watched);
            assert_eq!(c.fp_env(), env);
            assert_eq!(c.watched(), watched);
        }
    }

    #[test]
    fn fills_drains_and_wraps() {
        let r = Ring::new(4);
        // SAFETY: one producer and one consumer, both this thread.
        unsafe {
            for lap in 0..3u64 {
                for i in 0..4 {
                    assert!(r.push(call(lap * 10 + i)));
                }
                assert!(!r.push(call(99)), "full");
                assert_eq!(r.producer_len(), 4);
                for i in 0..4 {
                    let c = r.pop().unwrap();
                    assert_eq!((c.seq, c.ret), (lap * 10 + i, (lap * 10 + i) * 2));
                }
                assert!(r.pop().is_none());
                assert!(!r.has_waiting());
            }
        }
    }

    #[test]
    fn pop_batch_takes_at_most_max_in_order() {
        let r = Ring::new(8);
        // SAFETY: one producer and one consumer, both this thread.
        unsafe {
            for i in 0..8 {
                assert!(r.push(call(i)));
            }
            let mut got = Vec::new();
            assert_eq!(r.pop_batch(5, |c| got.push(c.seq)), 5);
            assert_eq!(r.pop_batch(5, |c| got.push(c.seq)), 3);
            assert_eq!(r.pop_batch(5, |c| got.push(c.seq)), 0);
            assert_eq!(got, (0..8).collect::<Vec<_>>());
            assert!(r.push(call(8)), "room again once published");
        }
    }

    /// One producer thread, one consumer thread: every call arrives once,
    /// in order, intact.
    #[test]
    fn across_threads_in_order() {
        let r = std::sync::Arc::new(Ring::new(64));
        let n = 200_000u64;
        let p = r.clone();
        let prod = std::thread::spawn(move || {
            let mut dropped = 0;
            for i in 0..n {
                // SAFETY: this thread is the only producer.
                while !unsafe { p.push(call(i)) } {
                    dropped += 1;
                    std::hint::spin_loop();
                }
            }
            dropped
        });
        let mut next = 0;
        while next < n {
            // SAFETY: this thread is the only consumer.
            if let Some(c) = unsafe { r.pop() } {
                assert_eq!(c.seq, next);
                assert_eq!((c.gpr, c.xmm), ([next; GPRS], [next; XMMS]));
                next += 1;
            }
        }
        prod.join().unwrap();
    }
}
