//! Replay: the invocations of a capture log re-executed, in order, against
//! a build, and judged against the primary outcomes the log recorded.
//!
//! `ddl replay` runs this in a process of its own (`ddl replay-worker`
//! loads libddl.so and calls [`ddl_replay`]): the build is loaded and
//! contained exactly as in a live run ([`NewBuild::load`], the sandbox),
//! the invocations go through the same shadow (handles re-created from the
//! log's history, the same comparators), and the verdict records and
//! summary are the same as a live run writes.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arbiter::capture::{mask_outcome, structs_of, CaptureError, CaptureReader, Entry, Mask, Slot};
use arbiter::compare::Outcome;
use arbiter::config::Config;
use arbiter::shadow::{Invocation, Shadow, ShadowHooks, ShadowSettings};

use crate::cxxrt::BoundarySymbol;
use crate::namespace::NewBuild;
use crate::runtime::{boundary_fns, prepare_cxx_of, take_outgoing};

/// Exit statuses of a replay ([`ddl_replay`]).
pub mod status {
    /// Every replayed call matched (or `allow_mismatch`).
    pub const CLEAN: i32 = 0;
    /// A mismatch, fault or timeout was found.
    pub const DIVERGED: i32 = 1;
    /// The replay could not be done, or not to the end (a damaged or cut
    /// log: the records before the damage were replayed). 2 is left to
    /// usage errors, as in `ddl report`.
    pub const ERROR: i32 = 3;
}

/// What one replay needs to know, as `ddl replay` sends it (JSON).
#[derive(serde::Deserialize)]
struct Request {
    capture: PathBuf,
    build: PathBuf,
    config: Option<PathBuf>,
    /// `None`: standard output.
    report: Option<PathBuf>,
    #[serde(default)]
    allow_mismatch: bool,
}

/// The replay in progress (the shadow's hooks are plain functions).
struct Replay {
    config: Config,
    /// The build's namespace (replaced when a call poisons it).
    new: Option<NewBuild>,
    /// New-build slots by (symbol, version): what invocations point at.
    slots: HashMap<(String, Option<String>), &'static AtomicU64>,
    symbols: Vec<BoundarySymbol>,
    poisoned_kept: usize,
    shadow: Arc<Shadow>,
}

static REPLAY: Mutex<Option<Replay>> = Mutex::new(None);
/// The callers' names, by `Invocation::caller - 1`.
static CALLERS: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// How a call's outputs were stored reduced ([`arbiter::capture::Call::masks`]).
type Masks = Vec<(Slot, Mask)>;
/// Masks of the calls whose outputs the log stores reduced, by `seq`.
static MASKS: RwLock<Option<HashMap<u64, Masks>>> = RwLock::new(None);
/// The slot of calls that cannot be replayed (`unmirrored`).
static NO_SLOT: AtomicU64 = AtomicU64::new(0);

fn replay_caller_name(id: u64) -> Option<String> {
    let callers = CALLERS.read().unwrap_or_else(|e| e.into_inner());
    callers.get((id as usize).checked_sub(1)?).cloned()
}

fn replay_mask(inv: &Invocation, o: &mut Outcome) {
    if let Some(m) = MASKS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(&inv.seq))
    {
        mask_outcome(o, m);
    }
}

/// The shadow's `reload` hook on replay: as in a live run, a poisoned
/// namespace is never called again and a fresh one takes its place.
fn replay_reload(pc: usize) -> Result<(), String> {
    let mut g = REPLAY.lock().unwrap_or_else(|e| e.into_inner());
    let r = g.as_mut().ok_or("no replay")?;
    for slot in r.slots.values() {
        slot.store(0, Ordering::Release);
    }
    let old = r.new.take().ok_or("the build is gone")?;
    if old.owns(pc) && !old.starts_threads && !crate::contain::started_threads(old.handle) {
        crate::contain::forget_namespace(old.handle);
        crate::interpose::real_dlclose(old.handle);
    } else {
        r.poisoned_kept += 1;
        std::mem::forget(old);
        if r.poisoned_kept > crate::runtime::POISONED_BUDGET {
            return Err(format!(
                "{} namespaces of the build were poisoned where they could not be unloaded",
                r.poisoned_kept
            ));
        }
    }
    let new = NewBuild::load(&r.config.new, &r.config.sandbox_intercept)?;
    r.shadow.set_new_errno(new.errno_location);
    prepare_cxx_of(&r.config, r.shadow.functions(), &new, &r.symbols);
    for ((name, ver), slot) in &r.slots {
        slot.store(
            new.resolve(name, ver.as_deref()).unwrap_or(0) as u64,
            Ordering::Release,
        );
    }
    r.new = Some(new);
    Ok(())
}

/// Replays a capture log; `request` is the JSON of [`Request`]. Called by
/// `ddl replay-worker`, in a process of its own. `progress`, if given, is
/// called with the number of records read, now and then. Returns a
/// [`status`]; errors are printed on stderr as `ddl replay: error: …`.
///
/// # Safety
///
/// `request` must be a valid NUL-terminated string. Call it once per
/// process, from its main thread, with no session of libddl active.
#[no_mangle]
pub unsafe extern "C" fn ddl_replay(
    request: *const c_char,
    progress: Option<extern "C" fn(u64)>,
) -> c_int {
    // SAFETY: the caller passes a valid C string.
    let text = unsafe { CStr::from_ptr(request) }.to_string_lossy();
    let req: Request = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ddl replay: error: bad request: {e}");
            return status::ERROR;
        }
    };
    match std::panic::catch_unwind(|| run(&req, progress)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("ddl replay: error: {e}");
            status::ERROR
        }
        Err(_) => {
            eprintln!("ddl replay: error: internal panic");
            status::ERROR
        }
    }
}

fn run(req: &Request, progress: Option<extern "C" fn(u64)>) -> Result<i32, String> {
    let mut reader = CaptureReader::open(&req.capture).map_err(|e| e.to_string())?;
    let header = reader.header().clone();
    let mut config = match &req.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::parse(&header.config_text, Path::new(&header.config_path))
            .map_err(|e| format!("the config stored in the log: {e}"))?,
    };
    let build = std::path::absolute(&req.build).map_err(|e| e.to_string())?;
    arbiter::config::writable_by_others(&build)?;
    config.new = build.clone();
    // The log's functions, by their keys, in this config.
    let fmap: Vec<Option<u32>> = header
        .functions
        .iter()
        .map(|k| {
            config
                .functions
                .iter()
                .position(|f| &f.key == k)
                .map(|i| i as u32)
        })
        .collect();
    let missing: Vec<&str> = header
        .functions
        .iter()
        .zip(&fmap)
        .filter(|(_, m)| m.is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "ddl replay: warning: functions of the log not in the config, not replayed: {}",
            missing.join(", ")
        );
    }
    let structs = structs_of(
        config
            .functions
            .iter()
            .flat_map(|f| std::iter::once(&f.sig.ret).chain(f.sig.params.iter().map(|p| &p.ty))),
    );
    if let Err(e) = arbiter::sandbox::install() {
        eprintln!("ddl replay: warning: no sandbox for the build: {e}");
    }
    let new = NewBuild::load(&build, &config.sandbox_intercept)
        .map_err(|e| format!("cannot load {}: {e}", build.display()))?;
    let symbols: Vec<BoundarySymbol> = header
        .symbols
        .iter()
        .filter_map(|s| {
            Some(BoundarySymbol {
                name: s.name.clone(),
                func: fmap.get(s.func as usize).copied().flatten()?,
                deleting: s.deleting,
                complete_dtor: s.complete_dtor,
            })
        })
        .collect();
    let report = req
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from("/dev/stdout"));
    if let Some(p) = &req.report {
        // A fresh report (a live run's appends across exec; a replay's
        // starts over).
        let _ = std::fs::remove_file(p);
    }
    let settings = ShadowSettings {
        queue: 4096,
        queue_bytes: 256 << 20,
        timeout_ms: config.timeout_ms,
        summary_every_s: 3600,
    };
    let hooks = ShadowHooks {
        thread_init: crate::wrapper::mark_thread_busy,
        caller_name: replay_caller_name,
        reload: replay_reload,
        take_outgoing,
    };
    let shadow: Arc<Shadow> = Shadow::new(
        Arc::new(boundary_fns(&config)),
        settings.clone(),
        Some(report),
        config.records_per_signature,
        hooks,
    );
    shadow.set_new_errno(new.errno_location);
    prepare_cxx_of(&config, shadow.functions(), &new, &symbols);
    shadow.set_masker(replay_mask);
    *REPLAY.lock().unwrap_or_else(|e| e.into_inner()) = Some(Replay {
        config,
        new: Some(new),
        slots: HashMap::new(),
        symbols,
        poisoned_kept: 0,
        shadow: shadow.clone(),
    });
    shadow
        .start()
        .map_err(|e| format!("cannot start the shadow thread: {e}"))?;
    let counts = shadow.thread_counts();
    let mut caller_ids: HashMap<String, u64> = HashMap::new();
    let mut submitted = 0u64;
    let mut read = 0u64;
    let mut failure: Option<CaptureError> = None;
    loop {
        let entry = match reader.next_entry(&structs) {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                failure = Some(e);
                break;
            }
        };
        read += 1;
        if let (Some(p), true) = (progress, read.is_multiple_of(1024)) {
            p(read);
        }
        let call = match entry {
            Entry::Call(c) => c,
            Entry::Parted { class, handle, seq } => {
                shadow.part(class, handle, seq);
                continue;
            }
            Entry::End { .. } => continue,
        };
        let Some(func) = fmap.get(call.func as usize).copied().flatten() else {
            continue;
        };
        let new_fn: &'static AtomicU64 = if call.inputs_cut {
            &NO_SLOT
        } else {
            slot_for(&call.symbol, call.version.as_deref())
        };
        if !call.masks.is_empty() {
            MASKS
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(call.seq, call.masks.clone());
        }
        let caller = match &call.caller {
            None => 0,
            Some(name) => {
                let next = caller_ids.len() as u64 + 1;
                *caller_ids.entry(name.clone()).or_insert_with(|| {
                    CALLERS
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(name.clone());
                    next
                })
            }
        };
        let inv = Box::new(Invocation {
            seq: call.seq,
            func,
            tid: call.tid,
            caller,
            new_fn,
            inputs: call.inputs,
            primary: call.primary,
            errno_before: call.errno_before,
            deleting: call.deleting,
            fp_env: call.fp_env,
        });
        // Never a drop: wait for room (the live run's drops are not in the
        // log; a replay judges everything it reads).
        let bytes = inv.bytes();
        loop {
            let (n, b) = shadow.backlog();
            if n + 1 < settings.queue && b + bytes <= settings.queue_bytes.max(bytes) {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        counts.call(func);
        if !shadow.submit(inv) {
            return Err("the shadow refused a call (internal error)".into());
        }
        submitted += 1;
    }
    // Everything judged, then the summary. A shadow that stops making
    // progress (it cannot: the watchdog replaces a stuck thread) is not
    // waited for forever: `finish` counts what is left as dropped.
    let patience =
        Duration::from_millis(settings.timeout_ms.saturating_mul(4)) + Duration::from_secs(10);
    let (mut last, mut since) = (shadow.judged_so_far(), std::time::Instant::now());
    while shadow.judged_so_far() < submitted && since.elapsed() < patience {
        std::thread::sleep(Duration::from_millis(1));
        let now = shadow.judged_so_far();
        if now != last {
            (last, since) = (now, std::time::Instant::now());
        }
    }
    drop(counts);
    shadow.finish();
    if let Some(p) = progress {
        p(read);
    }
    let totals = shadow.totals_now();
    let diverged = totals
        .iter()
        .any(|(_, c)| c.mismatch + c.shadow_fault + c.shadow_timeout != 0);
    if let Some(e) = failure {
        eprintln!("ddl replay: error: {e}");
        return Ok(status::ERROR);
    }
    Ok(if diverged && !req.allow_mismatch {
        status::DIVERGED
    } else {
        status::CLEAN
    })
}

/// The new-build slot of `(symbol, version)`, resolved on first use.
fn slot_for(symbol: &str, version: Option<&str>) -> &'static AtomicU64 {
    let mut g = REPLAY.lock().unwrap_or_else(|e| e.into_inner());
    let Some(r) = g.as_mut() else {
        return &NO_SLOT;
    };
    let key = (symbol.to_string(), version.map(str::to_string));
    if let Some(s) = r.slots.get(&key) {
        return s;
    }
    let addr = r
        .new
        .as_ref()
        .and_then(|n| n.resolve(symbol, version))
        .unwrap_or(0);
    let slot: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(addr as u64)));
    r.slots.insert(key, slot);
    slot
}
