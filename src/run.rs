//! `ddl run [-c CONFIG] -- CMD ARGS…`: a command under `libddl.so`, then
//! its summary table.
//!
//! The command gets `LD_PRELOAD` with libddl.so in front of what was there
//! and `DDL_CONFIG` set to the config's absolute path, and runs with
//! `ddl`'s own standard input, output and error, in the same folder; `ddl`
//! writes nothing until it has ended, and then only to standard error: the
//! summary table of the reports the run wrote. Its exit status is the
//! command's (128 + the signal's number when a signal ended it, as shells
//! say it).
//!
//! Which reports: the config's `report` path (relative to the folder the
//! command started in, `%p` the pid). With `%p` in the file name, every
//! file of that pattern written during the run is read: the command's own
//! and those of the child processes libddl attached to. A file that already
//! existed (a `report` without `%p`, a reused pid) is read from where it
//! ended before the run.
//!
//! While the command runs, `ddl` ignores SIGINT and SIGQUIT (a terminal
//! sends them to the command as well, and the summary should still be
//! printed) and passes SIGTERM and SIGHUP on to the command.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use arbiter::config::Config;

use crate::report::analysis::Analysis;
use crate::report::{read, text};

/// Status: no config, or one that does not load.
pub const EXIT_USAGE: u8 = 2;
/// Status: `ddl` could not run the command (libddl.so missing…).
pub const EXIT_DDL: u8 = 125;
/// Status: the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Status: the command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Arguments of `ddl run`.
#[derive(clap::Args)]
#[command(override_usage = "ddl run [-c CONFIG] [-q] -- CMD [ARGS]...")]
#[command(
    after_help = "Exit status: the command's own, 128 + N when signal N ended it; \
2 no config (neither -c nor DDL_CONFIG) or one that does not load; 125 ddl itself failed \
(libddl.so not found); 126 the command cannot be executed; 127 the command was not found. \
The summary table goes to standard error after the command has ended; the command's own \
streams are untouched."
)]
pub struct Args {
    /// The config file (default: $DDL_CONFIG).
    #[arg(short, long, value_name = "CONFIG")]
    config: Option<PathBuf>,
    /// Do not print the summary table afterwards.
    #[arg(short, long)]
    quiet: bool,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// Runs `ddl run`; returns the exit status (the command's).
pub fn main(args: Args) -> u8 {
    let config = match args.config.clone().or_else(|| {
        std::env::var_os("DDL_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }) {
        Some(c) => c,
        None => {
            eprintln!("ddl run: no config: give -c CONFIG or set DDL_CONFIG");
            return EXIT_USAGE;
        }
    };
    let config = match config.canonicalize() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ddl run: {}: cannot read the config: {e}", config.display());
            return EXIT_USAGE;
        }
    };
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ddl: error: {e}");
            return EXIT_USAGE;
        }
    };
    let lib = match crate::libddl::path() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ddl run: {e}");
            return EXIT_DDL;
        }
    };
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ddl run: cannot read the current folder: {e}");
            return EXIT_DDL;
        }
    };
    let reports = Reports::new(&cfg.report, &cwd);
    let before = reports.sizes();

    let preload = match std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        Some(old) => {
            let mut p = lib.clone().into_os_string();
            p.push(":");
            p.push(old);
            p
        }
        None => lib.clone().into_os_string(),
    };
    let program = &args.command[0];
    let mut child = match Command::new(program)
        .args(&args.command[1..])
        .env("LD_PRELOAD", preload)
        .env("DDL_CONFIG", &config)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let name = Path::new(program).display();
            return match e.kind() {
                std::io::ErrorKind::NotFound => {
                    eprintln!("ddl run: {name}: command not found");
                    EXIT_NOT_FOUND
                }
                _ => {
                    eprintln!("ddl run: {name}: cannot execute: {e}");
                    EXIT_CANNOT_EXECUTE
                }
            };
        }
    };
    let pid = child.id();
    signals_to(pid);
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("ddl run: waiting for the command: {e}");
                return EXIT_DDL;
            }
        }
    };
    // Reaped: its pid may be reused from now on, so stop passing signals.
    CHILD.store(0, Ordering::SeqCst);
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => EXIT_DDL,
    };
    if !args.quiet {
        use std::io::Write;
        let _ = std::io::stderr().write_all(summary(&reports, &before, pid, &status).as_bytes());
    }
    code
}

/// `ddl`'s own handling of signals while the command runs: SIGINT and
/// SIGQUIT ignored, SIGTERM and SIGHUP passed on to `pid`.
fn signals_to(pid: u32) {
    CHILD.store(pid as i32, Ordering::SeqCst);
    extern "C" fn pass_on(sig: libc::c_int) {
        let pid = CHILD.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe; pid is our child's and
            // not yet reaped (CHILD is cleared as soon as wait() returns,
            // before the pid could be reused).
            unsafe { libc::kill(pid, sig) };
        }
    }
    // SAFETY: setting dispositions of this process only; SIG_IGN needs no
    // handler, and `pass_on` only reads an atomic and calls kill(2), both
    // async-signal-safe. The child was spawned before, so it keeps its own
    // (default) dispositions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        let h = pass_on as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, h);
        libc::signal(libc::SIGHUP, h);
    }
}

/// The command's pid, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// The report files a run may write, from the config's `report` pattern.
pub struct Reports {
    /// The pattern made absolute (relative to the folder of the run).
    pattern: PathBuf,
    /// The folder the run started in (paths are shown relative to it).
    cwd: PathBuf,
}

impl Reports {
    /// The files of pattern `report` (`%p`: the pid) relative to `cwd`.
    pub fn new(report: &str, cwd: &Path) -> Reports {
        Reports {
            pattern: cwd.join(report),
            cwd: cwd.to_path_buf(),
        }
    }

    /// The `%p` pattern's parts when `%p` is in the file name only:
    /// (folder, the file name split at each `%p`).
    fn per_pid(&self) -> Option<(PathBuf, Vec<String>)> {
        let name = self.pattern.file_name()?.to_str()?;
        let dir = self.pattern.parent()?;
        if !name.contains("%p") || dir.to_string_lossy().contains("%p") {
            return None;
        }
        Some((
            dir.to_path_buf(),
            name.split("%p").map(str::to_string).collect(),
        ))
    }

    /// The existing files of the pattern (any pid) and their sizes; when
    /// `%p` is in a folder's name, only `for_pid`'s file.
    fn existing(&self, for_pid: Option<u32>) -> BTreeMap<PathBuf, u64> {
        let mut out = BTreeMap::new();
        match self.per_pid() {
            Some((dir, parts)) => {
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    for e in rd.flatten() {
                        let name = e.file_name();
                        let Some(name) = name.to_str() else { continue };
                        if matches_pattern(name, &parts) {
                            if let Ok(md) = e.metadata() {
                                if md.is_file() {
                                    out.insert(dir.join(name), md.len());
                                }
                            }
                        }
                    }
                }
            }
            None => {
                let p = match for_pid {
                    Some(pid) => PathBuf::from(
                        self.pattern
                            .to_string_lossy()
                            .replace("%p", &pid.to_string()),
                    ),
                    None => self.pattern.clone(),
                };
                if let Ok(md) = std::fs::metadata(&p) {
                    out.insert(p, md.len());
                }
            }
        }
        out
    }

    /// What exists before the run.
    pub fn sizes(&self) -> BTreeMap<PathBuf, u64> {
        self.existing(None)
    }

    /// The files written during the run (new, or grown since `before`),
    /// with the offset to read them from; `pid`'s own first.
    pub fn written(&self, before: &BTreeMap<PathBuf, u64>, pid: u32) -> Vec<(PathBuf, u64)> {
        let own = PathBuf::from(
            self.pattern
                .to_string_lossy()
                .replace("%p", &pid.to_string()),
        );
        let mut out: Vec<(PathBuf, u64)> = self
            .existing(Some(pid))
            .into_iter()
            .filter_map(|(p, len)| match before.get(&p) {
                None => Some((p, 0)),
                Some(&old) if len > old => Some((p, old)),
                Some(_) => None,
            })
            .collect();
        out.sort_by_key(|(p, _)| (*p != own, p.clone()));
        out
    }

    /// A path as shown: relative to the folder of the run when inside it.
    pub fn show(&self, p: &Path) -> String {
        p.strip_prefix(&self.cwd).unwrap_or(p).display().to_string()
    }
}

/// Whether `name` is `parts` joined with a pid (digits) at each joint.
fn matches_pattern(name: &str, parts: &[String]) -> bool {
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part.as_str()) else {
                return false;
            };
            rest = r;
            continue;
        }
        // Digits, then `part`; the last part must end the name.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(r) = rest.strip_prefix(part.as_str()) else {
            return false;
        };
        rest = r;
    }
    rest.is_empty()
}

/// The text printed after the run: which reports, the table, and where to
/// look next.
fn summary(
    reports: &Reports,
    before: &BTreeMap<PathBuf, u64>,
    pid: u32,
    status: &std::process::ExitStatus,
) -> String {
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended".to_string(),
    };
    let written = reports.written(before, pid);
    if written.is_empty() {
        return format!(
            "ddl: the command (pid {pid}) {how}; no report was written ({}): \
             the old build was not loaded, or attach.exe left it alone (DDL_LOG=info tells)\n",
            reports.show(&reports.pattern)
        );
    }
    let mut files = Vec::new();
    let mut errors = String::new();
    for (p, from) in &written {
        match read::read_from(p, *from) {
            Ok(mut f) => {
                f.path = PathBuf::from(reports.show(p));
                files.push(f);
            }
            Err(e) => errors.push_str(&format!("ddl: {e}\n")),
        }
    }
    let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    let an = Analysis::new(files);
    let mut out = format!(
        "ddl: the command (pid {pid}) {how}; {} report{}: {}\n",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(" ")
    );
    out.push_str(&errors);
    for f in &an.files {
        if !f.has_summary {
            out.push_str(&format!(
                "ddl: {} has no summary line (killed, or still running): counted from its records\n",
                f.path.display()
            ));
        }
    }
    out.push_str(&text::table(&an.functions, "  "));
    let t = an.totals();
    out.push_str(&format!(
        "ddl: {} mismatch{}, {} shadow fault{}, {} shadow timeout{}",
        t.mismatch,
        if t.mismatch == 1 { "" } else { "es" },
        t.shadow_fault,
        if t.shadow_fault == 1 { "" } else { "s" },
        t.shadow_timeout,
        if t.shadow_timeout == 1 { "" } else { "s" },
    ));
    if an.divergent() && !names.is_empty() {
        out.push_str(&format!("; details: ddl report {}", names.join(" ")));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matching() {
        let parts: Vec<String> = "ddl-report.calc.%p.jsonl"
            .split("%p")
            .map(str::to_string)
            .collect();
        assert!(matches_pattern("ddl-report.calc.4242.jsonl", &parts));
        assert!(!matches_pattern("ddl-report.calc..jsonl", &parts));
        assert!(!matches_pattern("ddl-report.calc.42x.jsonl", &parts));
        assert!(!matches_pattern("ddl-report.calc.42.jsonl.bak", &parts));
        let two: Vec<String> = "r%p-%p".split("%p").map(str::to_string).collect();
        assert!(matches_pattern("r1-2", &two));
        assert!(!matches_pattern("r1-", &two));
    }

    #[test]
    fn written_files_and_offsets() {
        let dir = std::env::temp_dir().join(format!("ddl-cli-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("r.1.jsonl"), "old\n").unwrap();
        std::fs::write(dir.join("r.2.jsonl"), "old\n").unwrap();
        std::fs::write(dir.join("other.txt"), "x").unwrap();
        let r = Reports::new("r.%p.jsonl", &dir);
        let before = r.sizes();
        assert_eq!(before.len(), 2);
        std::fs::write(dir.join("r.1.jsonl"), "old\nnew\n").unwrap();
        std::fs::write(dir.join("r.3.jsonl"), "new\n").unwrap();
        std::fs::write(dir.join("r.9.jsonl"), "new\n").unwrap();
        let w = r.written(&before, 9);
        let got: Vec<(String, u64)> = w.iter().map(|(p, o)| (r.show(p), *o)).collect();
        assert_eq!(
            got,
            vec![
                ("r.9.jsonl".to_string(), 0),
                ("r.1.jsonl".to_string(), 4),
                ("r.3.jsonl".to_string(), 0)
            ]
        );
        // Without %p: the one file, from where it ended.
        let one = Reports::new("r.1.jsonl", &dir);
        let before = one.sizes();
        std::fs::write(dir.join("r.1.jsonl"), "old\nnew\nmore\n").unwrap();
        assert_eq!(one.written(&before, 5), vec![(dir.join("r.1.jsonl"), 8)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
