//! `ddl check OLD NEW [-c CONFIG]` on the fixture pairs of
//! `cxx-fixtures/abi.mk` (each new build differs from its old one in one
//! way), and libddl refusing a pair that `ddl check` calls incompatible.
//!
//! The exit bits and finding lines expected here come from what each
//! fixture's `-D` flag changes (abi/abi.h, abi/widget.h, abi.mk), not from
//! a run of the tool.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::expect::want;
use crate::harness::{
    assert_summary, fixtures, libddl, read_report, run_both, run_ddl, run_plain, App, TempDir,
};

/// The `ddl` binary of this build.
pub fn ddl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ddl"))
}

/// Runs `ddl ARGS…`; returns (exit status, stdout lines, stderr).
pub fn run_ddl_cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (i32, Vec<String>, String) {
    let out: Output = Command::new(ddl())
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("ddl runs");
    let status = out.status.code().expect("ddl exits, not killed");
    let stdout = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (
        status,
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn abi(rel: &str) -> PathBuf {
    fixtures().join("abi").join(rel)
}

/// `ddl check old new [-c config]`: asserts the exit bits, the finding lines
/// (all lines but the last, in order) and the verdict line's start.
fn check(old: &Path, new: &Path, config: Option<&Path>, bits: i32, findings: &[&str]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"check", &old, &new];
    if let Some(c) = &config {
        args.push(&"-c");
        args.push(c);
    }
    let (status, lines, stderr) = run_ddl_cli(&args);
    let what = format!(
        "ddl check {} {}{}",
        old.display(),
        new.display(),
        config
            .map(|c| format!(" -c {}", c.display()))
            .unwrap_or_default()
    );
    assert_eq!(
        status,
        bits,
        "{what}: exit status; stdout:\n{}\nstderr:\n{stderr}",
        lines.join("\n")
    );
    let (verdict, body) = lines
        .split_last()
        .unwrap_or_else(|| panic!("{what}: no output"));
    assert_eq!(
        body, findings,
        "{what}: finding lines differ; stderr:\n{stderr}"
    );
    let word = match bits {
        0 => "compatible (exit 0)",
        4 => "compatible, with changes worth reading (exit 4)",
        b => {
            assert!(b & 8 != 0);
            "incompatible (exit "
        }
    };
    assert!(
        verdict.starts_with(&format!("verdict: {word}")),
        "{what}: verdict line: {verdict}"
    );
    assert!(stderr.is_empty(), "{what}: stderr: {stderr}");
}

#[test]
fn check_identical_pair_is_zero() {
    check(
        &abi("old/libabi.so.1"),
        &abi("same/libabi.so.1"),
        None,
        0,
        &[],
    );
    // A difference in behaviour only is not an ABI finding.
    check(
        &abi("old/libabi.so.1"),
        &abi("diff/libabi.so.1"),
        None,
        0,
        &[],
    );
    // A build against itself.
    check(
        &abi("old/libabi.so.1"),
        &abi("old/libabi.so.1"),
        None,
        0,
        &[],
    );
}

#[test]
fn check_symbol_missing_is_incompatible() {
    check(
        &abi("old/libabi.so.1"),
        &abi("missing/libabi.so.1"),
        None,
        8,
        &["incompatible: symbol abi_gone is missing from NEW libabi.so.1"],
    );
}

#[test]
fn check_symbol_version_missing_is_incompatible() {
    check(
        &abi("tinyv1/libtiny.so"),
        &abi("tinyv2/libtiny.so"),
        None,
        12,
        &[
            "incompatible: symbol tiny@@TINY_1 is missing from NEW libtiny.so (NEW has tiny@@TINY_2)",
            "worth reading: symbol tiny@@TINY_2 added in NEW",
        ],
    );
}

#[test]
fn check_prototype_change_is_incompatible() {
    check(
        &abi("old/libabi.so.1"),
        &abi("proto/libabi.so.1"),
        None,
        8,
        &["incompatible: prototype of abi_scale changed (parameter 1 `x` was `int`, is `long int`): \
           OLD `int abi_scale(int x, int k)`, NEW `long int abi_scale(long int x, int k)`"],
    );
}

#[test]
fn check_struct_by_value_layout_is_incompatible() {
    check(
        &abi("old/libabi.so.1"),
        &abi("byvalue/libabi.so.1"),
        None,
        8,
        &[
            "incompatible: struct abi_pair, passed by value, changed layout: size 8 -> 12, \
           field b offset 4 -> 8, field tag added at offset 4",
        ],
    );
}

/// The boundary of `abi-app` as a config (the buffers annotated).
fn abi_config(new: &Path) -> Value {
    json!({
        "old": "libabi.so.1",
        "new": new.display().to_string(),
        "types": [
            "struct abi_pair { int a; int b; }",
            "struct abi_stream { const uint8_t *next_in [in avail_in]; size_t avail_in; uint8_t *next_out [out avail_out]; size_t avail_out; size_t total; }"
        ],
        "functions": [
            "int abi_add(int a, int b)",
            "int abi_gone(int x)",
            "int abi_scale(int x, int k)",
            "struct abi_pair abi_swap(struct abi_pair p)",
            "size_t abi_sum(const int32_t *xs [in n], size_t n)",
            "int abi_copy(struct abi_stream *s)",
            "const char *abi_name(int i)"
        ]
    })
}

/// A struct that crosses only behind a pointer is no finding without a
/// config; declared in the config, its layout change is incompatible.
#[test]
fn check_struct_of_config_layout_is_incompatible() {
    let (old, new) = (abi("old/libabi.so.1"), abi("stream/libabi.so.1"));
    check(&old, &new, None, 0, &[]);
    let tmp = TempDir::new("check-stream");
    let cfg = tmp.write_config(&abi_config(&new));
    check(
        &old,
        &new,
        Some(&cfg),
        8,
        &["incompatible: struct abi_stream, declared in the config, changed layout: size 40 -> 48, \
           field avail_in offset 8 -> 16, field next_out offset 16 -> 24, field avail_out offset 24 -> 32, \
           field total offset 32 -> 40, field flags added at offset 8"],
    );
    // The same config on a compatible pair.
    check(&old, &abi("diff/libabi.so.1"), Some(&cfg), 0, &[]);
}

#[test]
fn check_vtable_slot_moved_is_incompatible() {
    check(
        &abi("widget-old/libwidget.so.1"),
        &abi("widget-vslot/libwidget.so.1"),
        None,
        8,
        &[
            "incompatible: vtable slot 2 of class Widget (Widget::size() const) moved: it is slot 3 in NEW",
            "incompatible: vtable slot 3 of class Widget (Widget::weight() const) moved: it is slot 2 in NEW",
        ],
    );
}

#[test]
fn check_elf_class_and_machine_are_incompatible() {
    check(
        &abi("tiny64/libtiny.so"),
        &abi("tiny32/libtiny.so"),
        None,
        8,
        &[
            "incompatible: ELF class differs: OLD is ELF64, NEW is ELF32",
            "incompatible: machine differs: OLD is x86-64, NEW is i386",
        ],
    );
    check(
        &abi("tiny64/libtiny.so"),
        &abi("tinyx32/libtiny.so"),
        None,
        8,
        &["incompatible: ELF class differs: OLD is ELF64, NEW is ELF32"],
    );
    check(
        &abi("tiny32/libtiny.so"),
        &abi("tinyx32/libtiny.so"),
        None,
        8,
        &["incompatible: machine differs: OLD is i386, NEW is x86-64"],
    );
}

#[test]
fn check_soname_is_worth_reading() {
    check(
        &abi("old/libabi.so.1"),
        &abi("soname/libabi.so.1"),
        None,
        4,
        &["worth reading: SONAME differs: OLD libabi.so.1, NEW libabi.so.2"],
    );
}

#[test]
fn check_symbol_added_is_worth_reading() {
    check(
        &abi("old/libabi.so.1"),
        &abi("added/libabi.so.1"),
        None,
        4,
        &["worth reading: symbol abi_extra added in NEW"],
    );
}

#[test]
fn check_class_size_is_worth_reading() {
    check(
        &abi("widget-old/libwidget.so.1"),
        &abi("widget-csize/libwidget.so.1"),
        None,
        4,
        &["worth reading: size of class Widget changed from 16 to 48 bytes (DDL sizes the shadow's objects from NEW)"],
    );
}

/// Without debug info on one side, what needs DWARF is a note (no bit).
#[test]
fn check_without_debug_info_notes_it() {
    check(
        &abi("widget-nodebug/libwidget.so.1"),
        &abi("widget-csize/libwidget.so.1"),
        None,
        0,
        &["note: prototypes, struct layouts and class sizes not compared: no debug info in OLD libwidget.so.1"],
    );
}

/// The example configs of the other fixtures, as libddl will judge their
/// pairs: none is incompatible (shapes' Counter grows on purpose; calc's
/// new build adds calc_added).
#[test]
fn check_fixture_configs_are_not_incompatible() {
    let fx = fixtures();
    let repo = crate::harness::repo().join("cxx-fixtures");
    for (name, lib, bits, lines) in [
        ("calc", "libcalc.so.1", 4, &["worth reading: symbol calc_added added in NEW"][..]),
        ("buf", "libbuf.so.1", 0, &[][..]),
        ("codec", "libcodec.so.1", 0, &[][..]),
        (
            "shapes",
            "libshapes.so.1",
            4,
            &["worth reading: size of class tally::Counter changed from 8 to 48 bytes (DDL sizes the shadow's objects from NEW)"][..],
        ),
    ] {
        // The examples name `new` relative to the repository's target.
        let tmp = TempDir::new(&format!("check-{name}"));
        let mut cfg: Value = serde_json::from_str(
            &std::fs::read_to_string(repo.join(format!("{name}.ddl.json"))).unwrap(),
        )
        .unwrap();
        let new = fx.join(name).join("new").join(lib);
        cfg["new"] = Value::String(new.display().to_string());
        let path = tmp.write_config(&cfg);
        check(&fx.join(name).join("old").join(lib), &new, Some(&path), bits, lines);
    }
}

/// `-c` validates the config without running anything: an error names the
/// file, the line, the key and the column; exit 1 (tool error).
#[test]
fn check_bad_config_names_file_key_position() {
    let tmp = TempDir::new("check-badcfg");
    let (old, new) = (abi("old/libabi.so.1"), abi("same/libabi.so.1"));
    let mut cfg = abi_config(&new);
    cfg["functions"][2] = json!("int abi_scale(int x, int k");
    let path = tmp.write_config(&cfg);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("int abi_scale(int x, int k"))
        .unwrap()
        + 1;
    let (status, out, err) = run_ddl_cli(&[&"check", &old, &new, &"-c", &path]);
    assert_eq!(status, 1, "stdout {out:?}, stderr {err}");
    let prefix = format!(
        "ddl check: error: {}:{line}: functions[2]: column ",
        path.display()
    );
    assert!(
        err.starts_with(&prefix),
        "stderr: {err}\nexpected start: {prefix}"
    );
    // A function the old build does not export.
    let mut cfg = abi_config(&new);
    cfg["functions"][1] = json!("int abi_nowhere(int x)");
    let path = tmp.write_config(&cfg);
    let (status, _, err) = run_ddl_cli(&[&"check", &old, &new, &"-c", &path]);
    assert_eq!(status, 1, "stderr {err}");
    assert!(
        err.starts_with(&format!("ddl check: error: {}:", path.display()))
            && err.contains("functions[1]")
            && err.contains("abi_nowhere"),
        "stderr: {err}"
    );
    // Unreadable builds are tool errors too.
    let (status, _, err) = run_ddl_cli(&[&"check", &"/nonexistent/libx.so", &new]);
    assert_eq!(status, 1, "stderr {err}");
    assert!(err.contains("/nonexistent/libx.so"), "stderr: {err}");
}

/// A usage error is 2 (clap's).
#[test]
fn check_usage_error_is_two() {
    let (status, _, err) = run_ddl_cli(&[&"check", &"only-one-argument"]);
    assert_eq!(status, 2, "stderr {err}");
}

/// libddl runs the same check when the old build arrives: an incompatible
/// pair is not mirrored, one `ddl: error:` line says why, the app runs as
/// without libddl and no report is written.
#[test]
fn libddl_refuses_an_incompatible_pair() {
    let app = App::new(abi("apps/abi-app"));
    for (new, key, reason) in [
        (
            abi("proto/libabi.so.1"),
            "functions[2]",
            "prototype of abi_scale changed (parameter 1 `x` was `int`, is `long int`)",
        ),
        (
            abi("missing/libabi.so.1"),
            "functions[1]",
            "symbol abi_gone is missing from NEW",
        ),
        (
            abi("byvalue/libabi.so.1"),
            "functions[3]",
            "struct abi_pair, passed by value, changed layout: size 8 -> 12",
        ),
        (
            abi("stream/libabi.so.1"),
            "functions[5]",
            "struct abi_stream, declared in the config, changed layout: size 40 -> 48",
        ),
        (
            abi("tiny32/libtiny.so"),
            "new",
            "ELF class differs: OLD is ELF64, NEW is ELF32",
        ),
    ] {
        let tmp = TempDir::new("refuse");
        let report = tmp.path().join("report.jsonl");
        let mut cfg = abi_config(&new);
        cfg["report"] = Value::String(report.display().to_string());
        let path = tmp.write_config(&cfg);
        libddl();
        let plain = run_plain(&app, tmp.path());
        let ddl = run_ddl(&app, &path, tmp.path());
        assert!(plain.status.success(), "{}", plain.stderr);
        assert_eq!(ddl.status, plain.status, "{}", ddl.stderr);
        assert_eq!(
            String::from_utf8_lossy(&ddl.stdout),
            String::from_utf8_lossy(&plain.stdout),
            "{}: the app's output changed",
            new.display()
        );
        let errors = ddl.error_lines();
        assert_eq!(
            errors.len(),
            1,
            "{}: stderr:\n{}",
            new.display(),
            ddl.stderr
        );
        let prefix = format!("ddl: error: {}:", path.display());
        assert!(
            errors[0].starts_with(&prefix)
                && errors[0].contains(&format!(": {key}: ddl check calls "))
                && errors[0].contains(reason),
            "{}: error line\n  {}\nshould start {prefix}, name {key} and say: {reason}",
            new.display(),
            errors[0]
        );
        assert!(
            !report.exists(),
            "{}: a report was written: {}",
            new.display(),
            std::fs::read_to_string(&report).unwrap_or_default()
        );
    }
}

/// A pair that is only worth reading (a symbol added) is mirrored as usual.
#[test]
fn libddl_mirrors_a_pair_worth_reading() {
    let tmp = TempDir::new("worth-reading");
    let app = App::new(abi("apps/abi-app"));
    let (_, _, report) = run_both(&tmp, &app, abi_config(&abi("added/libabi.so.1")));
    assert_summary(&report, &abi_app_wants(0));
    let _ = read_report; // (run_both reads it)
}

/// abi-app's calls (cxx-fixtures/abi/abi-app.c); `sum_mismatch`: 1 against
/// the `diff` build (abi_sum with n = 5), else 0.
pub fn abi_app_wants(sum_mismatch: u64) -> Vec<crate::expect::Want> {
    vec![
        want("abi_add", 2, 0),
        want("abi_gone", 1, 0),
        want("abi_scale", 2, 0),
        want("abi_swap", 1, 0),
        want("abi_sum", 2, sum_mismatch),
        want("abi_copy", 2, 0),
        want("abi_name", 2, 0),
    ]
}

/// With a config of C++ declarations, the boundary's classes are those the
/// declarations name and only their boundary methods' slots are judged.
#[test]
fn check_cxx_config_judges_its_classes() {
    let tmp = TempDir::new("check-widget");
    let old = abi("widget-old/libwidget.so.1");
    let cfg = |new: &Path, functions: &[&str]| {
        tmp.write_config(&json!({
            "old": "libwidget.so.1",
            "new": new.display().to_string(),
            "functions": functions,
        }))
    };
    let all = [
        "Widget::Widget(int id)",
        "virtual Widget::~Widget()",
        "virtual int Widget::size() const",
        "virtual int Widget::weight() const",
        "int Widget::id() const",
    ];
    let vslot = abi("widget-vslot/libwidget.so.1");
    check(
        &old,
        &vslot,
        Some(&cfg(&vslot, &all)),
        8,
        &[
            "incompatible: vtable slot 2 of class Widget (Widget::size() const) moved: it is slot 3 in NEW",
            "incompatible: vtable slot 3 of class Widget (Widget::weight() const) moved: it is slot 2 in NEW",
        ],
    );
    // Only size() on the boundary: only its slot is judged.
    check(
        &old,
        &vslot,
        Some(&cfg(&vslot, &["virtual int Widget::size() const"])),
        8,
        &["incompatible: vtable slot 2 of class Widget (Widget::size() const) moved: it is slot 3 in NEW"],
    );
    // A non-virtual method alone: the vtable is not the boundary's.
    check(
        &old,
        &vslot,
        Some(&cfg(&vslot, &["int Widget::id() const"])),
        0,
        &[],
    );
    let csize = abi("widget-csize/libwidget.so.1");
    check(
        &old,
        &csize,
        Some(&cfg(&csize, &all)),
        4,
        &["worth reading: size of class Widget changed from 16 to 48 bytes (DDL sizes the shadow's objects from NEW)"],
    );
}
