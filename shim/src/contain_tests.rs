//! `contain` against the fault-injection fixture's new build
//! (`cxx-fixtures/faults`) and a small side-effect library built here,
//! each loaded as DDL loads the new build (`dlmopen(LM_ID_NEWLM)`,
//! `RTLD_NOW`), patched, and called through `Invoker::call_sandboxed` on a
//! thread prepared as a shadow thread (every other signal blocked,
//! `sandbox::thread_init`, the exit backstop).
//!
//! Everything runs in one test function on one shadow thread, in order:
//! namespaces are few, and the backstop stays on its thread.

use super::*;

use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use arbiter::invoke::Invoker;
use arbiter::marshal::Raw;
use arbiter::sandbox::CallFailure;
use arbiter::signature::{parse_signature, TypeTable};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the faults fixture (`make -C cxx-fixtures OUT=…`) into this
/// build's OUT_DIR and returns the new build's path.
fn fault_new_build() -> PathBuf {
    let out = Path::new(env!("OUT_DIR")).join("fixtures");
    let lib = out.join("faults/new/libfault.so.1");
    let st = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo().join("cxx-fixtures"))
        .arg(format!("OUT={}", out.display()))
        .arg(&lib)
        .status()
        .expect("make");
    assert!(st.success(), "building the faults fixture failed");
    lib
}

const SIDE_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <errno.h>
#include <spawn.h>

/* fopen for write, fprintf, fclose: returns what fprintf returned. */
int s_fopen(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    int n = fprintf(f, "x=%d %s\n", 42, "forty-two");
    fclose(f);
    return n;
}
/* open for write, write, close: returns write's result. */
int s_open(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -errno;
    int n = (int)write(fd, "abc", 3);
    close(fd);
    return n;
}
/* open for read: performed. Returns the bytes read. */
int s_read(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    int n = (int)read(fd, buf, sizeof buf);
    close(fd);
    return n;
}
int s_unlink(const char *path) { return unlink(path); }
int s_rename(const char *a) { return rename(a, "/nonexistent/renamed"); }
int s_fork(int x) {
    (void)x;
    pid_t p = fork();
    if (p == 0) _exit(0);
    return p < 0 ? -errno : 1;
}
int s_system(int x) { (void)x; int r = system("echo from-system"); return r < 0 ? -errno : r; }
int s_spawn(int x) {
    (void)x;
    pid_t pid;
    char *argv[] = {"true", NULL};
    return posix_spawnp(&pid, "true", NULL, NULL, argv, NULL);
}
int s_kill(int pid) { return kill(pid, SIGTERM); }
int s_signal(int x) {
    (void)x;
    void (*prev)(int) = signal(SIGUSR1, SIG_IGN);
    void (*now)(int) = signal(SIGUSR1, SIG_DFL);
    /* 1 when the second call saw what the first set */
    return now == SIG_IGN ? 1 : prev == SIG_ERR ? -1 : 0;
}
int s_altstack(int x) {
    (void)x;
    stack_t ss = {0};
    ss.ss_flags = SS_DISABLE;
    return sigaltstack(&ss, NULL);
}
int s_writev(int fd) {
    struct iovec v[2] = {{"ab", 2}, {"cde", 3}};
    return (int)writev(fd, v, 2);
}
int s_long_printf(int n) { return printf("%*d|", n, 7); }
int s_custom(int x) { (void)x; return (int)(long)getpid(); }
/* Prints for ever: a timeout falls inside DDL's recording sooner or later. */
int s_spin_print(int x) { for (;;) printf("spin %d\n", x); }
"#;

fn side_lib() -> PathBuf {
    let dir = Path::new(env!("OUT_DIR")).join("contain-test");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("libside.c");
    std::fs::write(&src, SIDE_C).unwrap();
    let out = dir.join("libside.so");
    let st = Command::new("gcc")
        .args(["-O2", "-D_FORTIFY_SOURCE=2", "-fPIC", "-shared"])
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc failed");
    out
}

struct Lib {
    handle: *mut c_void,
}

impl Lib {
    fn open(path: &Path) -> Lib {
        let c = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; dlmopen as DDL does it.
        let handle = unsafe {
            libc::dlmopen(
                libc::LM_ID_NEWLM,
                c.as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        };
        assert!(!handle.is_null(), "dlmopen {}", crate::namespace::dlerror());
        Lib { handle }
    }

    fn sym(&self, name: &str) -> usize {
        let c = CString::new(name).unwrap();
        let p = real_dlsym(self.handle, &c);
        assert!(p != 0, "{name} not found");
        p
    }
}

/// Calls `name(arg)` (an `int f(int)` or `int f(const char *)`) in the
/// sandbox.
fn call(
    inv: &Invoker,
    lib: &Lib,
    name: &str,
    arg: Raw,
    timeout_ms: u32,
) -> Result<i32, CallFailure> {
    let f = lib.sym(name);
    // SAFETY: every function called takes one int or pointer and returns int.
    unsafe { inv.call_sandboxed(f as *const c_void, &[arg], None, timeout_ms) }.map(|r| match r {
        Raw::Bits(b) => b as u32 as i32,
        other => panic!("{other:?}"),
    })
}

fn int(x: i32) -> Raw {
    Raw::Bits(x as u32 as u64)
}

fn ptr(s: &CString) -> Raw {
    Raw::Bits(s.as_ptr() as u64)
}

fn handler_of(sig: c_int) -> usize {
    // SAFETY: a query into a zeroed local.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut sa);
        sa.sa_sigaction
    }
}

/// A pipe with a non-blocking read end: (read, write).
fn pipe() -> (std::fs::File, c_int) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a local array.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
        0
    );
    // SAFETY: a descriptor we own.
    (unsafe { std::fs::File::from_raw_fd(fds[0]) }, fds[1])
}

fn drained(r: &mut std::fs::File) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn on_shadow_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: mask calls on local sets; the new thread inherits the full
    // mask, which is put back here right after the spawn.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let h = std::thread::Builder::new()
        .name("contain-shadow".into())
        .spawn(move || {
            sandbox::thread_init().expect("thread_init");
            sandbox::install_thread_backstop().expect("backstop");
            f()
        })
        .unwrap();
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    h.join().unwrap()
}

fn exit_of(r: Result<i32, CallFailure>) -> (i32, &'static str) {
    match r {
        Err(CallFailure::Exit { status, how, .. }) => (status, how),
        other => panic!("expected an exit, got {other:?}"),
    }
}

#[test]
fn table_names_are_unique_and_resolvable() {
    let mut seen = std::collections::HashSet::new();
    for e in intercepted() {
        assert!(seen.insert(e.name), "{} twice", e.name);
        assert_eq!(static_name(CString::new(e.name).unwrap().as_ptr()), e.name);
        assert!(e.replacement != 0);
    }
    for n in [
        "write",
        "printf",
        "__printf_chk",
        "exit",
        "sigaction",
        "fork",
        "open",
    ] {
        assert!(seen.contains(n), "{n} missing");
    }
}

#[test]
fn fault_fixture_and_side_effects_are_contained() {
    let fault = fault_new_build();
    let side = side_lib();
    let fault2 = fault.clone();
    on_shadow_thread(move || {
        let t = TypeTable::new();
        let unary = Invoker::new(&parse_signature("int f(int x)", &t).unwrap());
        let binary = Invoker::new(&parse_signature("int f(int a, int b)", &t).unwrap());
        let strfn = Invoker::new(&parse_signature("int f(const char *s)", &t).unwrap());
        let fl = Lib::open(&fault);
        // SAFETY: a live dlmopen handle of a new namespace.
        let rep = unsafe { patch_namespace(fl.handle, &[]) }.expect("patch");
        let patched: Vec<&str> = rep.patched.iter().map(|(_, f)| *f).collect();
        for f in [
            "exit",
            "_exit",
            "_Exit",
            "quick_exit",
            "write",
            "puts",
            "printf",
            "sigaction",
            "pthread_sigmask",
        ] {
            assert!(patched.contains(&f), "{f} not patched: {rep:?}");
        }
        assert!(
            rep.skipped.iter().any(|s| s.contains("dynamic loader")),
            "{rep:?}"
        );
        // Idempotent.
        // SAFETY: as above.
        let again = unsafe { patch_namespace(fl.handle, &[]) }.unwrap();
        assert!(
            again.patched.is_empty() && again.already == rep.patched.len(),
            "{again:?}"
        );

        let fault_do = fl.sym("fault_do");
        let call2 = |what: i32, timeout: u32| -> Result<i32, CallFailure> {
            // SAFETY: int fault_do(int, int).
            unsafe {
                binary.call_sandboxed(
                    fault_do as *const c_void,
                    &[int(what), int(7)],
                    None,
                    timeout,
                )
            }
            .map(|r| match r {
                Raw::Bits(b) => b as u32 as i32,
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(call2(0, 0), Ok(7));

        // Exits: each kind comes back with its status; the process lives on.
        assert_eq!(exit_of(call2(10, 2000)), (3, "exit"));
        assert_eq!(exit_of(call2(11, 2000)), (4, "_exit"));
        assert_eq!(exit_of(call2(12, 2000)), (5, "_Exit"));
        assert_eq!(exit_of(call2(13, 2000)), (6, "quick_exit"));
        // error(1, 0, …): exit from inside libc, caught by the backstop.
        assert_eq!(exit_of(call2(14, 2000)), (1, "exit_group"));
        assert_eq!(call2(0, 0), Ok(7), "still callable");
        let _ = take_outgoing();

        // write(1, …): recorded, nothing reaches fd 1.
        let (mut r1, w1) = pipe();
        // SAFETY: fd juggling on descriptors we own; fd 1 is put back.
        let saved = unsafe { libc::dup(1) };
        unsafe { libc::dup2(w1, 1) };
        let r = call2(18, 2000);
        // puts + fflush(stdout): recorded as stdout.
        let r17 = call2(17, 2000);
        unsafe {
            libc::dup2(saved, 1);
            libc::close(saved);
            libc::close(w1);
        }
        assert_eq!(r, Ok(18007));
        assert_eq!(r17, Ok(17007));
        let leaked = drained(&mut r1);
        assert!(
            !String::from_utf8_lossy(&leaked).contains("libfault (new)"),
            "reached fd 1: {leaked:?}"
        );
        let out = take_outgoing();
        assert_eq!(out.len(), 2, "{out:?}");
        let line = b"libfault (new): a write(1)\n";
        assert_eq!(
            (
                out[0].function,
                out[0].target.as_str(),
                &out[0].bytes[..],
                out[0].len
            ),
            ("write", "fd:1", &line[..], line.len())
        );
        let line = b"libfault (new): a line on stdout\n";
        assert_eq!(
            (out[1].function, out[1].target.as_str(), &out[1].bytes[..]),
            ("puts", "stdout", &line[..])
        );

        // fault_write(fd, s) to a pipe: recorded under the fd, not written.
        let (mut r2, w2) = pipe();
        let s = CString::new("to the pipe").unwrap();
        let fw = fl.sym("fault_write");
        let strint = Invoker::new(&parse_signature("int f(int fd, const char *s)", &t).unwrap());
        // SAFETY: int fault_write(int, const char *).
        let r =
            unsafe { strint.call_sandboxed(fw as *const c_void, &[int(w2), ptr(&s)], None, 2000) };
        assert!(matches!(r, Ok(Raw::Bits(11))), "{r:?}");
        assert!(drained(&mut r2).is_empty());
        let out = take_outgoing();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].target, format!("fd:{w2}"));
        assert_eq!(out[0].bytes, b"to the pipe");
        // SAFETY: our descriptor.
        unsafe { libc::close(w2) };

        // printf("%s", (char *)1): a fault in formatting, contained.
        assert!(matches!(call2(9, 2000), Err(CallFailure::Fault(f)) if f.signal == libc::SIGSEGV));

        // sigaction(SIGSEGV) by the new build: the process's handler stays.
        let before = handler_of(libc::SIGSEGV);
        assert_eq!(call2(19, 2000), Ok(19007));
        assert_eq!(
            handler_of(libc::SIGSEGV),
            before,
            "the new build's handler was installed"
        );
        let out = take_outgoing();
        assert!(
            out.iter()
                .any(|o| o.function == "sigaction" && o.target == "SIGSEGV"),
            "{out:?}"
        );
        // A NULL dereference is still DDL's fault to contain.
        assert!(matches!(call2(1, 2000), Err(CallFailure::Fault(f)) if f.signal == libc::SIGSEGV));

        // Blocking SIGSEGV, SIGALRM and every real-time signal: DDL's are
        // left unblocked, SIGALRM is blocked.
        assert_eq!(call2(22, 2000), Ok(22007));
        // SAFETY: a mask query into a local.
        let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur) };
        // SAFETY: sigismember on a valid set.
        let blocked = |s: c_int| unsafe { libc::sigismember(&cur, s) } == 1;
        assert!(!blocked(libc::SIGSEGV) && !blocked(sandbox::timer_signal()));
        assert!(blocked(libc::SIGALRM));

        // Every signal blocked, then a spin: the timer still gets through.
        let t0 = Instant::now();
        assert!(matches!(call2(16, 300), Err(CallFailure::Timeout(_))));
        assert!(t0.elapsed() < Duration::from_secs(5));
        let _ = take_outgoing();

        // ---- the side-effect library (fortified, -O2) -------------------
        let sl = Lib::open(&side);
        // SAFETY: a live dlmopen handle of a new namespace.
        let rep =
            unsafe { patch_namespace(sl.handle, &["getpid".to_string()]) }.expect("patch side");
        assert!(rep.patched.iter().any(|(_, f)| *f == "getpid"), "{rep:?}");
        let dir = Path::new(env!("OUT_DIR")).join("contain-test");
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, b"keep me\n").unwrap();
        let vpath = CString::new(victim.to_str().unwrap()).unwrap();

        // fopen("w") + fprintf + fclose: the file is untouched.
        let r = call(&strfn, &sl, "s_fopen", ptr(&vpath), 2000);
        assert_eq!(r, Ok("x=42 forty-two\n".len() as i32));
        let out = take_outgoing();
        let fns: Vec<&str> = out.iter().map(|o| o.function).collect();
        assert_eq!(fns, ["fopen", "__fprintf_chk"], "{out:?}");
        assert_eq!(out[1].target, victim.to_str().unwrap());
        assert_eq!(out[1].bytes, b"x=42 forty-two\n");
        // open(O_CREAT|O_TRUNC) + write: the file is untouched.
        assert_eq!(call(&strfn, &sl, "s_open", ptr(&vpath), 2000), Ok(3));
        let out = take_outgoing();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            (out[1].function, out[1].target.as_str()),
            ("write", victim.to_str().unwrap())
        );
        // Reading is performed.
        assert_eq!(call(&strfn, &sl, "s_read", ptr(&vpath), 2000), Ok(8));
        // unlink, rename: not performed.
        assert_eq!(call(&strfn, &sl, "s_unlink", ptr(&vpath), 2000), Ok(0));
        assert_eq!(call(&strfn, &sl, "s_rename", ptr(&vpath), 2000), Ok(0));
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me\n");
        let out = take_outgoing();
        assert_eq!(out[0].function, "unlink");
        assert_eq!(
            (out[1].function, &out[1].bytes[..]),
            ("rename", &b"/nonexistent/renamed"[..])
        );

        // Processes: never started.
        assert_eq!(call(&unary, &sl, "s_fork", int(0), 2000), Ok(-libc::EAGAIN));
        assert_eq!(
            call(&unary, &sl, "s_system", int(0), 2000),
            Ok(-libc::EAGAIN)
        );
        assert_eq!(call(&unary, &sl, "s_spawn", int(0), 2000), Ok(libc::EAGAIN));
        // kill(own pid, SIGTERM): not sent (the test would end otherwise).
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        assert_eq!(call(&unary, &sl, "s_kill", int(me), 2000), Ok(0));
        let out = take_outgoing();
        let fns: Vec<&str> = out.iter().map(|o| o.function).collect();
        assert_eq!(fns, ["fork", "system", "posix_spawnp", "kill"], "{out:?}");
        assert_eq!(out[3].target, format!("pid:{me}"));
        assert_eq!(out[3].bytes, b"SIGTERM");

        // signal(): recorded, answered from the namespace's table.
        let before = handler_of(libc::SIGUSR1);
        assert_eq!(call(&unary, &sl, "s_signal", int(0), 2000), Ok(1));
        assert_eq!(handler_of(libc::SIGUSR1), before);
        // sigaltstack(SS_DISABLE): DDL's alternate stack stays.
        assert_eq!(call(&unary, &sl, "s_altstack", int(0), 2000), Ok(0));
        // SAFETY: a query into a local.
        let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sigaltstack(std::ptr::null(), &mut ss) };
        assert_eq!(
            ss.ss_flags & libc::SS_DISABLE,
            0,
            "DDL's alternate stack was disabled"
        );
        let _ = take_outgoing();

        // writev to stdout: the two pieces, 5 bytes.
        assert_eq!(call(&unary, &sl, "s_writev", int(1), 2000), Ok(5));
        let out = take_outgoing();
        assert_eq!(
            (out[0].function, &out[0].bytes[..], out[0].len),
            ("writev", &b"abcde"[..], 5)
        );

        // A printf longer than KEEP: the count, KEEP bytes kept, the hash
        // of all of it.
        assert_eq!(
            call(&unary, &sl, "s_long_printf", int(10000), 2000),
            Ok(10001)
        );
        let out = take_outgoing();
        assert_eq!(
            (out[0].function, out[0].len, out[0].bytes.len()),
            ("__printf_chk", 10001, KEEP)
        );
        let mut full = Capture::new();
        full.feed_bytes(format!("{:>10000}|", 7).as_bytes());
        assert_eq!(out[0].hash, full.hash);

        // A config name: generic, recorded by name, 0.
        assert_eq!(call(&unary, &sl, "s_custom", int(0), 2000), Ok(0));
        let out = take_outgoing();
        assert_eq!((out[0].function, out[0].target.as_str()), ("getpid", ""));

        // Timeouts while DDL records (allocating, locking): deferred to
        // the end of the recording, never leaving its state half-way. Many
        // rounds, then the thread and the allocator still work.
        let dropped = outgoing_dropped();
        let deferred = sandbox::deferred_timeouts();
        for round in 0..40 {
            let r = call(&unary, &sl, "s_spin_print", int(round), 20);
            assert!(matches!(r, Err(CallFailure::Timeout(_))), "{r:?}");
            let out = take_outgoing();
            assert!(out.len() <= MAX_PENDING);
            assert!(out
                .iter()
                .all(|o| o.function == "printf" || o.function == "__printf_chk"));
        }
        assert!(outgoing_dropped() >= dropped);
        assert!(
            sandbox::deferred_timeouts() > deferred,
            "no timeout fell inside a recording in 40 rounds"
        );
        let v: Vec<u64> = (0..100_000).collect();
        assert_eq!(v.iter().sum::<u64>(), 4_999_950_000);
        assert_eq!(call(&unary, &sl, "s_writev", int(1), 2000), Ok(5));
        assert_eq!(take_outgoing().len(), 1);
        forget_namespace(sl.handle);
    });

    // An exit on a thread that is not inside a sandboxed call (a thread of
    // the new build's own): parked for ever, never the process.
    let fl = Lib::open(&fault2);
    // SAFETY: a live dlmopen handle of a new namespace.
    unsafe { patch_namespace(fl.handle, &[]) }.expect("patch");
    let fault_do = fl.sym("fault_do");
    let parked = sandbox::parked_threads();
    std::thread::spawn(move || {
        // SAFETY: int fault_do(int, int); it parks this thread.
        let f: extern "C" fn(c_int, c_int) -> c_int = unsafe { std::mem::transmute(fault_do) };
        f(10, 7);
        unreachable!("exit returned");
    });
    let t0 = Instant::now();
    while sandbox::parked_threads() == parked {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the thread was not parked"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
