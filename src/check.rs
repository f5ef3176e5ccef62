//! `ddl check OLD NEW [-c CONFIG]`: the pre-flight of a swap, in the manner
//! of `abidiff` (docs/CHECK.md).
//!
//! The boundary is the config's functions (with `-c`; the config is then
//! also validated in full: parsed, every function resolved in OLD) or
//! every function OLD exports. Each finding is one line, then a verdict
//! line; the exit status is a bitmask: 1 tool error, 2 usage error, 4 a
//! change worth reading, 8 an incompatible change. The comparison itself
//! is `arbiter::abi::check`, the one libddl runs before it mirrors.

use std::path::PathBuf;

use arbiter::abi::{self, Build, Depth, Severity};
use arbiter::config::Config;

/// Arguments of `ddl check`.
#[derive(clap::Args)]
pub struct Args {
    /// The build the application uses now.
    old: PathBuf,
    /// The build that should stand in for it.
    new: PathBuf,
    /// The DDL config: its functions are the boundary, and it is validated.
    #[arg(short = 'c', long = "config", value_name = "CONFIG")]
    config: Option<PathBuf>,
}

/// Tool error (abidiff's bit 1).
const TOOL_ERROR: u8 = 1;

/// Runs `ddl check`; returns the exit status (bitmask).
pub fn main(args: Args) -> u8 {
    let config = match &args.config {
        None => None,
        Some(p) => match Config::load(p) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("ddl check: error: {e}");
                return TOOL_ERROR;
            }
        },
    };
    let read = |p: &PathBuf, depth, wanted| match Build::read(p, depth, wanted) {
        Ok(b) => Ok(b),
        Err(e) => {
            eprintln!("ddl check: error: {e}");
            Err(TOOL_ERROR)
        }
    };
    let old = match read(&args.old, Depth::Symbols, None) {
        Ok(b) => b,
        Err(s) => return s,
    };
    let boundary = match &config {
        None => abi::boundary_of_exports(&old),
        Some(c) => match abi::boundary_of_config(c, &old) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("ddl check: error: {e}");
                return TOOL_ERROR;
            }
        },
    };
    let wanted = boundary.symbols();
    let (old, new) = match (
        read(&args.old, Depth::Debug, Some(&wanted)),
        read(&args.new, Depth::Debug, Some(&wanted)),
    ) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(s), _) | (_, Err(s)) => return s,
    };
    let findings = abi::check(&old, &new, &boundary);
    for f in &findings {
        println!("{f}");
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let (bad, read_me) = (count(Severity::Incompatible), count(Severity::WorthReading));
    let bits = abi::exit_bits(&findings);
    let word = if bad > 0 {
        "incompatible"
    } else if read_me > 0 {
        "compatible, with changes worth reading"
    } else {
        "compatible"
    };
    let what = match &config {
        Some(c) => format!(
            "{} functions of {}",
            c.functions.len(),
            args.config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        None => format!("{} exported functions of OLD", boundary.functions.len()),
    };
    println!(
        "verdict: {word} (exit {bits}): {bad} incompatible, {read_me} worth reading; boundary: {what}"
    );
    bits
}
