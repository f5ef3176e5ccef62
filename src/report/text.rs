//! The plain-text forms: the per-function table (also what `ddl run` and
//! `ddl demo` print) and the groups with their representative records.

use std::collections::BTreeMap;
use std::fmt::Write;

use arbiter::report::Counters;
use serde_json::{Map, Value as Json};

use super::analysis::{Analysis, Group};

/// A column of the table: its header and how to get its value.
type Column = (&'static str, fn(&Counters) -> u64);

/// The table's columns. `unmirrored` and `skipped` are only shown when some
/// function has one.
fn columns(show_rare: bool) -> Vec<Column> {
    let mut c: Vec<Column> = vec![
        ("calls", |c| c.calls),
        ("match", |c| c.matched),
        ("mismatch", |c| c.mismatch),
        ("faults", |c| c.shadow_fault),
        ("timeouts", |c| c.shadow_timeout),
        ("dropped", |c| c.dropped),
    ];
    if show_rare {
        c.push(("unmirrored", |c| c.unmirrored));
        c.push(("skipped", |c| c.skipped));
    }
    c
}

/// The per-function table, one row per function (by name) and a total row;
/// every line starts with `indent`. Columns: calls, match, mismatch, faults
/// (`shadow_fault`), timeouts (`shadow_timeout`), dropped, and unmirrored
/// and skipped when any is non-zero.
pub fn table(functions: &BTreeMap<String, Counters>, indent: &str) -> String {
    let mut total = Counters::default();
    for c in functions.values() {
        total.add(c);
    }
    let cols = columns(total.unmirrored + total.skipped > 0);
    let active: Vec<(&String, &Counters)> = functions.iter().filter(|(_, c)| c.calls > 0).collect();
    let name_w = functions
        .iter()
        .filter(|(_, c)| c.calls > 0)
        .map(|(k, _)| k.chars().count())
        .chain(["function".len(), "total".len()])
        .max()
        .unwrap_or(8);
    let widths: Vec<usize> = cols
        .iter()
        .map(|(h, get)| {
            active
                .iter()
                .map(|(_, c)| *c)
                .chain([&total])
                .map(|c| get(c).to_string().len())
                .chain([h.len()])
                .max()
                .unwrap_or(1)
        })
        .collect();
    let mut out = String::new();
    let mut row = |name: &str, cells: Vec<String>| {
        let mut line = format!("{indent}{name:<name_w$}");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(line, "  {cell:>w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row(
        "function",
        cols.iter().map(|(h, _)| h.to_string()).collect(),
    );
    for (name, c) in &active {
        row(name, cols.iter().map(|(_, g)| g(c).to_string()).collect());
    }
    row(
        "total",
        cols.iter().map(|(_, g)| g(&total).to_string()).collect(),
    );
    let idle = functions.len() - active.len();
    if idle > 0 {
        let _ = writeln!(
            out,
            "{indent}({idle} more function{} of the boundary without calls)",
            if idle == 1 { "" } else { "s" }
        );
    }
    out
}

/// A JSON value on one line.
fn compact(v: &Json) -> String {
    v.to_string()
}

/// The lines that show one group's representative record.
pub fn group(n: usize, g: &Group) -> String {
    let r = &g.record;
    let mut out = format!(
        "{n:>3}. {}  {}  ×{}\n",
        g.key.function,
        g.key.describe(),
        g.count
    );
    let mut at = format!("{}:{}", g.file.display(), g.line);
    for k in ["seq", "pid", "caller"] {
        if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            let _ = write!(at, ", {k} {v}");
        }
    }
    let _ = writeln!(out, "     first record: {at}");
    let field = |out: &mut String, k: &str, v: &Json| {
        let _ = writeln!(out, "     {k:<8} {}", compact(v));
    };
    // Keys beyond the fixed ones: fault, at, exception, status, ...
    for (k, v) in r {
        if !FIXED.contains(&k.as_str()) {
            field(&mut out, k, v);
        }
    }
    for k in ["args", "primary", "shadow"] {
        if let Some(v) = r.get(k) {
            field(&mut out, k, v);
        }
    }
    if let Some(ds) = r.get("diffs").and_then(Json::as_array) {
        for d in ds {
            let path = d.get("path").and_then(Json::as_str).unwrap_or("?");
            let p = d.get("primary").map(compact).unwrap_or_default();
            let s = d.get("shadow").map(compact).unwrap_or_default();
            let _ = writeln!(out, "     diff     {path}: primary {p}, shadow {s}");
        }
    }
    out
}

/// The keys every record has, shown in their own way.
pub const FIXED: [&str; 11] = [
    "seq", "time", "pid", "tid", "function", "verdict", "args", "primary", "shadow", "diffs",
    "caller",
];

/// The whole text report: files, table, groups.
pub fn render(an: &Analysis) -> String {
    let mut out = String::new();
    for f in &an.files {
        let _ = write!(out, "{}: {} records", f.path.display(), f.records);
        if !f.has_summary {
            out.push_str(", no summary line (process still running, or killed before its first summary: counters from the records only)");
        }
        out.push('\n');
    }
    for (path, line, e) in &an.events {
        let _ = writeln!(out, "event {}:{line}: {}", path.display(), event(e));
    }
    out.push('\n');
    out.push_str(&table(&an.functions, ""));
    out.push('\n');
    if an.groups.is_empty() {
        out.push_str("no mismatch, fault or timeout recorded\n");
    } else {
        let _ = writeln!(
            out,
            "{} group{} of recorded divergences ({} records), most frequent first:",
            an.groups.len(),
            if an.groups.len() == 1 { "" } else { "s" },
            an.recorded()
        );
        for (i, g) in an.groups.iter().enumerate() {
            out.push('\n');
            out.push_str(&group(i + 1, g));
        }
    }
    out
}

/// An event line in a few words: `mirroring_stopped (pid 42, after seq
/// 17): <reason>`.
pub fn event(e: &Map<String, Json>) -> String {
    let name = e.get("event").and_then(Json::as_str).unwrap_or("event");
    let mut s = name.to_string();
    let mut at = Vec::new();
    if let Some(p) = e.get("pid") {
        at.push(format!("pid {p}"));
    }
    if let Some(q) = e.get("seq") {
        at.push(format!("after seq {q}"));
    }
    if !at.is_empty() {
        let _ = write!(s, " ({})", at.join(", "));
    }
    if let Some(r) = e.get("reason") {
        let _ = write!(
            s,
            ": {}",
            r.as_str().map_or_else(|| r.to_string(), str::to_string)
        );
    }
    s
}

/// A record as the pretty JSON `ddl demo` shows, keys in the order libddl
/// writes them (seq, time, pid, tid, function, verdict, the extra keys,
/// args, primary, shadow, diffs, caller).
pub fn pretty(r: &Map<String, Json>) -> String {
    let order = FIXED[..6]
        .iter()
        .map(|k| k.to_string())
        .chain(r.keys().filter(|k| !FIXED.contains(&k.as_str())).cloned())
        .chain(FIXED[6..].iter().map(|k| k.to_string()));
    let mut out = String::from("{\n");
    let mut first = true;
    for k in order {
        let Some(v) = r.get(&k) else { continue };
        if !first {
            out.push_str(",\n");
        }
        first = false;
        let value = serde_json::to_string_pretty(v).unwrap_or_default();
        let _ = write!(out, "  {}: {}", Json::from(k), value.replace('\n', "\n  "));
    }
    out.push_str("\n}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_totals() {
        let mut m = BTreeMap::new();
        let mut a = Counters::default();
        for _ in 0..12 {
            a.count(arbiter::report::Verdict::Match);
        }
        a.count(arbiter::report::Verdict::Mismatch);
        m.insert("calc_add".to_string(), a);
        m.insert("f".to_string(), Counters::default());
        let t = table(&m, "  ");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            vec![
                "  function  calls  match  mismatch  faults  timeouts  dropped",
                "  calc_add     13     12         1       0         0        0",
                "  total        13     12         1       0         0        0",
                "  (1 more function of the boundary without calls)",
            ]
        );
    }

    #[test]
    fn pretty_keeps_the_writers_key_order() {
        let r: Json = serde_json::from_str(
            r#"{"seq":1,"function":"f","verdict":"shadow_fault","fault":"SIGSEGV","args":{"a":1},"diffs":[],"caller":null}"#,
        )
        .unwrap();
        let p = pretty(r.as_object().unwrap());
        let keys: Vec<&str> = p
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(
            keys,
            ["seq", "function", "verdict", "fault", "args", "diffs", "caller"]
        );
        assert!(p.contains("\"args\": {\n    \"a\": 1\n  }"), "{p}");
    }

    #[test]
    fn rare_columns_appear_when_used() {
        let mut m = BTreeMap::new();
        let mut a = Counters::default();
        a.count(arbiter::report::Verdict::Skipped);
        m.insert("f".to_string(), a);
        assert!(table(&m, "")
            .lines()
            .next()
            .unwrap()
            .ends_with("unmirrored  skipped"));
    }
}
