//! C++ components (cxx-fixtures/shapes): constructors on the application's
//! stack and heap, a factory, virtual calls through patched vtables,
//! devirtualised calls through the GOT, overloads, destructors (D1 and D0),
//! exceptions thrown by either build. The shipped example config
//! `cxx-fixtures/shapes.ddl.json` is the one used.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::*;

/// Expected counts per declaration (cxx-fixtures/shapes.mk lists the
/// differences): (declaration, calls, match, mismatch, shadow_fault).
pub(crate) const SHAPES_APP: &[(&str, u64, u64, u64, u64)] = &[
    ("Rect::Rect(double w, double h)", 2, 2, 0, 0),
    ("Circle::Circle(double r)", 2, 2, 0, 0),
    ("make_shape", 3, 3, 0, 0),
    ("virtual Shape::~Shape()", 0, 0, 0, 0),
    ("virtual Rect::~Rect()", 3, 3, 0, 0),
    ("virtual Circle::~Circle()", 3, 3, 0, 0),
    ("virtual double Shape::area() const", 0, 0, 0, 0),
    ("virtual const char *Shape::name() const", 0, 0, 0, 0),
    ("virtual double Rect::area() const", 4, 4, 0, 0),
    ("virtual const char *Rect::name() const", 3, 3, 0, 0),
    ("virtual double Circle::area() const", 4, 0, 4, 0),
    ("virtual const char *Circle::name() const", 3, 3, 0, 0),
    ("double Shape::scale(double k)", 6, 5, 1, 0),
    ("double Shape::stretch(const Vec &v) const", 1, 1, 0, 0),
    ("void Shape::bounds(double &w, double &h) const", 1, 1, 0, 0),
    ("void Shape::grow(int n)", 3, 1, 0, 2),
    ("void Shape::grow(double f)", 2, 2, 0, 0),
    ("tally::Counter::Counter(int start)", 1, 1, 0, 0),
    ("tally::Counter::~Counter()", 1, 1, 0, 0),
    ("void tally::Counter::add(int n)", 3, 2, 1, 0),
    ("int tally::Counter::take(int n)", 2, 2, 0, 0),
    ("int tally::Counter::total() const", 2, 2, 0, 0),
];

/// The example config with the test's new build (`new`, if given).
pub(crate) fn shapes_config(fx: &Path, new: Option<&Path>) -> Value {
    let text = std::fs::read_to_string(repo().join("cxx-fixtures/shapes.ddl.json"))
        .expect("cxx-fixtures/shapes.ddl.json");
    let mut v: Value = serde_json::from_str(&text).expect("the example config is JSON");
    let default = fx.join("shapes/new/libshapes.so.1");
    v["new"] = json!(new.unwrap_or(&default));
    v
}

fn check_counts(report: &Report, want: &[(&str, u64, u64, u64, u64)]) {
    assert_invariants(report);
    let counts = report.counts();
    let mut errors = Vec::new();
    for &(f, calls, matched, mismatch, fault) in want {
        let c = counts.get(f).copied().unwrap_or_default();
        let got = (c.calls, c.mirrored, c.matched, c.mismatch, c.shadow_fault);
        let exp = (calls, calls, matched, mismatch, fault);
        if got != exp || c.unmirrored + c.dropped + c.skipped + c.shadow_timeout != 0 {
            errors.push(format!(
                "{f}: expected (calls, mirrored, match, mismatch, shadow_fault) {exp:?}, got {c:?}"
            ));
        }
    }
    assert_eq!(
        counts.len(),
        want.len(),
        "functions in the summary: {counts:?}"
    );
    assert!(
        errors.is_empty(),
        "{}:\n  {}",
        report.path.display(),
        errors.join("\n  ")
    );
}

fn check_shapes_layout(layout: &str) {
    let fx = fixtures();
    let tmp = TempDir::new(&format!("shapes-{layout}"));
    let app = App::new(fx.join(format!("shapes/apps/shapes-app-{layout}")));
    let (_, _, report) = run_both(&tmp, &app, shapes_config(fx, None));
    check_counts(&report, SHAPES_APP);
    // The records: what differs, and the new build's exception.
    let area = report.records_of("virtual double Circle::area() const");
    assert_eq!(area.len(), 4);
    assert_eq!(area[0]["diffs"][0]["path"], "ret", "{}", area[0]);
    let scale = report.records_of("double Shape::scale(double k)");
    assert_eq!(
        scale[0]["diffs"][0]["primary"],
        json!(-14.0),
        "{}",
        scale[0]
    );
    assert_eq!(scale[0]["diffs"][0]["shadow"], json!(14.0), "{}", scale[0]);
    for r in report.records_of("void Shape::grow(int n)") {
        assert_eq!(r["verdict"], "shadow_fault", "{r}");
        assert_eq!(r["fault"], "exception", "{r}");
        assert_eq!(r["exception"]["type"], "std::invalid_argument", "{r}");
        assert_eq!(r["exception"]["what"], "Shape::grow: negative step", "{r}");
    }
    // The old build threw to the application, the new one returned.
    let add = report.records_of("void tally::Counter::add(int n)");
    assert_eq!(add.len(), 1);
    let d = &add[0]["diffs"][0];
    assert_eq!(d["path"], "exception", "{}", add[0]);
    assert_eq!(d["primary"]["type"], "std::out_of_range", "{}", add[0]);
    assert_eq!(d["shadow"], Value::Null, "{}", add[0]);
}

#[test]
fn shapes_app_pie_lazy() {
    check_shapes_layout("pie-lazy");
}

#[test]
fn shapes_app_pie_now() {
    check_shapes_layout("pie-now");
}

#[test]
fn shapes_app_noplt() {
    check_shapes_layout("noplt");
}

#[test]
fn shapes_app_nopie() {
    check_shapes_layout("nopie");
}

/// The new build without DWARF: the constructed classes' sizes come from
/// `classes`; without them DDL says which class it cannot size, once, and
/// those constructors' calls are `unmirrored` (so are the calls on their
/// objects), never a crash.
#[test]
fn class_sizes_without_dwarf() {
    let fx = fixtures();
    let tmp = TempDir::new("shapes-nodwarf");
    let stripped = tmp.path().join("libshapes.so.1");
    let st = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(fx.join("shapes/new/libshapes.so.1"))
        .arg(&stripped)
        .status()
        .expect("objcopy runs");
    assert!(st.success());
    let app = App::new(fx.join("shapes/apps/shapes-app-pie-now"));

    // With `classes`: as with DWARF.
    let mut cfg = shapes_config(fx, Some(&stripped));
    cfg["classes"] = json!([
        { "name": "Rect", "size": 24 },
        { "name": "Circle", "size": 24 },
        { "name": "tally::Counter", "size": 48 }
    ]);
    let (_, _, report) = run_both(&tmp, &app, cfg);
    check_counts(&report, SHAPES_APP);

    // Without: one error line per constructor naming its class.
    let cfg = shapes_config(fx, Some(&stripped));
    let report_path = tmp.path().join("report-nosize.jsonl");
    let mut cfg = cfg;
    cfg["report"] = json!(report_path);
    let path = tmp.write_config(&cfg);
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &path, tmp.path());
    assert_eq!(plain.stdout, ddl.stdout, "the application is unaffected");
    assert_eq!(plain.status, ddl.status);
    let errors = ddl.error_lines();
    assert_eq!(errors.len(), 3, "{}", ddl.stderr);
    for class in ["class Rect ", "class Circle ", "class tally::Counter "] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(class) && e.contains("\"classes\"")),
            "{class}: {errors:?}"
        );
    }
    let report = read_report(&report_path, &ddl);
    assert_invariants(&report);
    let ctor = report.get("Rect::Rect(double w, double h)");
    assert_eq!((ctor.calls, ctor.unmirrored), (2, 2), "{ctor:?}");
    // The factory's objects are the new build's own: still judged.
    assert_eq!(report.get("make_shape").matched, 3);
}

/// Sampling below 1: objects whose constructor (or factory call) was
/// sampled out are unknown to the shadow, and every call on them is
/// `unmirrored`, never a crash nor a false verdict.
#[test]
fn sampled_out_constructors_leave_their_objects_unmirrored() {
    let fx = fixtures();
    let app = App::new(fx.join("shapes/apps/shapes-app-pie-now"));
    let mut unmirrored = 0;
    for run in 0..4 {
        let tmp = TempDir::new(&format!("shapes-sampling-{run}"));
        let mut cfg = shapes_config(fx, None);
        cfg["sampling"] = json!(0.5);
        let (_, _, report) = run_both(&tmp, &app, cfg);
        assert_invariants(&report);
        for (f, c) in report.counts() {
            let want = SHAPES_APP
                .iter()
                .find(|w| w.0 == f)
                .expect("a known function");
            assert_eq!(c.calls, want.1, "{f}: {c:?}");
            assert!(
                c.mismatch <= want.3 && c.shadow_fault <= want.4,
                "{f}: {c:?}"
            );
            assert_eq!(c.shadow_timeout + c.dropped, 0, "{f}: {c:?}");
            unmirrored += c.unmirrored;
        }
    }
    assert!(unmirrored > 0, "some objects were sampled out in 4 runs");
}
