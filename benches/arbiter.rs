//! Criterion benchmarks of the arbiter's pieces, without preloading anything:
//! signature parsing, capture of a call's inputs, comparison of outcomes, and
//! the hand-off queue. End-to-end figures (DDL in a real process against the
//! plain call and other tools) come from `scripts/bench.sh` with the
//! hot-path work.
//!
//!     cargo bench --bench arbiter

use std::hint::black_box;

use arbiter::compare::{judge, Comparator, CompareSet, Outcome, Spec};
use arbiter::marshal::{capture_inputs, Raw};
use arbiter::signature::{parse_signature, TypeTable};
use arbiter::types::{Scalar, Type};
use arbiter::value::Value;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const DGEMM: &str = "void cblas_dgemm(int Order, int TransA, int TransB, int M, int N, int K, double alpha, \
    const double *A [(Order == 101) == (TransA == 111) ? (M - 1) * lda + K : (K - 1) * lda + M], int lda, \
    const double *B [(Order == 101) == (TransB == 111) ? (K - 1) * ldb + N : (N - 1) * ldb + K], int ldb, \
    double beta, double *C [inout (Order == 101) ? (M - 1) * ldc + N : (N - 1) * ldc + M], int ldc)";

fn signature_parse(c: &mut Criterion) {
    let types = TypeTable::new();
    let mut g = c.benchmark_group("signature_parse");
    g.bench_function("int add(int, int)", |b| {
        b.iter(|| parse_signature(black_box("int calc_add(int a, int b)"), &types).unwrap())
    });
    g.bench_function("cblas_dgemm", |b| {
        b.iter(|| parse_signature(black_box(DGEMM), &types).unwrap())
    });
    g.finish();
}

fn capture(c: &mut Criterion) {
    let types = TypeTable::new();
    let add = parse_signature("int calc_add(int a, int b)", &types).unwrap();
    let mut g = c.benchmark_group("capture_inputs");
    g.bench_function("int add(int, int)", |b| {
        let raw = [Raw::Bits(3), Raw::Bits(4)];
        // SAFETY: scalar arguments only; nothing is dereferenced.
        b.iter(|| unsafe { capture_inputs(&add, black_box(&raw)) })
    });
    let enc = parse_signature(
        "size_t enc(const uint8_t *src [in len], size_t len)",
        &types,
    )
    .unwrap();
    for len in [64usize, 4096, 65536] {
        let src = vec![0x5au8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("in buffer", len), &len, |b, &len| {
            let raw = [Raw::Bits(src.as_ptr() as u64), Raw::Bits(len as u64)];
            // SAFETY: `src` holds `len` bytes, as the annotation says.
            b.iter(|| unsafe { capture_inputs(&enc, black_box(&raw)) })
        });
        g.bench_with_input(BenchmarkId::new("memcpy (floor)", len), &len, |b, _| {
            b.iter(|| black_box(src.clone()))
        });
    }
    g.finish();
}

fn compare(c: &mut Criterion) {
    let types = TypeTable::new();
    let mut g = c.benchmark_group("judge");
    let sq = parse_signature("double calc_sqrt(double x)", &types).unwrap();
    let ulps = Comparator {
        func: CompareSet {
            ret: Some(Spec::Ulps(2)),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = Outcome {
        ret: Value::F64(12.0),
        outputs: vec![Value::None],
        errno: None,
        exception: None,
        outgoing: None,
    };
    let s = Outcome {
        ret: Value::F64(12.000000000000002),
        outputs: vec![Value::None],
        errno: None,
        exception: None,
        outgoing: None,
    };
    g.bench_function("double ret, ulps 2", |b| {
        b.iter(|| judge(&sq, &ulps, black_box(&a), black_box(&s)))
    });
    let fill = parse_signature("void fill(double *out [out n], int n)", &types).unwrap();
    let bytes: Vec<u8> = (0..4096).flat_map(|i| (i as f64).to_le_bytes()).collect();
    let buf = Value::Buf {
        elem: Type::Scalar(Scalar::F64),
        bytes,
    };
    let o = Outcome {
        ret: Value::None,
        outputs: vec![buf, Value::None],
        errno: None,
        exception: None,
        outgoing: None,
    };
    g.throughput(Throughput::Elements(4096));
    g.bench_function("4096 doubles, exact", |b| {
        b.iter(|| judge(&fill, &Comparator::default(), black_box(&o), black_box(&o)))
    });
    g.finish();
}

fn queue(c: &mut Criterion) {
    let q = crossbeam_queue::ArrayQueue::new(65536);
    c.bench_function("queue push+pop (hand-off)", |b| {
        b.iter(|| {
            q.push(black_box(Box::new(7u64))).unwrap();
            black_box(q.pop())
        })
    });
}

/// A scalar call through a thread's ring (the caller's push, the shadow's
/// pop; one thread here, so this is the instruction cost without the
/// cross-core transfer), and a capture-log record encoded and framed.
fn ring_and_log(c: &mut Criterion) {
    use arbiter::ring::{FnTarget, Ring, ScalarCall, GPRS, XMMS};
    use arbiter::shadow::FpEnv;
    use std::sync::atomic::AtomicU64;
    static SLOT: AtomicU64 = AtomicU64::new(0);
    static TARGET: FnTarget = FnTarget {
        new_fn: &SLOT,
        func: 0,
    };
    let ring = Ring::new(1024);
    let call = ScalarCall {
        seq: 1,
        caller: 0x1234,
        target: &TARGET,
        fp: ScalarCall::fp_word(FpEnv::current(), false),
        ret: 7,
        gpr: [3; GPRS],
        xmm: [0; XMMS],
    };
    c.bench_function("ring push+pop (scalar call)", |b| {
        b.iter(|| {
            // SAFETY: this thread is the ring's only producer and consumer.
            unsafe {
                ring.push(black_box(call));
                black_box(ring.pop())
            }
        })
    });
    use arbiter::capture::{encode, Call, Entry};
    use arbiter::marshal::Inputs;
    let entry = Entry::Call(Box::new(Call {
        seq: 1,
        func: 0,
        symbol: "calc_add".into(),
        version: None,
        tid: 1,
        caller: Some("app+0x1234".into()),
        inputs: Inputs {
            values: vec![Value::Int(Scalar::I32, 3), Value::Int(Scalar::I32, 4)],
            counts: vec![],
            deep: vec![],
            structs: vec![],
        },
        primary: Outcome {
            ret: Value::Int(Scalar::I32, 7),
            outputs: vec![],
            errno: None,
            exception: None,
            outgoing: None,
        },
        errno_before: 0,
        deleting: false,
        fp_env: FpEnv::current(),
        masks: vec![],
        inputs_cut: false,
    }));
    c.bench_function("capture log: encode a scalar call", |b| {
        b.iter(|| black_box(encode(black_box(&entry))))
    });
}

criterion_group!(
    benches,
    signature_parse,
    capture,
    compare,
    queue,
    ring_and_log
);
criterion_main!(benches);
