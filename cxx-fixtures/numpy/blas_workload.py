"""Deterministic BLAS workload for the DDL numpy test (cxx-fixtures/numpy).

Run with Debian's /usr/bin/python3 and python3-numpy. numpy's
_multiarray_umath links libblas.so.3 and calls its cblas_* functions:
  dot of two 1-D vectors        -> cblas_ddot / cblas_sdot
  2-D @ 2-D                     -> cblas_dgemm / cblas_sgemm
  2-D @ 1-D                     -> cblas_dgemv / cblas_sgemv
  a @ a.T (same buffer)         -> cblas_dsyrk / cblas_ssyrk
All data is non-negative (uniform in [0, 1)), so no cancellation happens and
results computed in a different summation order differ only in the last bits.
Every result is printed as the sha256 of its bytes and a few values (repr).
The largest inner dimension is 512 (the test's tolerance depends on it).
"""
import hashlib
import sys

import numpy as np


def show(label, x):
    x = np.asarray(x)
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
    flat = x.reshape(-1)
    picks = [repr(flat[i].item()) for i in (0, flat.size // 2, flat.size - 1)]
    print(f"{label} {x.dtype} {x.shape} sha256={digest} {' '.join(picks)}")


def run(dtype, seed):
    rng = np.random.default_rng(seed)
    name = np.dtype(dtype).name
    # dot: length 500 and 512
    for n in (500, 512):
        x = rng.random(n).astype(dtype)
        y = rng.random(n).astype(dtype)
        show(f"{name} dot n={n}", np.dot(x, y))
    # matmul: (200 x 300) @ (300 x 250), (256 x 512) @ (512 x 64)
    for m, k, n in ((200, 300, 250), (256, 512, 64)):
        a = rng.random((m, k)).astype(dtype)
        b = rng.random((k, n)).astype(dtype)
        show(f"{name} matmul {m}x{k}x{n}", a @ b)
    # matrix-vector: (400 x 300) @ (300,), and a transposed one (300 x 400).T @ (300,)
    a = rng.random((400, 300)).astype(dtype)
    v = rng.random(300).astype(dtype)
    show(f"{name} matvec 400x300", a @ v)
    at = rng.random((300, 400)).astype(dtype)
    show(f"{name} matvec (300x400).T", at.T @ v)
    # a @ a.T: syrk, 240 x 500
    s = rng.random((240, 500)).astype(dtype)
    show(f"{name} a@a.T 240x500", s @ s.T)


def main():
    print(f"numpy {np.__version__}")
    run(np.float64, 20261122)
    run(np.float32, 7)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
