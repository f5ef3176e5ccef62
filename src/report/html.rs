//! `ddl report --html OUT`: one self-contained page (inline CSS, no script,
//! nothing fetched) a developer opens in a browser.
//!
//! The page has the per-function table (`table#functions`, one
//! `tr.fn[data-function]` per function, a cell per counter named by its
//! class) and one `section.group` per signature, largest first, each with
//! its count, the representative record's arguments (`table.args`) and its
//! two outcomes side by side (`table.outcomes`: a row per output path, the
//! primary's cell and the shadow's). A cell whose value differs from the
//! other side has class `diff`; inside it, the bytes of a buffer (hex, from
//! the record's `head`) and the characters of a string that differ are
//! `span.d`. Faults and timeouts are groups too, with their `fault`, `at`,
//! `exception` or `status` in `table.fault`.

use std::fmt::Write;

use arbiter::report::Counters;
use serde_json::{Map, Value as Json};

use super::analysis::{Analysis, Group};
use super::text::FIXED;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 0 0 .5em 0; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: left; vertical-align: top; }
#functions td { text-align: right; } #functions td.name { text-align: left; }
tr.divergent td.name { font-weight: bold; }
td.nonzero.mismatch, td.nonzero.shadow_fault, td.nonzero.shadow_timeout { background: #fdd; }
code, .value { font-family: ui-monospace, monospace; font-size: .9em; white-space: pre-wrap; word-break: break-all; }
section.group { border: 1px solid #bbb; border-radius: 4px; padding: 1em; margin: 1em 0; }
.count { color: #a00; font-weight: bold; }
.meta { color: #777; font-size: .8em; display: block; }
td.diff { background: #fff4f4; }
span.d { background: #f99; color: #000; font-weight: bold; }
.where { color: #555; font-size: .9em; }
";

/// HTML-escapes text (also for attribute values).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// The whole page.
pub fn page(an: &Analysis) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<title>DDL report</title>\n<style>");
    h.push_str(STYLE);
    h.push_str("</style>\n</head>\n<body>\n<h1>DDL report</h1>\n<ul class=\"files\">\n");
    for f in &an.files {
        let _ = write!(
            h,
            "<li><code>{}</code>: {} records",
            esc(&f.path.display().to_string()),
            f.records
        );
        if !f.has_summary {
            h.push_str(", no summary line (counters from its records only)");
        }
        h.push_str("</li>\n");
    }
    h.push_str("</ul>\n");
    if !an.events.is_empty() {
        h.push_str("<h2>Events</h2>\n<ul class=\"events\">\n");
        for (path, line, e) in &an.events {
            let _ = writeln!(
                h,
                "<li><code>{}:{line}</code>: {}</li>",
                esc(&path.display().to_string()),
                esc(&super::text::event(e))
            );
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<h2>Functions</h2>\n");
    functions_table(&mut h, an);
    let _ = writeln!(
        h,
        "<h2>Divergences</h2>\n<p>{} group(s), {} record(s), most frequent first.</p>",
        an.groups.len(),
        an.recorded()
    );
    for (i, g) in an.groups.iter().enumerate() {
        group(&mut h, i + 1, g);
    }
    h.push_str("</body>\n</html>\n");
    h
}

const COLUMNS: [(&str, &str); 9] = [
    ("calls", "calls"),
    ("mirrored", "mirrored"),
    ("match", "match"),
    ("mismatch", "mismatch"),
    ("shadow_fault", "faults"),
    ("shadow_timeout", "timeouts"),
    ("dropped", "dropped"),
    ("unmirrored", "unmirrored"),
    ("skipped", "skipped"),
];

fn values(c: &Counters) -> [u64; 9] {
    [
        c.calls,
        c.mirrored,
        c.matched,
        c.mismatch,
        c.shadow_fault,
        c.shadow_timeout,
        c.dropped,
        c.unmirrored,
        c.skipped,
    ]
}

fn functions_table(h: &mut String, an: &Analysis) {
    h.push_str("<table id=\"functions\">\n<thead><tr><th>function</th>");
    for (_, head) in COLUMNS {
        let _ = write!(h, "<th>{head}</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    let row = |h: &mut String, tr: &str, name: &str, c: &Counters| {
        h.push_str(tr);
        let _ = write!(h, "<td class=\"name\">{}</td>", esc(name));
        for ((key, _), v) in COLUMNS.iter().zip(values(c)) {
            let nz = if v > 0 { " nonzero" } else { "" };
            let _ = write!(h, "<td class=\"{key}{nz}\">{v}</td>");
        }
        h.push_str("</tr>\n");
    };
    for (name, c) in &an.functions {
        let div = if c.mismatch + c.shadow_fault + c.shadow_timeout > 0 {
            " divergent"
        } else {
            ""
        };
        let tr = format!("<tr class=\"fn{div}\" data-function=\"{}\">", esc(name));
        row(h, &tr, name, c);
    }
    h.push_str("</tbody>\n<tfoot>\n");
    row(h, "<tr class=\"total\">", "total", &an.totals());
    h.push_str("</tfoot>\n</table>\n");
}

fn group(h: &mut String, n: usize, g: &Group) {
    let r = &g.record;
    let _ = writeln!(
        h,
        "<section class=\"group\" id=\"group-{n}\" data-function=\"{}\" data-verdict=\"{}\" data-count=\"{}\">",
        esc(&g.key.function),
        g.key.verdict,
        g.count
    );
    let _ = writeln!(
        h,
        "<h3>{n}. <code class=\"function\">{}</code> <span class=\"signature\">{}</span> <span class=\"count\">×{}</span></h3>",
        esc(&g.key.function),
        esc(&g.key.describe()),
        g.count
    );
    let mut at = format!("first record: {}:{}", g.file.display(), g.line);
    for k in ["seq", "pid", "tid", "time", "caller"] {
        if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            let _ = write!(at, ", {k} {v}");
        }
    }
    let _ = writeln!(h, "<p class=\"where\">{}</p>", esc(&at));

    let extra: Vec<(&String, &Json)> = r
        .iter()
        .filter(|(k, _)| !FIXED.contains(&k.as_str()))
        .collect();
    if !extra.is_empty() {
        h.push_str("<table class=\"fault\">\n");
        for (k, v) in extra {
            let _ = writeln!(
                h,
                "<tr><th>{}</th><td class=\"value\">{}</td></tr>",
                esc(k),
                esc(&show(v))
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h4>Arguments</h4>\n<table class=\"args\">\n");
    let empty = Map::new();
    let args = r.get("args").and_then(Json::as_object).unwrap_or(&empty);
    if args.is_empty() {
        h.push_str("<tr><td>(none)</td></tr>\n");
    }
    for (k, v) in args {
        let _ = writeln!(
            h,
            "<tr data-arg=\"{}\"><th>{}</th><td class=\"value\">{}</td></tr>",
            esc(k),
            esc(k),
            plain_value(v)
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h4>Outcomes</h4>\n<table class=\"outcomes\">\n<thead><tr><th>output</th><th>primary</th><th>shadow</th></tr></thead>\n<tbody>\n");
    let p = leaves(r.get("primary"));
    let s = leaves(r.get("shadow"));
    let mut paths: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    for (k, _) in &s {
        if !paths.contains(&k.as_str()) {
            paths.push(k);
        }
    }
    if paths.is_empty() {
        h.push_str("<tr><td colspan=\"3\">(no outcome recorded)</td></tr>\n");
    }
    for path in paths {
        let pv = p.iter().find(|(k, _)| k == path).map(|(_, v)| *v);
        let sv = s.iter().find(|(k, _)| k == path).map(|(_, v)| *v);
        let differs = pv != sv;
        let (pc, sc) = side_by_side(pv, sv);
        let d = if differs { " diff" } else { "" };
        let _ = writeln!(
            h,
            "<tr data-path=\"{}\"{}><th>{}</th><td class=\"primary value{d}\">{pc}</td><td class=\"shadow value{d}\">{sc}</td></tr>",
            esc(path),
            if differs { " class=\"differs\"" } else { "" },
            esc(path)
        );
    }
    h.push_str("</tbody>\n</table>\n");

    if let Some(ds) = r
        .get("diffs")
        .and_then(Json::as_array)
        .filter(|d| !d.is_empty())
    {
        h.push_str("<h4>Differences</h4>\n<table class=\"diffs\">\n<thead><tr><th>path</th><th>primary</th><th>shadow</th></tr></thead>\n");
        for d in ds {
            let path = d.get("path").and_then(Json::as_str).unwrap_or("?");
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"value\">{}</td><td class=\"value\">{}</td></tr>",
                esc(path),
                esc(&d.get("primary").map(show).unwrap_or_default()),
                esc(&d.get("shadow").map(show).unwrap_or_default())
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

/// A JSON value as shown: strings without quotes, the rest compact.
fn show(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A buffer as records write it: `{"len", "sha256", "head"}`.
fn is_buffer(m: &Map<String, Json>) -> bool {
    m.contains_key("sha256") && m.contains_key("len")
}

/// A string that is not UTF-8: `{"str", "hex"}`.
fn is_bytes(m: &Map<String, Json>) -> bool {
    m.len() == 2 && m.contains_key("str") && m.contains_key("hex")
}

/// The outcome's leaves with their paths (`ret`, `p.y`, `ret.c`,
/// `outgoing[0]`), buffers and non-UTF-8 strings as leaves.
fn leaves(v: Option<&Json>) -> Vec<(String, &Json)> {
    fn walk<'a>(path: String, v: &'a Json, out: &mut Vec<(String, &'a Json)>) {
        match v {
            Json::Object(m) if !m.is_empty() && !is_buffer(m) && !is_bytes(m) => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(p, x, out);
                }
            }
            Json::Array(a) if !a.is_empty() && !path.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    walk(format!("{path}[{i}]"), x, out);
                }
            }
            _ => out.push((path, v)),
        }
    }
    let mut out = Vec::new();
    if let Some(Json::Object(m)) = v {
        for (k, x) in m {
            walk(k.clone(), x, &mut out);
        }
    }
    out
}

/// Hex pairs of a hex string.
fn hex_bytes(s: &str) -> Vec<&str> {
    (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2))
        .collect()
}

/// A value without comparison (arguments).
fn plain_value(v: &Json) -> String {
    match v {
        Json::Object(m) if is_buffer(m) => buffer_cell(m, None),
        Json::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

/// A buffer's cell: its length and digest, then the hex of its head, each
/// byte a span, sixteen a line; `other`'s head given, the bytes that differ
/// from it (or that it lacks) are `span.d`.
fn buffer_cell(m: &Map<String, Json>, other: Option<&Map<String, Json>>) -> String {
    let len = m.get("len").map(show).unwrap_or_default();
    let sha = m.get("sha256").and_then(Json::as_str).unwrap_or("");
    let head = m.get("head").and_then(Json::as_str).unwrap_or("");
    let theirs: Vec<&str> = other
        .and_then(|o| o.get("head").and_then(Json::as_str))
        .map(hex_bytes)
        .unwrap_or_default();
    let mut s = format!(
        "<span class=\"meta\">len {} · sha256 {}…</span><code class=\"hex\">",
        esc(&len),
        esc(sha.get(..16).unwrap_or(sha))
    );
    for (i, b) in hex_bytes(head).into_iter().enumerate() {
        // Sixteen bytes a line (the cell keeps white space).
        if i > 0 {
            s.push(if i % 16 == 0 { '\n' } else { ' ' });
        }
        let differs = other.is_some() && theirs.get(i) != Some(&b);
        let _ = write!(
            s,
            "<span class=\"{}\" data-i=\"{i}\">{}</span>",
            if differs { "b d" } else { "b" },
            esc(b)
        );
    }
    s.push_str("</code>");
    s
}

/// A string's cell with the characters that differ from `other` (by
/// position) as `span.d`.
fn string_cell(mine: &str, other: &str) -> String {
    let theirs: Vec<char> = other.chars().collect();
    let mut s = String::new();
    let mut run = String::new();
    let mut run_differs = false;
    let flush = |s: &mut String, run: &mut String, differs: bool| {
        if run.is_empty() {
            return;
        }
        if differs {
            let _ = write!(s, "<span class=\"d\">{}</span>", esc(run));
        } else {
            s.push_str(&esc(run));
        }
        run.clear();
    };
    for (i, c) in mine.chars().enumerate() {
        let differs = theirs.get(i) != Some(&c);
        if differs != run_differs {
            flush(&mut s, &mut run, run_differs);
            run_differs = differs;
        }
        run.push(c);
    }
    flush(&mut s, &mut run, run_differs);
    s
}

/// The two cells of one output path.
fn side_by_side(p: Option<&Json>, s: Option<&Json>) -> (String, String) {
    let missing = || "<span class=\"d\">(absent)</span>".to_string();
    match (p, s) {
        (Some(Json::Object(a)), Some(Json::Object(b))) if is_buffer(a) && is_buffer(b) => {
            (buffer_cell(a, Some(b)), buffer_cell(b, Some(a)))
        }
        (Some(Json::String(a)), Some(Json::String(b))) => (string_cell(a, b), string_cell(b, a)),
        (Some(a), Some(b)) if a == b => (esc(&show(a)), esc(&show(b))),
        (Some(a), Some(b)) => (
            format!("<span class=\"d\">{}</span>", esc(&show(a))),
            format!("<span class=\"d\">{}</span>", esc(&show(b))),
        ),
        (Some(a), None) => (
            format!("<span class=\"d\">{}</span>", esc(&show(a))),
            missing(),
        ),
        (None, Some(b)) => (
            missing(),
            format!("<span class=\"d\">{}</span>", esc(&show(b))),
        ),
        (None, None) => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn buffers_highlight_the_bytes_that_differ() {
        let a = json!({"len": 3, "sha256": "aa", "head": "0102ff"});
        let b = json!({"len": 3, "sha256": "bb", "head": "0103ff"});
        let (pa, pb) = side_by_side(Some(&a), Some(&b));
        assert!(
            pa.contains("<span class=\"b d\" data-i=\"1\">02</span>"),
            "{pa}"
        );
        assert!(
            pb.contains("<span class=\"b d\" data-i=\"1\">03</span>"),
            "{pb}"
        );
        assert!(
            pa.contains("<span class=\"b\" data-i=\"0\">01</span>"),
            "{pa}"
        );
        assert_eq!(pa.matches("b d").count(), 1);
    }

    #[test]
    fn strings_highlight_the_characters_that_differ() {
        let (a, b) = side_by_side(Some(&json!("FOO-BAR")), Some(&json!("FOO_BAR")));
        assert_eq!(a, "FOO<span class=\"d\">-</span>BAR");
        assert_eq!(b, "FOO<span class=\"d\">_</span>BAR");
    }

    #[test]
    fn leaves_flatten_structs_and_keep_buffers_whole() {
        let v = json!({"p": {"x": 1.0, "y": 2.0}, "dst": {"len": 1, "sha256": "x", "head": "00"}, "ret": 3});
        let paths: Vec<String> = leaves(Some(&v)).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec!["dst", "p.x", "p.y", "ret"]);
    }
}
