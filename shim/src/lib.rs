//! libddl.so: the dynamic dynamic linker.
//!
//! Preloaded into an application (`LD_PRELOAD=libddl.so DDL_CONFIG=…`), it
//! rebinds the application's references to the old build of a component to
//! wrappers, runs every call on the old build as before, and mirrors it to the
//! new build through the arbiter. This crate is the thin preloaded part: the
//! constructor and the mechanisms that touch the process (ELF, slots,
//! interposition, namespaces, wrappers); everything that describes, compares
//! and reports lives in the `arbiter` crate.
//!
//! Without `DDL_CONFIG` it does nothing at all. Any config, load or symbol
//! error is reported once as `ddl: error: …` and leaves the application as it
//! would run without libddl (fail open).
#![warn(missing_docs)]

mod capture;
pub mod contain;
mod cxxguard;
mod cxxrt;
pub mod elf;
pub mod interpose;
pub mod namespace;
pub mod observe;
pub mod rebind;
pub mod replay;
pub mod runtime;
pub mod signals;
pub mod wrapper;

/// libddl's constructor: read the config and, if the old build is already
/// loaded, rebind now. Nothing may unwind out of it.
#[ctor::ctor]
fn init() {
    if std::env::var_os("DDL_CONFIG").is_none() {
        return;
    }
    let _ = std::panic::catch_unwind(runtime::boot);
}

/// libddl's own allocator. Captured invocations are allocated on the
/// application's threads and freed on the shadow thread; with glibc's
/// malloc every such free takes the allocating arena's lock, which the
/// application's thread holds half the time (measured: futex waits and
/// wakes were a third of a mirrored call). mimalloc frees across threads
/// without a lock. The application's own malloc is untouched.
///
/// mimalloc's v2 line with `no_thp`: v3 mapped its pages one `mmap` and
/// `munmap` pair at a time (~120 system calls before `main` in a process
/// that mirrors nothing), and THP made every arena fault clear 2 MiB (a
/// numpy run's RSS under DDL 76 .. 88 MiB with it, 55 MiB without; plain
/// 36 MiB), memory traffic that slows the application's own thread.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
