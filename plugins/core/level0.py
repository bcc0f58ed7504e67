"""Level 0 — Scores: QKᵀ, the 1/√d scale, and a softmax that never overflows."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, filled, qkv, seeds, sizes

LEVEL = (0, "Scores")

# ---------------------------------------------------------------------------
# qk_scores
# ---------------------------------------------------------------------------


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


QK_SCORES = Kata(
    id="qk_scores",
    level=0,
    title="QKᵀ: how well each query matches each key",
    path="level0/qk_scores.py",
    entries=("qk_scores",),
    checks=(qk_matches_reference, qk_broadcasts, qk_single_token),
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

# ---------------------------------------------------------------------------
# scaled_scores
# ---------------------------------------------------------------------------


@check("matches q·kᵀ/√d on random shapes, dtypes and scales")
def scaled_matches_reference(ctx):
    @ctx.given(arrays=qkv())
    def prop(arrays):
        q, k, _ = arrays
        ctx.expect("scaled_scores", q, k)

    prop()


@check("with unit-variance inputs the scaled scores have variance near 1, at several d")
def scaled_variance_near_one(ctx):
    for d in (16, 64, 256):
        q = ctx.rng.standard_normal((512, d))
        k = ctx.rng.standard_normal((512, d))
        s = ctx.call("scaled_scores", q, k)
        ctx.expect("scaled_scores", q[:4], k[:4])
        var = float(np.var(s))
        if not 0.85 < var < 1.15:
            ctx.fail(f"scaled_scores: with standard-normal q, k and d = {d}, the scores' "
                     f"variance is {var:.3g}; dividing by √d keeps it near 1.")


def _unscaled(q, k):
    return q @ np.swapaxes(k, -1, -2)


def _by_d(q, k):
    return (q @ np.swapaxes(k, -1, -2)) / np.asarray(q.shape[-1], dtype=q.dtype)


def _times_sqrt_d(q, k):
    return (q @ np.swapaxes(k, -1, -2)) * np.asarray(np.sqrt(q.shape[-1]), dtype=q.dtype)


def _by_sqrt_n(q, k):
    return (q @ np.swapaxes(k, -1, -2)) / np.asarray(np.sqrt(k.shape[-2]), dtype=q.dtype)


SCALED_SCORES = Kata(
    id="scaled_scores",
    level=0,
    title="Dividing by √d keeps softmax out of saturation",
    path="level0/scaled_scores.py",
    entries=("scaled_scores",),
    checks=(scaled_matches_reference, scaled_variance_near_one),
    predictions=(
        Prediction("scaled_variance", "standard-normal q, k with d = 64: the variance of one "
                   "scaled score q·k/√d", 1.0, rel_tol=0.1,
                   why="Dividing by √d divides the variance d by d."),
        Prediction("scale_factor_d64", "the number every raw score is divided by when d = 64", 8.0,
                   rel_tol=1e-6, why="√64 = 8."),
    ),
    misconceptions=(
        Misconception("forgot_scale", "forgot the 1/√d scaling", {"scaled_scores": _unscaled},
                      "Raw dot products have variance d; softmax of such large scores is "
                      "nearly one-hot and its gradients vanish. Divide by √d."),
        Misconception("divided_by_d", "divided by d instead of √d", {"scaled_scores": _by_d},
                      "The standard deviation of q·k is √d, so that is what to divide by."),
        Misconception("multiplied_by_sqrt_d", "multiplied by √d instead of dividing",
                      {"scaled_scores": _times_sqrt_d}, "The scale is 1/√d."),
        Misconception("scaled_by_sequence", "scaled by √N_k (the number of keys) instead of √d",
                      {"scaled_scores": _by_sqrt_n},
                      "d is the feature width, q.shape[-1], not the number of keys."),
    ),
    claims=(
        Claim("inv-sqrt-d-unit-variance",
              "Dividing by √d keeps the scores' variance near 1 for unit-variance inputs, at any d.",
              scope="toy", source="vaswani-2017", evidence=("scaled_variance_near_one",),
              not_claimed="Real activations are not independent standard normals; this is "
                          "the reasoning behind the scale, sampled at d = 16, 64, 256."),
    ),
    hints=(
        "d is the last dimension of q (and of k).",
        "Keep the dtype: a float64 np.sqrt(d) multiplied into a float32 array is fine, "
        "but np.float64 arrays are not; check what you return.",
        "scaled_scores(q, k) = qk_scores(q, k) / np.sqrt(d); you may import your qk_scores: "
        "`from .qk_scores import qk_scores`.",
    ),
)

# ---------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------


@st.composite
def _logits(draw):
    shape = tuple(draw(st.lists(sizes(1, 9), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    x = filled(shape, dtype, draw(st.sampled_from((1.0, 10.0, 1000.0))), draw(seeds()))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return x, axis


@check("matches a stable softmax on random shapes, axes and scales up to ±1000s")
def softmax_matches_reference(ctx):
    @ctx.given(case=_logits())
    def prop(case):
        x, axis = case
        ctx.expect("softmax", x, axis=axis)

    prop()


@check("the default axis is the last one")
def softmax_default_axis(ctx):
    x = ctx.rng.standard_normal((3, 4)).astype(np.float32)
    ctx.expect("softmax", x)


@check("huge logits do not overflow: softmax([1000, 1000]) = [0.5, 0.5]")
def softmax_no_overflow(ctx):
    ctx.expect("softmax", np.array([1000.0, 1000.0]))
    ctx.expect("softmax", np.array([[1000.0, -1000.0, 999.0], [-1e4, -1e4, -1e4]], dtype=np.float32))


@check("a row of all -inf gives zeros, not NaN; other rows are unaffected")
def softmax_empty_row(ctx):
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 1.0]])
    ctx.expect("softmax", x)


@check("every row sums to 1 and every entry lies in [0, 1]")
def softmax_rows_sum_to_one(ctx):
    x = (ctx.rng.standard_normal((5, 7)) * 30).astype(np.float32)
    for axis in (-1, 0):
        p = ctx.call("softmax", x, axis=axis)
        ctx.expect("softmax", x, axis=axis)
        if not (np.allclose(p.sum(axis=axis), 1.0, atol=1e-5) and (p >= 0).all() and (p <= 1).all()):
            ctx.fail(f"softmax(axis={axis}): rows must sum to 1 with entries in [0, 1]")


def _naive(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _wrong_axis(x, axis=-1):
    other = 0 if x.ndim > 1 and axis in (-1, x.ndim - 1) else -1
    return _stable(x, other)


def _stable(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def _unnormalised(x, axis=-1):
    return np.exp(x - np.max(x, axis=axis, keepdims=True))


def _nan_rows(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


SOFTMAX = Kata(
    id="softmax",
    level=0,
    title="A softmax that survives ±1000 and empty rows",
    path="level0/softmax.py",
    entries=("softmax",),
    checks=(softmax_matches_reference, softmax_default_axis, softmax_no_overflow,
            softmax_empty_row, softmax_rows_sum_to_one),
    predictions=(
        Prediction("softmax_1000", "softmax([1000, 1000]): the two probabilities", (0.5, 0.5),
                   rel_tol=1e-6, why="Equal logits share the mass equally, however large."),
        Prediction("naive_exp_1000", "what np.exp(1000.0) returns in float64 "
                   "(choose: inf, 1e434, nan)", "inf", kind="choice",
                   choices=("inf", "1e434", "nan"),
                   why="float64 tops out near 1.8e308: e^1000 overflows to inf, and inf/inf is NaN."),
    ),
    misconceptions=(
        Misconception("no_max_subtraction", "exponentiated without subtracting the row maximum",
                      {"softmax": _naive},
                      "exp(1000) overflows to inf and inf/inf is NaN. softmax(x) = "
                      "softmax(x − c) for any c: subtract the row maximum first."),
        Misconception("wrong_axis", "normalised over the wrong axis", {"softmax": _wrong_axis},
                      "Reduce along `axis` (default the last), with keepdims=True so it broadcasts back."),
        Misconception("not_normalised", "forgot to divide by the sum", {"softmax": _unnormalised},
                      "After exp(x − max), divide by the sum along the axis."),
        Misconception("nan_on_empty_rows", "a fully masked (all -inf) row becomes NaN",
                      {"softmax": _nan_rows},
                      "The max of an all -inf row is -inf, and -inf − (-inf) is NaN. Replace a "
                      "non-finite max by 0 so the row's exps are 0 and its result is 0."),
    ),
    claims=(
        Claim("softmax-shift-invariant", "softmax(x) = softmax(x − max x): the stable form is exact "
              "and never overflows.", scope="exact", source="vaswani-2017",
              evidence=("softmax_no_overflow", "softmax_matches_reference"),
              not_claimed="Nothing about low-precision (fp16/bf16) softmax kernels."),
    ),
    hints=(
        "Subtract the maximum along the axis (keepdims=True) before exp: the result is unchanged.",
        "An all -inf row has max -inf: np.where(np.isfinite(m), m, 0) avoids -inf − (-inf).",
        "Divide by the sum along the same axis; if that sum is 0 (empty row) the exps are all 0 "
        "too, so guard the division: e / np.where(total == 0, 1, total).",
    ),
)

KATAS = (QK_SCORES, SCALED_SCORES, SOFTMAX)
