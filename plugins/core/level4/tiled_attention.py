"""Level 4 · tiled_attention: FlashAttention's forward in NumPy — values, tiles, memory."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import FLOAT_DTYPES, qkv, sizes

from .probe import attention_tol, call_watched, live_tiles, loglog_slope, mib, plain_attention

MEMORY_SIZES = (512, 1024, 2048, 4096)
MEMORY_D, MEMORY_BLOCK = 64, 64
MAX_SLOPE = 1.5  # log-log slope of peak memory in N: linear is 1, the N×N scores give 2


def _expect_tiled(ctx, q, k, v, block_q, block_k, causal):
    tol = attention_tol(q, k, v)
    got = ctx.expect("tiled_attention", q, k, v, block_q=block_q, block_k=block_k,
                     causal=causal, tol=tol)
    ctx.match(got, plain_attention(q, k, v, causal),
              f"tiled_attention(block_q={block_q}, block_k={block_k}, causal={causal}) "
              f"vs softmax(q·kᵀ/√d)·v", tol=tol,
              rerun=lambda ns: ns.tiled_attention(q.copy(), k.copy(), v.copy(), block_q=block_q,
                                                  block_k=block_k, causal=causal))
    return got


@check("equals plain attention (o and lse) for random shapes, every block size (1, "
       "non-divisors, larger than N), causal and not, float32 and float64, extreme scales")
def tiled_matches_reference(ctx):
    @ctx.given(arrays=qkv(max_n=33, max_d=12), block_q=sizes(1, 17), block_k=sizes(1, 17),
               causal=st.booleans())
    def prop(arrays, block_q, block_k, causal):
        _expect_tiled(ctx, *arrays, block_q, block_k, causal)

    prop()


@check("leading dims broadcast like matmul; the default blocks (64) work for N above and below 64")
def tiled_broadcasts(ctx):
    q = ctx.rng.standard_normal((2, 1, 70, 8)).astype(np.float32)
    k = ctx.rng.standard_normal((1, 3, 70, 8)).astype(np.float32)
    v = ctx.rng.standard_normal((1, 3, 70, 8)).astype(np.float32)
    for causal in (False, True):
        _expect_tiled(ctx, q, k, v, 16, 24, causal)
        tol = attention_tol(q, k, v)
        ctx.expect("tiled_attention", q, k, v, causal=causal, tol=tol)
        ctx.expect("tiled_attention", q[..., :5, :], k[..., :9, :], v[..., :9, :], causal=causal, tol=tol)


@check("causal with more queries than keys: a query that sees no key gets o = 0 and lse = -inf")
def tiled_empty_queries(ctx):
    for dtype in FLOAT_DTYPES:
        q = ctx.rng.standard_normal((9, 4)).astype(dtype)
        k = ctx.rng.standard_normal((4, 4)).astype(dtype)
        v = ctx.rng.standard_normal((4, 3)).astype(dtype)
        for block_q, block_k in ((2, 3), (4, 4), (9, 1)):
            _expect_tiled(ctx, q, k, v, block_q, block_k, True)


TILE_CASES = (  # n_q, n_k, block_q, block_k, causal
    (20, 20, 6, 7, False), (40, 40, 8, 16, True), (13, 29, 4, 8, True),
    (29, 13, 5, 3, True), (10, 10, 3, 4, True), (12, 12, 64, 64, True),
)


@check("one q·kᵀ per live score tile, none larger than block_q × block_k; causal passes skip "
       "the tiles the mask empties (tiles counted, not timed)")
def tiled_counts_tiles(ctx):
    for n_q, n_k, block_q, block_k, causal in TILE_CASES:
        q = ctx.rng.standard_normal((n_q, 8))
        k = ctx.rng.standard_normal((n_k, 8))
        v = ctx.rng.standard_normal((n_k, 8))
        kw = dict(block_q=block_q, block_k=block_k, causal=causal)
        what = f"tiled_attention(q=[{n_q}, 8], k=[{n_k}, 8], block_q={block_q}, block_k={block_k}, causal={causal})"
        got, log = call_watched(ctx, "tiled_attention", (q, k, v), kw, {0: "q", 1: "k"}, what)
        ctx.match(got, ctx.reference("tiled_attention", q, k, v, **kw), what,
                  rerun=lambda ns: ns.tiled_attention(q.copy(), k.copy(), v.copy(), **kw))
        judge_tiles(ctx, log, what, n_q, n_k, block_q, block_k, causal, passes=(1,))


def judge_tiles(ctx, log, what, n_q, n_k, block_q, block_k, causal, passes):
    """Fail unless the score tiles seen are small enough and as many as the live tiles."""
    if log.count == 0:
        ctx.fail(f"{what}: no score tile q_i·k_jᵀ was seen. The hidden tests pass q and k as a "
                 f"numpy array subclass to count score tiles: compute each tile with `@` (or "
                 f"np.matmul / np.einsum) on slices of q and k, and do not convert them with "
                 f"np.asarray, np.array or np.ascontiguousarray (np.asanyarray is fine).")
    rows, cols = log.largest_tile()
    if rows * cols > block_q * block_k:
        full = {rows, cols} == {n_q, n_k} and n_q * n_k > block_q * block_k
        ctx.fail(f"{what}: computed a [{rows}, {cols}] block of scores at once; a score tile is at "
                 f"most [{block_q}, {block_k}].",
                 misconception="materialised_scores" if full else "row_strip")
    expected = live_tiles(n_q, n_k, block_q, block_k, causal)
    every = live_tiles(n_q, n_k, block_q, block_k, False)
    if log.count in [p * expected for p in passes]:
        return
    if causal and log.count in [p * every for p in passes]:
        ctx.fail(f"{what}: computed {log.count} score tiles; {every - expected} of the {every} "
                 f"tiles lie wholly above the causal diagonal, so {expected} are needed.",
                 misconception="causal_not_skipped")
    ctx.fail(f"{what}: computed {log.count} score tiles; expected {expected} "
             f"({'one q·kᵀ per tile that holds an allowed pair' if causal else 'one q·kᵀ per tile'}).")


@check(f"peak memory beyond inputs and outputs grows linearly in N, not quadratically "
       f"(tracemalloc at N = {', '.join(map(str, MEMORY_SIZES))}, d = {MEMORY_D}, float32, "
       f"{MEMORY_BLOCK}×{MEMORY_BLOCK} tiles)")
def tiled_memory_linear(ctx):
    small = ctx.rng.standard_normal((3, 70, 16)).astype(np.float32)
    _expect_tiled(ctx, small[0], small[1], small[2], MEMORY_BLOCK, MEMORY_BLOCK, False)
    ctx.entry("tiled_attention")
    peaks = []
    for n in MEMORY_SIZES:
        q, k, v = (ctx.rng.standard_normal((n, MEMORY_D)).astype(np.float32) for _ in range(3))
        seen = ctx.probe("attnkata.probes", "peak_call", "tiled_attention",
                         (q, k, v, MEMORY_BLOCK, MEMORY_BLOCK),
                         what=f"tiled_attention(q=[{n}, {MEMORY_D}] float32) under tracemalloc")
        peaks.append(max(seen["peak"] - seen["out_bytes"], 1))
    slope = loglog_slope(list(MEMORY_SIZES), peaks)
    figures = ", ".join(f"N={n}: {mib(p)}" for n, p in zip(MEMORY_SIZES, peaks))
    ctx.record(f"tracemalloc peaks {figures} (log-log slope {slope:.2f})")
    if slope >= MAX_SLOPE:
        ratio = peaks[-1] / peaks[MEMORY_SIZES.index(1024)]
        ctx.fail(f"tiled_attention: peak memory beyond its inputs and outputs ({figures}) grows "
                 f"like N^{slope:.2f}; from N=1024 to 4096 it grew {ratio:.1f}× (linear: 4×, "
                 f"quadratic: 16×). A [{MEMORY_BLOCK}, {MEMORY_BLOCK}] tile costs "
                 f"{mib(MEMORY_BLOCK * MEMORY_BLOCK * 4)}; an N×N float32 score matrix at N=4096 "
                 f"costs {mib(4096 * 4096 * 4)}.", misconception="materialised_scores")


# ---------------------------------------------------------------------------
# Wrong variants: one parametrised loop, each flag one learner's mistake
# ---------------------------------------------------------------------------

def _tiled(q, k, v, block_q=64, block_k=64, causal=False, *, rescale=True, lse_mode="e",
           skip=True, divide="end", align="end"):
    n_q, d = q.shape[-2:]
    n_k, d_v = k.shape[-2], v.shape[-1]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    offset = n_k - n_q if align == "end" else 0
    o = np.zeros((*lead, n_q, d_v), dtype=q.dtype)
    lse = np.full((*lead, n_q), -np.inf, dtype=q.dtype)
    for q0 in range(0, n_q, block_q):
        q1 = min(q0 + block_q, n_q)
        m_i = np.full((*lead, q1 - q0), -np.inf, dtype=q.dtype)
        l_i = np.zeros((*lead, q1 - q0), dtype=q.dtype)
        acc = np.zeros((*lead, q1 - q0, d_v), dtype=q.dtype)
        k_end = min(n_k, max(0, q1 + offset)) if causal and skip else n_k
        for k0 in range(0, k_end, block_k):
            k1 = min(k0 + block_k, n_k)
            s = (q[..., q0:q1, :] @ np.swapaxes(k[..., k0:k1, :], -1, -2)) * d ** -0.5
            if causal:
                s = np.where(np.arange(k0, k1)[None, :] <= np.arange(q0, q1)[:, None] + offset, s, -np.inf)
            m_new = np.maximum(m_i, s.max(axis=-1))
            m_safe = np.where(np.isfinite(m_new), m_new, 0)
            alpha = np.exp(m_i - m_safe)
            p = np.exp(s - m_safe[..., None])
            l_i = alpha * l_i + p.sum(axis=-1)
            pv = p @ v[..., k0:k1, :]
            if divide == "per_tile":
                pv = pv / np.where(l_i == 0, 1, l_i)[..., None]
            acc = (alpha[..., None] * acc if rescale else acc) + pv
            m_i = m_new
        o[..., q0:q1, :] = acc / np.where(l_i == 0, 1, l_i)[..., None] if divide == "end" else acc
        with np.errstate(divide="ignore"):
            lse[..., q0:q1] = {"e": m_i + np.log(l_i), "no_m": np.log(l_i),
                               "log2": (m_i + np.log(l_i)) / np.log(2)}[lse_mode]
    return o, lse


def _variant(**flags):
    def wrong(q, k, v, block_q=64, block_k=64, causal=False):
        return _tiled(q, k, v, block_q, block_k, causal, **flags)
    return wrong


def _materialised(q, k, v, block_q=64, block_k=64, causal=False):
    s = (q @ np.swapaxes(k, -1, -2)) * q.shape[-1] ** -0.5  # [..., N_q, N_k] at once
    if causal:
        s = np.where(np.arange(k.shape[-2])[None, :] <= np.arange(q.shape[-2])[:, None]
                     + k.shape[-2] - q.shape[-2], s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return (e / np.where(total == 0, 1, total)) @ v, (m + np.log(total))[..., 0]


def _row_strip(q, k, v, block_q=64, block_k=64, causal=False):
    return _tiled(q, k, v, block_q, max(block_k, k.shape[-2]), causal)



tiled_strided_inputs = layout_check(
    "tiled_attention", lambda ctx: [((ctx.rng.standard_normal((2, 9, 8)),
                                      ctx.rng.standard_normal((2, 11, 8)),
                                      ctx.rng.standard_normal((2, 11, 5))),
                                     {"block_q": 4, "block_k": 3, "causal": causal})
                                    for causal in (False, True)],
    "q, k, v as transposed, sliced and Fortran-ordered views, causal or not",
    id="tiled_strided_inputs", layouts=("transposed", "sliced", "fortran"))


TILED_ATTENTION = Kata(
    id="tiled_attention",
    level=4,
    title="FlashAttention's forward: score tiles, online softmax, O(N) memory",
    path="level4/tiled_attention.py",
    entries=("tiled_attention",),
    probes=("attnkata_plugins.core.level4.probe",),  # watched_call runs in the worker
    checks=(tiled_matches_reference, tiled_broadcasts, tiled_empty_queries, tiled_counts_tiles,
            tiled_memory_linear,
            tiled_strided_inputs),
    predictions=(
        Prediction("o_after_tile1", "one query, scores [0, 2, 1, 2 | 3, 0, 3, 1], values "
                   "[1, 0, 0, 1 | 0, 1, 2, 0], tiles of four: the output acc / l after tile 1", 0.4536,
                   why="m = 2; acc = e^-2·1 + e^0·0 + e^-1·0 + e^0·1 = 1.1353, l = 2.5032."),
        Prediction("o_after_tile2", "…and after tile 2 (the final output)", 0.7944,
                   why="α = e^(2−3) = 0.3679: acc = 1.1353·0.3679 + (e^-3·1 + e^0·2) = 2.4675, "
                       "l = 3.1060."),
        Prediction("fp16_scores_mib_8192", "MiB taken by one fp16 N×N score matrix at N = 8192 "
                   "(one head, one batch element)", 128,
                   why="8192² entries × 2 bytes = 134,217,728 bytes = 128 MiB."),
        Prediction("causal_tiles_skipped", "N_q = N_k = 256, 64×64 tiles, causal: how many of the "
                   "16 score tiles are skipped", 6, kind="exact",
                   why="Query block i needs key blocks 0..i: 1 + 2 + 3 + 4 = 10 tiles; 6 lie "
                       "wholly above the diagonal."),
    ),
    misconceptions=(
        Misconception("missing_rescale", "missing rescale in online softmax: acc was not "
                      "multiplied by exp(m_old − m_new) when the running max changed",
                      {"tiled_attention": _variant(rescale=False)},
                      "acc holds Σ exp(s − m_old)·v. When m_i rises, rescale acc (and l_i) by "
                      "alpha = exp(m_old − m_new) before adding the new tile's p·v."),
        Misconception("lse_without_m", "forgot m in lse (returned log l instead of m + log l)",
                      {"tiled_attention": _variant(lse_mode="no_m")},
                      "l_i is a sum of exp(s − m_i): the log-sum-exp of the scores is m_i + log l_i."),
        Misconception("lse_log2", "returned lse in log base 2",
                      {"tiled_attention": _variant(lse_mode="log2")},
                      "GPU kernels often work with exp2 and log2 internally; the contract's lse "
                      "is the natural log: m_i + ln l_i."),
        Misconception("divided_per_tile", "divided by l per tile instead of once at the end",
                      {"tiled_attention": _variant(divide="per_tile")},
                      "Early tiles were divided by a partial sum that later tiles make larger. "
                      "Keep acc unnormalised and divide by the final l_i after the last tile."),
        Misconception("causal_top_left", "causal mask aligned to the start (query i sees keys ≤ i)",
                      {"tiled_attention": _variant(align="start")},
                      "Queries are the last N_q positions: query i sees keys j ≤ i + N_k − N_q."),
        Misconception("causal_not_skipped", "causal tiles not skipped: computed the tiles the mask empties",
                      {"tiled_attention": _variant(skip=False)},
                      "The values are right but half the work is wasted: for query block "
                      "[q0, q1) stop the key loop at q1 + N_k − N_q."),
        Misconception("materialised_scores", "materialised the full N×N score matrix",
                      {"tiled_attention": _materialised},
                      "The values are right, but memory grows as N²: the point of tiling is "
                      "that only one block_q × block_k tile of scores exists at a time."),
        Misconception("row_strip", "held a whole row strip of scores (block_q × N_k) at once",
                      {"tiled_attention": _row_strip},
                      "Walk the keys in blocks of block_k as well: the online softmax is what "
                      "lets a query see its keys one tile at a time."),
    ),
    claims=(
        Claim("tiled-equals-attention",
              "Tiled attention with online softmax equals softmax(QKᵀ/√d)·V and its log-sum-exp, "
              "for every block size, causal and not.", scope="exact", source="dao-2022",
              evidence=("tiled_matches_reference", "tiled_broadcasts", "tiled_empty_queries"),
              not_claimed="Bit-for-bit equality: results agree within the dtype's tolerance."),
        Claim("tiled-memory-linear",
              f"Peak memory of tiled attention, beyond its inputs and outputs, grows linearly in N, "
              f"not quadratically: tracemalloc peaks at N = {', '.join(map(str, MEMORY_SIZES))} "
              f"(d = {MEMORY_D}, float32, {MEMORY_BLOCK}×{MEMORY_BLOCK} tiles) fit a log-log slope "
              f"under {MAX_SLOPE}.", scope="toy", source="dao-2022", evidence=("tiled_memory_linear",),
              not_claimed="Nothing about GPU memory traffic (HBM reads and writes) or speed: this "
                          "is host memory of a NumPy loop, at these sizes only."),
        Claim("causal-tiles-skipped",
              "A causal pass computes exactly the score tiles that hold an allowed (query, key) pair.",
              scope="exact", source="dao-2022", evidence=("tiled_counts_tiles",),
              not_claimed="That skipping halves wall-clock time: tiles are counted, not timed."),
    ),
    hints=(
        "Loop over query blocks q[..., q0:q1, :]; for each keep m_i = -inf, l_i = 0 and "
        "acc = 0 of shape [..., Bq, d_v]; then loop over key blocks k[..., k0:k1, :].",
        "Per tile: s = q_i @ k_jᵀ · d^-½ (masked to -inf where causal forbids); m_new = max(m_i, "
        "rowmax s); alpha = exp(m_i − m_new); p = exp(s − m_new); l_i = alpha·l_i + rowsum p; "
        "acc = alpha·acc + p @ v_j. Use 0 in place of a -inf m_new when subtracting.",
        "After the key loop: o = acc / l_i (1 where l_i = 0) and lse = m_i + log l_i. For causal, "
        "the key loop of block [q0, q1) stops at min(N_k, q1 + N_k − N_q).",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): keys whose scores fall (the max is in the
# first key tile), rise tile by tile, or are all equal; one key tile or several; square
# and rectangular causal; and the score tiles the learner's code computes, watched in its
# worker (how many, how large).
# ---------------------------------------------------------------------------

from typing import Any  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, Raised, attach, attempt, check as _holds, close,  # noqa: E402
                               measure)

_T = np.random.default_rng(1450)
_V12 = _T.standard_normal((12, 3))


def _ramp(scores: np.ndarray) -> tuple:
    """q = 1 (d = 4) and keys giving exactly ``scores`` (scale 1/√4 included)."""
    q = np.ones((3, 4))
    k = np.repeat((np.asarray(scores, float) * 2 / 4)[:, None], 4, axis=1)
    return q, k, _V12[:len(scores)]


_FALLING = _ramp(np.linspace(4.0, 0.0, 12))
_RISING = _ramp(np.linspace(0.0, 4.0, 12))
_FLAT = _ramp(np.zeros(12))
_LAST_HIGH = _ramp(np.r_[np.zeros(11), 5.0])
_RAND = tuple(_T.standard_normal((n, 4)) for n in (5, 9, 9))
_RECT = tuple(_T.standard_normal((n, 4)) for n in (4, 10, 10))     # 4 queries, 10 keys


def _run(args: tuple, bq: int = 4, bk: int = 4, causal: bool = False) -> Any:
    return lambda ns: ns.tiled_attention(*(a.copy() for a in args), block_q=bq, block_k=bk,
                                         causal=causal)


def _pair(first: Any, second: Any) -> Any:
    return lambda ns: (attempt(lambda: first(ns)), attempt(lambda: second(ns)))


def _ok(g: Any, w: Any) -> bool:
    return not isinstance(g, Raised) and close(g[0], w[0]) and close(g[1], w[1])


def _o_wrong_lse_right(g: Any, w: Any) -> bool:
    return not isinstance(g, Raised) and not close(g[0], w[0]) and close(g[1], w[1])


def _right_then_o_wrong() -> Any:
    """Right on the first input; o wrong on the second (lse right or not: a learner may
    forget l's rescale too)."""
    return _holds(lambda g, w: _ok(g[0], w[0]) and not isinstance(g[1], Raised)
                  and not close(g[1][0], w[1][0]))


def _lse_off(fn: Any) -> Any:
    """o right; lse is ``fn(right lse, row max)``, not the right lse."""
    def holds(g, w, fn=fn):
        return (not isinstance(g, Raised) and close(g[0], w[0]) and not close(g[1], w[1])
                and close(g[1], fn(w[1], _row_max)))
    return _holds(holds)


_row_max = (_RAND[0] @ _RAND[1].T / 2).max(axis=-1)    # the scores' row max on _RAND


def _top_left(q, k, v):
    s = q @ k.T / np.sqrt(q.shape[-1])
    s = np.where(np.arange(k.shape[0])[None, :] <= np.arange(q.shape[0])[:, None], s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def _tiles(n_q: int, n_k: int, bq: int, bk: int, causal: bool) -> Any:
    r = np.random.default_rng(n_q * 100 + n_k)
    q, k, v = r.standard_normal((n_q, 8)), r.standard_normal((n_k, 8)), r.standard_normal((n_k, 8))
    kw = dict(block_q=bq, block_k=bk, causal=causal)
    return lambda ns: measure(ns, "attnkata_plugins.core.level4.probe", "watched_call",
                              "tiled_attention", (q, k, v), kw, {0: "q", 1: "k"}, True)


def _seen(pred: Any) -> Any:
    """Right values, and ``pred(tiles)`` on the score tiles computed."""
    return _holds(lambda g, w: _ok(g[0], w[0]) and pred([tuple(t) for t in g[1]["tiles"]]))


def _key_outer(q, k, v, block_q=64, block_k=64, causal=False):
    """Correct, written differently: key blocks outside, every query's (m, l, acc) kept
    for the whole pass (FlashAttention-1's loop order)."""
    n_q, d = q.shape[-2:]
    n_k = k.shape[-2]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    off = n_k - n_q
    m = np.full((*lead, n_q), -np.inf, dtype=q.dtype)
    l = np.zeros((*lead, n_q), dtype=q.dtype)
    acc = np.zeros((*lead, n_q, v.shape[-1]), dtype=q.dtype)
    for k0 in range(0, n_k, block_k):
        k1 = min(k0 + block_k, n_k)
        for q0 in range(0, n_q, block_q):
            q1 = min(q0 + block_q, n_q)
            if causal and k0 > q1 - 1 + off:
                continue
            s = (q[..., q0:q1, :] @ np.swapaxes(k[..., k0:k1, :], -1, -2)) * d ** -0.5
            if causal:
                s = np.where(np.arange(k0, k1)[None, :] <= np.arange(q0, q1)[:, None] + off, s, -np.inf)
            mi = m[..., q0:q1]
            new = np.maximum(mi, s.max(axis=-1))
            safe = np.where(np.isfinite(new), new, 0)
            a = np.exp(mi - safe)
            p = np.exp(s - safe[..., None])
            l[..., q0:q1] = a * l[..., q0:q1] + p.sum(axis=-1)
            acc[..., q0:q1, :] = a[..., None] * acc[..., q0:q1, :] + p @ v[..., k0:k1, :]
            m[..., q0:q1] = new
    with np.errstate(divide="ignore"):
        lse = m + np.log(l)
    return acc / np.where(l == 0, 1, l)[..., None], np.where(l == 0, -np.inf, lse)


TILED_ATTENTION = attach(
    TILED_ATTENTION,
    probes={
        # source: dao-2023 Algorithm 1 (diag(exp(m_old − m_new)) on O); deepseek-ai/FlashMLA#177
        "missing_rescale": (
            Probe("key tiles of 4: the max in the first tile, then rising tile by tile",
                  _pair(_run(_FALLING), _run(_RISING)), _right_then_o_wrong()),
            Probe("key tiles of 4: every score equal, then only the last key higher",
                  _pair(_run(_FLAT), _run(_LAST_HIGH)), _right_then_o_wrong()),
        ),
        # source: Dao-AILab/flash-attention#978 (a forward whose LSE was not the log-sum-exp
        # the merge expects); lse = m + log l
        "lse_without_m": (
            Probe("5 queries, 9 keys, tiles 2 × 4: lse off by exactly each row's max score",
                  _run(_RAND, 2, 4), _lse_off(lambda lse, m: lse - m)),
            Probe("the same, causal: o right, lse wrong", _run(_RAND, 2, 4, True),
                  _holds(lambda g, w: not isinstance(g, Raised) and close(g[0], w[0])
                         and not close(g[1], w[1]) and bool((g[1] < w[1]).all()))),
        ),
        # source: ROCm/aotriton#108 and lightseekorg/tokenspeed#571 (a base-2 LSE stored
        # where natural log was expected)
        "lse_log2": (
            Probe("5 queries, 9 keys, tiles 2 × 4: lse = the right one / ln 2",
                  _run(_RAND, 2, 4), _lse_off(lambda lse, m: lse / np.log(2))),
            Probe("the same, causal", _run(_RAND, 2, 4, True),
                  _holds(lambda g, w: not isinstance(g, Raised) and close(g[0], w[0])
                         and close(g[1], w[1] / np.log(2)) and not close(g[1], w[1]))),
        ),
        # source: Dao-AILab/flash-attention#1349 (a reader mixing the per-tile diag(l)⁻¹ of
        # FlashAttention-1 into FlashAttention-2's divide-once-at-the-end)
        "divided_per_tile": (
            Probe("one key tile (block_k = 12), then tiles of 4 with the max in the first",
                  _pair(_run(_FALLING, 4, 12), _run(_FALLING)),
                  _right_then_o_wrong()),
            Probe("every score equal, tiles of 4 (no rescale needed): o wrong, lse right",
                  _run(_FLAT), _holds(_o_wrong_lse_right)),
        ),
        # source: Dao-AILab/flash-attention#517 and pytorch/pytorch#108108 (top-left vs
        # bottom-right causal alignment when N_q ≠ N_k)
        "causal_top_left": (
            Probe("causal, 9 queries on 9 keys, then 4 queries on 10 keys",
                  _pair(_run((_RAND[1], _RAND[1], _RAND[2]), 4, 4, True),
                        _run(_RECT, 2, 4, True)),
                  _holds(lambda g, w: _ok(g[0], w[0]) and not isinstance(g[1], Raised)
                         and not close(g[1][0], w[1][0]))),
            Probe("causal, 4 queries on 10 keys: query i sees keys 0..i",
                  _run(_RECT, 2, 4, True),
                  _holds(lambda g, w: not isinstance(g, Raised)
                         and close(g[0], _top_left(*_RECT)) and not close(g[0], w[0]))),
        ),
        # source: dao-2022 §3.1 (causal tiles above the diagonal are skipped) and Triton's
        # fused-attention tutorial (the STAGE split); values stay right, the count tells
        "causal_not_skipped": (
            Probe("causal, N = 40, tiles 8 × 8: right values, all 25 tiles computed",
                  _tiles(40, 40, 8, 8, True), _seen(lambda t: len(t) == 25)),
            Probe("causal, 13 queries on 29 keys, tiles 4 × 8: right values, all 16 tiles",
                  _tiles(13, 29, 4, 8, True), _seen(lambda t: len(t) == 16)),
        ),
        # source: dao-2022 §1 (the N × N matrix is what tiling avoids)
        "materialised_scores": (
            Probe("N = 20, tiles 6 × 7: right values, one [20, 20] score block",
                  _tiles(20, 20, 6, 7, False), _seen(lambda t: (20, 20) in t)),
            Probe("causal, 13 queries on 29 keys, tiles 4 × 8: one [13, 29] score block",
                  _tiles(13, 29, 4, 8, True), _seen(lambda t: (13, 29) in t)),
        ),
        # source: rabe-2021 (queries chunked, keys not: the row strip), the step before
        # FlashAttention's two-level tiling
        "row_strip": (
            Probe("N = 20, tiles 6 × 7: right values, [≤ 6, 20] strips of scores",
                  _tiles(20, 20, 6, 7, False),
                  _seen(lambda t: bool(t) and all(r <= 6 for r, _ in t) and (6, 20) in t)),
            Probe("13 queries on 29 keys, tiles 4 × 8: [≤ 4, 29] strips",
                  _tiles(13, 29, 4, 8, False),
                  _seen(lambda t: bool(t) and all(r <= 4 for r, _ in t) and (4, 29) in t)),
        ),
    },
    diagnostics=(Probe("5 queries, 9 keys, tiles 2 × 4", _run(_RAND, 2, 4),
                       axes=("query", "feature"), tiles={"query": 2}),),
    variants=(Fake("key_blocks_outside", {"tiled_attention": _key_outer}),),
)
