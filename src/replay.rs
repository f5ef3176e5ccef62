//! `ddl replay CAPTURE --new BUILD [-c CONFIG] [--report FILE]`: the
//! invocations of a capture log re-executed, in order and with their
//! handles re-created from the log's history, against BUILD, and judged
//! against the primary outcomes the log recorded.
//!
//! The calls run in a process of their own (`ddl replay-worker`, which
//! loads libddl.so and hands it the request): a fault DDL's sandbox cannot
//! contain ends that process, never `ddl replay`, which then says so.
//! Exit status (as `ddl report`'s): 0 every call matched, 1 a mismatch,
//! fault or timeout (0 with `--allow-mismatch`), 2 usage, 3 the replay
//! could not be done or not to the end (a damaged or cut log: the records
//! before the damage are replayed and judged).

use std::ffi::{c_char, c_int, CString};
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Arguments of `ddl replay`.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 every replayed call matched (or --allow-mismatch), 1 a mismatch, shadow fault or shadow timeout, 2 usage error, 3 the log cannot be read or replayed to its end (the records before the damage are replayed; the message names the file and the record)."
)]
pub struct Args {
    /// The capture log (the config's `capture`).
    capture: PathBuf,
    /// The build to run the calls on (the fixed new build; the old build
    /// shows how deterministic the component is).
    #[arg(long = "new", value_name = "BUILD")]
    build: PathBuf,
    /// A config to judge with (default: the one stored in the log).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Where the verdict records and summary go (default: standard output).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Exit 0 even when calls diverge.
    #[arg(long)]
    allow_mismatch: bool,
    /// No progress display, even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

/// Arguments of the replay worker (internal).
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The request for libddl's `ddl_replay` (JSON).
    #[arg(long)]
    request: String,
    /// Show progress on stderr.
    #[arg(long)]
    progress: bool,
}

const ERROR: u8 = 3;

/// Runs `ddl replay`; returns the exit status.
pub fn main(args: Args) -> u8 {
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let request = serde_json::json!({
        "capture": abs(&args.capture),
        "build": abs(&args.build),
        "config": args.config.as_ref().map(abs),
        "report": args.report.as_ref().map(abs),
        "allow_mismatch": args.allow_mismatch,
    });
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ddl replay: error: cannot find the ddl executable: {e}");
            return ERROR;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("replay-worker")
        .arg("--request")
        .arg(request.to_string());
    if !args.no_progress && std::io::stderr().is_terminal() {
        cmd.arg("--progress");
    }
    // The worker loads the build: LD_PRELOAD'd libddl or a DDL_CONFIG of
    // the environment must not turn it into a watched application.
    cmd.env_remove("DDL_CONFIG");
    let status = match cmd.status() {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c.clamp(0, 255) as u8,
            (None, Some(sig)) => {
                eprintln!(
                    "ddl replay: error: the replay process died of signal {sig} (a fault the sandbox could not contain); the report holds what was judged before it"
                );
                ERROR
            }
            _ => ERROR,
        },
        Err(e) => {
            eprintln!("ddl replay: error: cannot start the replay process: {e}");
            ERROR
        }
    };
    // The report went to a file: its table on stderr, as `ddl run` shows.
    if let Some(path) = &args.report {
        if let Ok(f) = crate::report::read::read(path) {
            let an = crate::report::analysis::Analysis::new(vec![f]);
            eprint!(
                "ddl replay: {} against {}:\n{}",
                args.capture.display(),
                args.build.display(),
                crate::report::text::table(&an.functions, "  ")
            );
        }
    }
    status
}

static BAR: OnceLock<indicatif::ProgressBar> = OnceLock::new();

extern "C" fn progress(records: u64) {
    if let Some(b) = BAR.get() {
        b.set_position(records);
    }
}

type ReplayFn = unsafe extern "C" fn(*const c_char, Option<extern "C" fn(u64)>) -> c_int;

/// Runs the replay worker: loads libddl.so and calls its `ddl_replay`.
pub fn worker(args: WorkerArgs) -> u8 {
    let lib = match crate::libddl::path() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ddl replay: error: {e}");
            return ERROR;
        }
    };
    let (Ok(c_lib), Ok(c_req)) = (
        CString::new(lib.to_string_lossy().as_bytes()),
        CString::new(args.request),
    ) else {
        eprintln!("ddl replay: error: a path holds a NUL byte");
        return ERROR;
    };
    // SAFETY: dlopen of libddl.so by path; its constructor does nothing
    // without DDL_CONFIG (removed from this process's environment).
    let handle = unsafe { libc::dlopen(c_lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        eprintln!("ddl replay: error: cannot load {}", lib.display());
        return ERROR;
    }
    // SAFETY: dlsym on a live handle with a NUL-terminated name.
    let sym = unsafe { libc::dlsym(handle, c"ddl_replay".as_ptr()) };
    if sym.is_null() {
        eprintln!(
            "ddl replay: error: {} has no ddl_replay (an older libddl.so?)",
            lib.display()
        );
        return ERROR;
    }
    // SAFETY: libddl.so defines `ddl_replay` with exactly this signature.
    let replay: ReplayFn = unsafe { std::mem::transmute::<*mut libc::c_void, ReplayFn>(sym) };
    let cb: Option<extern "C" fn(u64)> = if args.progress {
        let bar = indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replaying: {human_pos} records read, {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let _ = BAR.set(bar);
        Some(progress)
    } else {
        None
    };
    // SAFETY: a valid request string; called once, from the main thread.
    let status = unsafe { replay(c_req.as_ptr(), cb) };
    if let Some(b) = BAR.get() {
        b.finish_and_clear();
    }
    status.clamp(0, 255) as u8
}
