"""Level 0 · qk_scores: every query against every key, q·kᵀ."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import qkv


@check("matches q·kᵀ on random shapes, dtypes and scales")
def qk_matches_reference(ctx):
    @ctx.given(arrays=qkv())
    def prop(arrays):
        q, k, _ = arrays
        ctx.expect("qk_scores", q, k)

    prop()


@check("broadcasts leading dimensions like matmul")
def qk_broadcasts(ctx):
    rng = ctx.rng
    q = rng.standard_normal((2, 1, 3, 4)).astype(np.float32)
    k = rng.standard_normal((1, 3, 5, 4)).astype(np.float32)
    ctx.expect("qk_scores", q, k)


@check("one query and one key give their dot product")
def qk_single_token(ctx):
    q = np.array([[1.0, 2.0, 3.0]])
    k = np.array([[4.0, -5.0, 6.0]])
    ctx.expect("qk_scores", q, k)


def _kq(q, k):
    return k @ np.swapaxes(q, -1, -2)


def _over_sequence(q, k):
    return np.swapaxes(q, -1, -2) @ k


def _prescaled(q, k):
    return (q @ np.swapaxes(k, -1, -2)) / np.asarray(np.sqrt(q.shape[-1]), dtype=q.dtype)


def _flattened(q, k):
    d = q.shape[-1]
    return (q.reshape(-1, d) @ k.reshape(-1, d).T).astype(q.dtype)



qk_strided_inputs = layout_check(
    "qk_scores", lambda ctx: [((ctx.rng.standard_normal((2, 5, 8)).astype(np.float32),
                                ctx.rng.standard_normal((2, 7, 8)).astype(np.float32)), {}),
                              ((ctx.rng.standard_normal((3, 4)), ctx.rng.standard_normal((6, 4))),
                               {})],
    "q and k as transposed, sliced and Fortran-ordered views of other buffers",
    id="qk_strided_inputs", layouts=("transposed", "sliced", "fortran"))


QK_SCORES = Kata(
    id="qk_scores",
    level=0,
    title="QKᵀ: how well each query matches each key",
    path="level0/qk_scores.py",
    entries=("qk_scores",),
    checks=(qk_matches_reference, qk_broadcasts, qk_single_token,
            qk_strided_inputs),
    predictions=(
        Prediction("scores_shape", "q is [2, 3, 8] and k is [2, 5, 8]: the shape of qk_scores(q, k)",
                   (2, 3, 5), kind="exact",
                   why="One score per (query, key) pair, per batch element: [..., N_q, N_k]."),
        Prediction("unscaled_variance", "q, k rows are standard normal with d = 64: the variance "
                   "of one unscaled score q·k", 64, rel_tol=0.1,
                   why="A sum of d independent products, each with variance 1: variance d."),
    ),
    misconceptions=(
        Misconception("keys_times_queries", "scores transposed (k·qᵀ instead of q·kᵀ)",
                      {"qk_scores": _kq},
                      "Rows must be queries and columns keys: s[i, j] = q_i · k_j."),
        Misconception("contract_over_sequence", "contracted over the sequence axis (qᵀ·k)",
                      {"qk_scores": _over_sequence},
                      "The dot product runs over the feature axis d, the last one of both q and k."),
        Misconception("scaled_too_early", "divided by √d already (that is the next kata)",
                      {"qk_scores": _prescaled},
                      "qk_scores returns raw dot products; scaled_scores divides by √d."),
        Misconception("mixed_batches", "flattened the batch, so queries meet other batches' keys",
                      {"qk_scores": _flattened},
                      "Leading dims are independent problems: use a batched matmul "
                      "(q @ k.swapaxes(-1, -2)) or einsum('...id,...jd->...ij')."),
    ),
    claims=(
        Claim("scores-are-dot-products", "Each score s[i, j] is the dot product of query i with key j.",
              scope="exact", source="vaswani-2017",
              not_claimed="Nothing about scale: unscaled scores grow with d (next kata)."),
    ),
    hints=(
        "Scores pair every query with every key: for q [N_q, d] and k [N_k, d] the result is [N_q, N_k].",
        "Transpose only the last two axes of k: np.swapaxes(k, -1, -2), so leading batch axes stay put.",
        "q @ np.swapaxes(k, -1, -2) is the whole answer; `@` broadcasts leading dimensions.",
    ),
)
