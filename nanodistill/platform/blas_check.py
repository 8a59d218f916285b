"""Run by the BLAS self-check in a subprocess with the shim preloaded: mlx matmuls against a
BLAS-free numpy reference (see nanodistill.platform.blas.self_check). Prints one JSON line."""

import ctypes
import json
import os
import sys

import mlx.core as mx
import numpy as np

shim = os.path.realpath(sys.argv[1])
with open("/proc/self/maps") as maps:
    loaded = any(line.rstrip().endswith(shim) for line in maps)
rng = np.random.default_rng(0)
worst: dict[str, float] = {}
failures: list[str] = []


def ref(a, b):
    return np.einsum("...ik,...kj->...ij", a.astype(np.complex128), b.astype(np.complex128), optimize=False)


def check(name, out, a, b, tol, alpha=1.0, beta=0.0, c=None):
    exact = alpha * ref(a, b) + (0.0 if c is None else beta * c.astype(np.complex128))
    scale = abs(alpha) * np.einsum("...ik,...kj->...ij", np.abs(a), np.abs(b), optimize=False)
    if c is not None:
        scale = scale + abs(beta) * np.abs(c)
    got = np.array(out).astype(np.complex128)
    if got.size == exact.size:
        got = got.reshape(exact.shape)
    if got.shape != exact.shape or not np.all(np.isfinite(got)):
        failures.append(f"{name}: shape {got.shape} or non-finite values")
        return
    err = float(np.max(np.abs(got - exact) / (scale + 1e-30)))
    worst[name] = err
    if err > tol:
        failures.append(f"{name}: relative error {err:.3g} > {tol:g}")


def arr(shape, dtype):
    x = rng.standard_normal(shape)
    if dtype == np.complex64:
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


dtypes = [
    ("float32", np.float32, mx.float32, 1e-4),
    ("float64", np.float64, mx.float64, 1e-12),
    ("complex64", np.complex64, mx.complex64, 1e-4),
]
for label, nd, md, tol in dtypes:

    def m(x, md=md):
        return mx.array(x, dtype=md)

    try:
        mx.eval(m(np.ones((2, 2))) @ m(np.ones((2, 2))))
    except Exception:
        continue
    a, b = arr((37, 53), nd), arr((53, 29), nd)
    check(f"{label} plain", m(a) @ m(b), a, b, tol)
    at, bt = arr((53, 37), nd), arr((29, 53), nd)
    check(f"{label} a.T", mx.transpose(m(at)) @ m(b), at.T, b, tol)
    check(f"{label} b.T", m(a) @ mx.transpose(m(bt)), a, bt.T, tol)
    check(f"{label} a.T b.T", mx.transpose(m(at)) @ mx.transpose(m(bt)), at.T, bt.T, tol)
    wide = arr((74, 53), nd)
    check(f"{label} strided rows", m(wide)[::2] @ m(b), wide[::2], b, tol)
    ba, bb = arr((3, 17, 31), nd), arr((3, 31, 9), nd)
    check(f"{label} batched", m(ba) @ m(bb), ba, bb, tol)
    v = arr((1, 53), nd)
    check(f"{label} vector", m(v[0]) @ m(b), v, b, tol)
    big_a, big_b = arr((300, 257), nd), arr((257, 411), nd)
    check(f"{label} large", m(big_a) @ m(big_b), big_a, big_b, tol)
    if label != "complex64":
        c = arr((37, 29), nd)
        out = mx.addmm(m(c), m(a), m(b), alpha=0.5, beta=-1.5)
        check(f"{label} addmm", out, a, b, tol, alpha=0.5, beta=-1.5, c=c)

fast = bool(ctypes.CDLL(shim).nanodistill_blas_fast()) if loaded else False
print(json.dumps({"loaded": loaded, "fast": fast, "worst": worst, "failures": failures}))
