//! `ddl inspect` (not written yet).

/// Arguments of `ddl inspect`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `ddl inspect`; returns the exit status.
pub fn main(_args: Args) -> u8 {
    eprintln!("ddl inspect: not available yet");
    1
}
