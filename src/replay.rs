//! `ddl replay` (not written yet).

/// Arguments of `ddl replay`.
#[derive(clap::Args)]
pub struct Args {}

/// Arguments of the replay worker.
#[derive(clap::Args)]
pub struct WorkerArgs {}

/// Runs `ddl replay`; returns the exit status.
pub fn main(_args: Args) -> u8 {
    eprintln!("ddl replay: not available yet");
    1
}

/// Runs the replay worker; returns the exit status.
pub fn worker(_args: WorkerArgs) -> u8 {
    1
}
