//! Calls take specialised paths where their signature allows, and general
//! ones otherwise:
//!
//! - the caller's side: a scalar C function's mirrored call is written by
//!   the wrapper's assembly straight into the thread's ring (the ring path,
//!   `shim/src/wrapper.rs`); everything else is captured as values and
//!   queued (the general path, forced by `DDL_CALLER_PATH=general`);
//! - the shadow calls the new build with the specialised register call
//!   (arbiter/csrc/regcall.c) for signatures whose arguments and return
//!   value all live in registers, and with libffi otherwise (forced by
//!   `DDL_SHADOW_CALLS=libffi`).
//!
//! Every fixture runs three ways (specialised; libffi shadow calls; both
//! general) and must reach the same verdicts: the same counts per function
//! and the same records (function, verdict, differing paths, both
//! outcomes).

use serde_json::{json, Value};

use crate::harness::*;

/// Addresses (handles, opaque pointers) differ from run to run.
fn without_addresses(v: &Value) -> Value {
    match v {
        Value::String(s)
            if s.starts_with("0x") && s[2..].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            json!("0x…")
        }
        Value::Array(a) => Value::Array(a.iter().map(without_addresses).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), without_addresses(v)))
                .collect(),
        ),
        v => v.clone(),
    }
}

/// The records of a report, without what differs from run to run.
fn verdicts(report: &Report) -> Vec<Value> {
    let mut v: Vec<Value> = report
        .records
        .iter()
        .map(without_addresses)
        .map(|r| {
            // What an output buffer held before the call is the
            // application's uninitialised memory (stack left-overs that
            // differ from run to run); the output itself is compared.
            let mut args = r["args"].clone();
            if let (Some(a), Some(p)) = (args.as_object_mut(), r["primary"].as_object()) {
                for (k, v) in a.iter_mut() {
                    if p.contains_key(k) {
                        *v = json!("(an output)");
                    }
                }
            }
            json!({
                "function": r["function"], "verdict": r["verdict"], "args": args,
                "primary": r["primary"], "shadow": r["shadow"], "diffs": r["diffs"],
                "fault": r["fault"], "exception": r["exception"],
            })
        })
        .collect();
    v.sort_by_key(|r| r.to_string());
    v
}

fn both_ways(name: &str, app: App, config: Value) {
    let mut reports = Vec::new();
    for way in ["specialised", "libffi", "general"] {
        let tmp = TempDir::new(&format!("paths-{name}-{way}"));
        let app = match way {
            "libffi" => app.clone().env("DDL_SHADOW_CALLS", "libffi"),
            "general" => app
                .clone()
                .env("DDL_SHADOW_CALLS", "libffi")
                .env("DDL_CALLER_PATH", "general"),
            _ => app.clone(),
        };
        let (_, _, report) = run_both(&tmp, &app, config.clone());
        assert_invariants(&report);
        reports.push((way, report));
    }
    let (_, a) = &reports[0];
    for (way, b) in &reports[1..] {
        assert_eq!(
            a.counts(),
            b.counts(),
            "{name}: counts differ between the specialised paths and the {way} ones"
        );
        assert_eq!(
            verdicts(a),
            verdicts(b),
            "{name}: records differ between the specialised paths and the {way} ones"
        );
    }
}

#[test]
fn calc_both_ways() {
    let fx = fixtures();
    let app = App::new(fx.join("calc/apps/calc-app-pie-now"));
    both_ways("calc", app, crate::apps::calc_config(fx, None));
}

#[test]
fn buf_both_ways() {
    let fx = fixtures();
    both_ways(
        "buf",
        App::new(fx.join("buf/apps/buf-app-pie-now")),
        crate::apps::buf_config(fx),
    );
    both_ways(
        "buf-pump",
        App::new(fx.join("buf/apps/buf-pump-app-pie-now")),
        crate::apps::buf_config(fx),
    );
}

#[test]
fn ver_both_ways() {
    let fx = fixtures();
    both_ways(
        "ver",
        App::new(fx.join("ver/apps/ver-app-pie-now")),
        crate::apps::ver_config(fx),
    );
}

#[test]
fn codec_both_ways() {
    let fx = fixtures();
    both_ways(
        "codec",
        App::new(fx.join("codec/apps/codec-app-pie-now")),
        crate::stateful::codec_config(fx),
    );
}

#[test]
fn shapes_both_ways() {
    let fx = fixtures();
    both_ways(
        "shapes",
        App::new(fx.join("shapes/apps/shapes-app-pie-now")),
        crate::cxx::shapes_config(fx, None),
    );
}

#[test]
fn faults_both_ways() {
    let fx = fixtures();
    let config = json!({
        "old": "libfault.so.1",
        "new": fx.join("faults/new/libfault.so.1"),
        "timeout_ms": 200,
        "functions": ["int fault_do(int what, int x)", "int fault_write(int fd, const char *s)"],
    });
    let mut app = App::new(fx.join("faults/apps/fault-app"))
        .arg("-o")
        .arg("/dev/null");
    for c in [0, 1, 3, 5, 10, 14, 15, 101, 17, 19, 0] {
        app = app.arg(c.to_string());
    }
    both_ways("faults", app, config);
}

/// The specialised caller's path is really taken: with `DDL_LOG=info`,
/// libddl names each wrapper it arms for the ring path (at its first call;
/// the later ones take it). Every scalar C function calc-app calls takes it
/// (its parameters all in registers a slot keeps); the two that take or
/// return a string do not (`calc_both_ways` compares the verdicts).
#[test]
fn scalar_c_functions_take_the_ring_path() {
    let fx = fixtures();
    let tmp = TempDir::new("paths-ring-armed");
    let app = App::new(fx.join("calc/apps/calc-app-pie-now")).env("DDL_LOG", "info");
    let (_, ddl, report) = run_both(&tmp, &app, crate::apps::calc_config(fx, None));
    assert_invariants(&report);
    let armed = armed_for_the_ring(&ddl.stderr);
    let mut want: Vec<&str> = crate::expect::CALC_APP
        .iter()
        .map(|w| w.function)
        .filter(|f| !["calc_hash", "calc_name"].contains(f))
        .collect();
    want.sort_unstable();
    assert_eq!(armed, want, "stderr:\n{}", ddl.stderr);
    // With the caller's general path forced, none does.
    let tmp = TempDir::new("paths-ring-general");
    let app = app.env("DDL_CALLER_PATH", "general");
    let (_, ddl, _) = run_both(&tmp, &app, crate::apps::calc_config(fx, None));
    assert!(!ddl.stderr.contains("ring path"), "stderr:\n{}", ddl.stderr);
}

/// Calls on handles take the ring path too when every other parameter is
/// a scalar and the result a scalar (codec's `codec_level` and
/// `codec_calls`, given a `codec_t *`); creates, destroys, buffers and
/// streams do not. The shadow judges them in order with the queue's calls
/// (`stateful::a_handle_shared_under_a_mutex_keeps_the_application_order`
/// interleaves the two across threads).
#[test]
fn calls_on_plain_handles_take_the_ring_path() {
    let fx = fixtures();
    let tmp = TempDir::new("paths-ring-handles");
    let app = App::new(fx.join("codec/apps/codec-app-pie-now")).env("DDL_LOG", "info");
    let (_, ddl, report) = run_both(&tmp, &app, crate::stateful::codec_config(fx));
    assert_invariants(&report);
    let armed = armed_for_the_ring(&ddl.stderr);
    assert_eq!(
        armed,
        ["codec_calls", "codec_level"],
        "stderr:\n{}",
        ddl.stderr
    );
    for f in ["codec_calls", "codec_level"] {
        let c = report.get(f);
        assert_eq!((c.mirrored, c.matched), (c.calls, c.calls), "{f}: {c:?}");
    }
}

/// The functions libddl said it armed for the ring path (`DDL_LOG=info`),
/// sorted.
fn armed_for_the_ring(stderr: &str) -> Vec<&str> {
    let mut armed: Vec<&str> = stderr
        .lines()
        .filter_map(|l| {
            l.strip_prefix("ddl: ")?
                .strip_suffix(": calls take the ring path")
        })
        .collect();
    armed.sort_unstable();
    armed
}
