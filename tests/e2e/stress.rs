//! calc-stress under libddl: threads, a queue that overflows, exit from a
//! thread with invocations queued, errno, NaN/inf and non-UTF-8 strings,
//! fork. See cxx-fixtures/calc/calc-stress.c for the calls each scenario
//! makes.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::apps::calc_config;
use crate::expect::want;
use crate::harness::*;

fn stress(fx: &Path, scenario: &str) -> App {
    App::new(fx.join("calc/apps/calc-stress")).arg(scenario)
}

/// Counts for a run where drops are allowed: every call counted, each
/// mirrored or dropped (never skipped, faulted or timed out), mismatches
/// at most `max_mismatch` and exactly that when nothing was dropped, and one
/// record per mismatch up to `records_per_signature` (100).
/// Starts calc-stress `scenario` under libddl with config `cfg` in `dir`,
/// without waiting for it (the test samples or kills it while it runs);
/// stderr piped, stdin and stdout null.
fn spawn_stress(fx: &Path, scenario: &str, dir: &Path, cfg: &Path) -> std::process::Child {
    use std::process::{Command, Stdio};
    Command::new(fx.join("calc/apps/calc-stress"))
        .arg(scenario)
        .current_dir(dir)
        .env("LD_PRELOAD", libddl())
        .env("DDL_CONFIG", cfg)
        .env_remove("DDL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start calc-stress {scenario}: {e}"))
}

fn assert_counts_with_drops(report: &Report, function: &str, calls: u64, max_mismatch: u64) {
    let c = report.get(function);
    let ok = c.calls == calls
        && c.mirrored + c.dropped == calls
        && c.skipped == 0
        && c.shadow_fault == 0
        && c.shadow_timeout == 0
        && c.unmirrored == 0
        && c.mismatch <= max_mismatch
        && (c.dropped > 0 || c.mismatch == max_mismatch);
    assert!(
        ok,
        "{function}: expected {calls} calls, each mirrored or dropped, {max_mismatch} mismatches (fewer only if some were dropped); got {c:?}"
    );
    let records = report.records_of(function).len() as u64;
    assert_eq!(
        records,
        c.mismatch.min(100),
        "{function}: {} mismatches (all at `ret`) should give min(mismatches, 100) records",
        c.mismatch
    );
}

/// 4 threads x 25000 iterations of calc_add and calc_div.
#[test]
fn stress_threads() {
    let fx = fixtures();
    let tmp = TempDir::new("threads");
    let (_, _, report) = run_both(&tmp, &stress(fx, "threads"), calc_config(fx, None));
    assert_invariants(&report);
    let mut seqs: Vec<u64> = report
        .records
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "seq numbers repeat across threads");
    assert_counts_with_drops(&report, "calc_add", 100_000, 0);
    assert_counts_with_drops(&report, "calc_div", 100_000, 10_000);
}

/// The same with a queue of 16: many invocations are dropped, none lost,
/// the app is unaffected and never blocked for long.
#[test]
fn stress_threads_small_queue() {
    let fx = fixtures();
    let tmp = TempDir::new("threads-q16");
    let mut config = calc_config(fx, None);
    config["queue"] = json!(16);
    let app = stress(fx, "threads").timeout(Duration::from_secs(60));
    let (_, _, report) = run_both(&tmp, &app, config);
    assert_invariants(&report);
    assert_counts_with_drops(&report, "calc_add", 100_000, 0);
    assert_counts_with_drops(&report, "calc_div", 100_000, 10_000);
}

/// A second thread calls exit(0) right after its calls: no count is lost.
#[test]
fn stress_exit_from_thread() {
    let fx = fixtures();
    let tmp = TempDir::new("exit-thread");
    let (_, _, report) = run_both(&tmp, &stress(fx, "exit-thread"), calc_config(fx, None));
    assert_invariants(&report);
    assert_counts_with_drops(&report, "calc_add", 1000, 0);
    assert_counts_with_drops(&report, "calc_div", 1000, 250);
}

/// errno is what the old build (or the app) left: the app prints it after
/// each call (strtol's ERANGE, a preset 4242 across calc_add, 0).
#[test]
fn stress_errno_preserved() {
    let fx = fixtures();
    let tmp = TempDir::new("errno");
    let (plain, _, report) = run_both(&tmp, &stress(fx, "errno"), calc_config(fx, None));
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("errno 34"),
        "the fixture should see ERANGE"
    );
    assert_summary(&report, &[want("calc_parse", 3, 0), want("calc_add", 2, 0)]);
}

/// With `"errno": "exact"` on calc_parse (identical builds) the shadow's
/// errno (its own namespace's libc) matches too. The app clears errno
/// before each calc_parse (the strtol idiom) and strtol leaves it alone on
/// success, so the shadow must start each call with the errno the primary
/// started with; otherwise "-5" after the ERANGE call is a false mismatch
/// (errno 0 vs a stale 34).
#[test]
fn stress_errno_compared() {
    let fx = fixtures();
    let tmp = TempDir::new("errno-compared");
    let mut config = calc_config(fx, None);
    let functions = config["functions"].as_array_mut().expect("functions");
    for f in functions.iter_mut() {
        if f.as_str() == Some("long calc_parse(const char *s)") {
            *f =
                json!({ "sig": "long calc_parse(const char *s)", "compare": { "errno": "exact" } });
        }
    }
    let (_, _, report) = run_both(&tmp, &stress(fx, "errno"), config);
    assert_summary(&report, &[want("calc_parse", 3, 0), want("calc_add", 2, 0)]);
}

/// NaN equals NaN (also two different NaNs under "exact"), -0.0 and +0.0
/// differ under "exact" (not the same bits), infinities compare, and a
/// non-UTF-8 string argument is written with replacement characters and
/// its hex.
#[test]
fn stress_special_values() {
    let fx = fixtures();
    let tmp = TempDir::new("special");
    let (_, _, report) = run_both(&tmp, &stress(fx, "special"), calc_config(fx, None));
    assert_summary(
        &report,
        &[
            want("calc_sqrt", 2, 0),
            want("calc_scale", 2, 0),
            want("calc_hash", 1, 1),
            want("calc_name", 1, 0),
            want("calc_trunc", 3, 1),
        ],
    );
    let t = report.records_of("calc_trunc")[0];
    assert_eq!(t["args"]["x"].as_f64(), Some(-0.5), "{t}");
    let r = report.records_of("calc_hash")[0];
    let args = r["args"].to_string();
    assert!(
        args.contains('\u{fffd}') || args.contains("\\ufffd"),
        "a non-UTF-8 string is written with replacement characters: {r}"
    );
    assert!(
        args.to_ascii_lowercase().contains("fffe48656c6c6f"),
        "a non-UTF-8 string carries its bytes as hex: {r}"
    );
}

/// fork: the parent's counts are exact; the child (which inherits
/// LD_PRELOAD's libddl but not its shadow thread) finishes promptly and, if
/// it writes a report, its counts add up.
#[test]
fn stress_fork() {
    let fx = fixtures();
    let tmp = TempDir::new("fork");
    let mut config = calc_config(fx, None);
    config["report"] = json!("report-%p.jsonl");
    let cfg = tmp.write_config(&config);
    let app = stress(fx, "fork").timeout(Duration::from_secs(30));
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let parent = read_report(&tmp.path().join(format!("report-{}.jsonl", ddl.pid)), &ddl);
    assert_summary(&parent, &[want("calc_add", 10, 0), want("calc_div", 10, 0)]);
    let others: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("report-") && n != format!("report-{}.jsonl", ddl.pid)
        })
        .collect();
    assert!(others.len() <= 1, "more reports than processes: {others:?}");
    for p in others {
        let child = read_report(&p, &ddl);
        assert_invariants(&child);
        let div = child.get("calc_div");
        assert!(
            div.calls == 0 || div.calls == 10,
            "the child made 10 calc_div calls: {div:?}"
        );
        assert!(div.mismatch == 0 || div.mismatch == 10, "{div:?}");
        for r in &child.records {
            assert_eq!(r["function"], Value::from("calc_div"), "{r}");
        }
    }
}

/// `_exit` after a pause: the last periodic summary (`summary_every_s: 1`)
/// stands and has every call made before it.
#[test]
fn stress_periodic_summary_survives_underscore_exit() {
    let fx = fixtures();
    let tmp = TempDir::new("sleep-exit");
    let mut config = calc_config(fx, None);
    config["summary_every_s"] = json!(1);
    let (_, _, report) = run_both(&tmp, &stress(fx, "sleep-exit"), config);
    assert_summary(&report, &[want("calc_add", 5, 0), want("calc_div", 3, 3)]);
}

/// An idle process's shadow sleeps: while calc-stress sleeps 2.5 s after
/// its calls, the `ddl-shadow` thread takes (almost) no CPU. It once woke
/// every millisecond and spun 50 µs each time, ~70 ms of CPU a second.
#[test]
fn stress_idle_shadow_sleeps() {
    let fx = fixtures();
    let tmp = TempDir::new("idle");
    let cfg = tmp.write_config(&calc_config(fx, None));
    let mut child = spawn_stress(fx, "sleep-exit", tmp.path(), &cfg);
    // The shadow's CPU time in clock ticks (utime + stime of the thread
    // named ddl-shadow), if it runs.
    let shadow_ticks = |pid: u32| -> Option<u64> {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim() != "ddl-shadow" {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // After the command's closing parenthesis: utime and stime are
            // the 12th and 13th fields (the 14th and 15th of the line).
            let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            return Some(rest[11].parse::<u64>().ok()? + rest[12].parse::<u64>().ok()?);
        }
        None
    };
    std::thread::sleep(Duration::from_millis(700));
    let before = shadow_ticks(child.id());
    std::thread::sleep(Duration::from_millis(1500));
    let after = shadow_ticks(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let (Some(before), Some(after)) = (before, after) else {
        panic!("no ddl-shadow thread in calc-stress sleep-exit ({before:?}, {after:?})");
    };
    assert!(
        after - before <= 2,
        "the idle shadow took {} ticks of CPU in 1.5 s (at most 2 expected)",
        after - before
    );
}

/// The app's own SIGSEGV handler (installed in main, after libddl booted)
/// still gets its own fault, with the right si_addr.
#[test]
fn stress_app_signal_handler_chained() {
    let fx = fixtures();
    let tmp = TempDir::new("signal");
    let mut config = calc_config(fx, None);
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = json!(report_path);
    let cfg = tmp.write_config(&config);
    let app = stress(fx, "signal").timeout(Duration::from_secs(30));
    let plain = run_plain(&app, tmp.path());
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("si_addr ok"),
        "{plain:?}"
    );
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
}

/// Calls made by the executable's constructor, before main, are rebound
/// and mirrored too (libddl's constructor runs first).
#[test]
fn stress_calls_from_constructor() {
    let fx = fixtures();
    let tmp = TempDir::new("ctor");
    let (_, _, report) = run_both(&tmp, &stress(fx, "ctor"), calc_config(fx, None));
    assert_summary(&report, &[want("calc_add", 2, 0), want("calc_div", 1, 1)]);
}

/// system(): the shell inherits LD_PRELOAD and DDL_CONFIG but never loads
/// libcalc: no error, and (with `%p`) the app's own report is exact.
#[test]
fn stress_child_shell_inherits_preload() {
    let fx = fixtures();
    let tmp = TempDir::new("spawn");
    let mut config = calc_config(fx, None);
    config["report"] = json!("report-%p.jsonl");
    let cfg = tmp.write_config(&config);
    let app = stress(fx, "spawn");
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let report = read_report(&tmp.path().join(format!("report-{}.jsonl", ddl.pid)), &ddl);
    assert_summary(&report, &[want("calc_add", 2, 0), want("calc_div", 1, 1)]);
    for e in std::fs::read_dir(tmp.path()).expect("tmp dir").flatten() {
        let p = e.path();
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("report-") && n != format!("report-{}.jsonl", ddl.pid) {
            let other = read_report(&p, &ddl);
            assert!(other.records.is_empty(), "{n}: {:?}", other.records);
            for (f, c) in other.counts() {
                assert_eq!(c.calls, 0, "{n}: the shell made no {f} call: {c:?}");
            }
        }
    }
}

/// The app closes every fd from 3 up and opens its own file: libddl must
/// not write into it (its report fd is gone, the number reused), and the
/// report still gets every count.
#[test]
fn stress_app_closes_all_fds() {
    let fx = fixtures();
    let tmp = TempDir::new("closefds");
    let (plain, _, report) = run_both(&tmp, &stress(fx, "closefds"), calc_config(fx, None));
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("holds 12 bytes"),
        "{plain:?}"
    );
    assert_summary(&report, &[want("calc_div", 4, 4)]);
}

/// main returns while 3 threads keep calling the boundary: no crash or
/// hang at exit, and the summary's counts add up.
#[test]
fn stress_exit_while_threads_call() {
    let fx = fixtures();
    let tmp = TempDir::new("busy-exit");
    let app = stress(fx, "busy-exit").timeout(Duration::from_secs(60));
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_invariants(&report);
    let c = report.get("calc_add");
    assert!(c.calls > 0 && c.mismatch == 0, "{c:?}");
    assert_eq!(
        c.shadow_fault + c.shadow_timeout + c.skipped,
        0,
        "calc_add: {c:?}"
    );
}

/// Boundary calls from a SIGALRM handler, often interrupting a wrapper on
/// the same thread (such a nested call is forwarded, not counted): the
/// handler's calc_div(7, 7) always returns 1 (the app prints how many did
/// not), no false mismatch from a capture the signal interrupted, and
/// calc_add's count is exact.
#[test]
fn stress_boundary_calls_from_signal_handler() {
    let fx = fixtures();
    let tmp = TempDir::new("sigreentry");
    let app = stress(fx, "sigreentry").timeout(Duration::from_secs(120));
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_invariants(&report);
    let add = report.get("calc_add");
    let div = report.get("calc_div");
    assert_eq!(add.calls, 300_000, "calc_add: {add:?}");
    assert_eq!(add.mismatch + div.mismatch, 0, "{add:?} {div:?}");
    assert_eq!(
        add.shadow_fault + add.shadow_timeout + add.skipped + add.unmirrored,
        0,
        "{add:?}"
    );
    assert!(report.records.is_empty(), "{:?}", report.records);
}

/// SIGKILL while two threads keep calling and the shadow keeps writing:
/// every line of the report is still whole JSON, and the last periodic
/// summary (`summary_every_s: 1`) stands with counts that add up.
#[test]
fn stress_report_readable_after_sigkill() {
    let fx = fixtures();
    let tmp = TempDir::new("sigkill");
    let mut config = calc_config(fx, None);
    config["summary_every_s"] = json!(1);
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = json!(report_path);
    let cfg = tmp.write_config(&config);
    let mut child = spawn_stress(fx, "forever", tmp.path(), &cfg);
    std::thread::sleep(Duration::from_millis(3500));
    let _ = child.kill(); // SIGKILL
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(&report_path).unwrap_or_else(|e| {
        panic!(
            "no report at {} after SIGKILL ({e}); stderr:\n{stderr}",
            report_path.display()
        )
    });
    let mut summaries = 0;
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "line {} of the report is not whole JSON after SIGKILL ({e}): {line:?}",
                i + 1
            )
        });
        summaries += usize::from(v.get("summary").is_some());
    }
    assert!(
        summaries >= 2,
        "expected a summary at least every second over 3.5 s, found {summaries}"
    );
    let fake = Output {
        status: out.status,
        stdout: Vec::new(),
        stderr,
        pid: 0,
        what: "calc-stress forever (SIGKILLed)".into(),
    };
    let report = read_report(&report_path, &fake);
    assert_invariants(&report);
    let div = report.get("calc_div");
    assert!(div.calls > 0 && div.mismatch > 0, "{div:?}");
    assert_eq!(report.get("calc_add").mismatch, 0);
}

/// A process-directed signal the app's main thread blocks must stay
/// pending for it (the app has no other thread): libddl's threads (and the
/// new build's) must block the application's signals, or they run the
/// app's handler on a thread the app does not know.
#[test]
fn stress_app_signals_not_taken_by_ddl_threads() {
    let fx = fixtures();
    let tmp = TempDir::new("sigthread");
    let (plain, _, report) = run_both(&tmp, &stress(fx, "sigthread"), calc_config(fx, None));
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("while main blocked SIGUSR1: 0"),
        "{plain:?}"
    );
    assert_summary(&report, &[want("calc_add", 6, 0)]);
}

/// calc-threads: 4 threads x 20000 calc_add calls, then the process ends by
/// returning from main, by exit, or by exit from the last worker thread
/// while main is blocked in pthread_join: every call is counted, each
/// mirrored or dropped, and none differs.
#[test]
fn stress_counts_add_up_however_the_process_ends() {
    let fx = fixtures();
    for mode in ["return", "exit", "thread-exit"] {
        let tmp = TempDir::new(&format!("calc-threads-{mode}"));
        let app = App::new(fx.join("calc/apps/calc-threads"))
            .arg("4")
            .arg("20000")
            .arg(mode);
        let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
        assert_invariants(&report);
        assert_counts_with_drops(&report, "calc_add", 80_000, 0);
    }
}

/// calc-stress `scenario` (20 calc_slow calls) under libddl with
/// `timeout_ms` 1000 and `queue` if given: the app's output is unchanged,
/// every call is counted, mirrored or dropped, none differs. Returns
/// calc_slow's counts, the run's wall time under libddl and its stderr.
fn slow_calls(scenario: &str, queue: Option<u64>) -> (Counts, Duration, String) {
    let fx = fixtures();
    let tmp = TempDir::new(scenario);
    let mut config = calc_config(fx, None);
    config["timeout_ms"] = json!(1000);
    if let Some(q) = queue {
        config["queue"] = json!(q);
    }
    let app = stress(fx, scenario).timeout(Duration::from_secs(60));
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = json!(report_path);
    let cfg = tmp.write_config(&config);
    let plain = run_plain(&app, tmp.path());
    let t0 = std::time::Instant::now();
    let ddl = run_ddl(&app, &cfg, tmp.path());
    let elapsed = t0.elapsed();
    assert_transparent(&plain, &ddl);
    let report = read_report(&report_path, &ddl);
    assert_invariants(&report);
    let c = report.get("calc_slow");
    assert_eq!(c.calls, 20, "{c:?}");
    assert_eq!(c.mirrored + c.dropped + c.skipped, 20, "{c:?}");
    assert_eq!(c.mismatch + c.shadow_fault, 0, "{c:?}");
    (c, elapsed, ddl.stderr)
}

/// Calls that find their ring full while the shadow is awake and busy (a
/// 100 ms new build, a ring of 4 slots: `queue` 4) are dropped at the
/// wrapper's entry, before anything is saved, and forwarded: the
/// application sees the old build's results (the printed sum changes if
/// that path touches an argument: 11 of the 20 calls take it here), and
/// the counts add up.
#[test]
fn stress_full_ring_drops_at_entry_are_counted() {
    let (c, _, _) = slow_calls("slow-burst", Some(4));
    // After the pause at most the batch the shadow took, a ring's 4 and
    // the call in flight are mirrored: at least 8 of the 15 drop.
    assert!(c.dropped >= 8, "{c:?}");
}

/// A slow new build (200 ms a call, 20 calls back to back): the caller
/// never waits for the shadow, and at exit the drain is bounded by
/// `timeout_ms` (1000, more than a call takes): the process ends well
/// before the 4 s a full drain would take; every call is counted, mirrored
/// or dropped.
#[test]
fn stress_slow_new_build_bounded_drain() {
    let (c, elapsed, stderr) = slow_calls("slow", None);
    assert!(
        elapsed < Duration::from_millis(3000),
        "the run under libddl took {elapsed:?} (a full drain takes 4 s): the caller waited for the slow shadow or the drain at exit ignored timeout_ms 1000; stderr:\n{stderr}"
    );
    assert!(
        c.dropped > 0,
        "a 4 s backlog cannot drain in 1000 ms: {c:?}"
    );
}

/// exec keeps the pid (so `%p` names the same report): the summary and the
/// mismatch record written before exec must survive the new image, whose
/// own summary comes last.
#[test]
fn stress_exec_keeps_the_pre_exec_report() {
    let fx = fixtures();
    let tmp = TempDir::new("exec");
    let mut config = calc_config(fx, None);
    config["report"] = json!("report-%p.jsonl");
    let cfg = tmp.write_config(&config);
    let app = stress(fx, "exec");
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let path = tmp.path().join(format!("report-{}.jsonl", ddl.pid));
    let report = read_report(&path, &ddl);
    // the last summary: the exec'd image (2 calc_add calls, no calc_div);
    // the records include the pre-exec image's calc_div mismatch
    assert_invariants(&report);
    let (add, div) = (report.get("calc_add"), report.get("calc_div"));
    assert_eq!(
        (add.calls, add.mismatch, div.calls),
        (2, 0, 0),
        "{add:?} {div:?}"
    );
    let text = std::fs::read_to_string(&path).expect("report");
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let pre_exec_summary = lines.iter().any(|v| {
        v["summary"]["calc_add"]["calls"] == json!(3)
            && v["summary"]["calc_div"]["mismatch"] == json!(1)
    });
    let div_record = lines
        .iter()
        .any(|v| v["function"] == json!("calc_div") && v["verdict"] == json!("mismatch"));
    assert!(
        pre_exec_summary && div_record,
        "before exec: 3 calc_add calls and 1 calc_div mismatch; the report keeps {}: {text}",
        match (pre_exec_summary, div_record) {
            (false, false) => "neither their summary nor the mismatch record",
            (false, true) => "the record but not their summary",
            (true, false) => "their summary but not the mismatch record",
            _ => "both",
        }
    );
}

/// dladdr() on a boundary function's pointer (through the GOT, or from
/// dlsym) names the old component and the function, as without libddl:
/// applications use it to find the folder they are installed in.
#[test]
fn stress_dladdr_on_boundary_pointers() {
    let fx = fixtures();
    let tmp = TempDir::new("dladdr");
    let (plain, _, report) = run_both(&tmp, &stress(fx, "dladdr"), calc_config(fx, None));
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("libcalc.so.1 calc_add (exact)"),
        "{plain:?}"
    );
    assert_summary(&report, &[want("calc_add", 1, 0), want("calc_div", 1, 1)]);
}

/// 20 forks while another thread keeps calling the boundary: every child
/// (which inherits whatever lock that thread held) makes its calls and
/// exits cleanly; the parent's counts add up.
#[test]
fn stress_fork_while_another_thread_calls() {
    let fx = fixtures();
    let tmp = TempDir::new("forkstorm");
    let mut config = calc_config(fx, None);
    config["report"] = json!("report-%p.jsonl");
    let cfg = tmp.write_config(&config);
    let app = stress(fx, "forkstorm").timeout(Duration::from_secs(60));
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let parent = read_report(&tmp.path().join(format!("report-{}.jsonl", ddl.pid)), &ddl);
    assert_invariants(&parent);
    assert!(parent.records.is_empty(), "{:?}", parent.records);
    for e in std::fs::read_dir(tmp.path()).expect("tmp").flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("report-") && n != format!("report-{}.jsonl", ddl.pid) {
            let child = read_report(&e.path(), &ddl);
            assert_invariants(&child);
            assert!(child.records.is_empty(), "{n}: {:?}", child.records);
        }
    }
}
