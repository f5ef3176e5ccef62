//! Reading report files strictly: every complete line must be a verdict
//! record, an event or a summary, or the reader stops at it with an error
//! naming the file and the line.
//!
//! `arbiter::report::read_report` is the lenient reader libddl's own tests
//! use (it skips lines that are not JSON). A developer who hands `ddl
//! report` a file wants to know when it is not a report, or is damaged, so
//! this reader refuses those. It tolerates exactly what the writer can
//! leave behind when a process dies mid-write: a last line without its
//! newline (libddl writes each line with one `write(2)`; a cut can only
//! lose the end), which is skipped with a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use arbiter::report::{Counters, Verdict};
use serde_json::{Map, Value as Json};

/// One report file, read.
#[derive(Debug)]
pub struct ReportFile {
    /// The path as given.
    pub path: PathBuf,
    /// The verdict records: (line number, counted from 1, the record).
    pub records: Vec<(usize, Map<String, Json>)>,
    /// The counters of the last summary line, by function; `None` when the
    /// file has no summary line (the process is still running, or was
    /// killed before its first summary).
    pub summary: Option<BTreeMap<String, Counters>>,
    /// The event lines (`mirroring_stopped`, `shadow_thread_fault`, …):
    /// (line number, the event).
    pub events: Vec<(usize, Map<String, Json>)>,
    /// What was tolerated (a cut last line), for the user.
    pub warnings: Vec<String>,
}

/// A report that cannot be used.
#[derive(Debug)]
pub enum ReadError {
    /// The file cannot be read at all.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a record, an event or a summary.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { path, source } => {
                write!(f, "{}: cannot read the report: {source}", path.display())
            }
            ReadError::Corrupt {
                path,
                line,
                message,
            } => write!(
                f,
                "{}:{line}: not a DDL report line: {message}",
                path.display()
            ),
        }
    }
}

/// Reads a whole report file.
pub fn read(path: &Path) -> Result<ReportFile, ReadError> {
    read_from(path, 0)
}

/// Reads a report file, skipping its first `start` bytes (what was already
/// in the file before a run appended to it; `start` is a line boundary).
/// Line numbers count from the start of the file all the same.
pub fn read_from(path: &Path, start: u64) -> Result<ReportFile, ReadError> {
    let data = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let start = (start as usize).min(data.len());
    let first_line = 1 + data[..start].iter().filter(|&&b| b == b'\n').count();
    let mut file = parse(path, &data[start..], first_line)?;
    file.path = path.to_path_buf();
    Ok(file)
}

/// Parses the bytes of a report whose first line is line `first_line`.
pub fn parse(path: &Path, data: &[u8], first_line: usize) -> Result<ReportFile, ReadError> {
    let corrupt = |line: usize, message: String| ReadError::Corrupt {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut file = ReportFile {
        path: path.to_path_buf(),
        records: Vec::new(),
        summary: None,
        events: Vec::new(),
        warnings: Vec::new(),
    };
    let mut rest = data;
    let mut line_no = first_line;
    while !rest.is_empty() {
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let l = &rest[..i];
                rest = &rest[i + 1..];
                (l, true)
            }
            None => {
                let l = rest;
                rest = &[];
                (l, false)
            }
        };
        let this = line_no;
        line_no += 1;
        if !complete {
            // What a write cut short leaves: the beginning of a JSON object.
            if line.first() == Some(&b'{') {
                file.warnings.push(format!(
                    "{}:{this}: the last line has no newline (a write cut short); ignored",
                    path.display()
                ));
                break;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Json = serde_json::from_slice(line).map_err(|e| {
            corrupt(
                this,
                format!("invalid JSON (column {}): {e}", e.column().max(1)),
            )
        })?;
        let Json::Object(mut m) = value else {
            return Err(corrupt(this, "a JSON value that is not an object".into()));
        };
        if let Some(s) = m.remove("summary") {
            file.summary = Some(summary(&s).map_err(|msg| corrupt(this, msg))?);
        } else if m.contains_key("event") {
            file.events.push((this, m));
        } else {
            check_record(&m).map_err(|msg| corrupt(this, msg))?;
            file.records.push((this, m));
        }
    }
    Ok(file)
}

/// The counters of a summary line's object, checked: every function maps to
/// an object of non-negative integer counters.
fn summary(s: &Json) -> Result<BTreeMap<String, Counters>, String> {
    let Json::Object(per_fn) = s else {
        return Err("\"summary\" is not an object".into());
    };
    let mut out = BTreeMap::new();
    for (name, c) in per_fn {
        let Json::Object(cm) = c else {
            return Err(format!("summary of {name:?} is not an object"));
        };
        for (k, v) in cm {
            if v.as_u64().is_none() {
                return Err(format!(
                    "summary of {name:?}: {k:?} is not a non-negative integer"
                ));
            }
        }
        out.insert(name.clone(), Counters::from_json(c));
    }
    Ok(out)
}

/// Checks the keys every verdict record has: `function` (a string) and a
/// known `verdict`.
fn check_record(m: &Map<String, Json>) -> Result<(), String> {
    match m.get("function") {
        Some(Json::String(_)) => {}
        Some(_) => return Err("\"function\" is not a string".into()),
        None => return Err("no \"function\", \"summary\" or \"event\" key".into()),
    }
    match m.get("verdict") {
        Some(Json::String(v)) if Verdict::parse(v).is_some() => Ok(()),
        Some(v) => Err(format!("unknown verdict {v}")),
        None => Err("a record without \"verdict\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<ReportFile, ReadError> {
        parse(Path::new("r.jsonl"), text.as_bytes(), 1)
    }

    const REC: &str = r#"{"seq":1,"function":"f","verdict":"mismatch","diffs":[]}"#;
    const SUM: &str = r#"{"summary":{"f":{"calls":2,"mismatch":1,"match":1}}}"#;

    #[test]
    fn records_summary_and_events() {
        let text = format!("{REC}\n{{\"event\":\"x\"}}\n\n{SUM}\n");
        let f = p(&text).unwrap();
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.records[0].0, 1);
        assert_eq!(f.events.len(), 1);
        assert_eq!(f.events[0].0, 2);
        let s = f.summary.unwrap();
        assert_eq!(s["f"].calls, 2);
        assert_eq!(s["f"].mismatch, 1);
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn the_last_summary_counts() {
        let text = format!("{SUM}\n{}\n", SUM.replace("\"calls\":2", "\"calls\":5"));
        assert_eq!(p(&text).unwrap().summary.unwrap()["f"].calls, 5);
    }

    #[test]
    fn a_cut_last_line_is_a_warning() {
        let text = format!("{REC}\n{{\"seq\":2,\"func");
        let f = p(&text).unwrap();
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].starts_with("r.jsonl:2:"), "{:?}", f.warnings);
    }

    #[test]
    fn corrupt_lines_name_their_line() {
        for (text, line, what) in [
            (format!("{REC}\nnot json\n"), 2, "invalid JSON"),
            (format!("{REC}\n{REC}\n[1]\n"), 3, "not an object"),
            ("{\"seq\":1}\n".to_string(), 1, "no \"function\""),
            (
                REC.replace("mismatch", "maybe") + "\n",
                1,
                "unknown verdict",
            ),
            ("{\"summary\":{\"f\":{\"calls\":-1}}}\n".into(), 1, "calls"),
            ("\u{0}\u{1}binary".into(), 1, "invalid JSON"),
        ] {
            match p(&text) {
                Err(ReadError::Corrupt {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text:?}: {message}");
                    assert!(message.contains(what), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn reading_from_an_offset_keeps_line_numbers() {
        let dir = std::env::temp_dir().join(format!("ddl-cli-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.jsonl");
        let before = format!("{REC}\n{SUM}\n");
        std::fs::write(&path, format!("{before}{REC}\nbad\n")).unwrap();
        match read_from(&path, before.len() as u64) {
            Err(ReadError::Corrupt { line, .. }) => assert_eq!(line, 4),
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, format!("{before}{REC}\n")).unwrap();
        let f = read_from(&path, before.len() as u64).unwrap();
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.records[0].0, 3);
        assert!(f.summary.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
