"""The DDL config of the numpy benchmarks (scripts/bench.sh, scripts/numpy-phases.py):
reference BLAS (libblas.so.3) mirrored into the BLAS at argv[1], report at argv[2],
optional `sampling` at argv[3]. The signatures and tolerances of
tests/e2e/numpy.rs (blas_sigs, REL_F64, REL_F32). Prints the JSON."""
import json
import sys


def sigs(t, p):
    return [
        f"{t} cblas_{p}dot(int N, const {t} *X [N > 0 ? 1 + (N - 1) * abs(incX) : 0], int incX, "
        f"const {t} *Y [N > 0 ? 1 + (N - 1) * abs(incY) : 0], int incY)",
        f"void cblas_{p}gemm(int Order, int TransA, int TransB, int M, int N, int K, {t} alpha, "
        f"const {t} *A [M > 0 && K > 0 ? ((Order == 101) == (TransA == 111) ? (M - 1) * lda + K : (K - 1) * lda + M) : 0], int lda, "
        f"const {t} *B [K > 0 && N > 0 ? ((Order == 101) == (TransB == 111) ? (K - 1) * ldb + N : (N - 1) * ldb + K) : 0], int ldb, "
        f"{t} beta, "
        f"{t} *C [inout M > 0 && N > 0 ? (Order == 101 ? (M - 1) * ldc + N : (N - 1) * ldc + M) : 0], int ldc)",
        f"void cblas_{p}gemv(int Order, int TransA, int M, int N, {t} alpha, "
        f"const {t} *A [M > 0 && N > 0 ? (Order == 101 ? (M - 1) * lda + N : (N - 1) * lda + M) : 0], int lda, "
        f"const {t} *X [(TransA == 111 ? N : M) > 0 ? 1 + ((TransA == 111 ? N : M) - 1) * abs(incX) : 0], int incX, "
        f"{t} beta, "
        f"{t} *Y [inout (TransA == 111 ? M : N) > 0 ? 1 + ((TransA == 111 ? M : N) - 1) * abs(incY) : 0], int incY)",
        f"void cblas_{p}syrk(int Order, int Uplo, int Trans, int N, int K, {t} alpha, "
        f"const {t} *A [N > 0 && K > 0 ? ((Order == 101) == (Trans == 111) ? (N - 1) * lda + K : (K - 1) * lda + N) : 0], int lda, "
        f"{t} beta, "
        f"{t} *C [inout N > 0 ? (N - 1) * ldc + N : 0], int ldc)",
    ]
functions = []
for t, p, rel in (("double", "d", 2.0 ** -42), ("float", "s", 2.0 ** -13)):
    for s in sigs(t, p):
        functions.append({"sig": s, "compare": {"float": {"abs": 0.0, "rel": rel}}})
config = {"old": "libblas.so.3", "new": sys.argv[1], "mode": "shadow",
          "functions": functions, "report": sys.argv[2]}
if len(sys.argv) > 3:
    config["sampling"] = float(sys.argv[3])
print(json.dumps(config, indent=1))
