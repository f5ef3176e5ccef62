//! `ddl demo` (not written yet).

/// Arguments of `ddl demo`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `ddl demo`; returns the exit status.
pub fn main(_args: Args) -> u8 {
    eprintln!("ddl demo: not available yet");
    1
}
