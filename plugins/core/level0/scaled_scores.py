"""Level 0 · scaled_scores: q·kᵀ/√d, which keeps the scores' variance near 1."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import qkv


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



scaled_strided_inputs = layout_check(
    "scaled_scores", lambda ctx: [((ctx.rng.standard_normal((2, 5, 8)).astype(np.float32),
                                    ctx.rng.standard_normal((2, 7, 8)).astype(np.float32)), {})],
    "q and k as transposed, sliced and Fortran-ordered views of other buffers",
    id="scaled_strided_inputs", layouts=("transposed", "sliced", "fortran"))


SCALED_SCORES = Kata(
    id="scaled_scores",
    level=0,
    title="Dividing by √d keeps softmax out of saturation",
    path="level0/scaled_scores.py",
    entries=("scaled_scores",),
    checks=(scaled_matches_reference, scaled_variance_near_one,
            scaled_strided_inputs),
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
        "Keep q's dtype. Under NumPy 2, np.sqrt(d) is a float64 scalar and a float32 array "
        "divided by it comes back float64; math.sqrt(d) (a Python float) keeps float32.",
        "scaled_scores(q, k) = qk_scores(q, k) / math.sqrt(d) (import math); you may import "
        "your qk_scores: `from .qk_scores import qk_scores`.",
    ),
)


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): each scale mistake multiplies the right answer by its own
# factor, so two widths d (and key counts) that give different factors tell them apart.
# Where learners go wrong — a source note per misconception:
# - forgot_scale: lucidrains/vit-pytorch#65 and Graylab/DL4Proteins-notebooks#12 (the
#   scale is left out or taken from the wrong width; vaswani-2017 §3.2.1 gives why).
# - divided_by_d: thegregyang/NTK4A#3 (1/d, the μP scaling, read as the attention scale).
# - multiplied_by_sqrt_d: `scores * d ** 0.5` where `* d ** -0.5` was meant.
# - scaled_by_sequence: jadore801120/attention-is-all-you-need-pytorch#42 (a width other
#   than the key/query width d_k, there d_model, used for the scale).
# - float64_promotion, power_precedence: notes at their implementations below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, check as holds, close  # noqa: E402


def _promoted(q, k):
    # source: numpy/numpy NEP 50 (NumPy 2): a float32 array divided by np.sqrt(d), a
    # float64 scalar, comes back float64 (this kata's hint 2 warns about it)
    return (q @ np.swapaxes(k, -1, -2)) / np.sqrt(np.float64(q.shape[-1]))


def _precedence(q, k):
    # source: davedelong/DDMathParser#26 (2**1/2 read as (2**1)/2): `d ** 1/2` is d/2
    return (q @ np.swapaxes(k, -1, -2)) / np.asarray(q.shape[-1] ** 1 / 2, dtype=q.dtype)


_RS = np.random.default_rng(1402)
_Q16, _K16 = _RS.standard_normal((3, 16)), _RS.standard_normal((9, 16))   # d = 16, 9 keys
_Q9, _K9 = _RS.standard_normal((4, 9)), _RS.standard_normal((16, 9))      # d = 9, 16 keys
_RAW16, _RAW9 = _Q16 @ _K16.T, _Q9 @ _K9.T


def _is(raw, factor):
    """The output is the raw dot products times ``factor``."""
    return holds(lambda g, w: close(g, raw * factor))


def _kept_float64(dtype):
    return holds(lambda g, w: np.asarray(g).dtype == np.float64 and np.asarray(w).dtype == dtype
                 and close(np.asarray(g), np.asarray(w).astype(np.float64), (1e-3, 1e-3)))


SCALED_SCORES = attach(
    SCALED_SCORES,
    add=(
        Misconception("float64_promotion", "divided by np.sqrt(d), a float64 scalar, so float32 "
                      "scores come back float64", {"scaled_scores": _promoted},
                      "Under NumPy 2 a float32 array divided by a float64 scalar is float64. "
                      "Divide by math.sqrt(d) (a Python float) or cast back with .astype(q.dtype)."),
        Misconception("power_precedence", "wrote d ** 1/2, which is (d ** 1) / 2 = d/2, not √d",
                      {"scaled_scores": _precedence},
                      "** binds tighter than /: d ** 1/2 is d/2. Write d ** 0.5 or math.sqrt(d)."),
    ),
    probes={
        "forgot_scale": (Probe.of("d = 16, 9 keys", "scaled_scores", _Q16, _K16, holds=_is(_RAW16, 1)),
                         Probe.of("d = 9, 16 keys", "scaled_scores", _Q9, _K9, holds=_is(_RAW9, 1))),
        "divided_by_d": (
            Probe.of("d = 16, 9 keys", "scaled_scores", _Q16, _K16, holds=_is(_RAW16, 1 / 16)),
            Probe.of("d = 9, 16 keys", "scaled_scores", _Q9, _K9, holds=_is(_RAW9, 1 / 9))),
        "multiplied_by_sqrt_d": (
            Probe.of("d = 16, 9 keys", "scaled_scores", _Q16, _K16, holds=_is(_RAW16, 4)),
            Probe.of("d = 9, 16 keys", "scaled_scores", _Q9, _K9, holds=_is(_RAW9, 3))),
        "scaled_by_sequence": (
            Probe.of("d = 16, 9 keys", "scaled_scores", _Q16, _K16, holds=_is(_RAW16, 1 / 3)),
            Probe.of("d = 9, 16 keys", "scaled_scores", _Q9, _K9, holds=_is(_RAW9, 1 / 4))),
        "power_precedence": (
            Probe.of("d = 16, 9 keys", "scaled_scores", _Q16, _K16, holds=_is(_RAW16, 1 / 8)),
            Probe.of("d = 9, 16 keys", "scaled_scores", _Q9, _K9, holds=_is(_RAW9, 2 / 9))),
        "float64_promotion": (
            Probe.of("float32 q, k (d = 16)", "scaled_scores", _Q16.astype(np.float32),
                     _K16.astype(np.float32), holds=_kept_float64(np.float32)),
            Probe.of("float16 q, k (d = 9)", "scaled_scores", _Q9.astype(np.float16),
                     _K9.astype(np.float16), holds=_kept_float64(np.float16)),
        ),
    },
    diagnostics=(
        Probe.of("d = 16, 3 queries, 9 keys", "scaled_scores", _Q16, _K16, axes=("query", "key")),
    ),
    variants=(
        Fake("queries_scaled_first", {"scaled_scores": lambda q, k: (
            q * q.shape[-1] ** -0.5) @ np.swapaxes(k, -1, -2)}),
        Fake("einsum_power", {"scaled_scores": lambda q, k: np.einsum(
            "...id,...jd->...ij", q, k) * q.shape[-1] ** -0.5}),
    ),
)
# == end of diagnosis by behaviour, levels 0-2 ==
