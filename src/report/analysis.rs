//! What a set of reports says: per-function counters (the last summary of
//! each file, summed) and the recorded divergences grouped by signature.
//!
//! A group's signature is the function, the verdict, the set of differing
//! paths with buffer indexes dropped (`dst[3]` and `dst[20]` are both
//! `dst[]`: "the same output differs"), and for a `shadow_fault` the kind of
//! fault (`SIGSEGV`, `exit`, `exception`). That is the key libddl's own
//! `records_per_signature` cap uses, plus the fault kind, so a group's count
//! is the records kept of it: past the cap (100 by default) a process only
//! counts, and the per-function counters stay exact.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use arbiter::report::{normalise_path, Counters, Verdict};
use serde_json::{Map, Value as Json};

use super::read::ReportFile;

/// What identifies a group of records.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The function (C++: its declaration as in the config).
    pub function: String,
    /// `mismatch`, `shadow_fault` or `shadow_timeout`.
    pub verdict: &'static str,
    /// The differing paths, buffer indexes dropped, sorted, without repeats.
    pub paths: Vec<String>,
    /// For a fault, its kind (the record's `fault`).
    pub fault: Option<String>,
}

impl GroupKey {
    /// A short description: `mismatch at dst[], ret`, `shadow_fault SIGSEGV`,
    /// `shadow_timeout`.
    pub fn describe(&self) -> String {
        let mut s = self.verdict.to_string();
        if let Some(f) = &self.fault {
            s.push(' ');
            s.push_str(f);
        }
        if !self.paths.is_empty() {
            s.push_str(" at ");
            s.push_str(&self.paths.join(", "));
        }
        s
    }
}

/// Records of one signature.
#[derive(Debug)]
pub struct Group {
    /// The signature.
    pub key: GroupKey,
    /// How many records have it.
    pub count: u64,
    /// The first one (in the order of the files, then of their lines).
    pub record: Map<String, Json>,
    /// Where it is: the file.
    pub file: PathBuf,
    /// And the line, counted from 1.
    pub line: usize,
}

/// Facts about one file, for the reader of the analysis.
#[derive(Debug)]
pub struct FileInfo {
    /// The path as given.
    pub path: PathBuf,
    /// Whether it had a summary line (without one, its counters are what
    /// its records show: a lower bound).
    pub has_summary: bool,
    /// Its verdict records.
    pub records: usize,
    /// The processes its records name.
    pub pids: BTreeSet<u64>,
    /// What the reader tolerated.
    pub warnings: Vec<String>,
}

/// The reports, taken together.
#[derive(Debug)]
pub struct Analysis {
    /// The files, in the order given.
    pub files: Vec<FileInfo>,
    /// Counters per function: the last summary of every file, summed.
    pub functions: BTreeMap<String, Counters>,
    /// The groups, the largest first (then by function and signature).
    pub groups: Vec<Group>,
    /// The event lines of every file (mirroring stopped, a fault in a
    /// thread of the new build): file, line, event.
    pub events: Vec<(PathBuf, usize, Map<String, Json>)>,
}

impl Analysis {
    /// Puts the files together.
    pub fn new(files: Vec<ReportFile>) -> Analysis {
        let mut functions: BTreeMap<String, Counters> = BTreeMap::new();
        let mut index: HashMap<GroupKey, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut infos = Vec::new();
        let mut events = Vec::new();
        for f in files {
            for (line, e) in &f.events {
                events.push((f.path.clone(), *line, e.clone()));
            }
            let mut pids = BTreeSet::new();
            for (line, r) in &f.records {
                if let Some(p) = r.get("pid").and_then(Json::as_u64) {
                    pids.insert(p);
                }
                let key = key_of(r);
                if f.summary.is_none() {
                    // No summary: count what the records show.
                    let v = Verdict::parse(key.verdict).unwrap_or(Verdict::Mismatch);
                    functions.entry(key.function.clone()).or_default().count(v);
                }
                match index.get(&key) {
                    Some(&i) => groups[i].count += 1,
                    None => {
                        index.insert(key.clone(), groups.len());
                        groups.push(Group {
                            key,
                            count: 1,
                            record: r.clone(),
                            file: f.path.clone(),
                            line: *line,
                        });
                    }
                }
            }
            if let Some(s) = &f.summary {
                for (name, c) in s {
                    functions.entry(name.clone()).or_default().add(c);
                }
            }
            infos.push(FileInfo {
                path: f.path,
                has_summary: f.summary.is_some(),
                records: f.records.len(),
                pids,
                warnings: f.warnings,
            });
        }
        // Stable: equal counts keep the order of first appearance.
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        Analysis {
            files: infos,
            functions,
            groups,
            events,
        }
    }

    /// The sum over all functions.
    pub fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for c in self.functions.values() {
            t.add(c);
        }
        t
    }

    /// Whether anything a developer must look at is there: a mismatch, a
    /// shadow fault or a shadow timeout (counted or recorded).
    pub fn divergent(&self) -> bool {
        let t = self.totals();
        t.mismatch + t.shadow_fault + t.shadow_timeout > 0 || !self.groups.is_empty()
    }

    /// Records in all groups.
    pub fn recorded(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }
}

/// The group key of a record (checked by the reader: it has a `function`
/// string and a known `verdict`).
fn key_of(r: &Map<String, Json>) -> GroupKey {
    let function = r
        .get("function")
        .and_then(Json::as_str)
        .unwrap_or("?")
        .to_string();
    let verdict = r
        .get("verdict")
        .and_then(Json::as_str)
        .and_then(Verdict::parse)
        .map_or("mismatch", Verdict::as_str);
    let mut paths: Vec<String> = r
        .get("diffs")
        .and_then(Json::as_array)
        .map(|ds| {
            ds.iter()
                .filter_map(|d| d.get("path").and_then(Json::as_str))
                .map(normalise_path)
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.dedup();
    let fault = if verdict == "shadow_fault" {
        Some(match r.get("fault") {
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "fault".to_string(),
        })
    } else {
        None
    };
    GroupKey {
        function,
        verdict,
        paths,
        fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::read::parse;
    use std::path::Path;

    fn file(name: &str, text: &str) -> ReportFile {
        parse(Path::new(name), text.as_bytes(), 1).unwrap()
    }

    fn rec(f: &str, verdict: &str, paths: &[&str], extra: &str) -> String {
        let diffs: Vec<String> = paths
            .iter()
            .map(|p| format!(r#"{{"path":"{p}","primary":0,"shadow":1}}"#))
            .collect();
        format!(
            r#"{{"seq":1,"pid":7,"function":"{f}","verdict":"{verdict}"{extra},"args":{{}},"primary":{{}},"shadow":{{}},"diffs":[{}]}}"#,
            diffs.join(",")
        ) + "\n"
    }

    #[test]
    fn groups_by_function_verdict_paths_and_fault() {
        let a = file(
            "a",
            &[
                rec("f", "mismatch", &["ret"], ""),
                rec("f", "mismatch", &["dst[3]"], ""),
                rec("f", "mismatch", &["dst[20]"], ""),
                rec("f", "mismatch", &["dst[1]", "ret"], ""),
                rec("g", "shadow_fault", &[], r#","fault":"SIGSEGV""#),
                rec("g", "shadow_fault", &[], r#","fault":"exit""#),
                rec("g", "shadow_fault", &[], r#","fault":"SIGSEGV""#),
                r#"{"summary":{"f":{"calls":9,"mirrored":9,"match":5,"mismatch":4},"g":{"calls":3,"mirrored":3,"shadow_fault":3}}}"#.to_string() + "\n",
            ]
            .concat(),
        );
        let b = file(
            "b",
            &[
                rec("f", "mismatch", &["ret"], ""),
                rec("f", "mismatch", &["dst[0]"], ""),
                rec("f", "shadow_timeout", &[], ""),
                r#"{"summary":{"f":{"calls":3,"mirrored":3,"mismatch":2,"shadow_timeout":1}}}"#
                    .to_string()
                    + "\n",
            ]
            .concat(),
        );
        let an = Analysis::new(vec![a, b]);
        let got: Vec<(String, u64)> = an
            .groups
            .iter()
            .map(|g| (format!("{} {}", g.key.function, g.key.describe()), g.count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("f mismatch at dst[]".to_string(), 3),
                ("f mismatch at ret".to_string(), 2),
                ("g shadow_fault SIGSEGV".to_string(), 2),
                ("f mismatch at dst[], ret".to_string(), 1),
                ("g shadow_fault exit".to_string(), 1),
                ("f shadow_timeout".to_string(), 1),
            ]
        );
        assert_eq!(
            (an.groups[0].file.as_path(), an.groups[0].line),
            (Path::new("a"), 2)
        );
        assert_eq!(an.functions["f"].calls, 12);
        assert_eq!(an.functions["f"].mismatch, 6);
        assert_eq!(an.functions["f"].shadow_timeout, 1);
        assert_eq!(an.functions["g"].shadow_fault, 3);
        assert_eq!(an.totals().calls, 15);
        assert_eq!(an.recorded(), 10);
        assert!(an.divergent());
    }

    #[test]
    fn without_a_summary_the_records_count() {
        let a = file("a", &rec("f", "mismatch", &["ret"], ""));
        let an = Analysis::new(vec![a]);
        assert!(!an.files[0].has_summary);
        assert_eq!(an.functions["f"].mismatch, 1);
        assert_eq!(an.functions["f"].calls, 1);
    }

    #[test]
    fn matches_only_is_not_divergent() {
        let a = file(
            "a",
            "{\"summary\":{\"f\":{\"calls\":3,\"mirrored\":3,\"match\":3}}}\n",
        );
        assert!(!Analysis::new(vec![a]).divergent());
    }
}
