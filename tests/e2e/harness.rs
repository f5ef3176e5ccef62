//! The shared harness: fixtures built once, libddl.so located, temporary
//! folders, running an app with and without libddl, reading the report and
//! asserting its counts with messages that say what differed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::expect::Want;

/// The repository (workspace root).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target folder for this build (`CARGO_TARGET_DIR` or `target`).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"))
}

/// Builds the fixtures once per test process (`make -C cxx-fixtures
/// OUT=<target>/fixtures -j2`) and returns OUT.
pub fn fixtures() -> &'static Path {
    static FIXTURES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = FIXTURES.get_or_init(|| {
        let out = target_dir().join("fixtures");
        let result = Command::new("make")
            .arg("-C")
            .arg(repo().join("cxx-fixtures"))
            .arg(format!("OUT={}", out.display()))
            .arg("-j2")
            .stdin(Stdio::null())
            .output();
        match result {
            Err(e) => Err(format!("cannot run make: {e}")),
            Ok(o) if !o.status.success() => Err(format!(
                "building the fixtures failed (make -C cxx-fixtures OUT={}): {}\n{}{}",
                out.display(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Ok(_) => Ok(out),
        }
    });
    match built {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// libddl.so: `$DDL_LIB`, else `<target>/release/libddl.so`, else
/// `<repo>/target/release/libddl.so`.
pub fn libddl() -> PathBuf {
    if let Some(p) = std::env::var_os("DDL_LIB") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "DDL_LIB={} is not a file: run cargo build --release first",
            p.display()
        );
        return p;
    }
    let candidates = [
        target_dir().join("release/libddl.so"),
        repo().join("target/release/libddl.so"),
    ];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "libddl.so not found (looked at $DDL_LIB, {} and {}): run cargo build --release first",
        candidates[0].display(),
        candidates[1].display()
    );
}

/// A fresh folder under the system's temp dir, removed when the test passes
/// (kept, and named on stderr, when it fails or `DDL_E2E_KEEP` is set).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = std::env::temp_dir().join(format!(
            "ddl-e2e-{}-{}-{:08x}-{}",
            std::process::id(),
            n,
            nanos,
            safe
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` to `name` in this folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }

    /// Writes a config (pretty JSON) and returns its path.
    pub fn write_config(&self, config: &Value) -> PathBuf {
        self.write(
            "ddl.json",
            &serde_json::to_string_pretty(config).expect("config serialises"),
        )
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("DDL_E2E_KEEP").is_some() {
            eprintln!("(kept {} for inspection)", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How to run an app.
#[derive(Clone, Debug)]
pub struct App {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    /// Libraries preloaded in both runs (libddl is added for the DDL run).
    pub preload: Vec<PathBuf>,
    pub timeout: Duration,
}

impl App {
    pub fn new(program: impl Into<PathBuf>) -> App {
        App {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            preload: Vec::new(),
            timeout: Duration::from_secs(120),
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> App {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> App {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn preload(mut self, p: impl Into<PathBuf>) -> App {
        self.preload.push(p.into());
        self
    }

    pub fn timeout(mut self, t: Duration) -> App {
        self.timeout = t;
        self
    }

    /// The app's base name (what a record's `caller` starts with).
    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// What one run produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub pid: u32,
    pub what: String,
}

impl Output {
    /// Lines of stderr that are `ddl: error: …`.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("ddl: error: "))
            .collect()
    }
}

/// Runs `app` with `preload` (joined with ':'; empty: no LD_PRELOAD) and
/// `DDL_CONFIG=config` if given, in `cwd`, with a time limit.
pub fn run(
    app: &App,
    preload: &[PathBuf],
    config: Option<&Path>,
    cwd: &Path,
    what: &str,
) -> Output {
    let mut cmd = Command::new(&app.program);
    cmd.args(&app.args)
        .current_dir(cwd)
        .env_remove("LD_PRELOAD")
        .env_remove("DDL_CONFIG")
        .env_remove("DDL_LOG")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_BIND_NOW")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &app.env {
        cmd.env(k, v);
    }
    if !preload.is_empty() {
        let joined: Vec<String> = preload.iter().map(|p| p.display().to_string()).collect();
        cmd.env("LD_PRELOAD", joined.join(":"));
    }
    if let Some(c) = config {
        cmd.env("DDL_CONFIG", c);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {}: {e}", app.program.display()));
    let pid = child.id();
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
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
    let deadline = Instant::now() + app.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr =
                    String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
                panic!(
                    "{what}: {} did not finish within {:?} (hang under libddl?); stderr:\n{}",
                    app.program.display(),
                    app.timeout,
                    tail(&stderr, 4000)
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{what}: waiting for {}: {e}", app.program.display()),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    Output {
        status,
        stdout,
        stderr,
        pid,
        what: what.to_string(),
    }
}

/// Runs `app` as it is (its own preloads only).
pub fn run_plain(app: &App, cwd: &Path) -> Output {
    run(
        app,
        &app.preload,
        None,
        cwd,
        &format!("{} (plain)", app.name()),
    )
}

/// Runs `app` with libddl first in LD_PRELOAD, then the app's own preloads.
pub fn run_ddl(app: &App, config: &Path, cwd: &Path) -> Output {
    let mut preload = vec![libddl()];
    preload.extend(app.preload.iter().cloned());
    run(
        app,
        &preload,
        Some(config),
        cwd,
        &format!("{} (under libddl)", app.name()),
    )
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let la: Vec<&[u8]> = a.split(|&c| c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    for i in 0..la.len().max(lb.len()) {
        let x = la.get(i).copied();
        let y = lb.get(i).copied();
        if x != y {
            return format!(
                "first difference at line {}:\n  plain: {:?}\n  ddl:   {:?}",
                i + 1,
                x.map(String::from_utf8_lossy),
                y.map(String::from_utf8_lossy)
            );
        }
    }
    "no line differs (lengths differ?)".to_string()
}

/// The app under libddl behaved exactly as without it: same stdout, same
/// exit status, and libddl reported no error.
pub fn assert_transparent(plain: &Output, ddl: &Output) {
    assert!(
        plain.status.success(),
        "{}: the app itself fails ({}); stdout:\n{}\nstderr:\n{}",
        plain.what,
        plain.status,
        String::from_utf8_lossy(&plain.stdout),
        plain.stderr
    );
    assert_eq!(
        plain.status,
        ddl.status,
        "{}: exit status {} differs from the plain run's {}; stderr:\n{}",
        ddl.what,
        ddl.status,
        plain.status,
        tail(&ddl.stderr, 4000)
    );
    assert!(
        plain.stdout == ddl.stdout,
        "{}: stdout differs from the plain run ({} vs {} bytes); {}\nstderr:\n{}",
        ddl.what,
        plain.stdout.len(),
        ddl.stdout.len(),
        first_difference(&plain.stdout, &ddl.stdout),
        tail(&ddl.stderr, 4000)
    );
    assert!(
        !ddl.stderr.contains("ddl: error"),
        "{}: libddl reported an error:\n{}",
        ddl.what,
        tail(&ddl.stderr, 4000)
    );
}

/// A parsed report: the records and the last summary line.
#[derive(Debug)]
pub struct Report {
    pub path: PathBuf,
    pub records: Vec<Value>,
    /// Event lines (`{"event": "mirroring_stopped", …}`).
    pub events: Vec<Value>,
    pub summary: Map<String, Value>,
}

/// Reads a JSONL report; panics with the run's stderr when it is missing or
/// malformed.
pub fn read_report(path: &Path, run: &Output) -> Report {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: no report at {} ({e}); stderr of the run:\n{}",
            run.what,
            path.display(),
            tail(&run.stderr, 4000)
        )
    });
    let mut records = Vec::new();
    let mut events = Vec::new();
    let mut summary = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "{}: line {} of the report {} is not JSON ({e}): {line}",
                run.what,
                i + 1,
                path.display()
            )
        });
        match v.get("summary") {
            Some(Value::Object(m)) => summary = Some(m.clone()),
            Some(other) => panic!("{}: summary is not an object: {other}", run.what),
            None if v.get("event").is_some() => events.push(v),
            None => records.push(v),
        }
    }
    let summary = summary.unwrap_or_else(|| {
        panic!(
            "{}: the report {} has no summary line ({} records); stderr of the run:\n{}",
            run.what,
            path.display(),
            records.len(),
            tail(&run.stderr, 4000)
        )
    });
    Report {
        path: path.to_path_buf(),
        records,
        events,
        summary,
    }
}

/// One function's summary counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub mirrored: u64,
    pub matched: u64,
    pub mismatch: u64,
    pub shadow_fault: u64,
    pub shadow_timeout: u64,
    pub dropped: u64,
    pub unmirrored: u64,
    pub skipped: u64,
}

const COUNT_KEYS: &[&str] = &[
    "calls",
    "mirrored",
    "match",
    "mismatch",
    "shadow_fault",
    "shadow_timeout",
    "dropped",
    "unmirrored",
    "skipped",
];

impl Counts {
    fn from_json(function: &str, v: &Value) -> Result<Counts, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{function}: summary entry is not an object: {v}"))?;
        for k in obj.keys() {
            if !COUNT_KEYS.contains(&k.as_str()) {
                return Err(format!("{function}: unexpected summary key {k:?}"));
            }
        }
        let get = |k: &str| -> Result<u64, String> {
            match obj.get(k) {
                None => Ok(0),
                Some(x) => x
                    .as_u64()
                    .ok_or_else(|| format!("{function}: {k} is not a count: {x}")),
            }
        };
        // every key but `skipped` is in CONFIG.md's summary example
        for k in &COUNT_KEYS[..8] {
            if !obj.contains_key(*k) {
                return Err(format!("{function}: summary lacks {k:?}: {v}"));
            }
        }
        Ok(Counts {
            calls: get("calls")?,
            mirrored: get("mirrored")?,
            matched: get("match")?,
            mismatch: get("mismatch")?,
            shadow_fault: get("shadow_fault")?,
            shadow_timeout: get("shadow_timeout")?,
            dropped: get("dropped")?,
            unmirrored: get("unmirrored")?,
            skipped: get("skipped")?,
        })
    }

    /// CONFIG.md: calls = mirrored + dropped + skipped, and
    /// match + mismatch + shadow_fault + shadow_timeout + unmirrored = mirrored.
    fn invariant_errors(&self, function: &str) -> Vec<String> {
        let mut e = Vec::new();
        if self.calls != self.mirrored + self.dropped + self.skipped {
            e.push(format!(
                "{function}: calls {} != mirrored {} + dropped {} + skipped {}",
                self.calls, self.mirrored, self.dropped, self.skipped
            ));
        }
        let judged = self.matched
            + self.mismatch
            + self.shadow_fault
            + self.shadow_timeout
            + self.unmirrored;
        if judged != self.mirrored {
            e.push(format!(
                "{function}: match {} + mismatch {} + shadow_fault {} + shadow_timeout {} + unmirrored {} != mirrored {}",
                self.matched, self.mismatch, self.shadow_fault, self.shadow_timeout, self.unmirrored, self.mirrored
            ));
        }
        e
    }
}

impl Report {
    /// All functions' counts (panics on a malformed entry).
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        self.summary
            .iter()
            .map(|(f, v)| {
                let c = Counts::from_json(f, v)
                    .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
                (f.clone(), c)
            })
            .collect()
    }

    pub fn get(&self, function: &str) -> Counts {
        self.counts().get(function).copied().unwrap_or_default()
    }

    /// Records per function (all verdicts).
    pub fn records_of(&self, function: &str) -> Vec<&Value> {
        self.records
            .iter()
            .filter(|r| r.get("function").and_then(Value::as_str) == Some(function))
            .collect()
    }

    pub fn dump(&self) -> String {
        let mut s = String::from("summary:\n");
        for (f, v) in &self.summary {
            s.push_str(&format!("  {f}: {v}\n"));
        }
        s.push_str(&format!("{} records", self.records.len()));
        for r in self.records.iter().take(5) {
            s.push_str(&format!("\n  {r}"));
        }
        s
    }
}

/// Every count in the summary adds up (CONFIG.md's two identities).
pub fn assert_invariants(report: &Report) {
    let errors: Vec<String> = report
        .counts()
        .iter()
        .flat_map(|(f, c)| c.invariant_errors(f))
        .collect();
    assert!(
        errors.is_empty(),
        "{}: counts do not add up:\n  {}\n{}",
        report.path.display(),
        errors.join("\n  "),
        report.dump()
    );
}

/// The summary gives exactly `wants` (all mirrored, no faults, timeouts,
/// drops, skips or unmirrored calls); any other function has no calls; the
/// mismatch records are exactly one per expected mismatch.
pub fn assert_summary(report: &Report, wants: &[Want]) {
    let counts = report.counts();
    let mut errors = Vec::new();
    for w in wants {
        let want = Counts {
            calls: w.calls,
            mirrored: w.calls,
            matched: w.calls - w.mismatch,
            mismatch: w.mismatch,
            ..Counts::default()
        };
        match counts.get(w.function) {
            None => errors.push(format!(
                "{}: missing from the summary (expected {} calls)",
                w.function, w.calls
            )),
            Some(got) if *got != want => errors.push(format!(
                "{}: expected {:?}\n      got      {:?}",
                w.function, want, got
            )),
            Some(_) => {}
        }
    }
    for (f, c) in &counts {
        if !wants.iter().any(|w| w.function == f.as_str()) && *c != Counts::default() {
            errors.push(format!("{f}: expected no calls, got {c:?}"));
        }
        errors.extend(c.invariant_errors(f));
    }
    // records: one mismatch record per expected mismatch, nothing else
    let mut by_fn: BTreeMap<String, u64> = BTreeMap::new();
    for r in &report.records {
        let f = r
            .get("function")
            .and_then(Value::as_str)
            .unwrap_or("<no function>");
        let verdict = r.get("verdict").and_then(Value::as_str).unwrap_or("<none>");
        if verdict != "mismatch" {
            errors.push(format!("unexpected {verdict} record: {r}"));
        }
        *by_fn.entry(f.to_string()).or_default() += 1;
    }
    let want_fns: BTreeMap<String, u64> = wants
        .iter()
        .filter(|w| w.mismatch > 0)
        .map(|w| (w.function.to_string(), w.mismatch))
        .collect();
    if by_fn != want_fns {
        let got: BTreeSet<&String> = by_fn.keys().collect();
        let want: BTreeSet<&String> = want_fns.keys().collect();
        errors.push(format!(
            "mismatch records per function: expected {want_fns:?}, got {by_fn:?} (functions expected {want:?}, got {got:?})"
        ));
    }
    assert!(
        errors.is_empty(),
        "{}: the report is not what the fixtures predict:\n  {}\n{}",
        report.path.display(),
        errors.join("\n  "),
        report.dump()
    );
}

/// Writes `config` (with `report` set to `<tmp>/report.jsonl`) into `tmp`,
/// runs `app` without and with libddl, asserts it is unaffected, and returns
/// the report of the DDL run.
pub fn run_both(tmp: &TempDir, app: &App, mut config: Value) -> (Output, Output, Report) {
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = Value::String(report_path.display().to_string());
    let cfg = tmp.write_config(&config);
    libddl(); // fail early and clearly when it is missing
    let plain = run_plain(app, tmp.path());
    let ddl = run_ddl(app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let report = read_report(&report_path, &ddl);
    (plain, ddl, report)
}
