//! `ddl report FILE…`: the verdict records of one or many processes.
//!
//! Reads every file strictly ([`read`]), puts them together ([`analysis`]):
//! a table of counters per function (the last summary line of each file,
//! summed) and the recorded mismatches, faults and timeouts grouped by
//! signature, the largest group first, each with one representative record.
//! Prints that as text ([`text`]), or as one JSON object (`--json`), and
//! writes a self-contained HTML page with `--html OUT` ([`html`]).
//!
//! Exit status (so that it can gate a CI job):
//!
//! | status | meaning |
//! | --- | --- |
//! | 0 | no mismatch, fault or timeout (or `--allow-mismatch`) |
//! | 1 | a mismatch, shadow fault or shadow timeout is present |
//! | 2 | usage error (from the argument parser) |
//! | 3 | a report cannot be read, or a line of it is not a report line |
//! | 4 | the `--html` page cannot be written |

use std::path::PathBuf;

use serde_json::{json, Map, Value as Json};

pub mod analysis;
pub mod html;
pub mod read;
pub mod text;

use analysis::Analysis;

/// Status: something diverged.
pub const EXIT_DIVERGENT: u8 = 1;
/// Status: a report cannot be read or is corrupt.
pub const EXIT_BAD_REPORT: u8 = 3;
/// Status: the HTML page cannot be written.
pub const EXIT_OUTPUT: u8 = 4;

/// Arguments of `ddl report`.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 nothing diverged (or --allow-mismatch), 1 a mismatch, \
shadow fault or shadow timeout is present, 2 usage error, 3 a report cannot be read or a line \
of it is not a report line (the message names the file and line), 4 the --html page cannot be \
written."
)]
pub struct Args {
    /// Report files (JSON Lines written by libddl), one per process or shared.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print one JSON object (`functions`, `totals`, `groups`, `files`) instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page to OUT.
    #[arg(long, value_name = "OUT")]
    html: Option<PathBuf>,
    /// Exit 0 even when mismatches, faults or timeouts are present.
    #[arg(long)]
    allow_mismatch: bool,
}

/// Runs `ddl report`; returns the exit status.
pub fn main(args: Args) -> u8 {
    let mut files = Vec::with_capacity(args.files.len());
    let mut seen = std::collections::HashSet::new();
    for path in &args.files {
        // A file named twice (`ddl-report.*.jsonl ddl-report.1.jsonl`)
        // would count twice.
        if let Ok(c) = path.canonicalize() {
            if !seen.insert(c) {
                eprintln!(
                    "ddl report: warning: {} is given more than once; read once",
                    path.display()
                );
                continue;
            }
        }
        match read::read(path) {
            Ok(f) => files.push(f),
            Err(e) => {
                eprintln!("ddl report: {e}");
                return EXIT_BAD_REPORT;
            }
        }
    }
    let an = Analysis::new(files);
    for f in &an.files {
        for w in &f.warnings {
            eprintln!("ddl report: warning: {w}");
        }
    }
    if let Some(out) = &args.html {
        if let Err(e) = std::fs::write(out, html::page(&an)) {
            eprintln!("ddl report: cannot write {}: {e}", out.display());
            return EXIT_OUTPUT;
        }
    }
    if args.json {
        stdout(&format!("{}\n", to_json(&an)));
    } else {
        stdout(&text::render(&an));
        if let Some(out) = &args.html {
            stdout(&format!("\nHTML page: {}\n", out.display()));
        }
    }
    if an.divergent() && !args.allow_mismatch {
        EXIT_DIVERGENT
    } else {
        0
    }
}

/// Writes to standard output; a reader that went away (`ddl report … |
/// head`) is not an error worth a panic, so write errors are dropped.
pub fn stdout(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes()).and_then(|()| o.flush());
}

/// The `--json` form: `{"files": [...], "events": [...], "functions": {fn:
/// counters}, "totals": counters, "groups": [...], "divergent": bool}`;
/// counters have the keys of the summary record.
pub fn to_json(an: &Analysis) -> Json {
    let counters = |c: &arbiter::report::Counters| -> Json {
        serde_json::from_str(&c.to_json()).unwrap_or(Json::Null)
    };
    let functions: Map<String, Json> = an
        .functions
        .iter()
        .map(|(k, c)| (k.clone(), counters(c)))
        .collect();
    let groups: Vec<Json> = an
        .groups
        .iter()
        .map(|g| {
            json!({
                "function": g.key.function,
                "verdict": g.key.verdict,
                "paths": g.key.paths,
                "fault": g.key.fault,
                "count": g.count,
                "file": g.file.display().to_string(),
                "line": g.line,
                "record": Json::Object(g.record.clone()),
            })
        })
        .collect();
    let files: Vec<Json> = an
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path.display().to_string(),
                "records": f.records,
                "summary": f.has_summary,
                "pids": f.pids,
            })
        })
        .collect();
    let events: Vec<Json> = an
        .events
        .iter()
        .map(|(path, line, e)| {
            json!({"file": path.display().to_string(), "line": line, "event": Json::Object(e.clone())})
        })
        .collect();
    json!({
        "files": files,
        "events": events,
        "functions": functions,
        "totals": counters(&an.totals()),
        "groups": groups,
        "divergent": an.divergent(),
    })
}
