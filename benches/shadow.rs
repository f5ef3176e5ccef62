//! Criterion benchmark of the shadow's throughput (issue 6: "at least 10
//! million scalar invocations per second judged and counted on one core"):
//! a [`Shadow`] with one boundary function, `int add(int, int)`, whose new
//! build is a local `extern "C" fn`. Each measured round queues N captured
//! invocations (built the way the shim builds them: `capture_inputs`,
//! `capture_outputs`), then times the shadow thread from its start until
//! `finish` has seen every one judged and counted. The report's last
//! summary is checked once: every invocation a `match`.
//!
//! A second round feeds the shadow the way the wrapper's ring path does: N
//! calls pushed into this thread's ring (`ThreadCounts::submit_scalar`,
//! retried while the ring is full), timed until every one is judged.
//!
//!     cargo bench --bench shadow

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter::compare::Comparator;
use arbiter::marshal::{capture_inputs, capture_outputs, Raw};
use arbiter::shadow::{BoundaryFn, FpEnv, Invocation, Shadow, ShadowHooks, ShadowSettings};
use arbiter::signature::{parse_signature, TypeTable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Invocations per measured round.
const N: usize = 200_000;

/// The new build's `add`.
extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// Where the invocations find the new build's function.
static NEW_FN: AtomicU64 = AtomicU64::new(0);

fn no_init() {}
fn no_name(_: u64) -> Option<String> {
    None
}
fn no_reload(_: usize) -> Result<(), String> {
    Ok(())
}
fn no_outgoing() -> Vec<arbiter::compare::Outgoing> {
    Vec::new()
}

fn boundary() -> Arc<Vec<BoundaryFn>> {
    let types = TypeTable::new();
    let sig = parse_signature("int add(int a, int b)", &types).unwrap();
    Arc::new(vec![BoundaryFn::new(
        "add".into(),
        sig,
        Comparator::default(),
    )])
}

/// `n` invocations of `add`, captured as the shim captures them (boxed,
/// as `Shadow::submit` takes them).
#[allow(clippy::vec_box)]
fn invocations(functions: &[BoundaryFn], n: usize) -> Vec<Box<Invocation>> {
    let sig = &functions[0].sig;
    (0..n)
        .map(|i| {
            let (a, b) = (i as i32, 7i32);
            let raw = [Raw::Bits(a as u32 as u64), Raw::Bits(b as u32 as u64)];
            // SAFETY: scalar arguments only; nothing is dereferenced.
            let inputs = unsafe { capture_inputs(sig, &raw) };
            let ret = Raw::Bits(add(a, b) as u32 as u64);
            // SAFETY: as above.
            let primary = unsafe { capture_outputs(sig, &raw, &ret, &inputs, &inputs.deep) };
            Box::new(Invocation {
                seq: i as u64 + 1,
                func: 0,
                tid: 1,
                caller: 0,
                new_fn: &NEW_FN,
                inputs,
                primary,
                errno_before: 0,
                deleting: false,
                fp_env: FpEnv::current(),
            })
        })
        .collect()
}

/// A shadow for `functions` (not started) that holds N invocations and
/// gives every call a minute.
fn fresh_shadow(
    functions: &Arc<Vec<BoundaryFn>>,
    report: Option<std::path::PathBuf>,
) -> Arc<Shadow> {
    let settings = ShadowSettings {
        queue: N,
        queue_bytes: usize::MAX / 2,
        timeout_ms: 60_000,
        summary_every_s: 3600,
    };
    let hooks = ShadowHooks {
        thread_init: no_init,
        caller_name: no_name,
        reload: no_reload,
        take_outgoing: no_outgoing,
    };
    Shadow::new(Arc::clone(functions), settings, report, 8, hooks)
}

/// One round: a fresh shadow, `n` invocations queued, the time from the
/// shadow's start until every one is judged and counted.
fn round(functions: &Arc<Vec<BoundaryFn>>, report: Option<std::path::PathBuf>) -> Duration {
    let shadow = fresh_shadow(functions, report);
    for inv in invocations(functions, N) {
        assert!(shadow.submit(inv), "the queue holds N");
    }
    let t0 = Instant::now();
    shadow.start().expect("the shadow thread");
    shadow.finish();
    t0.elapsed()
}

/// What the ring's slots name: `add`, function 0.
static TARGET: arbiter::ring::FnTarget = arbiter::ring::FnTarget {
    new_fn: &NEW_FN,
    func: 0,
};

/// One round through a ring: a fresh shadow, started, `n` calls pushed by
/// this thread into its own ring (waiting while it is full), the time
/// until every one is judged and counted.
fn ring_round(functions: &Arc<Vec<BoundaryFn>>, report: Option<std::path::PathBuf>) -> Duration {
    let printed = report.is_some();
    use arbiter::ring::{ScalarCall, GPRS, XMMS};
    let shadow = fresh_shadow(functions, report);
    let counts = shadow.thread_counts();
    let fp = ScalarCall::fp_word(FpEnv::current(), false);
    let t0 = Instant::now();
    shadow.start().expect("the shadow thread");
    for i in 0..N as u64 {
        let (a, b) = (i as i32, 7i32);
        let mut gpr = [0u64; GPRS];
        gpr[0] = a as u32 as u64;
        gpr[1] = b as u32 as u64;
        let call = ScalarCall {
            seq: i + 1,
            caller: 0,
            target: &TARGET,
            fp,
            ret: add(a, b) as u32 as u64,
            gpr,
            xmm: [0; XMMS],
        };
        counts.call(0);
        while !counts.submit_scalar(call) {
            std::hint::spin_loop();
        }
    }
    // The shadow thread's own CPU time per call (robust against the other
    // core being busy), once every call is judged: printed with the first
    // round.
    if printed {
        while shadow.judged_so_far() < N as u64 {
            std::thread::yield_now();
        }
        if let Some(ns) = thread_cpu_ns("ddl-shadow") {
            eprintln!(
                "shadow through a ring: {:.0} ns of the shadow thread's CPU per call",
                ns as f64 / N as f64
            );
        }
    }
    shadow.finish();
    let t = t0.elapsed();
    drop(counts);
    t
}

/// CPU time of this process's thread named `name`, in ns
/// (`/proc/self/task/*/schedstat`).
fn thread_cpu_ns(name: &str) -> Option<u64> {
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let stat = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            return stat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// One round of `run` with a report, which must say that every one of
/// the N invocations was judged a match; its time.
fn checked_round(
    what: &str,
    functions: &Arc<Vec<BoundaryFn>>,
    run: fn(&Arc<Vec<BoundaryFn>>, Option<std::path::PathBuf>) -> Duration,
) -> Duration {
    let path = std::env::temp_dir().join(format!("ddl-bench-{what}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let t = run(functions, Some(path.clone()));
    let text = std::fs::read_to_string(&path).expect("the report");
    let _ = std::fs::remove_file(&path);
    let want = format!("\"match\":{N}");
    assert!(
        text.lines().last().is_some_and(|l| l.contains(&want)),
        "{what}: expected {want} in the last summary: {text}"
    );
    t
}

fn shadow_throughput(c: &mut Criterion) {
    NEW_FN.store(
        add as *const () as usize as u64,
        std::sync::atomic::Ordering::Release,
    );
    // As libddl runs the sandbox: it announces handler changes, so the
    // dispositions are re-read only every 1024 calls (shim/src/signals.rs).
    arbiter::sandbox::set_recheck_every(1024);
    let functions = boundary();
    // Once each: every invocation judged a match and counted.
    let t = checked_round("queue", &functions, round);
    eprintln!(
        "shadow: {N} invocations in {:.1} ms: {:.2} M/s",
        t.as_secs_f64() * 1e3,
        N as f64 / t.as_secs_f64() / 1e6
    );
    let t = checked_round("ring", &functions, ring_round);
    eprintln!(
        "shadow through a ring: {N} calls in {:.1} ms: {:.2} M/s",
        t.as_secs_f64() * 1e3,
        N as f64 / t.as_secs_f64() / 1e6
    );
    let mut g = c.benchmark_group("shadow");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("int add(int, int): queue to judged", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| round(&functions, None)).sum())
    });
    g.bench_function("int add(int, int): ring to judged", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| ring_round(&functions, None)).sum())
    });
    g.finish();
}

criterion_group!(benches, shadow_throughput);
criterion_main!(benches);
