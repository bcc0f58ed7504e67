"""Helpers shared by the level-1 spec modules (not katas themselves)."""

from __future__ import annotations

import copy

import numpy as np

from attnkata.compare import TOLERANCES, describe

# Masks take only integers: there is no input array to mutate, and echoing the first
# argument returns an int, so the "mutate" fake does not apply.
MASK_FAKES = ("zeros", "echo", "constant", "random")


def causal(n_q: int, n_k: int) -> np.ndarray:
    """The causal mask, aligned to the end (the spec's own copy, for properties)."""
    return np.arange(n_k)[None, :] <= np.arange(n_q)[:, None] + (n_k - n_q)


def call_shaped(ctx, name: str, *args, **kwargs):
    """The target's ``name(*args)``, failing unless it is an array of the reference's
    shape and dtype (values are not compared: property checks judge those)."""
    got = ctx.call_soon(name, *args, **kwargs)
    want = ctx.reference(name, *args, **kwargs)
    got = got()
    if not (isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == want.dtype):
        ctx.match(got, want, describe(name, args, kwargs),
                  rerun=lambda ns: getattr(ns, name)(*copy.deepcopy(args), **copy.deepcopy(kwargs)))
    return got


def attention_tol(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """The dtype's tolerance, widened by the conditioning of softmax attention.

    Rounding the scores by ε·|s| moves the output by up to about ε·|s|·|v|, so two correct
    float32 implementations (scale q first, or the scores; einsum or matmul) differ by that
    much when the scores are in the thousands. Measured: at most 1.6·ε·max|s|·max|v| over
    20,000 random cases; the tolerance allows 4×.
    """
    rtol, atol = TOLERANCES.get(np.dtype(q.dtype).name, TOLERANCES["float32"])
    if q.size == 0 or k.size == 0 or v.size == 0:
        return rtol, atol
    s_max = float(np.abs(q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64)).max())
    s_max /= np.sqrt(q.shape[-1])
    eps = float(np.finfo(q.dtype).eps)
    return rtol, atol + 4 * eps * max(1.0, s_max) * float(np.abs(v).max())


def rope_tol(x: np.ndarray, positions: np.ndarray) -> tuple[float, float]:
    """The dtype's tolerance, widened for angles computed in x's own dtype.

    An angle p·f rounded in float32 is off by about ε·p, which moves the output by
    ε·p·|x|: harmless, but above 1e-5 when |x| is large. Measured: at most
    0.84·ε·max p·max|x| over 20,000 random cases; the tolerance allows 4×.
    """
    rtol, atol = TOLERANCES.get(np.dtype(x.dtype).name, TOLERANCES["float32"])
    if x.size == 0:
        return rtol, atol
    eps = float(np.finfo(x.dtype).eps)
    p_max = float(np.abs(np.asarray(positions)).max(initial=1))
    return rtol, atol + 4 * eps * max(1.0, p_max) * float(np.abs(x).max())
