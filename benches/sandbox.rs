//! Criterion benchmarks of one shadow call: a trivial function (`int
//! abs(int)` of a libc loaded with `dlmopen(LM_ID_NEWLM)`, as the new build
//! is) called through `Invoker::call` (libffi, no sandbox) against
//! `Invoker::call_sandboxed` (the C trampoline of arbiter/csrc/sandbox.c),
//! with and without a time limit. The difference is what the sandbox costs
//! per shadow call (BENCHMARKS.md, "The sandboxed call").
//!
//!     cargo bench --bench sandbox

use std::ffi::CString;
use std::hint::black_box;

use arbiter::invoke::Invoker;
use arbiter::marshal::Raw;
use arbiter::sandbox;
use arbiter::signature::{parse_signature, TypeTable};
use criterion::{criterion_group, criterion_main, Criterion};

/// `abs` of a libc in a namespace of its own.
fn abs_in_a_namespace() -> usize {
    let name = CString::new("libc.so.6").unwrap();
    // SAFETY: dlmopen of the system libc into a fresh namespace; the handle
    // is kept for the process's life.
    let h = unsafe { libc::dlmopen(libc::LM_ID_NEWLM, name.as_ptr(), libc::RTLD_NOW) };
    assert!(!h.is_null(), "dlmopen libc.so.6");
    let sym = CString::new("abs").unwrap();
    // SAFETY: a live handle and a NUL-terminated name.
    let f = unsafe { libc::dlsym(h, sym.as_ptr()) } as usize;
    assert_ne!(f, 0, "abs");
    f
}

fn sandboxed_call(c: &mut Criterion) {
    let types = TypeTable::new();
    let sig = parse_signature("int abs(int x)", &types).unwrap();
    let inv = Invoker::new(&sig);
    let f = abs_in_a_namespace() as *const libc::c_void;
    sandbox::thread_init().expect("sandbox");
    // As the shadow thread runs: libddl announces handler changes, the
    // dispositions are re-read every 1024 calls.
    sandbox::set_recheck_every(1024);
    let args = [Raw::Bits((-5i32) as u32 as u64)];
    let mut g = c.benchmark_group("shadow_call");
    g.bench_function("Invoker::call (no sandbox)", |b| {
        // SAFETY: abs(int) -> int, one scalar argument.
        b.iter(|| unsafe { inv.call(f, black_box(&args)) })
    });
    g.bench_function("call_sandboxed, no time limit", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { inv.call_sandboxed(f, black_box(&args), None, 0) }.unwrap())
    });
    g.bench_function("call_sandboxed, timeout 200 ms", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { inv.call_sandboxed(f, black_box(&args), None, 200) }.unwrap())
    });
    g.finish();
}

criterion_group!(benches, sandboxed_call);
criterion_main!(benches);
