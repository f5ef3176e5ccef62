//! The sandbox against a library that does one bad thing per function,
//! loaded as DDL loads the new build (`dlmopen(LM_ID_NEWLM)`, `RTLD_NOW`)
//! and called through `Invoker::call_sandboxed` on a thread prepared as the
//! shadow thread is (every other signal blocked, `sandbox::thread_init`).

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbiter::invoke::Invoker;
use arbiter::marshal::Raw;
use arbiter::sandbox::{self, CallFailure, Fault, GuardFn};
use arbiter::signature::{parse_signature, TypeTable};

const LIB_C: &str = r#"
#define _GNU_SOURCE
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef void (*ffi_call_fn)(void *, void (*)(void), void *, void **);

int t_add(int a, int b) { return a + b; }
int t_null(int x) { volatile int *p = NULL; return *p + x; }
int t_abort(int x) { if (x >= 0) abort(); return x; }
int t_assert(int x) { assert(x == 12345); return x; }
int t_div0(int x) { volatile int z = 0; return x / z; }
int t_trap(int x) { if (x >= 0) __builtin_trap(); return x; }
int t_int3(int x) { __asm__ volatile("int3"); return x; }
int t_recurse(int x) {
    volatile char buf[512];
    buf[x & 511] = (char)x;
    return t_recurse(x + 1) + buf[(x * 7) & 511];
}
int t_raise_bus(int x) { raise(SIGBUS); return x; }
int t_raise_sys(int x) { raise(SIGSYS); return x; }
int t_bus(int x) {
    /* A mapping past the end of its (empty) file: a real SIGBUS. */
    FILE *f = tmpfile();
    volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
    return p[0] + x;
}
int t_spin(int x) { volatile unsigned long n = 0; for (;;) n += (unsigned)x; }
int t_sleep(int x) { sleep(100); return x; }
int t_double_free(int x) {
    char *volatile p = malloc(32);
    free(p);
    free(p);
    return x;
}
int t_printf_crash(int x) { printf("%s", (char *)1); return x; }

/* Stand-ins for the C++ guard (ddl_call.h's ddl_guard_fn). */
int guard_pass(ffi_call_fn call, void *cif, void (*fn)(void), void *rv, void **av,
               char *tb, size_t tl, char *wb, size_t wl) {
    (void)tb; (void)tl; (void)wb; (void)wl;
    call(cif, fn, rv, av);
    return 0;
}
int guard_throw(ffi_call_fn call, void *cif, void (*fn)(void), void *rv, void **av,
                char *tb, size_t tl, char *wb, size_t wl) {
    (void)call; (void)cif; (void)fn; (void)rv; (void)av;
    snprintf(tb, tl, "std::runtime_error");
    snprintf(wb, wl, "boom");
    return 1;
}
"#;

fn build_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-test");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("libfaulty.c");
        std::fs::write(&src, LIB_C).unwrap();
        let out = dir.join("libfaulty.so");
        let st = Command::new("gcc")
            .args([
                "-O1",
                "-g",
                "-fPIC",
                "-shared",
                "-fno-optimize-sibling-calls",
            ])
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .status()
            .expect("gcc");
        assert!(st.success(), "gcc failed");
        out
    })
}

/// A library loaded in a namespace of its own.
struct Ns {
    handle: *mut libc::c_void,
}

impl Ns {
    fn open(path: &Path) -> Ns {
        let c = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; dlmopen as DDL does it.
        let handle = unsafe {
            libc::dlmopen(
                libc::LM_ID_NEWLM,
                c.as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        };
        assert!(!handle.is_null(), "dlmopen: {:?}", unsafe {
            CStr::from_ptr(libc::dlerror())
        });
        Ns { handle }
    }

    fn sym(&self, name: &str) -> usize {
        let c = CString::new(name).unwrap();
        // SAFETY: a handle from dlmopen, a NUL-terminated name.
        let p = unsafe { libc::dlsym(self.handle, c.as_ptr()) };
        assert!(!p.is_null(), "{name} not found");
        p as usize
    }
}

/// The object (file name) holding `pc`.
fn object_of(pc: usize) -> String {
    // SAFETY: dladdr only reads the loader's tables.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(pc as *const libc::c_void, &mut info) } == 0
        || info.dli_fname.is_null()
    {
        return format!("?{pc:#x}");
    }
    // SAFETY: dladdr filled a NUL-terminated name.
    unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned()
}

/// Runs `f` on a thread set up as DDL's shadow thread.
fn on_shadow_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: signal-mask calls on sets we own; the mask is inherited by the
    // new thread and put back here right after the spawn.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let h = std::thread::Builder::new()
        .name("test-shadow".into())
        .spawn(move || {
            sandbox::thread_init().expect("thread_init");
            f()
        })
        .unwrap();
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    h.join().unwrap()
}

struct Lib {
    ns: Ns,
    unary: Invoker,
    add: Invoker,
}

impl Lib {
    fn load() -> Lib {
        let t = TypeTable::new();
        Lib {
            ns: Ns::open(build_lib()),
            unary: Invoker::new(&parse_signature("int f(int x)", &t).unwrap()),
            add: Invoker::new(&parse_signature("int t_add(int a, int b)", &t).unwrap()),
        }
    }

    fn call1(&self, name: &str, x: i32, timeout_ms: u32) -> Result<i32, CallFailure> {
        self.call1_guarded(name, x, None, timeout_ms)
    }

    fn call1_guarded(
        &self,
        name: &str,
        x: i32,
        guard: Option<GuardFn>,
        timeout_ms: u32,
    ) -> Result<i32, CallFailure> {
        let f = self.ns.sym(name);
        // SAFETY: every `t_*` function of the library takes and returns int.
        let r = unsafe {
            self.unary.call_sandboxed(
                f as *const _,
                &[Raw::Bits(x as u32 as u64)],
                guard,
                timeout_ms,
            )
        };
        r.map(|r| match r {
            Raw::Bits(b) => b as u32 as i32,
            other => panic!("{other:?}"),
        })
    }

    fn add(&self, a: i32, b: i32) -> i32 {
        let f = self.ns.sym("t_add");
        let args = [Raw::Bits(a as u32 as u64), Raw::Bits(b as u32 as u64)];
        // SAFETY: t_add(int, int) -> int.
        match unsafe { self.add.call_sandboxed(f as *const _, &args, None, 1000) } {
            Ok(Raw::Bits(b)) => b as u32 as i32,
            other => panic!("t_add: {other:?}"),
        }
    }
}

fn fault_of(r: Result<i32, CallFailure>, what: &str) -> Fault {
    match r {
        Err(CallFailure::Fault(f)) => f,
        other => panic!("{what}: expected a fault, got {other:?}"),
    }
}

fn assert_in(pc: usize, object_suffix: &str, what: &str) {
    let obj = object_of(pc);
    assert!(
        obj.ends_with(object_suffix),
        "{what}: pc {pc:#x} in {obj}, not {object_suffix}"
    );
}

const LIBC: &str = "libc.so.6";
// si_code values (<asm-generic/siginfo.h>) the libc crate does not export.
const SEGV_MAPERR: i32 = 1;
const FPE_INTDIV: i32 = 1;
const ILL_ILLOPN: i32 = 2;

#[test]
fn faults_are_contained_and_the_namespace_still_answers() {
    let lib = build_lib().to_path_buf();
    on_shadow_thread(move || {
        let l = Lib::load();
        let me = lib.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(l.call1("t_abort", -7, 0), Ok(-7), "a plain return");
        assert_eq!(l.add(2, 3), 5);

        // (function, signal, si_code or None, where the pc must be)
        let cases: &[(&str, i32, Option<i32>, &str)] = &[
            ("t_null", libc::SIGSEGV, Some(SEGV_MAPERR), &me),
            ("t_div0", libc::SIGFPE, Some(FPE_INTDIV), &me),
            ("t_trap", libc::SIGILL, Some(ILL_ILLOPN), &me),
            ("t_int3", libc::SIGTRAP, Some(libc::SI_KERNEL), &me),
            ("t_recurse", libc::SIGSEGV, None, &me),
            ("t_bus", libc::SIGBUS, Some(libc::BUS_ADRERR), &me),
            ("t_raise_bus", libc::SIGBUS, Some(libc::SI_TKILL), LIBC),
            ("t_raise_sys", libc::SIGSYS, Some(libc::SI_TKILL), LIBC),
            ("t_abort", libc::SIGABRT, Some(libc::SI_TKILL), LIBC),
            ("t_assert", libc::SIGABRT, Some(libc::SI_TKILL), LIBC),
            ("t_printf_crash", libc::SIGSEGV, Some(SEGV_MAPERR), LIBC),
            ("t_double_free", libc::SIGABRT, Some(libc::SI_TKILL), LIBC),
        ];
        for &(name, sig, code, obj) in cases {
            let f = fault_of(l.call1(name, 1, 5000), name);
            assert_eq!(f.signal_name(), sandbox::signal_name(sig), "{name}: {f:?}");
            if let Some(code) = code {
                assert_eq!(f.code, code, "{name}: si_code of {f:?}");
            }
            assert_in(f.pc, obj, name);
            if name == "t_null" {
                assert_eq!(f.addr, 0);
            }
            // Same thread, same namespace: still answers.
            assert_eq!(l.add(40, 2), 42, "after {name}");
        }

        // A fault inside a guarded call, and the guard's exception.
        let guard_pass: GuardFn = unsafe { std::mem::transmute(l.ns.sym("guard_pass")) };
        let guard_throw: GuardFn = unsafe { std::mem::transmute(l.ns.sym("guard_throw")) };
        assert_eq!(l.call1_guarded("t_abort", -3, Some(guard_pass), 0), Ok(-3));
        let f = fault_of(
            l.call1_guarded("t_null", 1, Some(guard_pass), 0),
            "guarded t_null",
        );
        assert_eq!(f.signal, libc::SIGSEGV);
        assert_in(f.pc, &me, "guarded t_null");
        assert_eq!(
            l.call1_guarded("t_abort", -3, Some(guard_throw), 0),
            Err(CallFailure::Exception {
                ty: "std::runtime_error".into(),
                what: "boom".into()
            })
        );

        // The thread's mask is as thread_init left it.
        let mut now: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: reads the calling thread's mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut now) };
        for sig in [
            libc::SIGSEGV,
            libc::SIGABRT,
            libc::SIGBUS,
            sandbox::timer_signal(),
        ] {
            assert_eq!(unsafe { libc::sigismember(&now, sig) }, 0, "{sig} blocked");
        }
        assert_eq!(unsafe { libc::sigismember(&now, libc::SIGINT) }, 1);

        // A fresh namespace answers too.
        let fresh = Lib::load();
        assert_eq!(fresh.add(1, 1), 2);
        assert_eq!(l.add(1, 2), 3);
    });
}

#[test]
fn hangs_that_accept_signals_time_out() {
    let lib = build_lib().to_path_buf();
    on_shadow_thread(move || {
        let l = Lib::load();
        let me = lib.file_name().unwrap().to_str().unwrap().to_string();
        for (name, timeout, obj) in [("t_spin", 200u32, me.as_str()), ("t_sleep", 150, LIBC)] {
            let t0 = Instant::now();
            let r = l.call1(name, 1, timeout);
            let took = t0.elapsed();
            let f = match r {
                Err(CallFailure::Timeout(f)) => f,
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(f.signal, sandbox::timer_signal());
            assert_eq!(f.code, libc::SI_TIMER);
            assert_in(f.pc, obj, name);
            assert!(
                took >= Duration::from_millis(timeout as u64),
                "{name}: {took:?}"
            );
            assert!(
                took < Duration::from_millis(2 * timeout as u64),
                "{name}: {took:?}"
            );
            assert_eq!(l.add(20, 22), 42, "after {name}");
        }
        // A call that ends well inside its limit is not hit by a late timer
        // signal, neither now nor after the limit has passed.
        for _ in 0..200 {
            assert_eq!(l.call1("t_abort", -1, 1), Ok(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(l.add(1, 1), 2);
    });
}

#[test]
fn sandboxed_calls_cost() {
    on_shadow_thread(|| {
        let l = Lib::load();
        let f = l.ns.sym("t_add");
        let args = [Raw::Bits(1), Raw::Bits(2)];
        let n = 20_000;
        let t0 = Instant::now();
        for _ in 0..n {
            // SAFETY: t_add(int, int) -> int.
            assert_eq!(unsafe { l.add.call(f as *const _, &args) }, Raw::Bits(3));
        }
        let plain = t0.elapsed() / n;
        let mut costs = Vec::new();
        for timeout in [0u32, 1000] {
            let t0 = Instant::now();
            for _ in 0..n {
                // SAFETY: as above.
                let r = unsafe { l.add.call_sandboxed(f as *const _, &args, None, timeout) };
                assert_eq!(r, Ok(Raw::Bits(3)));
            }
            costs.push(t0.elapsed() / n);
        }
        // Re-reading the dispositions every 1000th call only.
        sandbox::set_recheck_every(1000);
        let t0 = Instant::now();
        for _ in 0..n {
            // SAFETY: as above.
            let r = unsafe { l.add.call_sandboxed(f as *const _, &args, None, 1000) };
            assert_eq!(r, Ok(Raw::Bits(3)));
        }
        costs.push(t0.elapsed() / n);
        sandbox::set_recheck_every(1);
        eprintln!(
            "per call: plain {plain:?}, sandboxed without timer {:?}, with timer {:?}, \
             with timer and a re-check every 1000 calls {:?}",
            costs[0], costs[1], costs[2]
        );
    });
}

#[test]
fn an_unprepared_thread_is_prepared_lazily() {
    // A thread with the default mask that never called thread_init.
    std::thread::spawn(|| {
        let l = Lib::load();
        let f = fault_of(l.call1("t_null", 1, 0), "lazy t_null");
        assert_eq!(f.signal, libc::SIGSEGV);
        assert_eq!(l.add(3, 4), 7);
    })
    .join()
    .unwrap();
}
