//! The real client: Debian's python3-numpy on reference BLAS (old) mirrored
//! into OpenBLAS (new).
//!
//! Findings on Debian 12 (numpy 1.24.2): `numpy/core/_multiarray_umath*.so`
//! has `DT_NEEDED libblas.so.3` and imports 22 `cblas_*` symbols (c/d/s/z
//! axpy, dot(c/u_sub), gemm, gemv, syrk). Python loads it with RTLD_NOW on
//! `import numpy`, so the old component always arrives late. With
//! `LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blas` they bind to reference
//! BLAS's `libblas.so.3` (which carries CBLAS). The workload
//! (`cxx-fixtures/numpy/blas_workload.py`) calls, as seen with gdb:
//! cblas_ddot x2, cblas_sdot x3 (one is numpy's import-time `_sanity_check`,
//! a float32 dot of length 2), cblas_dgemm/sgemm x2 (RowMajor, NoTrans),
//! cblas_dgemv/sgemv x2 (ColMajor+Trans and RowMajor+Trans),
//! cblas_dsyrk/ssyrk x1 (`a @ a.T`: RowMajor, Upper, NoTrans).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::expect::{want, Want};
use crate::harness::*;

const PYTHON: &str = "/usr/bin/python3";
const REF_BLAS_DIR: &str = "/usr/lib/x86_64-linux-gnu/blas";
const OPENBLAS_DIR: &str = "/usr/lib/x86_64-linux-gnu/openblas-pthread";
const OPENBLAS: &str = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3";

/// Signatures of the cblas functions numpy calls, for `T` = double or
/// float. Enums (CBLAS_ORDER 101/102, CBLAS_TRANSPOSE 111/112/113,
/// CBLAS_UPLO 121/122) are `int`. Sizes are exact, so capture never reads
/// past the caller's vectors and matrices; a dimension of zero gives zero.
fn blas_sigs(t: &str, p: &str) -> Vec<String> {
    vec![
        format!(
            "{t} cblas_{p}dot(int N, const {t} *X [N > 0 ? 1 + (N - 1) * abs(incX) : 0], int incX, \
             const {t} *Y [N > 0 ? 1 + (N - 1) * abs(incY) : 0], int incY)"
        ),
        format!(
            "void cblas_{p}gemm(int Order, int TransA, int TransB, int M, int N, int K, {t} alpha, \
             const {t} *A [M > 0 && K > 0 ? ((Order == 101) == (TransA == 111) ? (M - 1) * lda + K : (K - 1) * lda + M) : 0], int lda, \
             const {t} *B [K > 0 && N > 0 ? ((Order == 101) == (TransB == 111) ? (K - 1) * ldb + N : (N - 1) * ldb + K) : 0], int ldb, \
             {t} beta, \
             {t} *C [inout M > 0 && N > 0 ? (Order == 101 ? (M - 1) * ldc + N : (N - 1) * ldc + M) : 0], int ldc)"
        ),
        format!(
            "void cblas_{p}gemv(int Order, int TransA, int M, int N, {t} alpha, \
             const {t} *A [M > 0 && N > 0 ? (Order == 101 ? (M - 1) * lda + N : (N - 1) * lda + M) : 0], int lda, \
             const {t} *X [(TransA == 111 ? N : M) > 0 ? 1 + ((TransA == 111 ? N : M) - 1) * abs(incX) : 0], int incX, \
             {t} beta, \
             {t} *Y [inout (TransA == 111 ? M : N) > 0 ? 1 + ((TransA == 111 ? M : N) - 1) * abs(incY) : 0], int incY)"
        ),
        format!(
            "void cblas_{p}syrk(int Order, int Uplo, int Trans, int N, int K, {t} alpha, \
             const {t} *A [N > 0 && K > 0 ? ((Order == 101) == (Trans == 111) ? (N - 1) * lda + K : (K - 1) * lda + N) : 0], int lda, \
             {t} beta, \
             {t} *C [inout N > 0 ? (N - 1) * ldc + N : 0], int ldc)"
        ),
    ]
}

/// The tolerance, from the numerics rather than by trial:
///
/// Every result of the workload is a dot product of length K <= 512 (dot:
/// n <= 512; gemm: K <= 512; gemv: 300 or 400; syrk: 500), with alpha = 1
/// and beta = 0. The data is uniform in [0, 1), so all products are
/// non-negative: there is no cancellation and sum |x_i y_i| = |sum x_i y_i|.
/// Any summation order (reference BLAS's left-to-right loops, OpenBLAS's
/// blocked SIMD kernels with FMA) then has a relative error of at most
/// gamma_K = K u / (1 - K u) against the exact value, u the unit roundoff
/// (2^-53 for double, 2^-24 for float), and two such results differ by at
/// most 2 gamma_K relative: for K = 512 just above 2 * 512 * u, i.e. 2^-43
/// (1.1e-13) for double and 2^-14 (6.1e-5) for float. We allow twice that,
/// 2^-42 and 2^-13, with abs = 0 (no result is near zero): a margin for the
/// 1 / (1 - K u) factor, and still orders of magnitude below what a wrong
/// result (a wrong element, stride or block) would give, which is O(1)
/// relative. The largest differences measured between the two builds on
/// this workload are 2.4e-15 (double) and 1.4e-6 (float) relative, about a
/// hundredth of the bound.
const REL_F64: f64 = 2.273_736_754_432_320_6e-13; // 2^-42
const REL_F32: f64 = 1.220_703_125e-4; // 2^-13

fn numpy_config(tolerant: bool) -> Value {
    let mut functions = Vec::new();
    for (t, p, rel) in [("double", "d", REL_F64), ("float", "s", REL_F32)] {
        for sig in blas_sigs(t, p) {
            if tolerant {
                functions.push(
                    json!({ "sig": sig, "compare": { "float": { "abs": 0.0, "rel": rel } } }),
                );
            } else {
                functions.push(json!({ "sig": sig, "compare": "exact" }));
            }
        }
    }
    json!({
        "old": "libblas.so.3",
        "new": OPENBLAS,
        "mode": "shadow",
        "functions": functions,
    })
}

/// Calls the workload makes (see the module comment).
const NUMPY_CALLS: &[(&str, u64)] = &[
    ("cblas_ddot", 2),
    ("cblas_sdot", 3),
    ("cblas_dgemm", 2),
    ("cblas_sgemm", 2),
    ("cblas_dgemv", 2),
    ("cblas_sgemv", 2),
    ("cblas_dsyrk", 1),
    ("cblas_ssyrk", 1),
];

fn have_numpy() -> bool {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", "import numpy"])
        .env_remove("LD_PRELOAD")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok && Path::new(REF_BLAS_DIR).join("libblas.so.3").exists() && Path::new(OPENBLAS).exists()
}

/// Makes sure python3-numpy, reference BLAS and OpenBLAS are installed
/// (installing them when root). Err: the reason to skip.
fn ensure_numpy() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if have_numpy() {
                return Ok(());
            }
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err("python3-numpy libblas3 libopenblas0-pthread are not installed and we are not root".into());
            }
            let status = std::process::Command::new("sh")
                .args([
                    "-c",
                    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-numpy libblas3 libopenblas0-pthread",
                ])
                .status()
                .map_err(|e| format!("cannot run apt-get: {e}"));
            match status {
                Ok(s) if s.success() && have_numpy() => Ok(()),
                Ok(s) => panic!("installing python3-numpy libblas3 libopenblas0-pthread failed ({s})"),
                Err(e) => panic!("{e}"),
            }
        })
        .clone()
}

fn skip_loudly(test: &str, why: &str) {
    eprintln!("\n**************************************************************");
    eprintln!("SKIPPED {test}: {why}");
    eprintln!("(run the tests as root, or install them: apt-get install python3-numpy libblas3 libopenblas0-pthread)");
    eprintln!("**************************************************************\n");
}

fn workload() -> PathBuf {
    repo().join("cxx-fixtures/numpy/blas_workload.py")
}

fn python_app() -> App {
    App::new(PYTHON)
        .arg(workload())
        .env("LD_LIBRARY_PATH", REF_BLAS_DIR)
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .timeout(Duration::from_secs(600))
}

fn tolerant_wants() -> Vec<Want> {
    NUMPY_CALLS.iter().map(|(f, n)| want(f, *n, 0)).collect()
}

/// numpy imported after start (python loads BLAS on `import numpy`: the old
/// component arrives late). Output byte-identical; with the tolerance above,
/// every call mirrored and no mismatch.
#[test]
fn numpy_blas() {
    if let Err(why) = ensure_numpy() {
        return skip_loudly("numpy_blas", &why);
    }
    let tmp = TempDir::new("numpy");
    let (plain, _, report) = run_both(&tmp, &python_app(), numpy_config(true));
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("a@a.T"),
        "the workload did not run to the end"
    );
    assert_summary(&report, &tolerant_wants());
}

/// Which cblas function computed each line of the workload's output.
fn function_of_line(line: &str) -> Option<&'static str> {
    let (p, rest) = if let Some(r) = line.strip_prefix("float64 ") {
        ("d", r)
    } else if let Some(r) = line.strip_prefix("float32 ") {
        ("s", r)
    } else {
        return None;
    };
    let f = match (p, rest.split(' ').next()?) {
        ("d", "dot") => "cblas_ddot",
        ("s", "dot") => "cblas_sdot",
        ("d", "matmul") => "cblas_dgemm",
        ("s", "matmul") => "cblas_sgemm",
        ("d", "matvec") => "cblas_dgemv",
        ("s", "matvec") => "cblas_sgemv",
        ("d", "a@a.T") => "cblas_dsyrk",
        ("s", "a@a.T") => "cblas_ssyrk",
        _ => return None,
    };
    Some(f)
}

/// The same with exact comparison: the real last-bit differences between
/// reference BLAS and OpenBLAS are reported.
///
/// What to expect is measured, not hard-coded (OpenBLAS picks its kernels
/// by CPU): the workload also runs directly on OpenBLAS (no libddl), and
/// every result line that differs from the reference BLAS run is one call
/// whose outcome differs. For the matrix results (gemm, syrk: tens of
/// thousands of elements each) the shadow must report exactly those calls;
/// for dot and gemv (a single value or a vector, where a different buffer
/// alignment in the shadow could conceivably change OpenBLAS's summation
/// order) at most the calls made, and at least one mismatch overall.
#[test]
fn numpy_blas_exact_reports_last_bit_differences() {
    if let Err(why) = ensure_numpy() {
        return skip_loudly("numpy_blas_exact_reports_last_bit_differences", &why);
    }
    let tmp = TempDir::new("numpy-exact");
    let direct = python_app().env("LD_LIBRARY_PATH", OPENBLAS_DIR);
    let on_openblas = run(
        &direct,
        &[],
        None,
        tmp.path(),
        "workload on OpenBLAS directly",
    );
    let (plain, ddl, report) = run_both(&tmp, &python_app(), numpy_config(false));
    assert!(on_openblas.status.success(), "{on_openblas:?}");
    let a = String::from_utf8_lossy(&plain.stdout).into_owned();
    let b = String::from_utf8_lossy(&on_openblas.stdout).into_owned();
    let mut differing: BTreeMap<&str, u64> = BTreeMap::new();
    for (x, y) in a.lines().zip(b.lines()) {
        if let Some(f) = function_of_line(x) {
            *differing.entry(f).or_default() += u64::from(x != y);
        }
    }
    assert_invariants(&report);
    let counts = report.counts();
    let mut errors = Vec::new();
    for (f, n) in NUMPY_CALLS {
        let c = counts.get(*f).copied().unwrap_or_default();
        if c.calls != *n
            || c.mirrored != *n
            || c.shadow_fault + c.shadow_timeout + c.dropped + c.unmirrored + c.skipped != 0
        {
            errors.push(format!(
                "{f}: expected {n} calls, all mirrored and judged; got {c:?}"
            ));
        }
        let d = differing.get(f).copied().unwrap_or(0);
        let matrix = f.ends_with("gemm") || f.ends_with("syrk");
        if matrix && c.mismatch != d {
            errors.push(format!(
                "{f}: {d} of its results differ between reference BLAS and OpenBLAS, but {} mismatches were reported",
                c.mismatch
            ));
        }
        if report.records_of(f).len() as u64 != c.mismatch {
            errors.push(format!(
                "{f}: {} mismatches but {} records",
                c.mismatch,
                report.records_of(f).len()
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "{}\n  {}\ndiffering results on OpenBLAS: {differing:?}",
        report.path.display(),
        errors.join("\n  ")
    );
    let total: u64 = counts.values().map(|c| c.mismatch).sum();
    assert!(
        total > 0,
        "exact comparison found no difference between reference BLAS and OpenBLAS: {counts:?}"
    );
    for r in &report.records {
        assert_eq!(r["verdict"], json!("mismatch"), "{r}");
        assert_eq!(r["pid"].as_u64(), Some(ddl.pid as u64), "{r}");
        let f = r["function"].as_str().unwrap_or("");
        let out = if f.ends_with("dot") {
            "ret"
        } else if f.ends_with("gemv") {
            "Y["
        } else {
            "C["
        };
        let paths: Vec<&str> = r["diffs"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["path"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            paths.len() == 1 && paths[0].starts_with(out),
            "a {f} difference is in its output {out}: {r}"
        );
    }
}

/// The old component loaded before main (preloaded after libddl), numpy's
/// extension (the client) arriving late: its slots must be rebound when it
/// arrives.
#[test]
fn numpy_blas_old_loaded_at_start() {
    if let Err(why) = ensure_numpy() {
        return skip_loudly("numpy_blas_old_loaded_at_start", &why);
    }
    let tmp = TempDir::new("numpy-early");
    let app = python_app().preload(Path::new(REF_BLAS_DIR).join("libblas.so.3"));
    let (_, _, report) = run_both(&tmp, &app, numpy_config(true));
    assert_summary(&report, &tolerant_wants());
}
