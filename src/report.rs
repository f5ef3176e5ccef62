//! `ddl report` (not written yet).

/// Arguments of `ddl report`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `ddl report`; returns the exit status.
pub fn main(_args: Args) -> u8 {
    eprintln!("ddl report: not available yet");
    1
}
