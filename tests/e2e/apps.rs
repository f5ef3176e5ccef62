//! The fixture apps under libddl: every app in every link layout, the
//! dlopen app, the RUNPATH plugin, a second preload that uses RTLD_NEXT,
//! comparators, `mode: off`, `sampling: 0` and the shape of the records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::expect::*;
use crate::harness::*;

fn calc_app(fx: &Path, layout: &str) -> App {
    App::new(fx.join(format!("calc/apps/calc-app-{layout}")))
}

fn buf_app(fx: &Path, layout: &str) -> App {
    App::new(fx.join(format!("buf/apps/buf-app-{layout}")))
}

/// libcalc's config; `sqrt_compare`, if given, is calc_sqrt's `compare`.
pub fn calc_config(fx: &Path, sqrt_compare: Option<Value>) -> Value {
    let mut functions: Vec<Value> = CALC_SIGS
        .iter()
        .map(|s| match (&sqrt_compare, *s == CALC_SQRT_SIG) {
            (Some(c), true) => json!({ "sig": s, "compare": c }),
            _ => json!(s),
        })
        .collect();
    functions.push(json!({ "sig": CALC_VERSION_SIG, "compare": "ignore" }));
    json!({
        "old": "libcalc.so.1",
        "new": fx.join("calc/new/libcalc.so.1"),
        "mode": "shadow",
        "functions": functions,
    })
}

pub fn buf_config(fx: &Path) -> Value {
    json!({
        "old": "libbuf.so.1",
        "new": fx.join("buf/new/libbuf.so.1"),
        "mode": "shadow",
        "types": BUF_TYPES,
        "functions": BUF_SIGS,
    })
}

pub fn ver_config(fx: &Path) -> Value {
    json!({
        "old": "libver.so.1",
        "new": fx.join("ver/new/libver.so.1"),
        "functions": VER_SIGS,
    })
}

/// Symbol versions: each reference is rebound to a wrapper of the version it
/// names, and mirrored into the new build's function of that version.
fn check_ver_layout(layout: &str) {
    let fx = fixtures();
    let tmp = TempDir::new(&format!("ver-{layout}"));
    let app = App::new(fx.join(format!("ver/apps/ver-app-{layout}")));
    let (_, _, report) = run_both(&tmp, &app, ver_config(fx));
    assert_summary(&report, VER_APP);
}

#[test]
fn ver_app_pie_lazy() {
    check_ver_layout("pie-lazy");
}

#[test]
fn ver_app_pie_now() {
    check_ver_layout("pie-now");
}

#[test]
fn ver_app_noplt() {
    check_ver_layout("noplt");
}

#[test]
fn ver_app_nopie() {
    check_ver_layout("nopie");
}

/// dlvsym(handle, "ver_value", "VER_1") / "VER_2" and dlsym: each answer
/// is a wrapper of that version, mirrored into the same version.
#[test]
fn ver_dlvsym() {
    let fx = fixtures();
    let tmp = TempDir::new("ver-dlopen");
    let app = App::new(fx.join("ver/apps/ver-dlopen"));
    let (_, _, report) = run_both(&tmp, &app, ver_config(fx));
    assert_summary(&report, VER_DLOPEN);
}

/// The boundary calls come from a library the app links (libplugin.so,
/// loaded at start), not from the app.
#[test]
fn calc_mid_library() {
    let fx = fixtures();
    let tmp = TempDir::new("calc-mid");
    let app = App::new(fx.join("calc/apps/calc-mid-app"));
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_summary(&report, CALC_PLUGIN);
    for r in &report.records {
        assert_caller(r, "libplugin.so");
    }
}

fn check_calc_layout(layout: &str) {
    let fx = fixtures();
    let tmp = TempDir::new(&format!("calc-{layout}"));
    let (_, _, report) = run_both(&tmp, &calc_app(fx, layout), calc_config(fx, None));
    assert_summary(&report, CALC_APP);
}

fn check_buf_layout(layout: &str) {
    let fx = fixtures();
    let tmp = TempDir::new(&format!("buf-{layout}"));
    let (_, _, report) = run_both(&tmp, &buf_app(fx, layout), buf_config(fx));
    assert_summary(&report, BUF_APP);
}

#[test]
fn calc_app_pie_lazy() {
    check_calc_layout("pie-lazy");
}

#[test]
fn calc_app_pie_now() {
    check_calc_layout("pie-now");
}

#[test]
fn calc_app_noplt() {
    check_calc_layout("noplt");
}

/// Also: calc_norm2's inner calc_sqrt call comes back through the app's
/// canonical PLT entry; it must be forwarded, not counted or mirrored.
#[test]
fn calc_app_nopie() {
    check_calc_layout("nopie");
}

#[test]
fn buf_app_pie_lazy() {
    check_buf_layout("pie-lazy");
}

#[test]
fn buf_app_pie_now() {
    check_buf_layout("pie-now");
}

#[test]
fn buf_app_noplt() {
    check_buf_layout("noplt");
}

#[test]
fn buf_app_nopie() {
    check_buf_layout("nopie");
}

/// dlopen("libcalc.so.1") through the app's RUNPATH (the old component
/// arrives late), dlsym(handle) and dlsym(RTLD_DEFAULT) answers, dlclose.
#[test]
fn calc_dlopen() {
    let fx = fixtures();
    let tmp = TempDir::new("calc-dlopen");
    let app = App::new(fx.join("calc/apps/calc-dlopen"));
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_summary(&report, CALC_DLOPEN);
    for r in &report.records {
        assert_caller(r, "calc-dlopen");
    }
}

/// The shadow never writes into the app's memory: the app looks at its
/// buffers again 100 ms after each call (the shadow has run by then).
#[test]
fn buf_shadow_writes_stay_in_the_shadow() {
    let fx = fixtures();
    let tmp = TempDir::new("buf-leak");
    let app = App::new(fx.join("buf/apps/buf-leak-app"));
    let (_, _, report) = run_both(&tmp, &app, buf_config(fx));
    assert_summary(&report, BUF_LEAK);
}

/// A caller-owned stream struct updated in place (zlib style): its buffer
/// fields are compared over how far the callee advanced them, so the 'Z'
/// bytes the new build writes through next_out are mismatches.
#[test]
fn buf_pump_stream_struct() {
    let fx = fixtures();
    for layout in LAYOUTS {
        let tmp = TempDir::new(&format!("buf-pump-{layout}"));
        let app = App::new(fx.join(format!("buf/apps/buf-pump-app-{layout}")));
        let (_, _, report) = run_both(&tmp, &app, buf_config(fx));
        assert_summary(&report, BUF_PUMP);
        for r in sorted_records(&report, "buf_pump") {
            let p = diff_paths(r);
            assert!(
                p.len() == 1 && p[0].starts_with("p.next_out"),
                "buf_pump differs only in the bytes written through next_out: {r}"
            );
        }
    }
}

/// The same plugin opened with RTLD_LAZY: its slots are unresolved PLT
/// stubs when libddl rebinds them.
#[test]
fn calc_plugin_runpath_lazy() {
    let fx = fixtures();
    let tmp = TempDir::new("calc-plugin-lazy");
    let app = App::new(fx.join("calc/apps/calc-plugin-app")).arg("lazy");
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_summary(&report, CALC_PLUGIN);
}

/// dlclose, then dlopen again: the wrappers stood down with the first
/// instance and the second one is rebound when it arrives.
#[test]
fn calc_dlopen_twice() {
    let fx = fixtures();
    let tmp = TempDir::new("calc-dlopen-twice");
    let app = App::new(fx.join("calc/apps/calc-dlopen")).arg("twice");
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_summary(&report, CALC_DLOPEN_TWICE);
}

/// A plugin host reloading the component 40 times (more than the link-map
/// namespaces glibc has): every cycle is rebound and mirrored.
#[test]
fn calc_dlopen_dlclose_cycles() {
    let fx = fixtures();
    let tmp = TempDir::new("calc-dlopen-cycles");
    let app = App::new(fx.join("calc/apps/calc-dlopen")).arg("cycles");
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_summary(&report, CALC_DLOPEN_CYCLES);
}

/// A plugin found by a bare-name dlopen through the app's RUNPATH
/// `$ORIGIN/plugins`; the plugin's own references to libcalc are rebound.
#[test]
fn calc_plugin_runpath() {
    let fx = fixtures();
    let tmp = TempDir::new("calc-plugin");
    let app = App::new(fx.join("calc/apps/calc-plugin-app"));
    let (_, _, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_summary(&report, CALC_PLUGIN);
    for r in &report.records {
        assert_caller(r, "libplugin.so");
    }
}

fn libnext_lines(o: &Output) -> Vec<String> {
    o.stderr
        .lines()
        .filter(|l| l.starts_with("libnext:"))
        .map(str::to_string)
        .collect()
}

/// libnext.so interposes puts and calc_add and chains with
/// dlsym(RTLD_NEXT): both preload orders must leave its answers intact.
fn check_rtld_next(ddl_first: bool) {
    let fx = fixtures();
    let tmp = TempDir::new(if ddl_first {
        "next-ddl-first"
    } else {
        "next-ddl-last"
    });
    let next = fx.join("next/libnext.so");
    let app = calc_app(fx, "pie-now").preload(&next);
    let mut config = calc_config(fx, None);
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = json!(report_path);
    let cfg = tmp.write_config(&config);
    let plain = run_plain(&app, tmp.path());
    let preload: Vec<PathBuf> = if ddl_first {
        vec![libddl(), next.clone()]
    } else {
        vec![next.clone(), libddl()]
    };
    let order = if ddl_first {
        "LD_PRELOAD=libddl.so:libnext.so"
    } else {
        "LD_PRELOAD=libnext.so:libddl.so"
    };
    let ddl = run(
        &app,
        &preload,
        Some(&cfg),
        tmp.path(),
        &format!("calc-app-pie-now, {order}"),
    );
    assert_transparent(&plain, &ddl);
    let want_next = libnext_lines(&plain);
    assert_eq!(
        want_next,
        vec!["libnext: puts 1 calc_add 10".to_string()],
        "libnext's own count without libddl"
    );
    assert_eq!(
        libnext_lines(&ddl),
        want_next,
        "{order}: libnext's interposed puts/calc_add saw different traffic; stderr:\n{}",
        ddl.stderr
    );
    let report = read_report(&report_path, &ddl);
    // The app's calc_add calls reach libnext, which calls what
    // dlsym(RTLD_NEXT, "calc_add") gave it: the wrapper (a boundary lookup).
    assert_summary(&report, CALC_APP);
}

#[test]
fn rtld_next_preload_ddl_first() {
    check_rtld_next(true);
}

#[test]
fn rtld_next_preload_ddl_last() {
    check_rtld_next(false);
}

/// calc_sqrt's new build is 1 ulp above the old one for x > 100: a match
/// under {"ulps": 2}, a mismatch under "exact".
#[test]
fn float_ulps_two_is_match() {
    let fx = fixtures();
    let tmp = TempDir::new("ulps2");
    let config = calc_config(fx, Some(json!({ "ret": { "ulps": 2 } })));
    let (_, _, report) = run_both(&tmp, &calc_app(fx, "pie-now"), config);
    assert_summary(&report, &with_mismatch(CALC_APP, "calc_sqrt", 0));
}

#[test]
fn float_exact_is_mismatch() {
    let fx = fixtures();
    let tmp = TempDir::new("exact");
    let config = calc_config(fx, Some(json!({ "ret": "exact" })));
    let (_, _, report) = run_both(&tmp, &calc_app(fx, "pie-now"), config);
    assert_summary(&report, CALC_APP);
    assert_eq!(report.get("calc_sqrt").mismatch, 3);
}

/// `mode: off` loads nothing: the app sees no mapping of the new build.
#[test]
fn mode_off_loads_nothing() {
    let fx = fixtures();
    let tmp = TempDir::new("mode-off-maps");
    let mut config = calc_config(fx, None);
    config["mode"] = json!("off");
    config["report"] = json!(tmp.path().join("report.jsonl"));
    let cfg = tmp.write_config(&config);
    let app = App::new(fx.join("calc/apps/calc-stress")).arg("maps");
    let plain = run_plain(&app, tmp.path());
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("folder: 0"),
        "{plain:?}"
    );
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
}

/// `mode: off`: nothing is loaded or rebound; the app runs; no mismatch,
/// no record, nothing mirrored (a report, if written at all, says so).
#[test]
fn mode_off() {
    let fx = fixtures();
    let tmp = TempDir::new("mode-off");
    let mut config = calc_config(fx, None);
    config["mode"] = json!("off");
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = json!(report_path);
    let cfg = tmp.write_config(&config);
    let app = calc_app(fx, "pie-now");
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    if report_path.exists() {
        let report = read_report(&report_path, &ddl);
        assert!(
            report.records.is_empty(),
            "mode off wrote records: {:?}",
            report.records
        );
        assert_invariants(&report);
        for (f, c) in report.counts() {
            assert_eq!(
                (c.mirrored, c.mismatch),
                (0, 0),
                "mode off: {f} was mirrored: {c:?}"
            );
        }
    }
}

/// `sampling: 0`: every call is counted and skipped, none mirrored.
#[test]
fn sampling_zero_skips_all() {
    let fx = fixtures();
    let tmp = TempDir::new("sampling0");
    let mut config = calc_config(fx, None);
    config["sampling"] = json!(0);
    let (_, _, report) = run_both(&tmp, &calc_app(fx, "pie-now"), config);
    assert!(
        report.records.is_empty(),
        "sampling 0 wrote records: {:?}",
        report.records
    );
    assert_invariants(&report);
    let counts = report.counts();
    let mut errors = Vec::new();
    for w in CALC_APP {
        let want = Counts {
            calls: w.calls,
            skipped: w.calls,
            ..Counts::default()
        };
        let got = counts.get(w.function).copied().unwrap_or_default();
        if got != want {
            errors.push(format!(
                "{}: expected {want:?}\n      got      {got:?}",
                w.function
            ));
        }
    }
    assert!(errors.is_empty(), "sampling 0:\n  {}", errors.join("\n  "));
}

fn seq(r: &Value) -> u64 {
    r.get("seq")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("record without an integer seq: {r}"))
}

fn sorted_records<'a>(report: &'a Report, function: &str) -> Vec<&'a Value> {
    let mut v = report.records_of(function);
    v.sort_by_key(|r| seq(r));
    v
}

fn assert_time(t: &Value, r: &Value) {
    let s = t
        .as_str()
        .unwrap_or_else(|| panic!("time is not a string: {r}"));
    let b = s.as_bytes();
    let ok = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s[..4].chars().all(|c| c.is_ascii_digit())
        && s.starts_with("20");
    assert!(
        ok,
        "time {s:?} is not an RFC 3339 UTC time like 2026-11-21T23:50:01.123456Z: {r}"
    );
}

fn assert_caller(r: &Value, app: &str) {
    let caller = r
        .get("caller")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("record without caller: {r}"));
    let prefix = format!("{app}+0x");
    assert!(
        caller.starts_with(&prefix)
            && caller.len() > prefix.len()
            && caller[prefix.len()..]
                .chars()
                .all(|c| c.is_ascii_hexdigit()),
        "caller {caller:?} is not {prefix}<hex>: {r}"
    );
}

fn diff_paths(r: &Value) -> Vec<String> {
    r.get("diffs")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("record without a diffs array: {r}"))
        .iter()
        .map(|d| {
            d.get("path")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("diff without a path: {r}"))
                .to_string()
        })
        .collect()
}

fn assert_common_shape(r: &Value, function: &str, pid: u32, app: &str) {
    for k in [
        "seq", "time", "pid", "tid", "function", "verdict", "args", "primary", "shadow", "diffs",
        "caller",
    ] {
        assert!(r.get(k).is_some(), "record lacks {k:?}: {r}");
    }
    assert_eq!(r["function"], json!(function), "{r}");
    assert_eq!(r["verdict"], json!("mismatch"), "{r}");
    assert_eq!(r["pid"].as_u64(), Some(pid as u64), "pid is the app's: {r}");
    assert!(r["tid"].as_u64().is_some_and(|t| t > 0), "tid: {r}");
    assert_time(&r["time"], r);
    assert_caller(r, app);
}

/// The records of calc-app-pie-now: exact args, outcomes, diffs, seq order,
/// pid, time and caller.
#[test]
fn record_shape_calc() {
    let fx = fixtures();
    let tmp = TempDir::new("records-calc");
    let app = calc_app(fx, "pie-now");
    let (_, ddl, report) = run_both(&tmp, &app, calc_config(fx, None));
    assert_summary(&report, CALC_APP);
    let name = app.name();

    let div = sorted_records(&report, "calc_div");
    assert_eq!(div.len(), 3, "calc_div records: {div:?}");
    for r in &div {
        assert_common_shape(r, "calc_div", ddl.pid, &name);
    }
    let r = div[0];
    assert_eq!(r["args"], json!({ "a": 7, "b": 0 }), "{r}");
    assert_eq!(r["primary"], json!({ "ret": 0 }), "{r}");
    assert_eq!(r["shadow"], json!({ "ret": -1 }), "{r}");
    assert_eq!(
        r["diffs"],
        json!([{ "path": "ret", "primary": 0, "shadow": -1 }]),
        "{r}"
    );
    assert_eq!(div[1]["args"], json!({ "a": 0, "b": 0 }));
    assert_eq!(div[2]["args"], json!({ "a": 8, "b": 0 }));
    // seq numbers every intercepted call in order: calc_add x4, then
    // calc_div(7,2) (7,0) (-9,3) (0,0) (100,7), then the table pairs
    // add(3,4) div(3,4) add(8,0) div(8,0): the mismatches are the 6th,
    // 8th and 13th intercepted calls.
    let s: Vec<u64> = div.iter().map(|r| seq(r)).collect();
    assert_eq!(
        (s[1] - s[0], s[2] - s[0]),
        (2, 7),
        "calc_div mismatch seqs {s:?} are not the 6th, 8th and 13th calls"
    );
    assert!(
        s[0] == 5 || s[0] == 6,
        "first calc_div mismatch has seq {} (expected the 6th call: 5 counting from 0, 6 from 1)",
        s[0]
    );

    let sq = sorted_records(&report, "calc_sqrt");
    assert_eq!(sq.len(), 3);
    assert_eq!(sq[0]["args"], json!({ "x": 144.0 }));
    assert_eq!(sq[0]["primary"]["ret"].as_f64(), Some(12.0), "{}", sq[0]);
    assert_eq!(
        sq[0]["shadow"]["ret"].as_f64(),
        Some(f64::from_bits(12.0f64.to_bits() + 1)),
        "{}",
        sq[0]
    );
    assert_eq!(diff_paths(sq[0]), vec!["ret"]);

    let mul = sorted_records(&report, "calc_mul64");
    assert_eq!(mul.len(), 2);
    assert_eq!(mul[0]["args"], json!({ "a": 1u64 << 40, "b": 1u64 << 30 }));
    assert_eq!(mul[0]["primary"]["ret"].as_u64(), Some(0), "{}", mul[0]);
    assert_eq!(
        mul[0]["shadow"]["ret"].as_u64(),
        Some(u64::MAX),
        "integers are written exactly: {}",
        mul[0]
    );
    assert_eq!(mul[1]["args"]["a"].as_u64(), Some(u64::MAX), "{}", mul[1]);

    let hash = sorted_records(&report, "calc_hash");
    assert_eq!(hash.len(), 2);
    assert_eq!(hash[0]["args"], json!({ "s": "Hello" }));
    assert_eq!(hash[0]["primary"]["ret"].as_u64(), Some(0x409a25aea1097541));
    assert_eq!(hash[0]["shadow"]["ret"].as_u64(), Some(0x5a0d15131ec7a1));
    assert_eq!(hash[1]["args"], json!({ "s": "abc-XYZ" }));

    let name_r = sorted_records(&report, "calc_name");
    assert_eq!(name_r.len(), 2);
    assert_eq!(name_r[0]["args"], json!({ "code": 3 }));
    assert_eq!(name_r[0]["primary"], json!({ "ret": "three" }));
    assert_eq!(name_r[0]["shadow"], json!({ "ret": "thr3e" }));
    assert_eq!(diff_paths(name_r[0]), vec!["ret"]);

    let norm = sorted_records(&report, "calc_norm2");
    assert_eq!(norm.len(), 1);
    assert_eq!(norm[0]["args"], json!({ "x": 30.0, "y": 40.0 }));

    // every record's seq is distinct
    let mut all: Vec<u64> = report.records.iter().map(seq).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), report.records.len(), "duplicate seq numbers");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The records of buf-app-noplt: buffers, first differing element index,
/// struct fields by pointer and by value.
#[test]
fn record_shape_buf() {
    let fx = fixtures();
    let tmp = TempDir::new("records-buf");
    let app = buf_app(fx, "noplt");
    let (_, ddl, report) = run_both(&tmp, &app, buf_config(fx));
    assert_summary(&report, BUF_APP);
    let name = app.name();
    for r in &report.records {
        let f = r["function"].as_str().unwrap_or("").to_string();
        assert_common_shape(r, &f, ddl.pid, &name);
    }

    let enc = sorted_records(&report, "buf_encode");
    assert_eq!(enc.len(), 2);
    let r = enc[0];
    assert_eq!(r["args"]["len"], json!(201), "{r}");
    assert_eq!(r["args"]["cap"], json!(64), "{r}");
    let src = &r["args"]["src"];
    assert_eq!(src["len"], json!(201), "src buffer: {r}");
    let mut head = vec![b'a'];
    head.extend([b'b'; 63]);
    assert_eq!(src["head"], json!(hex_of(&head)), "src head: {r}");
    assert!(
        src["sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())),
        "src sha256: {r}"
    );
    assert_eq!(r["primary"]["ret"], json!(4), "{r}");
    assert_eq!(r["shadow"]["ret"], json!(4), "{r}");
    assert_eq!(r["primary"]["dst"]["len"], json!(4), "written ret: {r}");
    assert_eq!(r["primary"]["dst"]["head"], json!("610162c8"), "{r}");
    assert_eq!(r["shadow"]["dst"]["head"], json!("61016248"), "{r}");
    assert_eq!(diff_paths(r), vec!["dst[3]"], "{r}");
    assert_eq!(diff_paths(enc[1]), vec!["dst[1]"], "{}", enc[1]);

    let fill = sorted_records(&report, "buf_fill");
    assert_eq!(fill.len(), 2);
    for r in &fill {
        assert_eq!(diff_paths(r), vec!["dst[20]"], "{r}");
    }
    assert_eq!(fill[0]["args"]["n"], json!(64));

    let rev = sorted_records(&report, "buf_reverse");
    assert_eq!(rev.len(), 2);
    assert_eq!(rev[0]["args"]["n"], json!(10));
    assert_eq!(diff_paths(rev[0]), vec!["xs[0]"], "{}", rev[0]);

    let tr = sorted_records(&report, "buf_translate");
    assert_eq!(tr.len(), 1);
    assert_eq!(diff_paths(tr[0]), vec!["p.y"], "{}", tr[0]);
    let d = &tr[0]["diffs"][0];
    assert_eq!(
        (d["primary"].as_f64(), d["shadow"].as_f64()),
        (Some(26.0), Some(21.0)),
        "{}",
        tr[0]
    );

    let sc = sorted_records(&report, "buf_scale3");
    assert_eq!(sc.len(), 1);
    assert_eq!(diff_paths(sc[0]), vec!["ret.c"], "{}", sc[0]);

    let area = sorted_records(&report, "buf_area");
    assert_eq!(area.len(), 1);
    assert_eq!(
        area[0]["args"]["r"],
        json!({ "x": 1, "y": 1, "w": -2, "h": 5 }),
        "{}",
        area[0]
    );
    assert_eq!(
        area[0]["diffs"],
        json!([{ "path": "ret", "primary": -10, "shadow": 0 }])
    );

    let many = sorted_records(&report, "buf_many");
    assert_eq!(many.len(), 1);
    assert_eq!(many[0]["args"]["a8"], json!(8), "{}", many[0]);
    assert_eq!(many[0]["args"]["d10"].as_f64(), Some(200.0), "{}", many[0]);
    assert_eq!(diff_paths(many[0]), vec!["ret"]);

    let tag = sorted_records(&report, "buf_tag");
    assert_eq!(tag.len(), 1);
    assert_eq!(tag[0]["args"]["t"]["id"], json!(7), "{}", tag[0]);
    assert_eq!(tag[0]["args"]["k"], json!(-1), "{}", tag[0]);
    assert_eq!(diff_paths(tag[0]), vec!["ret.id"], "{}", tag[0]);

    let apply = sorted_records(&report, "buf_apply");
    assert_eq!(apply.len(), 1);
    assert_eq!(diff_paths(apply[0]), vec!["xs[4]"], "{}", apply[0]);

    let up = sorted_records(&report, "buf_upper");
    assert_eq!(up.len(), 2);
    for r in &up {
        let p = diff_paths(r);
        assert!(
            p.len() == 1 && (p[0] == "out" || p[0].starts_with("out[")),
            "buf_upper diff should name out: {r}"
        );
    }
}

/// Without libddl: each app on the old build and on the new one (same
/// soname through LD_LIBRARY_PATH, which wins over RUNPATH). Every app prints
/// one line per boundary call starting with the function's name, so the
/// lines per function are the calls and the differing lines the mismatches.
/// This checks the tables in expect.rs against the fixtures themselves.
#[test]
fn fixtures_agree_with_expectations() {
    let fx = fixtures();
    let tmp = TempDir::new("crosscheck");
    let mut cases: Vec<(PathBuf, &str, &[Want])> = Vec::new();
    for l in LAYOUTS {
        cases.push((fx.join(format!("calc/apps/calc-app-{l}")), "calc", CALC_APP));
        cases.push((fx.join(format!("buf/apps/buf-app-{l}")), "buf", BUF_APP));
        cases.push((fx.join(format!("ver/apps/ver-app-{l}")), "ver", VER_APP));
        cases.push((
            fx.join(format!("buf/apps/buf-pump-app-{l}")),
            "buf",
            BUF_PUMP,
        ));
    }
    cases.push((fx.join("calc/apps/calc-mid-app"), "calc", CALC_PLUGIN));
    cases.push((fx.join("ver/apps/ver-dlopen"), "ver", VER_DLOPEN));
    cases.push((fx.join("buf/apps/buf-leak-app"), "buf", BUF_LEAK));
    cases.push((fx.join("calc/apps/calc-dlopen"), "calc", CALC_DLOPEN));
    cases.push((fx.join("calc/apps/calc-plugin-app"), "calc", CALC_PLUGIN));
    cases.push((fx.join("calc/apps/calc-dlopen"), "calc", CALC_DLOPEN_TWICE));
    cases.push((fx.join("calc/apps/calc-dlopen"), "calc", CALC_DLOPEN_CYCLES));
    for (prog, comp, wants) in cases {
        let mut app = App::new(&prog);
        if std::ptr::eq(wants, CALC_DLOPEN_TWICE) {
            app = app.arg("twice");
        }
        if std::ptr::eq(wants, CALC_DLOPEN_CYCLES) {
            app = app.arg("cycles");
        }
        let old = run_plain(&app, tmp.path());
        let new_app = app.clone().env(
            "LD_LIBRARY_PATH",
            &fx.join(comp).join("new").display().to_string(),
        );
        let new = run(
            &new_app,
            &[],
            None,
            tmp.path(),
            &format!("{} (new build)", app.name()),
        );
        assert!(
            old.status.success() && new.status.success(),
            "{}: {old:?} {new:?}",
            app.name()
        );
        let old_s = String::from_utf8_lossy(&old.stdout).into_owned();
        let new_s = String::from_utf8_lossy(&new.stdout).into_owned();
        let ol: Vec<&str> = old_s.lines().collect();
        let nl: Vec<&str> = new_s.lines().collect();
        assert_eq!(ol.len(), nl.len(), "{}: line counts differ", app.name());
        let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (a, b) in ol.iter().zip(&nl) {
            let line = a.strip_prefix("plugin: ").unwrap_or(a);
            let Some(f) = line.split(['(', '@']).next() else {
                continue;
            };
            let ours = ["calc_", "buf_", "ver_"].iter().any(|p| f.starts_with(p));
            if !ours || !line.contains('(') {
                continue;
            }
            let e = got.entry(f.to_string()).or_default();
            e.0 += 1;
            if a != b {
                if IGNORED.contains(&f) {
                    continue;
                }
                e.1 += 1;
            }
        }
        let want: BTreeMap<String, (u64, u64)> = wants
            .iter()
            .map(|w| (w.function.to_string(), (w.calls, w.mismatch)))
            .collect();
        assert_eq!(
            got,
            want,
            "{}: (calls, differing calls) per function on old vs new",
            app.name()
        );
    }
}

/// `defaults.compare` applies where a function says nothing: with floats
/// within 2 ulps by default, calc_sqrt and calc_norm2 (1 ulp apart) match.
#[test]
fn defaults_compare_float_ulps() {
    let fx = fixtures();
    let tmp = TempDir::new("defaults");
    let mut config = calc_config(fx, None);
    config["defaults"] = json!({ "compare": { "float": { "ulps": 2 } } });
    let (_, _, report) = run_both(&tmp, &calc_app(fx, "pie-lazy"), config);
    let wants = with_mismatch(&with_mismatch(CALC_APP, "calc_sqrt", 0), "calc_norm2", 0);
    assert_summary(&report, &wants);
}

/// `{"abs": x, "rel": y}`: 1 ulp at 12.0 is 1.8e-15, about 1.5e-16 relative.
#[test]
fn float_abs_rel() {
    let fx = fixtures();
    for (rel, mismatch) in [(1e-15, 0), (1e-17, 3)] {
        let tmp = TempDir::new("abs-rel");
        let config = calc_config(fx, Some(json!({ "ret": { "abs": 0.0, "rel": rel } })));
        let (_, _, report) = run_both(&tmp, &calc_app(fx, "pie-now"), config);
        assert_summary(&report, &with_mismatch(CALC_APP, "calc_sqrt", mismatch));
    }
}

/// `records_per_signature: 1`: calc_div's three mismatches (all differing at
/// `ret`) are counted, one is written.
#[test]
fn records_per_signature_caps_records() {
    let fx = fixtures();
    let tmp = TempDir::new("records-cap");
    let mut config = calc_config(fx, None);
    config["records_per_signature"] = json!(1);
    let (_, _, report) = run_both(&tmp, &calc_app(fx, "pie-now"), config);
    assert_invariants(&report);
    assert_eq!(
        report.get("calc_div").mismatch,
        3,
        "{:?}",
        report.get("calc_div")
    );
    assert_eq!(
        report.records_of("calc_div").len(),
        1,
        "{:?}",
        report.records
    );
    assert_eq!(report.get("calc_sqrt").mismatch, 3);
    assert_eq!(report.records_of("calc_sqrt").len(), 1);
}

/// `report` with `%p`, relative to the working directory.
#[test]
fn report_path_pid_substitution() {
    let fx = fixtures();
    let tmp = TempDir::new("report-pid");
    let mut config = calc_config(fx, None);
    config["report"] = json!("sub-%p.jsonl");
    let cfg = tmp.write_config(&config);
    let app = calc_app(fx, "pie-now");
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    let report = read_report(&tmp.path().join(format!("sub-{}.jsonl", ddl.pid)), &ddl);
    assert_summary(&report, CALC_APP);
}

/// `attach.exe` globs that do not match the executable: left alone.
#[test]
fn attach_exe_not_matching() {
    let fx = fixtures();
    let tmp = TempDir::new("attach");
    let mut config = calc_config(fx, None);
    config["attach"] = json!({ "exe": ["buf-app*", "python3*"] });
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = json!(report_path);
    let cfg = tmp.write_config(&config);
    let app = calc_app(fx, "pie-now");
    let plain = run_plain(&app, tmp.path());
    let ddl = run_ddl(&app, &cfg, tmp.path());
    assert_transparent(&plain, &ddl);
    if report_path.exists() {
        let report = read_report(&report_path, &ddl);
        assert!(report.records.is_empty(), "{:?}", report.records);
        for (f, c) in report.counts() {
            assert_eq!(
                c.mirrored, 0,
                "{f} mirrored in a process attach.exe excludes: {c:?}"
            );
        }
    }
    // and a glob that matches does attach
    let tmp = TempDir::new("attach-match");
    let mut config = calc_config(fx, None);
    config["attach"] = json!({ "exe": ["calc-app-*"] });
    let (_, _, report) = run_both(&tmp, &app, config);
    assert_summary(&report, CALC_APP);
}

/// LD_PRELOAD without DDL_CONFIG: libddl stays inert (no output, no report).
#[test]
fn no_config_is_inert() {
    let fx = fixtures();
    let tmp = TempDir::new("inert");
    let app = calc_app(fx, "nopie");
    let plain = run_plain(&app, tmp.path());
    let mut preload = vec![libddl()];
    preload.extend(app.preload.iter().cloned());
    let ddl = run(
        &app,
        &preload,
        None,
        tmp.path(),
        "calc-app-nopie (libddl, no DDL_CONFIG)",
    );
    assert_transparent(&plain, &ddl);
    assert!(
        !ddl.stderr.lines().any(|l| l.starts_with("ddl:")),
        "libddl wrote on stderr without a config:\n{}",
        ddl.stderr
    );
    let files: Vec<_> = std::fs::read_dir(tmp.path())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        files.is_empty(),
        "libddl wrote files without a config: {files:?}"
    );
}

/// `sampling: 0.5`: decided per call; every call is counted, mirrored or
/// skipped, and mismatches are only among the mirrored.
#[test]
fn sampling_half() {
    let fx = fixtures();
    let tmp = TempDir::new("sampling-half");
    let mut config = calc_config(fx, None);
    config["sampling"] = json!(0.5);
    let app = App::new(fx.join("calc/apps/calc-stress")).arg("threads");
    let (_, _, report) = run_both(&tmp, &app, config);
    assert_invariants(&report);
    for (f, calls, max_mismatch) in [
        ("calc_add", 100_000u64, 0u64),
        ("calc_div", 100_000, 10_000),
    ] {
        let c = report.get(f);
        assert_eq!(c.calls, calls, "{f}: {c:?}");
        assert!(
            c.skipped > calls / 4 && c.skipped < calls * 3 / 4,
            "{f}: about half should be skipped: {c:?}"
        );
        assert!(c.mismatch <= max_mismatch, "{f}: {c:?}");
        assert_eq!(
            c.shadow_fault + c.shadow_timeout + c.unmirrored,
            0,
            "{f}: {c:?}"
        );
    }
}

/// `queue_bytes` smaller than one buf_encode invocation: those are dropped
/// (counted), the app is untouched, the counts add up.
#[test]
fn queue_bytes_drops_big_invocations() {
    let fx = fixtures();
    let tmp = TempDir::new("queue-bytes");
    let mut config = buf_config(fx);
    config["queue_bytes"] = json!(64);
    let (_, _, report) = run_both(&tmp, &buf_app(fx, "pie-now"), config);
    assert_invariants(&report);
    let mut errors = Vec::new();
    for w in BUF_APP {
        let c = report.get(w.function);
        if c.calls != w.calls || c.skipped != 0 || c.mismatch > w.mismatch {
            errors.push(format!("{}: {c:?}", w.function));
        }
    }
    let enc = report.get("buf_encode");
    if enc.dropped == 0 {
        errors.push(format!(
            "buf_encode captures more than 64 bytes (a 201-byte src), yet nothing was dropped: {enc:?}"
        ));
    }
    assert!(
        errors.is_empty(),
        "queue_bytes 64:\n  {}",
        errors.join("\n  ")
    );
}

/// `new` relative to the config file's folder (not the working directory),
/// and `old` given as the old build's absolute path instead of its soname.
#[test]
fn config_paths_relative_new_absolute_old() {
    let fx = fixtures();
    let tmp = TempDir::new("paths");
    let lib = tmp.path().join("builds/v2");
    std::fs::create_dir_all(&lib).expect("mkdir");
    std::fs::copy(fx.join("calc/new/libcalc.so.1"), lib.join("libcalc.so.1")).expect("copy new");
    let cfg_dir = tmp.path().join("conf");
    std::fs::create_dir_all(&cfg_dir).expect("mkdir");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let mut config = calc_config(fx, None);
    config["new"] = json!("../builds/v2/libcalc.so.1");
    config["old"] = json!(fx.join("calc/old/libcalc.so.1"));
    let report_path = tmp.path().join("report.jsonl");
    config["report"] = json!(report_path);
    let cfg = cfg_dir.join("calc.ddl.json");
    std::fs::write(&cfg, serde_json::to_string_pretty(&config).unwrap()).expect("write config");
    let app = calc_app(fx, "pie-now");
    let plain = run_plain(&app, &work);
    let ddl = run_ddl(&app, &cfg, &work);
    assert_transparent(&plain, &ddl);
    let report = read_report(&report_path, &ddl);
    assert_summary(&report, CALC_APP);
}

/// `DDL_LOG=debug`: diagnostics only on stderr, every line prefixed `ddl:`;
/// the app's stdout untouched and the counts the same.
#[test]
fn ddl_log_debug_lines_are_prefixed() {
    let fx = fixtures();
    let tmp = TempDir::new("log-debug");
    let app = calc_app(fx, "noplt").env("DDL_LOG", "debug");
    let (_, ddl, report) = run_both(&tmp, &app, calc_config(fx, None));
    let bad: Vec<&str> = ddl
        .stderr
        .lines()
        .filter(|l| !l.starts_with("ddl:"))
        .collect();
    assert!(
        bad.is_empty(),
        "stderr lines without the ddl: prefix: {bad:?}"
    );
    assert_summary(&report, CALC_APP);
}
