//! `ddl`: the command line of DDL. For now it only says which version it is;
//! `run`, `report`, `replay`, `inspect` and `check` arrive with their issues.

use clap::Parser;

/// Watch a shared-library upgrade on the real workload.
#[derive(Parser)]
#[command(name = "ddl", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("ddl: no subcommand yet; preload target/release/libddl.so with DDL_CONFIG set (see README.md)");
}
