"""alibi_bias — ALiBi's head slopes and distance penalties (Press et al. 2022)."""

from __future__ import annotations

import math

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check

from .common import call_shaped
from .sinusoidal_positions import INT_FAKES


@check("slopes match the paper's recipe for every head count 1 … 40 (most not a power of two)")
def alibi_slopes_match(ctx):
    for h in range(1, 41):
        ctx.expect("alibi_slopes", h)
    ctx.expect("alibi_slopes", 96)


@check("bias matches the reference for head counts 1 … 12 and n_q ≤ n_k, n_q > n_k")
def alibi_bias_match(ctx):
    for h in (1, 2, 3, 5, 6, 8, 12):
        for n_q, n_k in ((1, 1), (3, 3), (4, 9), (7, 7), (5, 2)):
            ctx.expect("alibi_bias", h, n_q, n_k)


@check("for H a power of two the slopes are geometric with ratio 2^(−8/H), from 2^(−8/H) to 2^(−8)")
def alibi_geometric(ctx):
    for h in (2, 8, 32):
        m = call_shaped(ctx, "alibi_slopes", h)
        want = 2.0 ** (-8.0 / h) * np.ones(h)
        got = np.concatenate([[m[0]], m[1:] / m[:-1]])
        ctx.match(got, want, f"alibi_slopes({h}): the first slope, then each slope over the one before",
                  rerun=lambda ns, h=h: (lambda m: np.concatenate([[m[0]], m[1:] / m[:-1]]))(
                      np.asarray(ns.alibi_slopes(h))))


@check("other head counts keep the power-of-two slopes first and add in-between slopes")
def alibi_non_power(ctx):
    for h in (3, 6, 12, 20):
        p = 2 ** math.floor(math.log2(h))
        m = call_shaped(ctx, "alibi_slopes", h)
        ctx.match(m[:p], call_shaped(ctx, "alibi_slopes", p),
                  f"alibi_slopes({h})[:{p}] versus alibi_slopes({p})",
                  rerun=lambda ns, h=h, p=p: np.asarray(ns.alibi_slopes(h))[:p])
        ctx.match(m[p:], call_shaped(ctx, "alibi_slopes", 2 * p)[0::2][: h - p],
                  f"alibi_slopes({h})[{p}:] versus alibi_slopes({2 * p})[0::2][:{h - p}]",
                  rerun=lambda ns, h=h, p=p: np.asarray(ns.alibi_slopes(h))[p:])


@check("the bias depends only on the distance: the diagonal is 0, a chunk's rows are the last "
       "rows of the square bias")
def alibi_distance_only(ctx):
    full = call_shaped(ctx, "alibi_bias", 6, 10, 10)
    ctx.match(np.diagonal(full, axis1=1, axis2=2), np.zeros((6, 10)), "the diagonal of alibi_bias(6, 10, 10)",
              rerun=lambda ns: np.diagonal(ns.alibi_bias(6, 10, 10), axis1=1, axis2=2))
    chunk = call_shaped(ctx, "alibi_bias", 6, 4, 10)
    ctx.match(chunk, full[:, -4:], "alibi_bias(6, 4, 10) versus the last 4 rows of alibi_bias(6, 10, 10)",
              rerun=lambda ns: ns.alibi_bias(6, 4, 10))


# --- misconceptions ------------------------------------------------------------

def _naive(n_heads):
    # source: press-2022 §3 — the closed form 2^(−8(h+1)/H) is for H a power of two; other
    # head counts interleave slopes from the next power of two (the paper's released code).
    return 2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads)


def _ref_slopes(n_heads):
    if n_heads & (n_heads - 1) == 0:
        return _naive(n_heads)
    p = 2 ** math.floor(math.log2(n_heads))
    return np.concatenate([_naive(p), _ref_slopes(2 * p)[0::2][: n_heads - p]])


def _odd_extra(n_heads):
    # source: press-2022 released code — the extra slopes are slopes(2P)[0::2], the ones that
    # fall between the existing slopes, not [1::2] (which repeats them).
    if n_heads & (n_heads - 1) == 0:
        return _naive(n_heads)
    p = 2 ** math.floor(math.log2(n_heads))
    return np.concatenate([_naive(p), _naive(2 * p)[1::2][: n_heads - p]])


def _from_zero(n_heads):
    # source: press-2022 §3 — the sequence starts at 2^(−8/H), not at 2^0 = 1.
    return 2.0 ** (-8.0 * np.arange(n_heads) / n_heads)


def _reversed(n_heads):
    # source: press-2022 §3 — head 0 gets the largest slope (1/2 for 8 heads).
    return _ref_slopes(n_heads)[::-1].copy()


def _bias(slopes, n_q, n_k, sign=-1.0, start=False):
    pos = np.arange(n_q)[:, None] + (0 if start else n_k - n_q)
    dist = (pos - np.arange(n_k)[None, :]).astype(np.float64)
    return np.where(dist >= 0, sign * slopes[:, None, None] * dist, -np.inf)


def _positive(n_heads, n_q, n_k):
    # source: press-2022 eq. (1) — softmax(q_i K^T + m·[−(i−1), …, −1, 0]): the penalty is
    # negative, growing with distance.
    return _bias(_ref_slopes(n_heads), n_q, n_k, sign=1.0)


def _start_aligned(n_heads, n_q, n_k):
    # source: press-2022 eq. (1) — distances count back from the query's own position; when
    # queries are the last n_q of n_k positions, query i sits at i + n_k − n_q.
    return _bias(_ref_slopes(n_heads), n_q, n_k, start=True)


ALIBI_BIAS = Kata(
    id="alibi_bias",
    level=21,
    title="ALiBi: a per-head linear penalty on distance",
    path="history/alibi_bias.py",
    entries=("alibi_slopes", "alibi_bias"),
    checks=(alibi_slopes_match, alibi_bias_match, alibi_geometric, alibi_non_power, alibi_distance_only),
    generic_fakes=INT_FAKES,
    predictions=(
        Prediction("first_slope_16", "H = 16: the slope of head 0", 2 ** -0.5, rel_tol=1e-4,
                   why="2^(−8·1/16) = 2^(−1/2) ≈ 0.7071: with more heads the first slope gets "
                       "closer to 1."),
        Prediction("fifth_slope_6", "H = 6: the slope of head 4", 0.5, rel_tol=1e-4,
                   why="P = 4 gives four slopes 2^−2 … 2^−8; the extras are slopes(8)[0::2] = "
                       "[2^−1, 2^−3, …], so head 4 gets 2^−1 = 0.5."),
    ),
    misconceptions=(
        Misconception("naive_any_head_count", "used 2^(−8(h+1)/H) for every H",
                      {"alibi_slopes": _naive, "alibi_bias": lambda h, n_q, n_k: _bias(_naive(h), n_q, n_k)},
                      "The closed form is for powers of two. For other H the paper keeps the slopes "
                      "of the power of two below and adds every other slope of the one above."),
        Misconception("odd_extra_slopes", "took slopes(2P)[1::2] as the extra slopes",
                      {"alibi_slopes": _odd_extra},
                      "slopes(2P)[1::2] are exactly slopes(P) again; the new, in-between slopes are "
                      "slopes(2P)[0::2]."),
        Misconception("slopes_from_one", "started the sequence at 2^0 = 1",
                      {"alibi_slopes": _from_zero},
                      "Head 0's slope is 2^(−8/H), not 1: the exponent is −8(h+1)/H with h from 0."),
        Misconception("slopes_reversed", "listed the slopes smallest first", {"alibi_slopes": _reversed},
                      "For H a power of two head 0 has the largest slope (the most local head) and "
                      "head H − 1 the smallest; other H append their extra slopes after those."),
        Misconception("positive_bias", "added +m·distance", {"alibi_bias": _positive},
                      "Far keys must LOSE score: the bias is −m·(pos_i − j)."),
        Misconception("bias_start_aligned", "measured distance from row i instead of position "
                      "i + n_k − n_q", {"alibi_bias": _start_aligned},
                      "With a cache, the n_q queries are the last positions: query i is at "
                      "i + n_k − n_q, and its own key is at distance 0."),
    ),
    claims=(
        Claim("alibi-distance-only", "ALiBi's bias depends only on the distance pos_i − j (0 on the "
              "diagonal), so a chunk of queries gets the last rows of the full bias.", scope="exact",
              source="press-2022", evidence=("alibi_distance_only",),
              not_claimed="Length extrapolation itself: no model is trained or evaluated here."),
        Claim("alibi-geometric-slopes", "For H a power of two the slopes are 2^(−8/H), 2^(−16/H), "
              "…, 2^(−8); other head counts keep those of the power of two below and interleave "
              "half of the next.", scope="exact", source="press-2022",
              evidence=("alibi_geometric", "alibi_non_power"),
              not_claimed="That these slopes are optimal: the paper found them robust, not best."),
    ),
    hints=(
        "Start with a power of two: 2.0 ** (-8 * np.arange(1, H + 1) / H).",
        "Other H: p = 2 ** floor(log2(H)); concatenate slopes(p) with slopes(2 * p)[0::2][:H - p] "
        "(recursion is fine).",
        "bias: pos = np.arange(n_q)[:, None] + (n_k - n_q); dist = pos - np.arange(n_k); "
        "np.where(dist >= 0, -slopes[:, None, None] * dist, -np.inf).",
    ),
)
