//! The shadow calls the new build two ways: the specialised register call
//! (arbiter/csrc/regcall.c) for signatures whose arguments and return value
//! all live in registers, and libffi for everything else. Every fixture runs
//! both ways (`DDL_SHADOW_CALLS=libffi` forces libffi) and must reach the
//! same verdicts: the same counts per function and the same records
//! (function, verdict, differing paths, both outcomes).

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
    for generic in [false, true] {
        let tmp = TempDir::new(&format!("paths-{name}-{generic}"));
        let app = if generic {
            app.clone().env("DDL_SHADOW_CALLS", "libffi")
        } else {
            app.clone()
        };
        let (_, _, report) = run_both(&tmp, &app, config.clone());
        assert_invariants(&report);
        reports.push(report);
    }
    let (a, b) = (&reports[0], &reports[1]);
    assert_eq!(
        a.counts(),
        b.counts(),
        "{name}: counts differ between the specialised and the libffi calls"
    );
    assert_eq!(
        verdicts(a),
        verdicts(b),
        "{name}: records differ between the specialised and the libffi calls"
    );
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
