//! Capture and replay: a live run with `capture` set writes a log of every
//! mirrored invocation; `ddl replay` re-executes it against a build in a
//! process of its own and judges it again.
//!
//! - replayed against the new build, the verdicts are the live run's
//!   (same counts per function, same records by `seq`): calc (scalars),
//!   codec (handles, a stream struct), shapes (C++ objects, exceptions),
//!   faults (crashes, exits, hangs, outgoing writes);
//! - replayed against the old build, everything matches;
//! - a log cut at any byte, or with a flipped byte, replays the records
//!   before the damage and then says where it is (exit status 3);
//! - a process killed with SIGKILL leaves a log whose records replay;
//! - `hash` and `max_buffer_bytes` keep less, and replay still judges.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::*;

/// The `ddl` binary (built with the tests).
fn ddl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ddl"))
}

/// `ddl replay LOG --new BUILD --report OUT`; returns (exit code, stderr).
fn replay(log: &Path, build: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let o = Command::new(ddl())
        .arg("replay")
        .arg(log)
        .arg("--new")
        .arg(build)
        .arg("--report")
        .arg(out)
        .args(extra)
        .env("DDL_LIB", libddl())
        .env_remove("LD_PRELOAD")
        .env_remove("DDL_CONFIG")
        .output()
        .expect("ddl replay runs");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "ddl replay panicked:\n{stderr}"
    );
    (o.status.code().unwrap_or(-1), stderr)
}

/// Reads a replay's report (no application run to blame: a dummy one).
fn replay_report(path: &Path, stderr: &str) -> Report {
    let fake = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(0),
        stdout: Vec::new(),
        stderr: stderr.to_string(),
        pid: 0,
        what: format!("ddl replay → {}", path.display()),
    };
    read_report(path, &fake)
}

/// Runs `app` live with a capture log; returns (report, log path).
fn live(tmp: &TempDir, app: &App, mut config: Value) -> (Report, PathBuf) {
    let log = tmp.path().join("capture.zst");
    config["capture"] = json!(log);
    let (_, ddl_run, report) = run_both(tmp, app, config);
    assert!(ddl_run.error_lines().is_empty(), "{}", ddl_run.stderr);
    assert_invariants(&report);
    assert!(log.is_file(), "no capture log at {}", log.display());
    (report, log)
}

/// The verdict records, as (function, verdict, seq).
fn verdicts(r: &Report) -> BTreeSet<(String, String, u64)> {
    r.records
        .iter()
        .map(|v| {
            (
                v["function"].as_str().unwrap_or("").to_string(),
                v["verdict"].as_str().unwrap_or("").to_string(),
                v["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Replayed against the build the live run mirrored into: the same
/// verdicts, function by function and record by record; `calls` of the
/// replay are the live run's mirrored calls.
fn assert_same_as_live(live: &Report, replayed: &Report) {
    assert_invariants(replayed);
    let (a, b) = (live.counts(), replayed.counts());
    for (f, l) in &a {
        let r = b.get(f).copied().unwrap_or_default();
        assert_eq!(
            (
                r.calls,
                r.mirrored,
                r.matched,
                r.mismatch,
                r.shadow_fault,
                r.shadow_timeout,
                r.unmirrored
            ),
            (
                l.mirrored,
                l.mirrored,
                l.matched,
                l.mismatch,
                l.shadow_fault,
                l.shadow_timeout,
                l.unmirrored
            ),
            "{f}: live {l:?}\n  replay {r:?}\n{}",
            replayed.dump()
        );
        assert_eq!(r.dropped + r.skipped, 0, "{f}: {r:?}");
    }
    assert_eq!(verdicts(live), verdicts(replayed), "records differ");
}

/// Replayed against the old build: every call matches.
fn assert_all_match(replayed: &Report, mirrored: u64) {
    assert_invariants(replayed);
    let mut total = 0;
    for (f, c) in replayed.counts() {
        assert_eq!(
            (
                c.mismatch,
                c.shadow_fault,
                c.shadow_timeout,
                c.unmirrored,
                c.dropped
            ),
            (0, 0, 0, 0, 0),
            "{f}: {c:?}\n{}",
            replayed.dump()
        );
        assert_eq!(c.matched, c.mirrored, "{f}: {c:?}");
        total += c.mirrored;
    }
    assert_eq!(total, mirrored, "every logged call replayed");
}

fn mirrored(r: &Report) -> u64 {
    r.counts().values().map(|c| c.mirrored).sum()
}

/// Live, then replay on the new build (the same verdicts) and on the old
/// one (all match).
fn round_trip(name: &str, app: App, config: Value, old: &Path, new: &Path) {
    let tmp = TempDir::new(&format!("capture-{name}"));
    let (live_report, log) = live(&tmp, &app, config);
    let out = tmp.path().join("replay-new.jsonl");
    let (code, stderr) = replay(&log, new, &out, &[]);
    let replayed = replay_report(&out, &stderr);
    assert_same_as_live(&live_report, &replayed);
    let diverged = live_report
        .counts()
        .values()
        .any(|c| c.mismatch + c.shadow_fault + c.shadow_timeout != 0);
    assert_eq!(code, if diverged { 1 } else { 0 }, "{stderr}");
    let out = tmp.path().join("replay-old.jsonl");
    let (code, stderr) = replay(&log, old, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_all_match(&replay_report(&out, &stderr), mirrored(&live_report));
}

#[test]
fn calc_replays_as_it_ran() {
    let fx = fixtures();
    round_trip(
        "calc",
        App::new(fx.join("calc/apps/calc-app-pie-now")),
        crate::apps::calc_config(fx, None),
        &fx.join("calc/old/libcalc.so.1"),
        &fx.join("calc/new/libcalc.so.1"),
    );
}

/// The developer's loop: the live run found calc_div diverging; its fix
/// (calc/fixed: the new build with -DFIX_DIV) replayed on the same traffic
/// clears calc_div and leaves every other function as the live run judged it.
#[test]
fn a_fix_replayed_on_the_captured_traffic() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-fix");
    let app = App::new(fx.join("calc/apps/calc-app-pie-now"));
    let (live_report, log) = live(&tmp, &app, crate::apps::calc_config(fx, None));
    let div = live_report.get("calc_div");
    assert!(div.mismatch > 0, "the regression shows live: {div:?}");
    let out = tmp.path().join("replay-fixed.jsonl");
    let (code, stderr) = replay(&log, &fx.join("calc/fixed/libcalc.so.1"), &out, &[]);
    let fixed = replay_report(&out, &stderr);
    assert_invariants(&fixed);
    let d = fixed.get("calc_div");
    assert_eq!(
        (d.mirrored, d.matched, d.mismatch),
        (div.mirrored, div.mirrored, 0),
        "{d:?}"
    );
    for (f, l) in live_report.counts() {
        if f == "calc_div" {
            continue;
        }
        let r = fixed.get(&f);
        assert_eq!(
            (r.matched, r.mismatch),
            (l.matched, l.mismatch),
            "{f}: {r:?}"
        );
    }
    let others_diverge = live_report
        .counts()
        .iter()
        .any(|(f, c)| f != "calc_div" && c.mismatch != 0);
    assert_eq!(code, if others_diverge { 1 } else { 0 }, "{stderr}");
    assert!(fixed.records_of("calc_div").is_empty());
}

#[test]
fn codec_replays_with_its_handles_and_streams() {
    let fx = fixtures();
    round_trip(
        "codec",
        App::new(fx.join("codec/apps/codec-app-pie-now")),
        crate::stateful::codec_config(fx),
        &fx.join("codec/old/libcodec.so.1"),
        &fx.join("codec/new/libcodec.so.1"),
    );
}

#[test]
fn shapes_replays_its_objects_and_exceptions() {
    let fx = fixtures();
    round_trip(
        "shapes",
        App::new(fx.join("shapes/apps/shapes-app-pie-now")),
        crate::cxx::shapes_config(fx, None),
        &fx.join("shapes/old/libshapes.so.1"),
        &fx.join("shapes/new/libshapes.so.1"),
    );
}

/// Crashes, an exit, a hang and a write to stdout of the new build come
/// back as the same verdicts on replay (the replay's sandbox is the live
/// run's), and the old build replays clean.
#[test]
fn faults_replay_as_faults() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-faults");
    let config = json!({
        "old": "libfault.so.1",
        "new": fx.join("faults/new/libfault.so.1"),
        "timeout_ms": 200,
        "functions": ["int fault_do(int what, int x)", "int fault_write(int fd, const char *s)"],
    });
    let app = App::new(fx.join("faults/apps/fault-app"))
        .arg("-o")
        .arg(tmp.path().join("app.out"));
    let app = ["1", "0", "10", "0", "15", "101", "0", "18", "0"]
        .iter()
        .fold(app, |a, c| a.arg(*c));
    let (live_report, log) = live(&tmp, &app, config);
    let f = live_report.get("fault_do");
    assert_eq!(
        (f.shadow_fault, f.shadow_timeout, f.mismatch),
        (2, 1, 1),
        "{f:?}"
    );
    let out = tmp.path().join("replay.jsonl");
    let (code, stderr) = replay(&log, &fx.join("faults/new/libfault.so.1"), &out, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_same_as_live(&live_report, &replay_report(&out, &stderr));
    let out = tmp.path().join("replay-old.jsonl");
    let (code, stderr) = replay(&log, &fx.join("faults/old/libfault.so.1"), &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_all_match(&replay_report(&out, &stderr), mirrored(&live_report));
}

/// A process that `exec`s: the log of the image before the exec is closed
/// with its end mark, and the image after it (same pid) writes a log of its
/// own next to it, `capture-PID.1.zst`; each replays its own calls.
#[test]
fn exec_leaves_one_complete_log_per_image() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-exec");
    let mut config = crate::apps::calc_config(fx, None);
    config["report"] = json!("report-%p.jsonl");
    config["capture"] = json!("capture-%p.zst");
    let cfg = tmp.write_config(&config);
    let app = App::new(fx.join("calc/apps/calc-stress")).arg("exec");
    let plain = run_plain(&app, tmp.path());
    let ddl_run = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl_run);
    let old = fx.join("calc/old/libcalc.so.1");
    let new = fx.join("calc/new/libcalc.so.1");
    let mut seen = Vec::new();
    for name in [
        format!("capture-{}.zst", ddl_run.pid),
        format!("capture-{}.1.zst", ddl_run.pid),
    ] {
        let log = tmp.path().join(&name);
        assert!(log.is_file(), "{name}: {}", ddl_run.stderr);
        let out = tmp.path().join(format!("{name}.jsonl"));
        let (code, stderr) = replay(&log, &old, &out, &[]);
        assert_eq!(
            code, 0,
            "{name}: a complete log, every call matches: {stderr}"
        );
        let r = replay_report(&out, &stderr);
        assert_all_match(&r, mirrored(&r));
        let out = tmp.path().join(format!("{name}-new.jsonl"));
        let (_, stderr) = replay(&log, &new, &out, &["--allow-mismatch"]);
        let r = replay_report(&out, &stderr);
        seen.push((r.get("calc_add").mirrored, r.get("calc_div").mismatch));
    }
    // Before the exec: 3 calc_add and calc_div's mismatch; after: 2 calc_add.
    assert_eq!(seen, [(3, 1), (2, 0)]);
}

/// A longer log: codec-threads, 4 threads × 300 calls on handles of their own.
fn threads_log(tmp: &TempDir) -> (Report, PathBuf) {
    let fx = fixtures();
    let app = App::new(fx.join("codec/apps/codec-threads"))
        .arg("4")
        .arg("300");
    live(tmp, &app, crate::stateful::codec_config(fx))
}

/// "… the N records before it are good" / "… stops after record N …".
fn good_records(stderr: &str) -> u64 {
    let grab = |key: &str, after: bool| -> Option<u64> {
        let i = stderr.find(key)?;
        let s = if after {
            &stderr[i + key.len()..]
        } else {
            &stderr[..i]
        };
        let digits: String = if after {
            s.chars().take_while(|c| c.is_ascii_digit()).collect()
        } else {
            let rev: String = s
                .chars()
                .rev()
                .skip_while(|c| *c == ' ')
                .take_while(|c| c.is_ascii_digit())
                .collect();
            rev.chars().rev().collect()
        };
        digits.parse().ok()
    };
    grab("stops after record ", true)
        .or_else(|| grab(" records before it are good", false))
        .unwrap_or_else(|| panic!("no count of good records in:\n{stderr}"))
}

/// A log cut at pseudo-random bytes: each replays the calls before the
/// cut, judged as in the live run, and says where the log stops.
#[test]
fn a_cut_log_replays_its_complete_records() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-cut");
    let (live_report, log) = threads_log(&tmp);
    let total = mirrored(&live_report);
    assert_eq!(
        live_report
            .counts()
            .values()
            .map(|c| c.matched)
            .sum::<u64>(),
        total,
        "codec-threads matches everywhere"
    );
    assert!(total >= 1200, "{}", live_report.dump());
    let bytes = std::fs::read(&log).unwrap();
    // A fixed LCG: the same cuts every run (reproducible failures).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut cuts = vec![10, bytes.len() - 1];
    for _ in 0..6 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        cuts.push((x >> 33) as usize % bytes.len());
    }
    let new = fx.join("codec/new/libcodec.so.1");
    for at in cuts {
        let cut = tmp.path().join(format!("cut-{at}.zst"));
        std::fs::write(&cut, &bytes[..at]).unwrap();
        let out = tmp.path().join(format!("cut-{at}.jsonl"));
        let (code, stderr) = replay(&cut, &new, &out, &[]);
        assert_eq!(code, 3, "cut at {at}: {stderr}");
        assert!(
            stderr.contains("ddl replay: error: "),
            "cut at {at}: {stderr}"
        );
        if !out.exists() {
            // Cut inside the header: nothing can be replayed.
            assert!(
                stderr.contains("capture log") || stderr.contains("header"),
                "{stderr}"
            );
            continue;
        }
        let n = good_records(&stderr);
        let r = replay_report(&out, &stderr);
        assert_invariants(&r);
        assert_eq!(mirrored(&r), n, "cut at {at}: {stderr}");
        // The live run matched everywhere; so does the replayed prefix.
        let matched: u64 = r.counts().values().map(|c| c.matched).sum();
        assert_eq!(matched, n, "cut at {at}: {}", r.dump());
    }
}

/// Flipped bytes after the header: the records before the damage replay,
/// the error names the damaged record, never a panic.
#[test]
fn a_damaged_log_is_refused_at_the_first_bad_record() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-flip");
    let (_, log) = threads_log(&tmp);
    let bytes = std::fs::read(&log).unwrap();
    let header = 20 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let new = fx.join("codec/new/libcodec.so.1");
    let span = bytes.len() - header;
    for (k, frac) in [0.1, 0.5, 0.9].iter().enumerate() {
        let at = header + (span as f64 * frac) as usize;
        let mut b = bytes.clone();
        b[at] ^= 0xff;
        b[at + 1] ^= 0x0f;
        let bad = tmp.path().join(format!("bad-{k}.zst"));
        std::fs::write(&bad, &b).unwrap();
        let out = tmp.path().join(format!("bad-{k}.jsonl"));
        let (code, stderr) = replay(&bad, &new, &out, &[]);
        assert_eq!(code, 3, "flip at {at}: {stderr}");
        let n = good_records(&stderr);
        assert!(n < 3600, "the damage was found: {stderr}");
        let r = replay_report(&out, &stderr);
        assert_invariants(&r);
        assert_eq!(mirrored(&r), n, "flip at {at}: {stderr}");
    }
    // A damaged header: nothing is replayed, the error says why.
    let mut b = bytes.clone();
    b[30] ^= 0x01;
    let bad = tmp.path().join("bad-header.zst");
    std::fs::write(&bad, &b).unwrap();
    let (code, stderr) = replay(&bad, &new, &tmp.path().join("h.jsonl"), &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("damaged header"), "{stderr}");
}

/// SIGKILL in the middle of a run: the log's complete records replay.
#[test]
fn a_killed_process_leaves_a_replayable_log() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-kill");
    let log = tmp.path().join("capture.zst");
    let mut config = crate::stateful::codec_config(fx);
    config["capture"] = json!(log);
    config["report"] = json!(tmp.path().join("live.jsonl"));
    let cfg = tmp.write_config(&config);
    let mut child = Command::new(fx.join("codec/apps/codec-threads"))
        .arg("2")
        .arg("100000000")
        .env("LD_PRELOAD", libddl())
        .env("DDL_CONFIG", &cfg)
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until the log holds a good number of records (or 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < 200_000
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = tmp.path().join("replay-old.jsonl");
    let (code, stderr) = replay(&log, &fx.join("codec/old/libcodec.so.1"), &out, &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("without its end mark"), "{stderr}");
    let n = good_records(&stderr);
    // The good records are calls, and handles parted by calls the live
    // run dropped (its shadow may fall behind the two threads).
    let (calls, parted) = calls_in_log(&log, n);
    assert!(calls > 1000, "{calls} calls in {n} records\n{stderr}");
    let r = replay_report(&out, &stderr);
    if parted == 0 {
        assert_all_match(&r, calls);
        return;
    }
    // A parted handle's later calls are `unmirrored` on replay too (the
    // shadow never saw its whole history); the rest match.
    assert_invariants(&r);
    let (mut judged, mut matched) = (0, 0);
    for (f, c) in r.counts() {
        assert_eq!(
            (c.mismatch, c.shadow_fault, c.shadow_timeout, c.dropped),
            (0, 0, 0, 0),
            "{f}: {c:?}"
        );
        judged += c.mirrored;
        matched += c.matched;
    }
    assert_eq!(judged, calls, "every logged call replayed\n{}", r.dump());
    assert!(matched > 1000, "{}", r.dump());
}

/// How many of the first `n` records of a capture log are calls, and how
/// many say a handle parted.
fn calls_in_log(log: &Path, n: u64) -> (u64, u64) {
    use arbiter::capture::{structs_of, CaptureReader, Entry};
    let mut reader = CaptureReader::open(log).expect("the log opens");
    // codec-threads passes no struct.
    let structs = structs_of(std::iter::empty());
    let (mut calls, mut parted) = (0, 0);
    for _ in 0..n {
        match reader.next_entry(&structs) {
            Some(Ok(Entry::Call(_))) => calls += 1,
            Some(Ok(Entry::Parted { .. })) => parted += 1,
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    (calls, parted)
}

/// `hash`: codec_encode's output is kept only as a hash, and replay still
/// finds the same 6 mismatches there. `max_buffer_bytes`: inputs longer
/// than it are cut, and those calls are `unmirrored` on replay.
#[test]
fn privacy_options_keep_less_and_still_judge() {
    let fx = fixtures();
    let new = fx.join("codec/new/libcodec.so.1");
    let app = App::new(fx.join("codec/apps/codec-app-pie-now"));

    let tmp = TempDir::new("capture-hash");
    let mut config = crate::stateful::codec_config(fx);
    config["capture"] = json!({ "path": tmp.path().join("h.zst"), "hash": ["codec_encode.dst"] });
    let (live_report, _) = live_with(&tmp, &app, config);
    let out = tmp.path().join("replay.jsonl");
    let (code, stderr) = replay(&tmp.path().join("h.zst"), &new, &out, &[]);
    assert_eq!(code, 1, "{stderr}");
    let r = replay_report(&out, &stderr);
    assert_same_as_live(&live_report, &r);
    for rec in r.records_of("codec_encode") {
        let dst = rec["primary"]["dst"].to_string();
        assert!(dst.contains("fnv1a64:"), "stored as a hash: {rec}");
    }

    let tmp = TempDir::new("capture-cap");
    let mut config = crate::stateful::codec_config(fx);
    config["capture"] = json!({ "path": tmp.path().join("c.zst"), "max_buffer_bytes": 8 });
    let (live_report, _) = live_with(&tmp, &app, config);
    let out = tmp.path().join("replay.jsonl");
    let (_, stderr) = replay(&tmp.path().join("c.zst"), &new, &out, &["--allow-mismatch"]);
    let r = replay_report(&out, &stderr);
    assert_invariants(&r);
    let (l, c) = (live_report.get("codec_encode"), r.get("codec_encode"));
    assert_eq!(c.mirrored, l.mirrored, "{c:?}");
    assert!(c.unmirrored > 0, "long inputs cut, not replayed: {c:?}");
    assert!(c.mismatch <= l.mismatch, "{c:?}");
    // Functions without long buffers replay as they ran.
    let (lv, rv) = (live_report.get("codec_level"), r.get("codec_level"));
    assert_eq!(
        (rv.mirrored, rv.matched),
        (lv.mirrored, lv.matched),
        "{rv:?}"
    );
}

/// [`live`] with the config's own `capture`.
fn live_with(tmp: &TempDir, app: &App, config: Value) -> (Report, ()) {
    let (_, ddl_run, report) = run_both(tmp, app, config);
    assert!(ddl_run.error_lines().is_empty(), "{}", ddl_run.stderr);
    assert_invariants(&report);
    (report, ())
}

/// Errors before anything is replayed: exit 3 and a message naming the file.
#[test]
fn replay_refuses_what_is_not_a_log() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-notalog");
    let new = fx.join("codec/new/libcodec.so.1");
    let missing = tmp.path().join("missing.zst");
    let (code, stderr) = replay(&missing, &new, &tmp.path().join("r.jsonl"), &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("missing.zst"), "{stderr}");
    let text = tmp.write("report.jsonl", "{\"summary\": {}}\n");
    let (code, stderr) = replay(&text, &new, &tmp.path().join("r.jsonl"), &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("not a DDL capture log"), "{stderr}");
}

/// On a terminal (`script` gives the command one), `ddl replay` shows how
/// many records it has read; the report file is the same as without it.
#[test]
fn replay_shows_progress_on_a_terminal() {
    let fx = fixtures();
    let tmp = TempDir::new("capture-progress");
    let (live_report, log) = threads_log(&tmp);
    let out = tmp.path().join("replay.jsonl");
    let cmd = format!(
        "{} replay {} --new {} --report {}",
        ddl().display(),
        log.display(),
        fx.join("codec/new/libcodec.so.1").display(),
        out.display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("DDL_LIB", libddl())
        .env_remove("LD_PRELOAD")
        .env_remove("DDL_CONFIG")
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("replaying: "),
        "no progress line on the terminal:\n{text}"
    );
    assert!(text.contains("records read"), "{text}");
    let r = replay_report(&out, &text);
    assert_eq!(mirrored(&r), mirrored(&live_report));
}
