//! Outgoing calls on both sides (cxx-fixtures/faults): the old build's
//! calls through the write-side functions are observed (performed as
//! usual) and compared with the new build's intercepted ones; the new
//! build's libc-internal writes to stdout/stderr (assert's message,
//! malloc's "double free detected", error()'s text) are trapped on the
//! shadow thread and never reach the application's stderr.

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::*;

fn faults_config(fx: &Path) -> Value {
    json!({
        "old": "libfault.so.1",
        "new": fx.join("faults/new/libfault.so.1"),
        "timeout_ms": 200,
        "functions": ["int fault_do(int what, int x)", "int fault_write(int fd, const char *s)"],
    })
}

fn fault_app(fx: &Path, tmp: &TempDir, codes: &[u32]) -> App {
    let mut app = App::new(fx.join("faults/apps/fault-app"))
        .arg("-o")
        .arg(tmp.path().join("app.out"));
    for c in codes {
        app = app.arg(c.to_string());
    }
    app
}

/// `fault_write(fd, s)` writes the same bytes in both builds: each call's
/// outgoing calls are recorded on both sides (the shadow's `write` to
/// `fd:N` would otherwise be a mismatch against nothing) and match.
/// Codes 17 and 18 write to stdout in the new build only: a mismatch whose
/// first difference is `outgoing[0]` (nothing on the primary's side).
#[test]
fn both_sides_outgoing_compared() {
    let fx = fixtures();
    let tmp = TempDir::new("outgoing-both");
    let app = fault_app(fx, &tmp, &[0, 17, 18, 0]).env("DDL_LOG", "info");
    let (_, ddl, report) = run_both(&tmp, &app, faults_config(fx));
    assert!(
        ddl.stderr.contains("slots observed"),
        "the old build was not observed:\n{}",
        ddl.stderr
    );
    assert_invariants(&report);
    let w = report.get("fault_write");
    assert_eq!((w.calls, w.matched, w.mismatch), (4, 4, 0), "{w:?}");
    let f = report.get("fault_do");
    assert_eq!((f.calls, f.matched, f.mismatch), (4, 2, 2), "{f:?}");
    let recs = report.records_of("fault_do");
    assert_eq!(recs.len(), 2, "{recs:?}");
    for (r, (code, target, head)) in recs.iter().zip([
        (17, "stdout", "libfault (new): a line on stdout\n"),
        (18, "fd:1", "libfault (new): a write(1)\n"),
    ]) {
        assert_eq!(r["verdict"], json!("mismatch"), "{r}");
        assert_eq!(r["args"]["what"], json!(code), "{r}");
        let diffs = r["diffs"].as_array().expect("diffs");
        assert_eq!(diffs.len(), 1, "{r}");
        assert_eq!(diffs[0]["path"], json!("outgoing[0]"), "{r}");
        assert_eq!(diffs[0]["primary"], Value::Null, "{r}");
        assert_eq!(diffs[0]["shadow"]["target"], json!(target), "{r}");
        assert_eq!(diffs[0]["shadow"]["head"], json!(head), "{r}");
    }
}

/// The new build's libc writes its own messages to fd 2 (assert: code 6,
/// malloc's double free: 8, error(): 14): trapped on the shadow thread,
/// not a byte reaches the application's stderr; the calls still get their
/// verdicts and the calls after them are mirrored.
#[test]
fn libc_messages_of_the_new_build_stay_off_stderr() {
    let fx = fixtures();
    for code in [6u32, 8, 14] {
        let tmp = TempDir::new(&format!("outgoing-stderr-{code}"));
        let app = fault_app(fx, &tmp, &[code, 0]);
        let (plain, ddl, report) = run_both(&tmp, &app, faults_config(fx));
        assert_eq!(
            ddl.stderr, plain.stderr,
            "code {code}: the application's stderr changed under DDL"
        );
        assert!(ddl.stderr.is_empty(), "code {code}: {:?}", ddl.stderr);
        assert_invariants(&report);
        let f = report.get("fault_do");
        assert_eq!(
            (f.calls, f.shadow_fault, f.matched),
            (2, 1, 1),
            "code {code}: {f:?}"
        );
    }
}
