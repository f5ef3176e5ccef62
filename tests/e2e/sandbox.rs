//! The sandbox (cxx-fixtures/faults): whatever the new build does — crash,
//! exit, hang, install its own signal handler, block signals — the
//! application sees nothing (same stdout, exit status and file contents as
//! without libddl), the call gets the verdict that names what happened and
//! where, and the calls after it are still mirrored.

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::*;

fn faults_config(fx: &Path, report: &Path) -> Value {
    json!({
        "old": "libfault.so.1",
        "new": fx.join("faults/new/libfault.so.1"),
        "timeout_ms": 200,
        "report": report,
        "functions": ["int fault_do(int what, int x)", "int fault_write(int fd, const char *s)"],
    })
}

/// Runs `fault-app -o FILE CODES…` without and with libddl (config `cfg`,
/// in `tmp`): the application's stdout, exit status and FILE must be the
/// same both ways. Returns the run under libddl.
fn run_fault_app(tmp: &TempDir, cfg: &Path, codes: &[&str]) -> Output {
    let fx = fixtures();
    let app = |out: &str| {
        let mut a = App::new(fx.join("faults/apps/fault-app"))
            .arg("-o")
            .arg(tmp.path().join(out));
        for c in codes {
            a = a.arg(*c);
        }
        a
    };
    let plain = run_plain(&app("plain.out"), tmp.path());
    let ddl = run_ddl(&app("ddl.out"), cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    assert_eq!(
        std::fs::read(tmp.path().join("plain.out")).unwrap(),
        std::fs::read(tmp.path().join("ddl.out")).unwrap(),
        "{codes:?}: the application's file differs"
    );
    ddl
}

/// What the new build's `fault_do(code, 7)` must come back as.
enum Want {
    /// `shadow_fault` with this `fault` (a signal name), `at` in this object.
    Signal(&'static str, &'static str),
    /// `shadow_fault` with `"fault": "exit"`, this status and `how`.
    Exit(i64, &'static str),
    /// `shadow_timeout`.
    Hang,
    /// A match: the misbehaviour (a signal mask) was kept from the
    /// process; the application's own SIGSEGV (code 100) after it still
    /// reaches the application's handler.
    Contained,
    /// A mismatch whose only difference is the first outgoing call, which
    /// the new build made and the old one did not (this function); it was
    /// kept from the process.
    Outgoing(&'static str),
}

/// Runs `fault-app CODE 101 0 100` (101: the application pauses 1 s, so
/// that a hung shadow call is over before it exits) without and with
/// libddl: the application's stdout, exit status and file are the same,
/// `fault_do(CODE)` has the wanted verdict and the `fault_do(0)` after it
/// is mirrored and matches.
fn check(code: u32, want: Want) {
    let fx = fixtures();
    let tmp = TempDir::new(&format!("fault-{code}"));
    let report = tmp.path().join("report.jsonl");
    let cfg = tmp.write_config(&faults_config(fx, &report));
    let code_s = code.to_string();
    let ddl = run_fault_app(&tmp, &cfg, &[&code_s, "101", "0", "100"]);
    let report = read_report(&report, &ddl);
    assert_invariants(&report);
    let f = report.get("fault_do");
    let w = report.get("fault_write");
    assert_eq!(
        (f.calls, f.mirrored, f.dropped),
        (2, 2, 0),
        "code {code}: {f:?}"
    );
    assert_eq!((w.calls, w.matched), (2, 2), "code {code}: {w:?}");
    let recs = report.records_of("fault_do");
    match want {
        Want::Contained => {
            assert_eq!(f.matched, 2, "code {code}: {f:?}");
            assert!(recs.is_empty(), "code {code}: {recs:?}");
        }
        _ => {
            // The bad call has its verdict; the one after it matches.
            assert_eq!(f.matched, 1, "code {code}: the call after it: {f:?}");
            assert_eq!(recs.len(), 1, "code {code}: {recs:?}");
            let r = recs[0];
            assert_eq!(r["args"], json!({"what": code, "x": 7}), "{r}");
            match want {
                Want::Signal(sig, object) => {
                    assert_eq!(r["verdict"], "shadow_fault", "{r}");
                    assert_eq!(r["fault"], sig, "{r}");
                    let at = r["at"].as_str().unwrap_or_default();
                    assert!(
                        at.starts_with(&format!("{object}+0x")),
                        "code {code}: at {at}: {r}"
                    );
                }
                Want::Exit(status, how) => {
                    assert_eq!(r["verdict"], "shadow_fault", "{r}");
                    assert_eq!(r["fault"], "exit", "{r}");
                    assert_eq!(r["status"], status, "{r}");
                    assert_eq!(r["how"], how, "{r}");
                }
                Want::Hang => {
                    assert_eq!(r["verdict"], "shadow_timeout", "{r}");
                    assert_eq!(f.shadow_timeout, 1, "{f:?}");
                }
                Want::Outgoing(function) => {
                    assert_eq!(r["verdict"], "mismatch", "{r}");
                    assert_eq!(r["diffs"].as_array().map(Vec::len), Some(1), "{r}");
                    let d = &r["diffs"][0];
                    assert_eq!(d["path"], "outgoing[0]", "{r}");
                    assert_eq!(d["primary"], Value::Null, "{r}");
                    assert_eq!(d["shadow"]["function"], function, "{r}");
                }
                Want::Contained => unreachable!(),
            }
        }
    }
}

#[test]
fn null_dereference() {
    check(1, Want::Signal("SIGSEGV", "libfault.so.1"));
}

#[test]
fn bus_error() {
    check(2, Want::Signal("SIGBUS", "libfault.so.1"));
}

#[test]
fn division_by_zero() {
    check(3, Want::Signal("SIGFPE", "libfault.so.1"));
}

#[test]
fn builtin_trap() {
    check(4, Want::Signal("SIGILL", "libfault.so.1"));
}

#[test]
fn abort() {
    check(5, Want::Signal("SIGABRT", "libc.so.6"));
}

#[test]
fn failed_assert() {
    check(6, Want::Signal("SIGABRT", "libc.so.6"));
}

#[test]
fn stack_overflow() {
    check(7, Want::Signal("SIGSEGV", "libfault.so.1"));
}

#[test]
fn double_free() {
    check(8, Want::Signal("SIGABRT", "libc.so.6"));
}

#[test]
fn crash_inside_printf() {
    check(9, Want::Signal("SIGSEGV", "libc.so.6"));
}

#[test]
fn exit() {
    check(10, Want::Exit(3, "exit"));
}

#[test]
fn underscore_exit() {
    check(11, Want::Exit(4, "_exit"));
}

#[test]
fn underscore_capital_exit() {
    check(12, Want::Exit(5, "_Exit"));
}

#[test]
fn quick_exit() {
    check(13, Want::Exit(6, "quick_exit"));
}

/// `error(1, …)` exits from inside libc: the per-thread seccomp backstop.
#[test]
fn exit_from_inside_libc() {
    check(14, Want::Exit(1, "exit_group"));
}

#[test]
fn hang_that_accepts_signals() {
    check(15, Want::Hang);
}

/// The new build blocks every signal before it spins: its
/// `pthread_sigmask` never blocks DDL's timer signal.
#[test]
fn hang_with_every_signal_blocked() {
    check(16, Want::Hang);
}

/// It blocks every signal with a raw system call, then spins: the timer
/// cannot interrupt it, so the watchdog gives the shadow thread up (moved
/// to SCHED_IDLE) and a fresh one mirrors the calls after it.
#[test]
fn hang_no_signal_can_interrupt() {
    check(23, Want::Hang);
}

/// Its own SIGSEGV handler is never installed: the application's next
/// SIGSEGV (code 100) is still the application's; installing it is an
/// outgoing call the old build does not make (a mismatch).
#[test]
fn own_sigsegv_handler() {
    check(19, Want::Outgoing("sigaction"));
}

#[test]
fn raise_sigsys() {
    check(20, Want::Signal("SIGSYS", "libc.so.6"));
}

#[test]
fn int3() {
    check(21, Want::Signal("SIGTRAP", "libfault.so.1"));
}

/// It blocks SIGSEGV and the real-time signals on the shadow thread: the
/// mask is kept from DDL's signals, and the application is untouched.
#[test]
fn signal_mask() {
    check(22, Want::Contained);
}

/// Every kind in one process, in order: each later call is still mirrored
/// (the poisoned namespaces are replaced).
#[test]
fn every_kind_in_one_process() {
    let fx = fixtures();
    let tmp = TempDir::new("fault-all");
    let report = tmp.path().join("report.jsonl");
    let cfg = tmp.write_config(&faults_config(fx, &report));
    let codes: Vec<String> = (0..=15)
        .chain([101, 16, 101, 19, 20, 21, 22, 23, 101, 0, 100])
        .map(|c| c.to_string())
        .collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let ddl = run_fault_app(&tmp, &cfg, &codes);
    let report = read_report(&report, &ddl);
    assert_invariants(&report);
    let f = report.get("fault_do");
    // 0, 22 and the last 0 match; 19 differs in its outgoing calls;
    // 1..=14, 20, 21 fault; 15, 16, 23 hang.
    assert_eq!(
        (
            f.calls,
            f.matched,
            f.mismatch,
            f.shadow_fault,
            f.shadow_timeout,
            f.dropped
        ),
        (23, 3, 1, 16, 3, 0),
        "{f:?}"
    );
    assert!(report.events.is_empty(), "{:?}", report.events);
}

/// The soak: 1,000,000 calls, a fault every 10,000 and a hang every
/// 100,000. The counts add up, the process ends healthy, and mirroring is
/// still going at the end (the 100 calls made after a pause all match).
#[test]
fn soak_a_million_calls_with_faults_and_hangs() {
    let fx = fixtures();
    let tmp = TempDir::new("fault-soak");
    let report = tmp.path().join("report.jsonl");
    let cfg = tmp.write_config(&faults_config(fx, &report));
    let app = App::new(fx.join("faults/apps/fault-soak"))
        .arg("1000000")
        .timeout(std::time::Duration::from_secs(300));
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let report = read_report(&report, &ddl);
    assert_invariants(&report);
    let f = report.get("fault_do");
    assert_eq!(f.calls, 1_000_000, "{f:?}");
    assert_eq!(f.mismatch + f.unmirrored, 0, "{f:?}");
    assert!(f.shadow_fault >= 10, "faults really mirrored: {f:?}");
    assert!(f.shadow_timeout >= 1, "a hang really mirrored: {f:?}");
    // The app calls far faster than the shadow judges (the ring path: ~15
    // ns a call against ~100 on the shadow's side), so most calls drop
    // (counted); tens of thousands are still judged between the faults.
    assert!(f.matched > 10_000, "{f:?}");
    let w = report.get("fault_write");
    assert_eq!(
        (w.calls, w.matched),
        (100, 100),
        "mirroring still going: {w:?}"
    );
    assert!(report.events.is_empty(), "{:?}", report.events);
}

/// 64 application threads calling the boundary at once: no count is lost,
/// nothing deadlocks (the run is bounded by the harness's timeout).
#[test]
fn sixty_four_threads() {
    let fx = fixtures();
    let tmp = TempDir::new("threads-64");
    let app = App::new(fx.join("calc/apps/calc-threads"))
        .arg("64")
        .arg("3000")
        .arg("return")
        .timeout(std::time::Duration::from_secs(120));
    let (_, _, report) = run_both(&tmp, &app, crate::apps::calc_config(fx, None));
    assert_invariants(&report);
    let c = report.get("calc_add");
    assert_eq!(c.calls, 192_000, "{c:?}");
    assert_eq!(c.mirrored + c.dropped, 192_000, "{c:?}");
    assert_eq!(
        c.mismatch + c.shadow_fault + c.shadow_timeout + c.unmirrored,
        0,
        "{c:?}"
    );
}

/// A child that inherits LD_PRELOAD and DDL_CONFIG but whose executable
/// `attach.exe` does not name (the shell of `system()`) is left untouched:
/// no report of its own, and the parent's report is as without the child.
#[test]
fn children_not_attached_are_untouched() {
    let fx = fixtures();
    let tmp = TempDir::new("attach-child");
    let mut config = crate::apps::calc_config(fx, None);
    config["attach"] = json!({ "exe": ["calc-stress"] });
    config["report"] = json!("report-%p.jsonl");
    let cfg = tmp.write_config(&config);
    let app = App::new(fx.join("calc/apps/calc-stress")).arg("spawn");
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let mine = format!("report-{}.jsonl", ddl.pid);
    let report = read_report(&tmp.path().join(&mine), &ddl);
    assert_eq!(report.get("calc_add").calls, 2);
    assert_eq!(report.get("calc_div").mismatch, 1);
    let others: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("tmp dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("report-") && *n != mine)
        .collect();
    assert!(
        others.is_empty(),
        "a child that is not attached wrote {others:?}"
    );
}

/// When no namespace can be had any more (here: every fault is inside the
/// new build's libc, so no poisoned namespace can be unloaded, and the
/// budget of kept ones runs out), mirroring stops: the report says when and
/// why (an event line), stderr says so once, and every later call is
/// counted as `skipped`; the application never notices.
#[test]
fn mirroring_stops_when_no_namespace_is_left() {
    let fx = fixtures();
    let tmp = TempDir::new("fault-budget");
    let report = tmp.path().join("report.jsonl");
    let cfg = tmp.write_config(&faults_config(fx, &report));
    // abort(): the PC is in the new build's libc.
    let mut codes = vec!["5"; 12];
    codes.extend(["101", "0", "0"]);
    let ddl = run_fault_app(&tmp, &cfg, &codes);
    let said: Vec<&str> = ddl
        .stderr
        .lines()
        .filter(|l| l.contains("mirroring stopped"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {}", ddl.stderr);
    let report = read_report(&report, &ddl);
    assert_invariants(&report);
    assert_eq!(report.events.len(), 1, "{:?}", report.events);
    let e = &report.events[0];
    assert_eq!(e["event"], "mirroring_stopped", "{e}");
    assert!(
        e["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be unloaded"),
        "{e}"
    );
    let f = report.get("fault_do");
    assert_eq!(f.calls, 14, "{f:?}");
    // Nine faults used the budget of eight kept namespaces up; what was
    // queued after is unmirrored, and the calls made later are skipped.
    assert_eq!(f.shadow_fault, 9, "{f:?}");
    assert!(f.skipped >= 2, "the last calls are skipped: {f:?}");
    assert_eq!(f.mismatch + f.matched, 0, "{f:?}");
}

/// The new build starts a thread of its own that dereferences NULL, and
/// joins it (code 24): the thread runs contained (contain's
/// `pthread_create` starts it on the sandbox's trampoline), so the fault
/// ends that thread only — its `pthread_join` returns — and the call
/// itself matches. The report carries one `shadow_thread_fault` event
/// naming the signal and where; the namespace is replaced, and the later
/// calls are still mirrored.
#[test]
fn thread_of_the_new_build_faults() {
    let fx = fixtures();
    let tmp = TempDir::new("fault-thread");
    let report = tmp.path().join("report.jsonl");
    let cfg = tmp.write_config(&faults_config(fx, &report));
    // Without DDL the old build runs: the app's own output is the reference.
    let ddl = run_fault_app(&tmp, &cfg, &["24", "0", "100"]);
    let report = read_report(&report, &ddl);
    assert_invariants(&report);
    let f = report.get("fault_do");
    assert_eq!(
        (f.calls, f.mirrored, f.matched, f.dropped),
        (2, 2, 2, 0),
        "{f:?}"
    );
    let w = report.get("fault_write");
    assert_eq!((w.calls, w.matched), (2, 2), "later calls mirrored: {w:?}");
    let events: Vec<&Value> = report
        .events
        .iter()
        .filter(|e| e["event"] == "shadow_thread_fault")
        .collect();
    assert_eq!(events.len(), 1, "{:?}", report.events);
    let reason = events[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("SIGSEGV at libfault.so.1+0x"),
        "{reason}"
    );
    assert_eq!(report.events.len(), 1, "{:?}", report.events);
}

/// Handles across a poisoning: the fault replaces the new build's
/// namespace, so the handles made before it have no shadow object any more
/// (`unmirrored`, never a crash nor a wrong verdict), and a handle made
/// after it is mirrored as usual.
#[test]
fn handles_made_before_a_poisoning_are_unmirrored() {
    let fx = fixtures();
    let tmp = TempDir::new("fault-handles");
    let report = tmp.path().join("report.jsonl");
    let mut config = faults_config(fx, &report);
    config["handles"] =
        json!([{ "type": "fctx_t *", "create": ["fctx_new"], "destroy": ["fctx_free"] }]);
    config["functions"] = json!([
        "fctx_t *fctx_new(void)",
        "int fctx_use(fctx_t *c, int what, int x)",
        "void fctx_free(fctx_t *c)",
    ]);
    let cfg = tmp.write_config(&config);
    let app = App::new(fx.join("faults/apps/fault-app"))
        .arg("-o")
        .arg(tmp.path().join("out"))
        .arg("102");
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    assert!(String::from_utf8_lossy(&ddl.stdout).contains("fctx: 1 3 6 4"));
    let report = read_report(&report, &ddl);
    assert_invariants(&report);
    let new = report.get("fctx_new");
    let used = report.get("fctx_use");
    let free = report.get("fctx_free");
    assert_eq!((new.calls, new.matched), (2, 2), "{new:?}");
    assert_eq!(
        (used.calls, used.matched, used.shadow_fault, used.unmirrored),
        (4, 2, 1, 1),
        "{used:?}"
    );
    assert_eq!(
        (free.calls, free.matched, free.unmirrored),
        (2, 1, 1),
        "{free:?}"
    );
}
