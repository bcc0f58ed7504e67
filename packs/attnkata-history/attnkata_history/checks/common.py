"""Helpers the history pack's checks share: plain softmax attention, tolerances, shapes."""

from __future__ import annotations

import copy

import numpy as np

from attnkata.compare import TOLERANCES, describe


def softmax_rows(s: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``; a row that is all −inf gives zeros."""
    m = np.max(s, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    total = e.sum(axis=axis, keepdims=True)
    return e / np.where(total == 0, 1, total)


def dense_attention(q, k, v, mask=None):
    """softmax(q·kᵀ/√d, masked with −inf)·v in float64, the dense answer sparse katas must equal."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    return softmax_rows(s) @ v


def tol(dtype, scale: float = 1.0) -> tuple[float, float]:
    """The dtype's tolerance, the absolute part widened by ``scale`` (the size of the values)."""
    rtol, atol = TOLERANCES.get(np.dtype(dtype).name, TOLERANCES["float32"])
    return rtol, atol * max(1.0, scale)


def call_shaped(ctx, name: str, *args, **kwargs):
    """The target's ``name(*args)``, failing unless it has the reference's structure
    (arrays of the same shapes and dtypes); values are left to the property being checked."""
    got = ctx.call(name, *args, **kwargs)
    want = ctx.reference(name, *args, **kwargs)
    if not _same_structure(got, want):
        ctx.match(got, want, describe(name, args, kwargs),
                  rerun=lambda ns: getattr(ns, name)(*copy.deepcopy(args), **copy.deepcopy(kwargs)))
    return got


def _same_structure(got, want) -> bool:
    if isinstance(want, tuple):
        return (isinstance(got, (tuple, list)) and len(got) == len(want)
                and all(_same_structure(g, w) for g, w in zip(got, want)))
    if isinstance(want, np.ndarray):
        return isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == want.dtype
    return True


def loglog_slope(sizes, values) -> float:
    """Least-squares slope of log(value) against log(size): 1 is linear growth, 2 quadratic."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1.0))
    return float(np.polyfit(x, y, 1)[0])


def peak_slope(ctx, name: str, make_args, sizes) -> tuple[float, list[int], str]:
    """tracemalloc peaks (beyond the output) of the target's ``name(*make_args(n))`` for each
    size n, measured in the learner's worker; returns (log-log slope, peaks, figures)."""
    peaks = []
    for n in sizes:
        seen = ctx.probe("attnkata.probes", "peak_call", name, make_args(n),
                         what=f"{name} at N = {n} under tracemalloc")
        peaks.append(max(seen["peak"] - seen["out_bytes"], 1))
    figures = ", ".join(f"N={n}: {p / 2**20:.2f} MiB" for n, p in zip(sizes, peaks))
    return loglog_slope(sizes, peaks), peaks, figures
