//! The sandbox's handlers and the application's: an application thread's
//! own faults reach the handlers the application installed, before or
//! after `sandbox::install`, in the order they would run without DDL, and
//! the shadow thread's faults stay contained all along. A binary of its
//! own: the order of `install` and the application's `sigaction`s matters.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

use arbiter::invoke::Invoker;
use arbiter::marshal::Raw;
use arbiter::sandbox::{self, CallFailure};
use arbiter::signature::{parse_signature, TypeTable};

/// The application's side, in C: handlers that `siglongjmp` out (A before
/// DDL, B after DDL; B can pass the signal on to what it displaced), and a
/// fault in a C frame with the `sigsetjmp` they return to.
const APP_C: &str = r#"
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sigjmp_buf jb;
static volatile int armed;
int hits_a, hits_b, b_passes;
static struct sigaction prev_a, prev_b;

static void handler_a(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)si; (void)uc;
    hits_a++;
    if (armed) siglongjmp(jb, 1);
}
static void handler_b(int sig, siginfo_t *si, void *uc) {
    hits_b++;
    if (b_passes) {
        if (prev_b.sa_flags & SA_SIGINFO) prev_b.sa_sigaction(sig, si, uc);
        else if (prev_b.sa_handler != SIG_DFL && prev_b.sa_handler != SIG_IGN) prev_b.sa_handler(sig);
        return;
    }
    if (armed) siglongjmp(jb, 2);
}
static int install(void (*h)(int, siginfo_t *, void *), struct sigaction *prev) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO;
    return sigaction(SIGSEGV, &sa, prev);
}
int install_a(void) { return install(handler_a, &prev_a); }
int install_b(void) { return install(handler_b, &prev_b); }
void set_b_passes(int on) { b_passes = on; }
int get_hits_a(void) { return hits_a; }
int get_hits_b(void) { return hits_b; }

/* 1: A took it, 2: B took it. */
int fault_caught(void) {
    int r = sigsetjmp(jb, 1);
    if (r) { armed = 0; return r; }
    armed = 1;
    volatile int *p = NULL;
    *p = 1;
    armed = 0;
    return 0;
}
/* The new build's own handler, installed from its namespace. */
static void handler_foreign(int sig) { (void)sig; _exit(97); }
int install_foreign(int x) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler_foreign;
    return sigaction(SIGSEGV, &sa, NULL) + x;
}
int null_deref(int x) { volatile int *p = NULL; return *p + x; }
void do_abort(void) { abort(); }
"#;

fn build() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-chain-test");
    std::fs::create_dir_all(&dir).unwrap();
    // One source and output per process and per call: the test binary
    // runs itself as a child too, and its tests run on parallel threads
    // (a shared file was rewritten under another test's dlopen).
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("{}-{n}", std::process::id());
    let src = dir.join(format!("libapp-{tag}.c"));
    std::fs::write(&src, APP_C).unwrap();
    let out = dir.join(format!("libapp-{tag}.so"));
    let st = Command::new("gcc")
        .args(["-O1", "-g", "-fPIC", "-shared", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success());
    out
}

struct App {
    handle: *mut libc::c_void,
    /// The same library in a namespace of its own, as a new build.
    new_ns: *mut libc::c_void,
}

impl App {
    fn load() -> App {
        let path = build();
        let c = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: plain dlopen in the base namespace: the application's code.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW) };
        assert!(!handle.is_null(), "{:?}", unsafe {
            CStr::from_ptr(libc::dlerror())
        });
        // SAFETY: as above, in a new namespace as DDL loads a new build.
        let new_ns = unsafe { libc::dlmopen(libc::LM_ID_NEWLM, c.as_ptr(), libc::RTLD_NOW) };
        assert!(!new_ns.is_null());
        let _ = std::fs::remove_file(&path); // mapped; the files are no longer needed
        let _ = std::fs::remove_file(path.with_extension("c"));
        App { handle, new_ns }
    }
    fn sym(&self, name: &str) -> usize {
        let c = CString::new(name).unwrap();
        // SAFETY: a live handle, a NUL-terminated name.
        let p = unsafe { libc::dlsym(self.handle, c.as_ptr()) };
        assert!(!p.is_null(), "{name}");
        p as usize
    }
    fn int0(&self, name: &str) -> i32 {
        // SAFETY: every function called this way is `int f(void)`.
        let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(self.sym(name)) };
        f()
    }
    fn set_b_passes(&self, on: bool) {
        // SAFETY: `void set_b_passes(int)`.
        let f: extern "C" fn(i32) = unsafe { std::mem::transmute(self.sym("set_b_passes")) };
        f(on as i32)
    }
}

/// A sandboxed `null_deref` on a thread set up as the shadow thread.
fn shadow_fault(app: &App) {
    let f = app.sym("null_deref");
    std::thread::spawn(move || {
        // SAFETY: a full set; this thread's mask only.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        }
        sandbox::thread_init().unwrap();
        let inv =
            Invoker::new(&parse_signature("int null_deref(int x)", &TypeTable::new()).unwrap());
        // SAFETY: `int null_deref(int)`.
        match unsafe { inv.call_sandboxed(f as *const _, &[Raw::Bits(1)], None, 1000) } {
            Err(CallFailure::Fault(f)) => assert_eq!(f.signal, libc::SIGSEGV),
            other => panic!("{other:?}"),
        }
    })
    .join()
    .unwrap();
}

#[test]
fn application_handlers_before_and_after_install() {
    if std::env::var_os("DDL_SANDBOX_CHILD").is_some() {
        return;
    }
    let app = App::load();
    assert_eq!(app.int0("install_a"), 0);
    assert_eq!(app.int0("fault_caught"), 1, "A, before DDL");

    sandbox::install().unwrap();
    sandbox::install().unwrap(); // idempotent
    assert_eq!(app.int0("fault_caught"), 1, "A, under DDL's handler");
    assert_eq!(app.int0("get_hits_a"), 2);

    shadow_fault(&app);
    assert_eq!(app.int0("get_hits_a"), 2, "the shadow's fault is not A's");

    // B, installed over DDL's handler, gets the application's faults.
    assert_eq!(app.int0("install_b"), 0);
    assert_eq!(app.int0("fault_caught"), 2, "B, installed after DDL");
    let retaken = sandbox::retaken_handlers();

    // The next sandboxed call puts DDL's handler over B: the shadow's fault
    // is contained, the application's still go to B.
    shadow_fault(&app);
    assert_eq!(sandbox::retaken_handlers(), retaken + 1);
    assert_eq!(app.int0("get_hits_b"), 1, "the shadow's fault is not B's");
    assert_eq!(app.int0("fault_caught"), 2, "B, under DDL's handler");
    assert_eq!(app.int0("get_hits_b"), 2);

    // B passes the signal on to what it displaced (DDL's handler), which
    // passes it on to A: the order without DDL (B, then A), once each.
    app.set_b_passes(true);
    assert_eq!(app.int0("fault_caught"), 1, "B, then A");
    assert_eq!(app.int0("get_hits_b"), 3);
    assert_eq!(app.int0("get_hits_a"), 3);
    app.set_b_passes(false);

    shadow_fault(&app);
    assert_eq!(app.int0("get_hits_a"), 3);
    assert_eq!(app.int0("get_hits_b"), 3);
    assert_eq!(app.int0("fault_caught"), 2);

    // The new build installs its own SIGSEGV handler from its namespace:
    // the next sandboxed call drops it (never chained to), the shadow's
    // fault is contained and the application's faults still go to B.
    let c = CString::new("install_foreign").unwrap();
    // SAFETY: a live handle, a NUL-terminated name.
    let f = unsafe { libc::dlsym(app.new_ns, c.as_ptr()) } as usize;
    assert_ne!(f, 0);
    let foreign = sandbox::foreign_handlers();
    std::thread::spawn(move || {
        let inv = Invoker::new(&parse_signature("int f(int x)", &TypeTable::new()).unwrap());
        // SAFETY: `int install_foreign(int)`.
        let r = unsafe { inv.call_sandboxed(f as *const _, &[Raw::Bits(5)], None, 1000) };
        assert_eq!(r, Ok(Raw::Bits(5)));
    })
    .join()
    .unwrap();
    shadow_fault(&app);
    assert_eq!(sandbox::foreign_handlers(), foreign + 1);
    assert_eq!(
        app.int0("fault_caught"),
        2,
        "B, not the new build's handler"
    );
    assert_eq!(app.int0("get_hits_a"), 3);
}

/// In a child process (this binary again): what `DDL_SANDBOX_CHILD` says.
#[test]
fn child() {
    let Some(what) = std::env::var_os("DDL_SANDBOX_CHILD") else {
        return;
    };
    let what = what.to_str().unwrap();
    let app = App::load();
    if what != "segv-rust" {
        // Nothing below DDL's handler but the default action (the Rust
        // runtime installed its own SIGSEGV handler at start).
        // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask.
        unsafe {
            let dfl: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut());
        }
    }
    sandbox::install().unwrap();
    shadow_fault(&app);
    match what {
        "segv" | "segv-rust" => {
            app.int0("null_deref");
        }
        "abort" => {
            // SAFETY: `void do_abort(void)`.
            let f: extern "C" fn() = unsafe { std::mem::transmute(app.sym("do_abort")) };
            f();
        }
        "kill" => {
            // SIGSEGV from another process while the shadow thread is not
            // inside a call: the default action.
            let pid = std::process::id();
            Command::new("kill")
                .args(["-SEGV", &pid.to_string()])
                .status()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        other => panic!("{other}"),
    }
    println!("survived");
}

fn run_child(what: &str) -> std::process::ExitStatus {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("DDL_SANDBOX_CHILD", what)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("survived"),
        "{what}: the child survived"
    );
    out.status
}

#[test]
fn without_an_application_handler_the_default_action_ends_the_process() {
    use std::os::unix::process::ExitStatusExt;
    if std::env::var_os("DDL_SANDBOX_CHILD").is_some() {
        return;
    }
    assert_eq!(run_child("segv").signal(), Some(libc::SIGSEGV));
    // The Rust runtime's own SIGSEGV handler below DDL's: for a fault that
    // is not a stack overflow it restores the default action and returns.
    assert_eq!(run_child("segv-rust").signal(), Some(libc::SIGSEGV));
    assert_eq!(run_child("abort").signal(), Some(libc::SIGABRT));
    assert_eq!(run_child("kill").signal(), Some(libc::SIGSEGV));
}
