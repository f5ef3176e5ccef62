//! `ddl`: the command line of DDL.
//!
//! Each subcommand lives in its own module with its own `clap` arguments
//! and returns the process's exit status:
//!
//! - `run` ([`run`]): a command under `libddl.so`, then its summary table;
//! - `report` ([`report`]): verdict records as tables, JSON or an HTML page;
//! - `replay` ([`replay`]): a capture log re-executed against a build;
//! - `inspect` ([`inspect`]): a build's boundary, and a draft config;
//! - `check` ([`check`]): the pre-flight of a swap (abidiff-style exit bits);
//! - `demo` ([`demo`]): the bundled example, as `scripts/demo.sh` runs it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod demo;
mod inspect;
#[allow(dead_code)] // used by run, demo and replay as they arrive
mod libddl;
mod replay;
mod report;
mod run;

/// Watch a shared-library upgrade on the real workload.
#[derive(Parser)]
#[command(name = "ddl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command with libddl.so preloaded, then print its summary table.
    Run(run::Args),
    /// Read verdict records: per-function table, mismatch groups, --json, --html.
    Report(report::Args),
    /// Re-execute a capture log against a build and judge it again.
    Replay(replay::Args),
    /// Describe a build's exported functions; --config drafts a config.
    Inspect(inspect::Args),
    /// Pre-flight check of OLD against NEW (exit bits: 1 error, 2 usage, 4 worth reading, 8 incompatible).
    Check(check::Args),
    /// Run the bundled example (calc v1 mirrored into v2) and print its mismatch report.
    Demo(demo::Args),
    /// (internal) the sandboxed process `ddl replay` runs the calls in.
    #[command(hide = true)]
    ReplayWorker(replay::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Run(a) => run::main(a),
        Command::Report(a) => report::main(a),
        Command::Replay(a) => replay::main(a),
        Command::Inspect(a) => inspect::main(a),
        Command::Check(a) => check::main(a),
        Command::Demo(a) => demo::main(a),
        Command::ReplayWorker(a) => replay::worker(a),
    };
    ExitCode::from(status)
}
