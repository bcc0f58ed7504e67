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
