//! The application's signal-handler changes, announced to the sandbox.
//!
//! The sandbox's fault handlers must be the first to see a fault of the
//! shadow thread, and chain to the application's handlers for everything
//! else (`arbiter/csrc/sandbox.c`). An application that installs a handler
//! after libddl replaces DDL's: the sandbox puts its own back on top before
//! a shadow call when the dispositions changed. Re-reading them before every
//! call costs one `rt_sigaction` per managed signal (about 3 µs a call); so
//! libddl interposes the application's `sigaction`, `signal` and kin, which
//! perform the change exactly as libc does and then announce it
//! (`arbiter::sandbox::handlers_changed`), and the sandbox re-reads the
//! dispositions only after an announcement (and every [`RECHECK_EVERY`]
//! calls, for a change made by a raw system call).
//!
//! The new build's own `sigaction` never reaches these: its namespace's
//! references are DDL's replacements (`contain.rs`), which install nothing.

use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls between two re-reads of the dispositions without an announcement.
pub const RECHECK_EVERY: u32 = 1024;

/// Lets the sandbox rely on the announcements (called once the session is up).
pub fn announce_changes() {
    arbiter::sandbox::set_recheck_every(RECHECK_EVERY);
}

static REAL_SIGACTION: AtomicUsize = AtomicUsize::new(0);
static REAL_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static REAL_BSD_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static REAL_SYSV_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static REAL_SIGSET: AtomicUsize = AtomicUsize::new(0);

/// libc's definition of `name` (the next after libddl's), cached.
fn real(cache: &AtomicUsize, name: &CStr) -> usize {
    let mut f = cache.load(Ordering::Relaxed);
    if f == 0 {
        f = crate::interpose::real_dlsym(libc::RTLD_NEXT, name);
        cache.store(f, Ordering::Relaxed);
    }
    f
}

/// `sigaction`, interposed: performed by libc, then announced.
///
/// # Safety
/// As libc's `sigaction`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let f = real(&REAL_SIGACTION, c"sigaction");
    if f == 0 {
        *libc::__errno_location() = libc::ENOSYS;
        return -1;
    }
    // SAFETY: `f` is libc's `sigaction` (found by name after libddl), which
    // has this signature; the arguments are the caller's, passed on as is.
    let f: unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int =
        std::mem::transmute(f);
    let r = f(sig, act, old);
    if !act.is_null() {
        announce();
    }
    r
}

/// The `signal` family (`signal`, `bsd_signal`, `sysv_signal`, `sigset`),
/// interposed: performed by libc, then announced.
macro_rules! signal_like {
    ($name:ident, $cache:ident, $sym:literal) => {
        /// Interposed: performed by libc, then announced to the sandbox.
        ///
        /// # Safety
        /// As libc's function of the same name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            sig: c_int,
            handler: libc::sighandler_t,
        ) -> libc::sighandler_t {
            let f = real(&$cache, $sym);
            if f == 0 {
                *libc::__errno_location() = libc::ENOSYS;
                return libc::SIG_ERR;
            }
            // SAFETY: `f` is libc's function of this name (found after
            // libddl), of this signature; the arguments are the caller's.
            let f: unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t =
                std::mem::transmute(f);
            let r = f(sig, handler);
            announce();
            r
        }
    };
}

signal_like!(signal, REAL_SIGNAL, c"signal");
signal_like!(bsd_signal, REAL_BSD_SIGNAL, c"bsd_signal");
signal_like!(sysv_signal, REAL_SYSV_SIGNAL, c"sysv_signal");
signal_like!(sigset, REAL_SIGSET, c"sigset");

fn announce() {
    arbiter::sandbox::handlers_changed();
}
