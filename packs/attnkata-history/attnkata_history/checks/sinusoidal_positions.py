"""sinusoidal_positions — absolute sin/cos codes and the offset as a linear map (Vaswani et al. 2017)."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check

from .common import call_shaped

INT_FAKES = ("zeros", "echo", "constant", "random")   # integer inputs: nothing to mutate


@check("matches the reference for n ≤ 40, every even d ≤ 16 and three bases")
def sin_match(ctx):
    for d in range(2, 17, 2):
        for base in (10000.0, 100.0, 7.5):
            ctx.expect("sinusoidal_positions", 40, d, base)
        ctx.expect("sinusoidal_positions", 1, d)
    ctx.expect("sinusoidal_positions", 513, 64)


@check("position_shift matches the reference for offsets −7 … 9 and several widths")
def sin_shift_match(ctx):
    for d in (2, 4, 6, 16):
        for offset in (-7, -1, 0, 1, 2, 9):
            ctx.expect("position_shift", offset, d)
    ctx.expect("position_shift", 3, 8, 100.0)


@check("PE[p + k] = PE[p] @ M(k) for every p, with your own PE and M")
def sin_shift_property(ctx):
    n, d = 30, 12
    pe = call_shaped(ctx, "sinusoidal_positions", n + 10, d)
    for k in (1, 4, 10, -3):
        m = call_shaped(ctx, "position_shift", k, d)
        rows = np.arange(max(0, -k), n)
        ctx.match(pe[rows] @ m, pe[rows + k], f"PE[p] @ position_shift({k}, {d}) versus PE[p + {k}]",
                  rerun=lambda ns, k=k: ns.sinusoidal_positions(n + 10, d)[rows] @ ns.position_shift(k, d))


@check("PE[p]·PE[p + k] depends only on k, and equals Σ_i cos(k·ω_i)")
def sin_dot_offset(ctx):
    d = 16
    pe = call_shaped(ctx, "sinusoidal_positions", 60, d)
    w = 10000.0 ** (-2.0 * np.arange(d // 2) / d)
    for k in (0, 1, 5, 17):
        got = np.einsum("pd,pd->p", pe[: 60 - k], pe[k:])
        want = np.full(60 - k, np.cos(k * w).sum())
        ctx.match(got, want, f"PE[p]·PE[p + {k}] for p = 0 … {59 - k} versus Σ_i cos({k}·ω_i)",
                  rerun=lambda ns, k=k: np.einsum("pd,pd->p", ns.sinusoidal_positions(60, d)[: 60 - k],
                                                  ns.sinusoidal_positions(60, d)[k:]))


# --- misconceptions ------------------------------------------------------------

def _angles(n, d, base, exponent=2.0, start=0):
    return np.arange(start, start + n, dtype=np.float64)[:, None] * base ** (-exponent * np.arange(d // 2) / d)


def _interleave(s, c):
    pe = np.empty((s.shape[0], 2 * s.shape[1]))
    pe[:, 0::2], pe[:, 1::2] = s, c
    return pe


def _cos_first(n, d, base=10000.0):
    # source: vaswani-2017 §3.5 — sine on the even features 2i, cosine on the odd 2i + 1.
    a = _angles(n, d, base)
    return _interleave(np.cos(a), np.sin(a))


def _exponent_off(n, d, base=10000.0):
    # source: vaswani-2017 §3.5 — the exponent is 2i/d_model (2i is the pair's first feature).
    a = _angles(n, d, base, exponent=1.0)
    return _interleave(np.sin(a), np.cos(a))


def _halves(n, d, base=10000.0):
    # source: the tensor2tensor code concatenates [sin | cos]; the paper (vaswani-2017 §3.5)
    # interleaves them. Equivalent up to a permutation of features, not equal.
    a = _angles(n, d, base)
    return np.concatenate([np.sin(a), np.cos(a)], axis=-1)


def _from_one(n, d, base=10000.0):
    # source: vaswani-2017 §3.5 — pos counts from 0 (PE[0] is [0, 1, 0, 1, …]).
    a = _angles(n, d, base, start=1)
    return _interleave(np.sin(a), np.cos(a))


def _shift_transposed(offset, d, base=10000.0):
    # source: the angle-addition formulas — sin(a+b) = sin a cos b + cos a sin b; acting on a
    # row vector from the right, the −sin sits in the first row of each block.
    b = offset * base ** (-2.0 * np.arange(d // 2) / d)
    m = np.zeros((d, d))
    i = np.arange(0, d, 2)
    m[i, i], m[i, i + 1], m[i + 1, i], m[i + 1, i + 1] = np.cos(b), np.sin(b), -np.sin(b), np.cos(b)
    return m


SINUSOIDAL_POSITIONS = Kata(
    id="sinusoidal_positions",
    level=21,
    title="Sinusoidal positions: clocks whose offset is a rotation",
    path="history/sinusoidal_positions.py",
    entries=("sinusoidal_positions", "position_shift"),
    checks=(sin_match, sin_shift_match, sin_shift_property, sin_dot_offset),
    generic_fakes=INT_FAKES,
    predictions=(
        Prediction("self_dot", "d = 4: PE[p]·PE[p]", 2.0,
                   why="Each pair is (sin a, cos a), a point on the unit circle: d/2 = 2 pairs give "
                       "2, for every p."),
        Prediction("pe0_sum", "d = 8: the sum of the entries of PE[0]", 4.0,
                   why="At p = 0 every angle is 0: sin 0 = 0, cos 0 = 1, so PE[0] = [0, 1, 0, 1, …]."),
    ),
    misconceptions=(
        Misconception("cos_first", "put the cosine on the even features",
                      {"sinusoidal_positions": _cos_first},
                      "PE[p, 2i] = sin, PE[p, 2i + 1] = cos: PE[0] starts [0, 1, …]."),
        Misconception("exponent_off_by_two", "used base^(−i/d) instead of base^(−2i/d)",
                      {"sinusoidal_positions": _exponent_off},
                      "2i in the exponent is the index of the pair's first feature; with i the "
                      "slowest clock turns far too fast."),
        Misconception("halves_not_interleaved", "concatenated [all sines | all cosines]",
                      {"sinusoidal_positions": _halves},
                      "The paper interleaves: features 2i and 2i + 1 are one pair. The [sin | cos] "
                      "layout of some codebases is a permutation of it, not the same array."),
        Misconception("positions_from_one", "numbered positions from 1",
                      {"sinusoidal_positions": _from_one},
                      "The first position is 0, so PE[0] is [0, 1, 0, 1, …]."),
        Misconception("shift_transposed", "built M(k) transposed (rotating by −k)",
                      {"position_shift": _shift_transposed},
                      "For a row vector [s, c] @ B = [s cos b + c sin b, −s sin b + c cos b]: each "
                      "block is [[cos, −sin], [sin, cos]] with rows indexed by the input feature."),
    ),
    claims=(
        Claim("sinusoidal-offset-linear", "For sinusoidal codes, PE[p + k] = PE[p]·M(k) with M(k) "
              "depending on k only, and PE[p]·PE[p + k] = Σ_i cos(k·ω_i) depends on k only.",
              scope="exact", source="vaswani-2017", evidence=("sin_shift_property", "sin_dot_offset"),
              not_claimed="That a trained model uses this to attend by relative position: the "
                          "projections W_Q, W_K between the code and the score need not keep it."),
    ),
    hints=(
        "Build the angles as an [n, d/2] table: positions as a column times speeds as a row.",
        "angles = np.arange(n)[:, None] * base ** (-2 * np.arange(d // 2) / d); then "
        "pe[:, 0::2] = sin, pe[:, 1::2] = cos.",
        "position_shift: b = offset * speeds; for each pair i put cos b, −sin b in row 2i and "
        "sin b, cos b in row 2i + 1 (columns 2i, 2i + 1).",
    ),
)
