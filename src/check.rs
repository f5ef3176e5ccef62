//! `ddl check` (not written yet).

/// Arguments of `ddl check`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `ddl check`; returns the exit status.
pub fn main(_args: Args) -> u8 {
    eprintln!("ddl check: not available yet");
    1
}
