//! `ddl run` (not written yet).

/// Arguments of `ddl run`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `ddl run`; returns the exit status.
pub fn main(_args: Args) -> u8 {
    eprintln!("ddl run: not available yet");
    1
}
