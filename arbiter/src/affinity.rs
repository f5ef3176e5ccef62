//! Keeping DDL's start-up bursts off the application's CPU.
//!
//! At start DDL's own threads do a few milliseconds of work at once: the
//! loader `dlmopen`s the new build and checks it, the capture pool's keeper
//! touches its first buffers. Left to the scheduler, that work often landed
//! on the CPU of the application thread that started DDL: the loader is
//! made there, and each wake-up (from a lock the application's own `dlopen`
//! held, from `mmap_lock`) pulls it back next to its waker. The two then
//! shared that CPU in whole time slices while the other CPU sat idle
//! (`perf sched timehist` of the numpy workload on this 2-vCPU machine:
//! the Python thread preempted for 4 ms at a time, its time off the CPU
//! 2 to 8 ms a run against 0.1 ms without DDL's threads).
//!
//! So the application thread that starts DDL notes its CPU
//! ([`note_app_cpu`]), and a DDL thread about to do such a burst keeps off
//! that CPU while it lasts ([`off_app_cpu`]): its affinity is its allowed
//! set minus that CPU, and goes back to the set it had when the guard is
//! dropped. Nothing changes where only that one CPU is allowed, and the
//! application's threads are never touched. Threads the guarded thread
//! makes inherit its affinity for good: the loader drops its guard before
//! it starts the shadow's threads, and only threads the new build's own
//! constructors start during its load (workers of a BLAS, say, which serve
//! the shadow alone) keep off that CPU afterwards.

use std::sync::atomic::{AtomicI32, Ordering};

/// The CPU the application thread that started DDL ran on (-1: unknown).
static APP_CPU: AtomicI32 = AtomicI32::new(-1);

/// Notes the CPU the calling thread (an application thread starting DDL's
/// work) runs on now.
pub fn note_app_cpu() {
    // SAFETY: sched_getcpu has no preconditions (-1 on failure).
    APP_CPU.store(unsafe { libc::sched_getcpu() }, Ordering::Relaxed);
}

/// While alive, the thread that made it does not run on the CPU
/// [`note_app_cpu`] noted; dropping it gives the thread back the CPUs it
/// was allowed before.
pub struct OffAppCpu {
    saved: libc::cpu_set_t,
}

/// The calling thread's allowed CPUs (`None`: the kernel did not say).
fn allowed() -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a cpu_set_t of the size passed; 0 is this thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    (r == 0).then_some(set)
}

/// Sets the calling thread's allowed CPUs; true when the kernel took them.
fn set_allowed(set: &libc::cpu_set_t) -> bool {
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is this
    // thread. The kernel drops CPUs outside the thread's cpuset or fails.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) == 0 }
}

/// Keeps the calling thread off the noted application CPU until the guard
/// is dropped. `None` (and nothing changed) when no CPU was noted, the
/// thread may not run there anyway, or it may run nowhere else.
pub fn off_app_cpu() -> Option<OffAppCpu> {
    let cpu = usize::try_from(APP_CPU.load(Ordering::Relaxed)).ok()?;
    if cpu >= libc::CPU_SETSIZE as usize {
        return None;
    }
    let saved = allowed()?;
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above); the count reads
    // only the set.
    if !unsafe { libc::CPU_ISSET(cpu, &saved) } || unsafe { libc::CPU_COUNT(&saved) } < 2 {
        return None;
    }
    let mut off = saved;
    // SAFETY: as above.
    unsafe { libc::CPU_CLR(cpu, &mut off) };
    set_allowed(&off).then_some(OffAppCpu { saved })
}

impl Drop for OffAppCpu {
    fn drop(&mut self) {
        set_allowed(&self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The noted CPU is left while the guard lives, the allowed set comes
    /// back whole after; with one CPU allowed, nothing changes.
    #[test]
    fn a_guarded_thread_keeps_off_the_noted_cpu() {
        note_app_cpu();
        let app = APP_CPU.load(Ordering::Relaxed);
        assert!(app >= 0, "sched_getcpu failed");
        std::thread::spawn(move || {
            let before = allowed().expect("sched_getaffinity");
            // SAFETY (the CPU_* calls below): they read or write only the sets.
            let n = unsafe { libc::CPU_COUNT(&before) };
            let guard = off_app_cpu();
            if n < 2 {
                assert!(guard.is_none(), "one CPU allowed: nothing to move to");
                return;
            }
            let g = guard.expect("two CPUs or more allowed: the guard is taken");
            let during = allowed().unwrap();
            // SAFETY: `app` is a CPU number sched_getcpu returned.
            assert!(!unsafe { libc::CPU_ISSET(app as usize, &during) });
            assert_eq!(unsafe { libc::CPU_COUNT(&during) }, n - 1);
            // The kernel moves a thread off a CPU it may no longer use at once.
            for _ in 0..100 {
                // SAFETY: no preconditions.
                assert_ne!(unsafe { libc::sched_getcpu() }, app);
                std::hint::black_box((0..1000).sum::<u32>());
            }
            drop(g);
            let after = allowed().unwrap();
            assert!(
                unsafe { libc::CPU_EQUAL(&before, &after) },
                "the allowed set is restored"
            );
        })
        .join()
        .unwrap();
    }
}
