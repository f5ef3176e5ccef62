//! `ddl inspect BUILD [--config]` on the abi fixtures: prototypes and
//! struct layouts from DWARF, C++ declarations from demangled names
//! without it, and a draft config that, once its buffer sizes are filled
//! in, mirrors abi-app correctly.

use serde_json::Value;

use crate::check::{abi_app_wants, run_ddl_cli};
use crate::harness::{assert_summary, fixtures, run_both, App, TempDir};

fn abi(rel: &str) -> std::path::PathBuf {
    fixtures().join("abi").join(rel)
}

/// Asserts that `lines` holds `want` in this order (other lines between).
fn assert_in_order(lines: &[String], want: &[&str], what: &str) {
    let mut at = 0;
    for w in want {
        match lines[at..].iter().position(|l| l == w) {
            Some(i) => at += i + 1,
            None => panic!(
                "{what}: line {w:?} missing (or out of order); output:\n{}",
                lines.join("\n")
            ),
        }
    }
}

/// abi/abi.h, as the old build's DWARF describes it.
#[test]
fn inspect_prototypes_and_layouts_from_dwarf() {
    let lib = abi("old/libabi.so.1");
    let (status, lines, err) = run_ddl_cli(&[&"inspect", &lib]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(lines[0], format!("build: {}", lib.display()));
    assert_in_order(
        &lines,
        &[
            "  ELF64 x86-64, SONAME libabi.so.1, debug info: DWARF (prototypes below)",
            "functions (7):",
            "  int abi_add(int a, int b)",
            "  int abi_copy(struct abi_stream *s)",
            "  int abi_gone(int x)",
            "  const char *abi_name(int i)",
            "  int abi_scale(int x, int k)",
            "  size_t abi_sum(const int32_t *xs, size_t n)",
            "  struct abi_pair abi_swap(struct abi_pair p)",
            "structs (2):",
            "  struct abi_pair (8 bytes)",
            "       0  int a",
            "       4  int b",
            "  struct abi_stream (40 bytes)",
            "       0  const uint8_t *next_in",
            "       8  size_t avail_in",
            "      16  uint8_t *next_out",
            "      24  size_t avail_out",
            "      32  size_t total",
        ],
        "ddl inspect old/libabi.so.1",
    );
    // The new layouts of the byvalue build.
    let (_, lines, _) = run_ddl_cli(&[&"inspect", &abi("byvalue/libabi.so.1")]);
    assert_in_order(
        &lines,
        &[
            "  struct abi_pair (12 bytes)",
            "       0  int a",
            "       4  int tag",
            "       8  int b",
        ],
        "ddl inspect byvalue/libabi.so.1",
    );
}

/// A C++ build without debug info: declarations from the demangled names,
/// the vtable's slots from its relocations.
#[test]
fn inspect_cxx_without_debug_info_demangles() {
    let lib = abi("widget-nodebug/libwidget.so.1");
    let (status, lines, err) = run_ddl_cli(&[&"inspect", &lib]);
    assert_eq!(status, 0, "{err}");
    assert_in_order(
        &lines,
        &[
            "  ELF64 x86-64, SONAME libwidget.so.1, debug info: none (C++ declarations from demangled names, C names only)",
            "functions (8):",
            "  Widget::Widget(int)  [_ZN6WidgetC1Ei]",
            "  Widget::Widget(int)  [_ZN6WidgetC2Ei]",
            "  Widget::~Widget()  [_ZN6WidgetD0Ev]",
            "  Widget::~Widget()  [_ZN6WidgetD1Ev]",
            "  Widget::~Widget()  [_ZN6WidgetD2Ev]",
            "  Widget::id() const  [_ZNK6Widget2idEv]",
            "  Widget::size() const  [_ZNK6Widget4sizeEv]",
            "  Widget::weight() const  [_ZNK6Widget6weightEv]",
            "vtables (1):",
            "  Widget [_ZTV6Widget]",
            "    [2] Widget::size() const",
            "    [3] Widget::weight() const",
        ],
        "ddl inspect widget-nodebug",
    );
    assert!(!lines.iter().any(|l| l.starts_with("structs")), "{lines:?}");
    // With debug info: the class size.
    let (_, lines, _) = run_ddl_cli(&[&"inspect", &abi("widget-old/libwidget.so.1")]);
    assert_in_order(
        &lines,
        &["classes (1):", "  Widget (16 bytes)"],
        "widget-old",
    );
    assert_in_order(
        &lines,
        &[
            "  Widget::Widget(int id)  [_ZN6WidgetC2Ei]",
            "  virtual Widget::~Widget()  [_ZN6WidgetD0Ev]",
            "  int Widget::id() const  [_ZNK6Widget2idEv]",
            "  virtual int Widget::size() const  [_ZNK6Widget4sizeEv]",
        ],
        "widget-old",
    );
}

/// `--config`: a draft with FIXME where sizes go; refused until they are
/// filled in; then it mirrors abi-app into the `diff` build with exactly
/// the verdicts abi-app.c predicts, the app's output unchanged.
#[test]
fn inspect_config_draft_mirrors_once_filled_in() {
    let lib = abi("old/libabi.so.1");
    let out = std::process::Command::new(crate::check::ddl())
        .arg("inspect")
        .arg("--config")
        .arg(&lib)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let draft: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(draft["old"], "libabi.so.1");
    // Every place a size is needed, and only those, says FIXME.
    let mut fixmes: Vec<String> = draft["types"]
        .as_array()
        .unwrap()
        .iter()
        .chain(draft["functions"].as_array().unwrap())
        .filter_map(|v| v.as_str())
        .filter(|s| s.contains("FIXME"))
        .map(str::to_string)
        .collect();
    fixmes.sort();
    assert_eq!(
        fixmes,
        [
            "int abi_copy(struct abi_stream *s [inout FIXME])",
            "size_t abi_sum(const int32_t *xs [in FIXME], size_t n)",
            "struct abi_stream { const uint8_t *next_in [in FIXME]; size_t avail_in; uint8_t *next_out [inout FIXME]; size_t avail_out; size_t total; }",
        ],
        "draft:\n{text}"
    );
    assert!(draft["new"].as_str().unwrap().starts_with("FIXME"));
    let tmp = TempDir::new("inspect-draft");
    // Unfilled, the config is refused with its position.
    let unfilled = tmp.write("draft.json", &text);
    let (status, _, err) =
        run_ddl_cli(&[&"check", &lib, &abi("diff/libabi.so.1"), &"-c", &unfilled]);
    assert_eq!(status, 1, "{err}");
    assert!(
        err.contains(&format!("{}:", unfilled.display())) && err.contains("FIXME"),
        "{err}"
    );
    // Filled in as a developer would from abi.h.
    let filled = text
        .replace("const int32_t *xs [in FIXME]", "const int32_t *xs [in n]")
        .replace("struct abi_stream *s [inout FIXME]", "struct abi_stream *s")
        .replace("next_in [in FIXME]", "next_in [in avail_in]")
        .replace("next_out [inout FIXME]", "next_out [out avail_out]");
    let mut cfg: Value = serde_json::from_str(&filled).unwrap();
    assert!(!filled[filled.find("\"types\"").unwrap()..].contains("FIXME"));
    cfg["new"] = Value::String(abi("diff/libabi.so.1").display().to_string());
    let (_, _, report) = run_both(&tmp, &App::new(abi("apps/abi-app")), cfg);
    assert_summary(&report, &abi_app_wants(1));
}

/// Expected counts of shapes-app for the draft: the shapes tests' table
/// (`cxx::SHAPES_APP`) plus `Shape::Shape`, which the draft also names and
/// only the library itself calls: (key, calls, match, mismatch, shadow_fault).
fn shapes_draft() -> Vec<(&'static str, u64, u64, u64, u64)> {
    let mut v = crate::cxx::SHAPES_APP.to_vec();
    v.push(("Shape::Shape(double w, double h)", 0, 0, 0, 0));
    v
}

/// `--config` on the C++ fixture built with `-g`: C++ declarations from
/// DWARF (`virtual`, `const`, references, one line per constructor or
/// destructor), `Vec` declared for the reference to it, nothing to fill in
/// but `new`; it mirrors shapes-app with the fixture's known verdicts.
#[test]
fn inspect_config_draft_of_cxx_build_mirrors_shapes() {
    let fx = fixtures();
    let out = std::process::Command::new(crate::check::ddl())
        .arg("inspect")
        .arg("--config")
        .arg(fx.join("shapes/old/libshapes.so.1"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        cfg["types"],
        serde_json::json!(["typedef struct Vec { double x; double y; } Vec;"])
    );
    let fns: Vec<&str> = cfg["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let want = shapes_draft();
    assert_eq!(fns.len(), want.len(), "{text}");
    assert!(
        fns.contains(&"Shape *make_shape(int kind, double a, double b)"),
        "{text}"
    );
    assert!(!text.contains("FIXME Rect"), "{text}");
    cfg["new"] = Value::String(fx.join("shapes/new/libshapes.so.1").display().to_string());
    let tmp = TempDir::new("inspect-shapes");
    let app = App::new(fx.join("shapes/apps/shapes-app-pie-lazy"));
    let (_, _, report) = run_both(&tmp, &app, cfg);
    let counts = report.counts();
    let mut errors = Vec::new();
    for &(f, calls, matched, mismatch, fault) in &want {
        let c = counts.get(f).copied().unwrap_or_default();
        let got = (c.calls, c.mirrored, c.matched, c.mismatch, c.shadow_fault);
        if got != (calls, calls, matched, mismatch, fault)
            || c.unmirrored + c.dropped + c.skipped + c.shadow_timeout != 0
        {
            errors.push(format!(
                "{f}: expected {:?}, got {c:?}",
                (calls, matched, mismatch, fault)
            ));
        }
    }
    assert_eq!(counts.len(), want.len(), "{counts:?}");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
