//! `ddl demo`: DDL's main job on the bundled example, as `scripts/demo.sh`
//! runs it.
//!
//! Builds the fixtures (`make -C cxx-fixtures`, gcc) of the source tree
//! (where this binary was built from, or `--source`), runs the calc
//! fixture app (linked against libcalc v1, the old build) without DDL and
//! then under libddl.so mirrored into libcalc v2 (the new build, with
//! deliberate differences; `cxx-fixtures/calc.ddl.json`), checks that the
//! application's output is byte-identical, and shows the report: the
//! per-function table, the mismatch groups and one mismatch record, and
//! writes the HTML page beside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::report::analysis::Analysis;
use crate::report::{html, read, text};

/// `println!` that does not panic when standard output has gone away.
macro_rules! say {
    ($($t:tt)*) => {
        crate::report::stdout(&format!("{}\n", format_args!($($t)*)))
    };
}

/// Arguments of `ddl demo`.
#[derive(clap::Args)]
pub struct Args {
    /// The DDL source tree (with cxx-fixtures/), by default the one this binary was built from.
    #[arg(long, value_name = "DIR", default_value = env!("CARGO_MANIFEST_DIR"))]
    source: PathBuf,
    /// Where the demo's outputs and report go (default: SOURCE/target/demo).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Runs `ddl demo`; returns the exit status (0: the demo ran and the
/// application's output was identical with and without DDL).
pub fn main(args: Args) -> u8 {
    match demo(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ddl demo: {e}");
            1
        }
    }
}

fn demo(args: &Args) -> Result<(), String> {
    let root = args.source.canonicalize().map_err(|e| {
        format!(
            "{}: {e} (give the source tree with --source)",
            args.source.display()
        )
    })?;
    let fixtures_src = root.join("cxx-fixtures");
    let config = fixtures_src.join("calc.ddl.json");
    if !config.is_file() {
        return Err(format!(
            "{} is not a DDL source tree (no cxx-fixtures/calc.ddl.json); give it with --source",
            root.display()
        ));
    }
    let lib = crate::libddl::path()?;
    // calc.ddl.json names the new build relative to itself: ../target/fixtures.
    let out = root.join("target/fixtures");
    say!(
        "== building the fixtures: make -C cxx-fixtures OUT={}",
        show(&root, &out)
    );
    let made = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&fixtures_src)
        .arg(format!("OUT={}", out.display()))
        .arg("-j2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run make: {e}"))?;
    if !made.success() {
        return Err(format!("building the fixtures failed ({made})"));
    }

    let dir = args.dir.clone().unwrap_or_else(|| root.join("target/demo"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    clean(&dir);
    let app = out.join("calc/apps/calc-app-pie-now");

    say!("\n== the application, as it runs without DDL");
    let plain = Command::new(&app)
        .current_dir(&dir)
        .env_remove("LD_PRELOAD")
        .env_remove("DDL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", app.display()))?;
    let plain_text = String::from_utf8_lossy(&plain.stdout);
    for l in plain_text.lines().take(5) {
        say!("{l}");
    }
    say!("   ... ({} lines)", plain_text.lines().count());
    std::fs::write(dir.join("plain.out"), &plain.stdout).map_err(|e| e.to_string())?;

    say!("\n== the same run under libddl.so (config: cxx-fixtures/calc.ddl.json)");
    say!(
        "   LD_PRELOAD={} DDL_CONFIG=cxx-fixtures/calc.ddl.json {}",
        show(&root, &lib),
        show(&root, &app)
    );
    let child = Command::new(&app)
        .current_dir(&dir)
        .env("LD_PRELOAD", &lib)
        .env("DDL_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", app.display()))?;
    let pid = child.id();
    let ddl = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {}: {e}", app.display()))?;
    std::fs::write(dir.join("ddl.out"), &ddl.stdout).map_err(|e| e.to_string())?;
    if ddl.stdout != plain.stdout || ddl.status.code() != plain.status.code() {
        return Err(format!(
            "the application's output or status DIFFERS under DDL (a bug in DDL): see {} and {}",
            dir.join("plain.out").display(),
            dir.join("ddl.out").display()
        ));
    }
    say!("   application output: byte-identical to the run without DDL (and the same exit status)");

    let report = dir.join(format!("ddl-report.calc.{pid}.jsonl"));
    let file = read::read(&report).map_err(|e| e.to_string())?;
    let an = Analysis::new(vec![file]);
    say!("\n== report {}: per function", show(&root, &report));
    crate::report::stdout(&text::table(&an.functions, "   "));
    say!(
        "\n== {} mismatch records in {} groups (function + differing outputs):",
        an.recorded(),
        an.groups.len()
    );
    for g in &an.groups {
        say!(
            "   {:>3}  {}  {}",
            g.count,
            g.key.function,
            g.key.describe()
        );
    }
    let first = an
        .groups
        .iter()
        .filter(|g| g.key.verdict == "mismatch")
        .min_by_key(|g| g.line)
        .ok_or("the report has no mismatch record (the fixtures should give 13)")?;
    say!("\n== the first mismatch record:");
    say!("{}", text::pretty(&first.record));
    let page = dir.join("report.html");
    std::fs::write(&page, html::page(&an)).map_err(|e| format!("{}: {e}", page.display()))?;
    say!(
        "\nMore: ddl report {}   (--json, --html OUT); this page: {}",
        show(&root, &report),
        show(&root, &page)
    );
    Ok(())
}

/// Removes what an earlier demo left in `dir` (only the demo's own files).
fn clean(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = (name.starts_with("ddl-report.calc.") && name.ends_with(".jsonl"))
                || ["plain.out", "ddl.out", "report.html"].contains(&name.as_str());
            if ours {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A path as shown: relative to the source tree when inside it.
fn show(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
