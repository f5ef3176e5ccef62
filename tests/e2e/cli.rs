//! The `ddl` command line: `ddl run`, `ddl report` (text, `--json`,
//! `--html`) and `ddl demo`, on real fixture runs.
//!
//! `ddl run` runs `cxx-fixtures/cli/echo-app` (copies stdin to stdout, two
//! libcalc calls per line, exits with the status it is given) and is
//! compared byte for byte with the plain run. `ddl report` reads reports of
//! calc-app, buf-app and fault-app runs; what it must say comes from the
//! expectation tables (`expect.rs`) and the fixtures' documented
//! differences, never from an earlier output of `ddl` itself.
//!
//! The binary is cargo's own build of `ddl` for this test
//! (`CARGO_BIN_EXE_ddl`); it finds libddl.so through `DDL_LIB`, set to the
//! harness's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use scraper::{ElementRef, Html, Selector};
use serde_json::{json, Value};

use crate::apps::{buf_config, calc_config};
use crate::expect::*;
use crate::harness::*;

/// What one command produced.
struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ran {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
    fn what(&self) -> String {
        format!(
            "status {}; stdout:\n{}\nstderr:\n{}",
            self.status,
            self.out(),
            self.err()
        )
    }
}

/// Runs `cmd` in `cwd` with `stdin` fed to it, without LD_PRELOAD,
/// DDL_CONFIG or DDL_LOG from the test's environment, and DDL_LIB set to
/// the harness's libddl.so; at most 120 s.
fn run_cmd(cmd: Command, cwd: &Path, stdin: &[u8]) -> Ran {
    run_cmd_with(cmd, cwd, stdin, None)
}

/// [`run_cmd`] with `DDL_CONFIG` set to `config`.
fn run_cmd_with(mut cmd: Command, cwd: &Path, stdin: &[u8], config: Option<&Path>) -> Ran {
    cmd.current_dir(cwd)
        .env_remove("LD_PRELOAD")
        .env_remove("DDL_CONFIG")
        .env_remove("DDL_LOG")
        .env("DDL_LIB", libddl());
    if let Some(c) = config {
        cmd.env("DDL_CONFIG", c);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    Ran {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn ddl_cmd<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ddl"));
    c.args(args);
    c
}

/// `ddl ARGS…` in `cwd`.
fn ddl<S: AsRef<std::ffi::OsStr>>(args: &[S], cwd: &Path) -> Ran {
    run_cmd(ddl_cmd(args), cwd, b"")
}

fn echo_app() -> PathBuf {
    fixtures().join("cli/echo-app")
}

/// The rows of a table `ddl` printed: for each function (and `total`), its
/// counters by column header.
fn table_rows(text: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut rows = BTreeMap::new();
    let mut header: Option<Vec<String>> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"function") && words.get(1) == Some(&"calls") {
            header = Some(words[1..].iter().map(|s| s.to_string()).collect());
            continue;
        }
        let Some(h) = &header else { continue };
        let nums: Option<Vec<u64>> = words.iter().skip(1).map(|w| w.parse().ok()).collect();
        match nums {
            Some(n) if n.len() == h.len() && !words.is_empty() => {
                rows.insert(
                    words[0].to_string(),
                    h.iter().cloned().zip(n).collect::<BTreeMap<_, _>>(),
                );
            }
            _ => header = None,
        }
    }
    rows
}

/// Asserts that table `rows` gives each of `wants` (all mirrored, no
/// faults, timeouts or drops) and a total that sums them.
fn assert_rows(
    rows: &BTreeMap<String, BTreeMap<String, u64>>,
    wants: &[Want],
    times: u64,
    text: &str,
) {
    let mut total = (0, 0);
    for w in wants {
        let row = rows
            .get(w.function)
            .unwrap_or_else(|| panic!("no row for {} in:\n{text}", w.function));
        let want: BTreeMap<String, u64> = [
            ("calls", w.calls * times),
            ("match", (w.calls - w.mismatch) * times),
            ("mismatch", w.mismatch * times),
            ("faults", 0),
            ("timeouts", 0),
            ("dropped", 0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(row, &want, "{}: row differs in:\n{text}", w.function);
        total.0 += w.calls * times;
        total.1 += w.mismatch * times;
    }
    let t = &rows["total"];
    assert_eq!((t["calls"], t["mismatch"]), total, "total row in:\n{text}");
    let names: BTreeSet<&str> = rows
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "total")
        .collect();
    let want_names: BTreeSet<&str> = wants
        .iter()
        .filter(|w| w.calls > 0)
        .map(|w| w.function)
        .collect();
    assert_eq!(names, want_names, "functions with calls in:\n{text}");
}

/// A calc config for echo-app with `report` at `report` (`%p` allowed).
fn echo_config(tmp: &TempDir, report: &str) -> PathBuf {
    let mut c = calc_config(fixtures(), None);
    c["report"] = json!(tmp.path().join(report));
    tmp.write_config(&c)
}

/// echo-app's counts for `lines` lines of input (see cli/echo-app.c).
fn echo_wants(lines: u64, extra_div: u64) -> Vec<Want> {
    let div_mismatch = lines.div_ceil(3) + extra_div;
    let mut w = vec![want("calc_div", lines + extra_div, div_mismatch)];
    if lines > 0 {
        w.push(want("calc_add", lines, 0));
    }
    w
}

/// The part of `ddl run`'s stderr that is `ddl`'s own: what follows the
/// command's own stderr (which must come first, unchanged).
fn ddl_part<'a>(plain_err: &[u8], ddl_err: &'a [u8]) -> &'a str {
    assert!(
        ddl_err.starts_with(plain_err),
        "the command's stderr is not passed through unchanged:\nplain: {:?}\nddl run: {:?}",
        String::from_utf8_lossy(plain_err),
        String::from_utf8_lossy(ddl_err)
    );
    let rest = std::str::from_utf8(&ddl_err[plain_err.len()..]).expect("ddl's own stderr is UTF-8");
    assert!(
        rest.starts_with("ddl: "),
        "ddl's summary must start with `ddl: `: {rest:?}"
    );
    rest
}

// ---------------------------------------------------------------------------
// ddl run
// ---------------------------------------------------------------------------

#[test]
fn run_preserves_stdin_stdout_stderr_and_exit_status() {
    let tmp = TempDir::new("cli-run-streams");
    let cfg = echo_config(&tmp, "report.%p.jsonl");
    // Any bytes: not UTF-8, a NUL, CR, and a last line without its newline.
    let input: &[u8] = b"alpha\nbeta\r\n\xff\xfe\x00binary\n\nlast line without newline";
    let lines = 5;
    for status in [0, 3, 42] {
        for f in std::fs::read_dir(tmp.path()).unwrap().flatten() {
            if f.file_name().to_string_lossy().starts_with("report.") {
                std::fs::remove_file(f.path()).unwrap();
            }
        }
        let mut plain = Command::new(echo_app());
        plain.arg(status.to_string());
        let plain = run_cmd(plain, tmp.path(), input);
        assert_eq!(plain.code(), Some(status), "plain run: {}", plain.what());
        assert_eq!(plain.stdout, input, "echo-app copies its input");

        let mut cmd = ddl_cmd(&["run", "-c"]);
        cmd.arg(&cfg)
            .arg("--")
            .arg(echo_app())
            .arg(status.to_string());
        let run = run_cmd(cmd, tmp.path(), input);
        assert_eq!(run.code(), Some(status), "ddl run: {}", run.what());
        assert_eq!(run.stdout, plain.stdout, "stdout differs: {}", run.what());
        let own = ddl_part(&plain.stderr, &run.stderr);
        assert!(!own.contains("ddl: error"), "{own}");

        // The table: exact counts, and what the report itself says.
        let rows = table_rows(own);
        assert_rows(&rows, &echo_wants(lines, 0), 1, own);
        let reports: Vec<PathBuf> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("report.")
            })
            .collect();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let ddl_out = Output {
            status: run.status,
            stdout: run.stdout.clone(),
            stderr: run.err(),
            pid: 0,
            what: "ddl run echo-app".into(),
        };
        let report = read_report(&reports[0], &ddl_out);
        assert_summary(&report, &echo_wants(lines, 0));
        assert!(
            own.contains(
                &reports[0]
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_string()
            ),
            "the summary names its report: {own}"
        );
    }
}

#[test]
fn run_takes_the_config_from_ddl_config_and_counts_child_processes() {
    let tmp = TempDir::new("cli-run-child");
    let cfg = echo_config(&tmp, "report.%p.jsonl");
    // A report of an earlier run stays out of this one's table.
    std::fs::write(
        tmp.path().join("report.1.jsonl"),
        "{\"summary\":{\"calc_div\":{\"calls\":100,\"mirrored\":100,\"mismatch\":100}}}\n",
    )
    .unwrap();
    let input = b"1\n2\n3\n";
    let mut plain = Command::new(echo_app());
    plain.args(["--child", "5", "0"]);
    let plain = run_cmd(plain, tmp.path(), input);
    assert_eq!(plain.code(), Some(0), "{}", plain.what());

    let mut cmd = ddl_cmd(&["run", "--"]);
    cmd.arg(echo_app()).args(["--child", "5", "0"]);
    let run = run_cmd_with(cmd, tmp.path(), input, Some(&cfg));
    assert_eq!(run.code(), Some(0), "{}", run.what());
    assert_eq!(run.stdout, plain.stdout);
    let own = ddl_part(&plain.stderr, &run.stderr);
    assert!(own.contains("2 reports"), "parent and child: {own}");
    // The parent: 3 lines; the child: 5 calc_div(i, 0).
    assert_rows(&table_rows(own), &echo_wants(3, 5), 1, own);
}

#[test]
fn run_counts_only_what_this_run_added_to_a_shared_report() {
    // `report` without `%p`: every run appends to one file; a run reads
    // only what it added. What was there before is a line that is no
    // report line (read again, it would be an error) and a summary of
    // other counts.
    let tmp = TempDir::new("cli-run-shared");
    let cfg = echo_config(&tmp, "shared.jsonl");
    let shared = tmp.path().join("shared.jsonl");
    std::fs::write(
        &shared,
        "left by something else\n{\"summary\":{\"calc_div\":{\"calls\":100,\"mismatch\":100}}}\n",
    )
    .unwrap();
    for input in [&b"a\nb\n"[..], &b"a\nb\nc\nd\ne\n"[..]] {
        let mut plain = Command::new(echo_app());
        plain.arg("0");
        let plain = run_cmd(plain, tmp.path(), input);
        let mut cmd = ddl_cmd(&["run", "-c"]);
        cmd.arg(&cfg).arg("--").arg(echo_app()).arg("0");
        let run = run_cmd(cmd, tmp.path(), input);
        assert_eq!(run.code(), Some(0), "{}", run.what());
        assert_eq!(run.stdout, plain.stdout);
        let own = ddl_part(&plain.stderr, &run.stderr);
        assert!(!own.contains("not a DDL report line"), "{own}");
        let lines = input.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_rows(&table_rows(own), &echo_wants(lines, 0), 1, own);
    }
    // `ddl report` reads the whole file, and stops at its first line.
    let r = ddl(&["report".as_ref(), shared.as_os_str()], tmp.path());
    assert_eq!(r.code(), Some(3), "{}", r.what());
    assert!(
        r.err().contains(&format!("{}:1:", shared.display())),
        "{}",
        r.what()
    );
}

#[test]
fn run_gives_128_plus_the_signal_of_a_killed_command() {
    let tmp = TempDir::new("cli-run-signal");
    let cfg = echo_config(&tmp, "report.%p.jsonl");
    let mut plain = Command::new(echo_app());
    plain.arg("kill:15");
    let plain = run_cmd(plain, tmp.path(), b"x\n");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(plain.status.signal(), Some(15), "{}", plain.what());
    let mut cmd = ddl_cmd(&["run", "-c"]);
    cmd.arg(&cfg).arg("--").arg(echo_app()).arg("kill:15");
    let run = run_cmd(cmd, tmp.path(), b"x\n");
    assert_eq!(run.code(), Some(128 + 15), "{}", run.what());
    assert_eq!(run.stdout, plain.stdout);
    let own = ddl_part(&plain.stderr, &run.stderr);
    assert!(own.contains("killed by signal 15"), "{own}");
}

#[test]
fn run_usage_errors_and_missing_commands() {
    let tmp = TempDir::new("cli-run-usage");
    // No -c and no DDL_CONFIG: usage error 2, nothing run.
    let r = ddl(&["run", "--", "/bin/echo", "never"], tmp.path());
    assert_eq!(r.code(), Some(2), "{}", r.what());
    assert!(r.err().contains("-c CONFIG"), "{}", r.what());
    assert!(r.stdout.is_empty(), "{}", r.what());
    // A config that does not load: its error, status 2, nothing run.
    let bad = tmp.write("bad.json", "{\"old\": \"libcalc.so.1\",\n \"nope\": 1}");
    let mut cmd = ddl_cmd(&["run", "-c"]);
    cmd.arg(&bad).args(["--", "/bin/echo", "never"]);
    let r = run_cmd(cmd, tmp.path(), b"");
    assert_eq!(r.code(), Some(2), "{}", r.what());
    assert!(
        r.err().contains("ddl: error: ") && r.err().contains("bad.json"),
        "{}",
        r.what()
    );
    assert!(r.stdout.is_empty(), "{}", r.what());
    // A command that is not there: 127, as shells say.
    let cfg = echo_config(&tmp, "report.%p.jsonl");
    let mut cmd = ddl_cmd(&["run", "-c"]);
    cmd.arg(&cfg).args(["--", "/nonexistent/command"]);
    let r = run_cmd(cmd, tmp.path(), b"");
    assert_eq!(r.code(), Some(127), "{}", r.what());
    assert!(r.err().contains("/nonexistent/command"), "{}", r.what());
}

// ---------------------------------------------------------------------------
// ddl report
// ---------------------------------------------------------------------------

/// Runs `app` under libddl with `config`, its report at `tmp/name`; the app
/// must behave as without libddl. Returns the report's path.
fn fixture_report(tmp: &TempDir, app: &App, mut config: Value, name: &str) -> PathBuf {
    let path = tmp.path().join(name);
    config["report"] = json!(path);
    let cfg = tmp.write(&format!("{name}.ddl.json"), &config.to_string());
    let plain = run_plain(app, tmp.path());
    let ddl = run_ddl(app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    assert!(
        path.is_file(),
        "no report at {}: {}",
        path.display(),
        ddl.stderr
    );
    path
}

fn buf_report(tmp: &TempDir) -> PathBuf {
    let app = App::new(fixtures().join("buf/apps/buf-app-pie-now"));
    fixture_report(tmp, &app, buf_config(fixtures()), "buf.jsonl")
}

/// fault-app with codes 1 1 3 15 101 0 24 (timeout 200 ms): fault_do gets
/// two SIGSEGV, a SIGFPE, a timeout and two matches (101 is the app
/// pausing, not a call; 24 faults in a thread the new build starts and
/// joins: a `shadow_thread_fault` event, and the call matches); fault_write
/// matches 6 times.
fn fault_report(tmp: &TempDir) -> PathBuf {
    let fx = fixtures();
    let mut app = App::new(fx.join("faults/apps/fault-app"))
        .arg("-o")
        .arg(tmp.path().join("fault.out"));
    for c in ["1", "1", "3", "15", "101", "0", "24"] {
        app = app.arg(c);
    }
    let config = json!({
        "old": "libfault.so.1",
        "new": fx.join("faults/new/libfault.so.1"),
        "timeout_ms": 200,
        "functions": ["int fault_do(int what, int x)", "int fault_write(int fd, const char *s)"],
    });
    fixture_report(tmp, &app, config, "fault.jsonl")
}

fn json_of(r: &Ran) -> Value {
    serde_json::from_slice(&r.stdout).unwrap_or_else(|e| panic!("--json output: {e}; {}", r.what()))
}

/// The group lines of the text output: (function, description, count).
fn text_groups(text: &str) -> Vec<(String, String, u64)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (n, rest) = l.split_once(". ")?;
            n.parse::<u64>().ok()?;
            let (head, count) = rest.rsplit_once("  ×")?;
            let (function, desc) = head.split_once("  ")?;
            Some((function.to_string(), desc.to_string(), count.parse().ok()?))
        })
        .collect()
}

#[test]
fn report_table_groups_and_json_of_a_real_run() {
    let tmp = TempDir::new("cli-report-buf");
    let report = buf_report(&tmp);
    let r = ddl(&["report".as_ref(), report.as_os_str()], tmp.path());
    assert_eq!(r.code(), Some(1), "mismatches present: {}", r.what());
    let text = r.out();
    assert_rows(&table_rows(&text), BUF_APP, 1, &text);

    // Groups: the functions with mismatches, exactly, counts adding up to
    // each function's mismatches, largest first.
    let groups = text_groups(&text);
    let mut per_fn: BTreeMap<String, u64> = BTreeMap::new();
    for (f, desc, n) in &groups {
        assert!(desc.starts_with("mismatch at "), "{desc}");
        *per_fn.entry(f.clone()).or_default() += n;
    }
    let want: BTreeMap<String, u64> = BUF_APP
        .iter()
        .filter(|w| w.mismatch > 0)
        .map(|w| (w.function.to_string(), w.mismatch))
        .collect();
    assert_eq!(per_fn, want, "groups in:\n{text}");
    let counts: Vec<u64> = groups.iter().map(|g| g.2).collect();
    let mut sorted = counts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(counts, sorted, "groups sorted by count:\n{text}");
    // The outputs that differ, as the fixtures document them.
    for (f, desc) in [
        ("buf_fill", "mismatch at dst[]"),
        ("buf_upper", "mismatch at out"),
        ("buf_translate", "mismatch at p.y"),
        ("buf_scale3", "mismatch at ret.c"),
        ("buf_tag", "mismatch at ret.id"),
        ("buf_area", "mismatch at ret"),
    ] {
        assert!(
            groups.iter().any(|g| g.0 == f && g.1 == desc),
            "no group {f} {desc} in:\n{text}"
        );
    }

    // --json: the same, for machines.
    let j = ddl(
        &["report".as_ref(), "--json".as_ref(), report.as_os_str()],
        tmp.path(),
    );
    assert_eq!(j.code(), Some(1), "{}", j.what());
    let v = json_of(&j);
    for w in BUF_APP {
        assert_eq!(
            v["functions"][w.function],
            json!({"calls": w.calls, "mirrored": w.calls, "match": w.calls - w.mismatch,
                   "mismatch": w.mismatch, "shadow_fault": 0, "shadow_timeout": 0,
                   "dropped": 0, "unmirrored": 0, "skipped": 0}),
            "{}",
            w.function
        );
    }
    let jgroups = v["groups"].as_array().unwrap();
    assert_eq!(jgroups.len(), groups.len());
    for (g, (f, _, n)) in jgroups.iter().zip(&groups) {
        assert_eq!(g["function"], json!(f));
        assert_eq!(g["count"], json!(n));
        assert_eq!(
            g["record"]["function"],
            json!(f),
            "a group's record is one of its own"
        );
        assert_eq!(g["verdict"], "mismatch");
    }
    let fill = jgroups
        .iter()
        .find(|g| g["function"] == "buf_fill")
        .unwrap();
    assert_eq!(fill["paths"], json!(["dst[]"]));
    assert_eq!(fill["count"], 2);

    let a = ddl(
        &[
            "report".as_ref(),
            "--allow-mismatch".as_ref(),
            report.as_os_str(),
        ],
        tmp.path(),
    );
    assert_eq!(a.code(), Some(0), "{}", a.what());
}

#[test]
fn report_shows_faults_and_timeouts_as_groups() {
    let tmp = TempDir::new("cli-report-faults");
    let report = fault_report(&tmp);
    let j = ddl(
        &["report".as_ref(), "--json".as_ref(), report.as_os_str()],
        tmp.path(),
    );
    assert_eq!(
        j.code(),
        Some(1),
        "faults and timeouts fail the report: {}",
        j.what()
    );
    let v = json_of(&j);
    let f = &v["functions"]["fault_do"];
    assert_eq!(
        (
            &f["calls"],
            &f["match"],
            &f["shadow_fault"],
            &f["shadow_timeout"],
            &f["mismatch"]
        ),
        (&json!(6), &json!(2), &json!(3), &json!(1), &json!(0)),
        "{f}"
    );
    assert_eq!(v["functions"]["fault_write"]["match"], 6);
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["shadow_thread_fault"], "{}", v["events"]);
    let groups: Vec<(String, Option<String>, u64)> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["verdict"].as_str().unwrap().to_string(),
                g["fault"].as_str().map(str::to_string),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("shadow_fault".to_string(), Some("SIGSEGV".to_string()), 2),
            ("shadow_fault".to_string(), Some("SIGFPE".to_string()), 1),
            ("shadow_timeout".to_string(), None, 1),
        ]
    );
    let t = ddl(&["report".as_ref(), report.as_os_str()], tmp.path());
    assert_eq!(t.code(), Some(1));
    let rows = table_rows(&t.out());
    assert_eq!(rows["fault_do"]["faults"], 3, "{}", t.out());
    assert_eq!(rows["fault_do"]["timeouts"], 1, "{}", t.out());
    assert!(
        t.out()
            .lines()
            .any(|l| l.starts_with("event ") && l.contains("shadow_thread_fault")),
        "the event is shown: {}",
        t.out()
    );
    let a = ddl(
        &[
            "report".as_ref(),
            "--allow-mismatch".as_ref(),
            report.as_os_str(),
        ],
        tmp.path(),
    );
    assert_eq!(a.code(), Some(0), "{}", a.what());
}

#[test]
fn report_sums_processes_and_passes_a_match_only_run() {
    let tmp = TempDir::new("cli-report-sum");
    let fx = fixtures();
    let app = App::new(fx.join("calc/apps/calc-app-pie-now"));
    let a = fixture_report(&tmp, &app, calc_config(fx, None), "a.jsonl");
    let b = fixture_report(&tmp, &app, calc_config(fx, None), "b.jsonl");
    let r = ddl(
        &["report".as_ref(), a.as_os_str(), b.as_os_str()],
        tmp.path(),
    );
    assert_eq!(r.code(), Some(1), "{}", r.what());
    assert_rows(&table_rows(&r.out()), CALC_APP, 2, &r.out());
    let mut per_fn: BTreeMap<String, u64> = BTreeMap::new();
    for (f, _, n) in text_groups(&r.out()) {
        *per_fn.entry(f).or_default() += n;
    }
    let want_groups: BTreeMap<String, u64> = CALC_APP
        .iter()
        .filter(|w| w.mismatch > 0)
        .map(|w| (w.function.to_string(), 2 * w.mismatch))
        .collect();
    assert_eq!(per_fn, want_groups, "{}", r.out());

    // Only calc_add mirrored: six matches, nothing to look at, status 0.
    let mut only_add = calc_config(fx, None);
    only_add["functions"] = json!(["int calc_add(int a, int b)"]);
    let c = fixture_report(&tmp, &app, only_add, "c.jsonl");
    let r = ddl(&["report".as_ref(), c.as_os_str()], tmp.path());
    assert_eq!(r.code(), Some(0), "{}", r.what());
    assert_rows(
        &table_rows(&r.out()),
        &[want("calc_add", 6, 0)],
        1,
        &r.out(),
    );
    assert!(text_groups(&r.out()).is_empty(), "{}", r.out());
}

#[test]
fn report_names_the_file_and_line_of_a_bad_report() {
    let tmp = TempDir::new("cli-report-bad");
    let fx = fixtures();
    let app = App::new(fx.join("calc/apps/calc-app-pie-now"));
    let good = fixture_report(&tmp, &app, calc_config(fx, None), "good.jsonl");
    let text = std::fs::read_to_string(&good).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3, "{text}");

    // Missing file.
    let missing = tmp.path().join("missing.jsonl");
    let r = ddl(
        &["report".as_ref(), good.as_os_str(), missing.as_os_str()],
        tmp.path(),
    );
    assert_eq!(r.code(), Some(3), "{}", r.what());
    assert!(
        r.err().contains(&missing.display().to_string()),
        "{}",
        r.what()
    );

    // Garbage at line 3, a line of JSON that is no report line at line 2.
    for (name, line, bad) in [
        ("garbage.jsonl", 3, "%%% not json"),
        ("other.jsonl", 2, "{\"hello\": 1}"),
    ] {
        let mut l = lines.clone();
        l.insert(line - 1, bad);
        let p = tmp.write(name, &(l.join("\n") + "\n"));
        let r = ddl(
            &["report".as_ref(), good.as_os_str(), p.as_os_str()],
            tmp.path(),
        );
        assert_eq!(r.code(), Some(3), "{name}: {}", r.what());
        let want = format!("{}:{line}:", p.display());
        assert!(
            r.err().contains(&want),
            "{name}: expected {want:?} in {}",
            r.err()
        );
        assert!(
            r.stdout.is_empty(),
            "nothing printed for a bad report: {}",
            r.what()
        );
    }

    // A last line cut short (a process killed mid-write) is only a warning.
    let cut_at = text.len() - 10;
    let cut = tmp.write("cut.jsonl", &text[..cut_at]);
    let r = ddl(
        &["report".as_ref(), "--json".as_ref(), cut.as_os_str()],
        tmp.path(),
    );
    assert_eq!(r.code(), Some(1), "{}", r.what());
    assert!(
        r.err().contains("cut.jsonl") && r.err().contains("warning"),
        "{}",
        r.what()
    );
    // The summary was the cut line: counters come from the records.
    let v = json_of(&r);
    assert_eq!(v["files"][0]["summary"], false);
    assert_eq!(v["functions"]["calc_div"]["mismatch"], 3);
}

// ---------------------------------------------------------------------------
// ddl report --html
// ---------------------------------------------------------------------------

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("selector {s}: {e:?}"))
}

fn text_of(e: ElementRef) -> String {
    e.text().collect::<String>().trim().to_string()
}

#[test]
fn report_html_page_has_the_table_groups_and_highlighted_differences() {
    let tmp = TempDir::new("cli-report-html");
    let buf = buf_report(&tmp);
    let faults = fault_report(&tmp);
    let out = tmp.path().join("report.html");
    let r = ddl(
        &[
            "report".as_ref(),
            "--html".as_ref(),
            out.as_os_str(),
            buf.as_os_str(),
            faults.as_os_str(),
        ],
        tmp.path(),
    );
    assert_eq!(r.code(), Some(1), "{}", r.what());
    let j = ddl(
        &[
            "report".as_ref(),
            "--json".as_ref(),
            buf.as_os_str(),
            faults.as_os_str(),
        ],
        tmp.path(),
    );
    let v = json_of(&j);
    let page = std::fs::read_to_string(&out).unwrap();

    // Self-contained: no script, no external resource.
    for banned in [
        "<script",
        "<link",
        " src=",
        "href=\"http",
        "url(",
        "@import",
    ] {
        assert!(!page.contains(banned), "the page has {banned:?}");
    }
    let doc = Html::parse_document(&page);
    assert_eq!(doc.select(&sel("head > style")).count(), 1);

    // The per-function table: a row per function with its counters.
    let mut wants: Vec<Want> = BUF_APP.to_vec();
    wants.push(want("fault_write", 6, 0));
    for w in &wants {
        let row = doc
            .select(&sel(&format!(
                "#functions tr.fn[data-function=\"{}\"]",
                w.function
            )))
            .next()
            .unwrap_or_else(|| panic!("no row for {}", w.function));
        let cell = |c: &str| -> u64 {
            text_of(row.select(&sel(&format!("td.{c}"))).next().unwrap())
                .parse()
                .unwrap()
        };
        assert_eq!(
            (
                cell("calls"),
                cell("match"),
                cell("mismatch"),
                cell("shadow_fault")
            ),
            (w.calls, w.calls - w.mismatch, w.mismatch, 0),
            "{}",
            w.function
        );
    }
    let fd = doc
        .select(&sel("#functions tr.fn[data-function=\"fault_do\"]"))
        .next()
        .unwrap();
    let fd_cell = |c: &str| text_of(fd.select(&sel(&format!("td.{c}"))).next().unwrap());
    assert_eq!(
        (
            fd_cell("shadow_fault").as_str(),
            fd_cell("shadow_timeout").as_str()
        ),
        ("3", "1")
    );
    let divergent: BTreeSet<String> = doc
        .select(&sel("#functions tr.fn.divergent"))
        .map(|e| e.value().attr("data-function").unwrap().to_string())
        .collect();
    let mut want_div: BTreeSet<String> = BUF_APP
        .iter()
        .filter(|w| w.mismatch > 0)
        .map(|w| w.function.to_string())
        .collect();
    want_div.insert("fault_do".into());
    assert_eq!(divergent, want_div);

    // One section per group, in the order and with the counts of --json.
    let sections: Vec<ElementRef> = doc.select(&sel("section.group")).collect();
    let jgroups = v["groups"].as_array().unwrap();
    assert_eq!(sections.len(), jgroups.len());
    for (s, g) in sections.iter().zip(jgroups) {
        assert_eq!(s.value().attr("data-function"), g["function"].as_str());
        assert_eq!(s.value().attr("data-verdict"), g["verdict"].as_str());
        assert_eq!(
            s.value().attr("data-count").map(str::to_string),
            Some(g["count"].to_string())
        );
        assert_eq!(
            text_of(s.select(&sel(".count")).next().unwrap()),
            format!("×{}", g["count"])
        );
    }
    let section = |f: &str| -> ElementRef {
        *sections
            .iter()
            .find(|s| s.value().attr("data-function") == Some(f))
            .unwrap_or_else(|| panic!("no group for {f}"))
    };

    // buf_fill: the new build writes 0xEE at dst[20]: that byte, and only
    // it, is highlighted on both sides.
    let fill = section("buf_fill");
    let g = jgroups
        .iter()
        .find(|g| g["function"] == "buf_fill")
        .unwrap();
    let d = &g["record"]["diffs"][0];
    assert_eq!(d["path"], "dst[20]");
    let row = fill
        .select(&sel("table.outcomes tr[data-path=\"dst\"]"))
        .next()
        .unwrap();
    assert!(row.value().classes().any(|c| c == "differs"));
    for (side, value) in [("primary", &d["primary"]), ("shadow", &d["shadow"])] {
        let marked: Vec<(String, String)> = row
            .select(&sel(&format!("td.{side}.diff span.b.d")))
            .map(|e| (e.value().attr("data-i").unwrap().to_string(), text_of(e)))
            .collect();
        assert_eq!(
            marked,
            vec![("20".to_string(), format!("{:02x}", value.as_u64().unwrap()))],
            "{side}"
        );
    }
    assert_eq!(d["shadow"], 0xee);
    // The arguments are shown.
    let n = fill
        .select(&sel("table.args tr[data-arg=\"n\"] td"))
        .next()
        .unwrap();
    assert_eq!(text_of(n), g["record"]["args"]["n"].to_string());
    // Outputs that agree are not highlighted.
    let ret = fill
        .select(&sel("table.outcomes tr[data-path=\"ret\"]"))
        .next()
        .unwrap();
    assert_eq!(ret.select(&sel("td.diff, span.d")).count(), 0);

    // buf_upper: '-' becomes '_' in the new build: that character.
    let upper = section("buf_upper");
    for (side, ch) in [("primary", "-"), ("shadow", "_")] {
        let marked: Vec<String> = upper
            .select(&sel(&format!(
                "tr[data-path=\"out\"] td.{side}.diff span.d"
            )))
            .map(text_of)
            .collect();
        assert_eq!(marked, vec![ch.to_string()], "{side}");
    }
    // buf_area: a scalar return value, whole cell.
    let area = section("buf_area");
    let g = jgroups
        .iter()
        .find(|g| g["function"] == "buf_area")
        .unwrap();
    let cell = |side: &str| {
        text_of(
            area.select(&sel(&format!(
                "tr[data-path=\"ret\"] td.{side}.diff span.d"
            )))
            .next()
            .unwrap(),
        )
    };
    assert_eq!(cell("primary"), g["record"]["primary"]["ret"].to_string());
    assert_eq!(cell("shadow"), g["record"]["shadow"]["ret"].to_string());

    // Faults: their kind and place.
    let segv = sections
        .iter()
        .find(|s| s.value().attr("data-verdict") == Some("shadow_fault"))
        .unwrap();
    let fault_text = text_of(segv.select(&sel("table.fault")).next().unwrap());
    assert!(
        fault_text.contains("SIGSEGV") && fault_text.contains("libfault.so.1+0x"),
        "{fault_text}"
    );
    assert!(sections
        .iter()
        .any(|s| s.value().attr("data-verdict") == Some("shadow_timeout")));
    let events: Vec<String> = doc.select(&sel("ul.events li")).map(text_of).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("shadow_thread_fault"), "{events:?}");
}

// ---------------------------------------------------------------------------
// ddl demo
// ---------------------------------------------------------------------------

#[test]
fn demo_runs_the_bundled_example() {
    // The demo builds the fixtures with make too: let the harness's make
    // finish first, so that two makes never write the same files at once.
    fixtures();
    let tmp = TempDir::new("cli-demo");
    let r = ddl(
        &[
            "demo".as_ref(),
            "--source".as_ref(),
            repo().as_os_str(),
            "--dir".as_ref(),
            tmp.path().as_os_str(),
        ],
        tmp.path(),
    );
    assert_eq!(r.code(), Some(0), "{}", r.what());
    let out = r.out();
    assert!(out.contains("byte-identical"), "{out}");
    assert_rows(&table_rows(&out), CALC_APP, 1, &out);
    assert!(
        out.contains("\"verdict\": \"mismatch\""),
        "one mismatch record: {out}"
    );
    assert!(tmp.path().join("report.html").is_file());
}
