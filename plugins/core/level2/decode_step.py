"""Level 2 — decode_step: one new token attends over everything cached."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import LAYOUTS, covers
from attnkata.strategies import FLOAT_DTYPES, SCALES, filled, seeds, sizes


class ArrayCache:
    """The smallest object decode_step may rely on: ``.keys``, ``.values`` [H, T, d], ``len``.

    The checks build their caches from this, not from anyone's KVCache, so decode_step
    is graded on its own whatever state the kv_cache kata is in.
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        self.keys, self.values = keys, values

    def __len__(self) -> int:
        return self.keys.shape[1]

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        self.keys = np.concatenate([self.keys, k], axis=1)
        self.values = np.concatenate([self.values, v], axis=1)

    def __repr__(self) -> str:
        h, t, d = self.keys.shape
        return f"cache(T={t}, keys [{h}, {t}, {d}] {self.keys.dtype})"

    def __deepcopy__(self, memo: dict) -> "ArrayCache":
        return ArrayCache(self.keys.copy(), self.values.copy())


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Full causal attention, [H, N, d] each, computed in float64 and cast back."""
    n, d = q.shape[-2], q.shape[-1]
    s = (q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64)) / np.sqrt(d)
    s = np.where(np.tri(n, dtype=bool), s, -np.inf)            # query i sees keys ≤ i
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return ((e / e.sum(axis=-1, keepdims=True)) @ v.astype(np.float64)).astype(q.dtype)


@st.composite
def _step(draw):
    h, t, d = draw(sizes(1, 5)), draw(sizes(1, 17)), draw(sizes(1, 16))
    dtype, scale, seed = draw(st.sampled_from(FLOAT_DTYPES)), draw(st.sampled_from(SCALES)), draw(seeds())
    q_t = filled((h, 1, d), dtype, scale, seed)
    cache = ArrayCache(filled((h, t, d), dtype, scale, seed + 1), filled((h, t, d), dtype, 1.0, seed + 2))
    return q_t, cache


@check("matches the reference for one step over random caches, dtypes and scales")
def decode_matches_reference(ctx):
    @ctx.given(case=_step())
    def prop(case):
        ctx.expect("decode_step", *case)

    prop()


def _generate(decode_step, q, k, v):
    """Decode token by token: append token t's k, v to the cache, then attend with q_t."""
    h, n, d = q.shape
    cache = ArrayCache(k[:, :0].copy(), v[:, :0].copy())
    outs = []
    for t in range(n):
        cache.append(k[:, t:t + 1], v[:, t:t + 1])
        outs.append(decode_step(q[:, t:t + 1].copy(), cache))
    return np.concatenate(outs, axis=1)                           # (H, N, d)


@check("a whole generated sequence, token by token, equals full causal attention")
def decode_equals_causal_attention(ctx):
    for (h, n, d), dtype, scale in (((2, 12, 8), np.float64, 1.0), ((3, 9, 5), np.float32, 1.0),
                                    ((1, 7, 4), np.float64, 40.0), ((4, 20, 16), np.float32, 0.001)):
        seed = int(ctx.rng.integers(2**31))
        q, k = filled((h, n, d), dtype, scale, seed), filled((h, n, d), dtype, scale, seed + 1)
        v = filled((h, n, d), dtype, 1.0, seed + 2)
        call = lambda q_t, cache: ctx.call("decode_step", q_t, cache)  # noqa: E731
        got = _generate(call, q, k, v)
        ctx.match(got, causal_attention(q, k, v),
                  f"decode_step over {n} generated tokens (q, k, v [{h}, {n}, {d}] "
                  f"{np.dtype(dtype).name}, scale {scale:g}) vs full causal attention",
                  rerun=lambda ns: _generate(ns.decode_step, q, k, v), entries=("decode_step",))


@check("one cached token: the output is exactly that token's value, for any query")
def decode_single_token(ctx):
    q_t = np.array([[[3.0, -1.0]]])
    cache = ArrayCache(np.array([[[0.5, 2.0]]]), np.array([[[7.0, -4.0]]]))
    ctx.expect("decode_step", q_t, cache)
    ctx.expect("decode_step", q_t.astype(np.float32) * 1000,
               ArrayCache(cache.keys.astype(np.float32), cache.values.astype(np.float32)))


def _softmax_rows(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _attend(q_t, k, v, scale=True):
    if k.shape[1] == 0:
        return np.zeros_like(q_t, shape=(q_t.shape[0], 1, v.shape[-1]))
    s = q_t @ np.swapaxes(k, -1, -2)
    if scale:
        s = s / np.asarray(np.sqrt(q_t.shape[-1]), dtype=q_t.dtype)
    return (_softmax_rows(s) @ v).astype(q_t.dtype)


def _only_new(q_t, cache):
    return cache.values[:, -1:].astype(q_t.dtype)


def _no_scale(q_t, cache):
    return _attend(q_t, cache.keys, cache.values, scale=False)


def _excludes_current(q_t, cache):
    return _attend(q_t, cache.keys[:, :-1], cache.values[:, :-1])


def _naive_exp(q_t, cache):
    s = (q_t @ np.swapaxes(cache.keys, -1, -2)) / np.asarray(np.sqrt(q_t.shape[-1]), dtype=q_t.dtype)
    e = np.exp(s)
    return ((e / e.sum(axis=-1, keepdims=True)) @ cache.values).astype(q_t.dtype)


def _over_heads(q_t, cache):
    s = (q_t @ np.swapaxes(cache.keys, -1, -2)) / np.asarray(np.sqrt(q_t.shape[-1]), dtype=q_t.dtype)
    e = np.exp(s - s.max(axis=0, keepdims=True))
    return ((e / e.sum(axis=0, keepdims=True)) @ cache.values).astype(q_t.dtype)



@covers("noncontiguous")
@check("q_t and the cached keys and values as transposed and sliced views")
def decode_strided_inputs(ctx):
    q_t = ctx.rng.standard_normal((2, 1, 8))
    k, v = ctx.rng.standard_normal((2, 9, 8)), ctx.rng.standard_normal((2, 9, 8))
    for name in ("transposed", "sliced"):
        view = LAYOUTS[name]
        ctx.expect("decode_step", view(q_t), ArrayCache(view(k), view(v)))


DECODE_STEP = Kata(
    id="decode_step", level=2, title="One decoding step over the cache",
    path="level2/decode_step.py", entries=("decode_step",),
    checks=(decode_matches_reference, decode_equals_causal_attention, decode_single_token,
            decode_strided_inputs),
    predictions=(
        Prediction("dots_per_step", "the cache holds T = 1000 tokens: how many query·key dot "
                   "products does one decode step compute, per head?", 1000, rel_tol=1e-9,
                   why="One new query against every cached key: T dot products, O(T) per token."),
        Prediction("total_dots_1000", "generating 1000 tokens one by one with a cache: the total "
                   "number of query·key dot products per head (1 + 2 + … + 1000)", 500500,
                   rel_tol=0.02, why="Σ t = T(T+1)/2 = 500,500: the cache saves recomputing K and V, "
                   "but attention over a growing context is still quadratic in total."),
    ),
    misconceptions=(
        Misconception("only_new_token", "attended only to the newest token", {"decode_step": _only_new},
                      "The new query attends over EVERY cached key, not just its own: the cache "
                      "exists so the past can be read."),
        Misconception("forgot_scale", "forgot the 1/√d scaling", {"decode_step": _no_scale},
                      "A decode step is ordinary attention: divide q·k by √d before softmax."),
        Misconception("excludes_current", "left the current token out (attended to keys[:, :-1])",
                      {"decode_step": _excludes_current},
                      "The new token's k, v are appended before the step: under a causal mask a "
                      "token sees itself, so the last row of causal attention includes it."),
        Misconception("no_max_subtraction", "exponentiated without subtracting the maximum",
                      {"decode_step": _naive_exp},
                      "Large scores overflow exp(): subtract each row's maximum first."),
        Misconception("softmax_over_heads", "normalised over the heads axis instead of the keys",
                      {"decode_step": _over_heads},
                      "Each head has its own distribution over the T cached keys: reduce along "
                      "the last axis."),
    ),
    claims=(
        Claim("decode-equals-full-attention", "Decoding token by token from a KV cache gives "
              "exactly the rows of full causal attention.", scope="exact", source="shazeer-2019-mqa",
              evidence=("decode_equals_causal_attention",),
              not_claimed="Nothing about decode latency or memory bandwidth; checked on small NumPy "
                          "sequences."),
    ),
    hints=(
        "q_t is one query per head, [H, 1, d]; cache.keys and cache.values are [H, T, d]. The "
        "result is [H, 1, d].",
        "It is the attention you already know with N_q = 1: scores q_t @ keysᵀ / √d give [H, 1, T], "
        "no mask needed (every cached token is in the past or is the token itself).",
        "s = q_t @ np.swapaxes(cache.keys, -1, -2) / math.sqrt(d) (a Python float: under NumPy 2 "
        "np.sqrt(d) would turn float32 into float64); p = stable softmax of s over the last axis; "
        "return (p @ cache.values) in q_t's dtype.",
    ),
)


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): small caches where each mistake shows its own pattern —
# one cached token, one head, d = 1, scores in the ±1000s, values = identity (the output
# is then the weights themselves) — and is right where its mistake cannot show.
# Where learners go wrong — a source note per misconception:
# - only_new_token: a decode step that attends to its own k, v only (the cache unread).
# - forgot_scale: Graylab/DL4Proteins-notebooks#12 (the scale taken from the wrong
#   width, or left out).
# - excludes_current: RobertCsordas/moeut#6 and fla-org/flash-linear-attention#766 (the
#   cache read before, or counted after, the current token's k, v are appended).
# - no_max_subtraction: intel/xFasterTransformer#326 (exp without the max: NaN).
# - softmax_over_heads: jadore801120/attention-is-all-you-need-pytorch#52 (softmax
#   over the wrong dim).
# - k_dot_T_batched, first_key_only: notes at their implementations below.

import re  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, Raised, attach, attempt, check as holds, close,  # noqa: E402
                               nan_in, raises)


def _keys_dot_T(q_t, cache):
    # source: deepset-ai/haystack#9393 and HomericIntelligence/Odyssey#5648 (`.T` on a
    # [H, T, d] array reverses every axis: [d, T, H]; it raises unless H, T, d line up)
    s = (q_t @ cache.keys.T) / np.asarray(np.sqrt(q_t.shape[-1]), dtype=q_t.dtype)
    return (_softmax_rows(s) @ cache.values).astype(q_t.dtype)


def _first_key_only(q_t, cache):
    # source: Dao-AILab/flash-attention#517 and #402 (a causal mask aligned to the top
    # left: with one query and T keys the query sees key 0 only)
    t = cache.keys.shape[1]
    s = (q_t @ np.swapaxes(cache.keys, -1, -2)) / np.asarray(np.sqrt(q_t.shape[-1]), dtype=q_t.dtype)
    s = np.where(np.tril(np.ones((1, t), dtype=bool)), s, -np.inf)
    return (_softmax_rows(s) @ cache.values).astype(q_t.dtype)


_RD = np.random.default_rng(1406)


def _cache(h, t, d, scale=1.0, eye=False):
    k = _RD.standard_normal((h, t, d)) * scale
    v = np.broadcast_to(np.eye(t), (h, t, t)).copy() if eye else _RD.standard_normal((h, t, d))
    return ArrayCache(k, v)


_Q253, _C253 = _RD.standard_normal((2, 1, 4)), _cache(2, 5, 4)
_Q3, _C3 = _RD.standard_normal((3, 1, 6)), _cache(3, 4, 6)
_Q1d, _C1d = _RD.standard_normal((2, 1, 1)), _cache(2, 5, 1)
_Q8, _C8 = _RD.standard_normal((2, 1, 8)), _cache(2, 5, 8)
_QI, _CI = _RD.standard_normal((3, 1, 4)), _cache(3, 5, 4, eye=True)          # values = I
_QI2, _CI2 = _RD.standard_normal((2, 1, 4)), _cache(2, 4, 4, eye=True)
_QBIG, _CBIG = _RD.standard_normal((2, 1, 4)) * 30, _cache(2, 5, 4, scale=30.0)
_Q1, _C1 = _RD.standard_normal((2, 1, 3)), _cache(2, 1, 3)                    # one token
_QOK, _COK = _RD.standard_normal((1, 1, 1)), _cache(1, 1, 1)                   # H = T = d = 1
_SHAPEY = "mismatch|shape|size|align|broadcast|operand|dimension"


def _attn(q_t, k, v):
    s = q_t @ np.swapaxes(k, -1, -2) / np.sqrt(q_t.shape[-1])
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def _one_step(q, c, what, pred, **kw):
    return Probe.of(what, "decode_step", q, c, holds=pred, axes=("head", "query", "feature"), **kw)


def _pair(a, b, what, pred):
    """One probe, two steps: ``pred(got_a, got_b, want_a, want_b)``."""
    return Probe(what, lambda ns: (attempt(lambda: ns.decode_step(a[0].copy(), a[1])),
                                   attempt(lambda: ns.decode_step(b[0].copy(), b[1]))),
                 holds(lambda g, w: pred(g[0], g[1], w[0], w[1])))


def _over_nothing(g, w):
    """Zeros or NaN (a softmax over no keys), or a reduction over an empty axis raised."""
    if isinstance(g, Raised):
        return bool(re.search("zero-size|empty|identity", g.message))
    g = np.asarray(g, float)
    return g.shape == np.shape(w) and bool(np.isnan(g).all() or (g == 0).all())


_weights_over_heads = holds(lambda g, w: np.allclose(np.sum(g, axis=0), 1)
                            and not np.allclose(np.sum(g, axis=-1), 1))


def _bad(g, w):
    return isinstance(g, Raised) or not close(g, w)


DECODE_STEP = attach(
    DECODE_STEP,
    add=(
        Misconception("k_dot_T_batched", "cache.keys.T on [H, T, d] keys (reverses every axis)",
                      {"decode_step": _keys_dot_T},
                      "For [H, T, d] keys, .T is [d, T, H]. Swap only the last two axes: "
                      "np.swapaxes(cache.keys, -1, -2)."),
        Misconception("first_key_only", "applied a causal mask aligned to the start: the new "
                      "query sees only key 0", {"decode_step": _first_key_only},
                      "The new query is the LAST position: under causality it sees every cached "
                      "key. A decode step needs no mask (or one aligned to the end)."),
    ),
    probes={
        "only_new_token": (
            _one_step(_Q253, _C253, "2 heads, 5 cached tokens", holds(
                lambda g, w: close(g, _C253.values[:, -1:]))),
            _one_step(_Q3, _C3, "3 heads, 4 cached tokens", holds(
                lambda g, w: close(g, _C3.values[:, -1:]))),
        ),
        "forgot_scale": (
            _pair((_Q1d, _C1d), (_Q8, _C8), "d = 1, then d = 8",
                  lambda ga, gb, wa, wb: close(ga, wa) and _bad(gb, wb)),
            _one_step(_Q8 / np.sqrt(8), _C8, "the query divided by √d beforehand",
                  holds(lambda g, w: close(g, _attn(_Q8, _C8.keys, _C8.values)))),
        ),
        "excludes_current": (
            _one_step(_Q253, _C253, "5 cached tokens", holds(
                lambda g, w: close(g, _attn(_Q253, _C253.keys[:, :-1], _C253.values[:, :-1])))),
            _one_step(_Q1, _C1, "one cached token (the current one): attends over nothing",
                      holds(_over_nothing)),
        ),
        "no_max_subtraction": (
            _one_step(_QBIG, _CBIG, "scores in the ±1000s, float64", nan_in()),
            _one_step(*(a.astype(np.float32) if isinstance(a, np.ndarray) else ArrayCache(
                a.keys.astype(np.float32), a.values.astype(np.float32)) for a in (_QBIG / 3, _CBIG)),
                "scores in the ±100s, float32", nan_in()),
        ),
        "softmax_over_heads": (
            _one_step(_QI2, _CI2, "2 heads, values = identity (the output is the weights)",
                      _weights_over_heads),
            _one_step(_QI, _CI, "3 heads, values = identity (the output is the weights)",
                      _weights_over_heads),
        ),
        "k_dot_T_batched": (
            _one_step(_Q253, _C253, "2 heads, 5 cached tokens, d = 4", raises("", _SHAPEY)),
            _pair((_QOK, _COK), (_Q3, _C3), "H = T = d = 1, then 3 heads, 4 tokens, d = 6",
                  lambda ga, gb, wa, wb: close(ga, wa) and isinstance(gb, Raised)),
        ),
        "first_key_only": (
            _one_step(_Q253, _C253, "2 heads, 5 cached tokens", holds(
                lambda g, w: close(g, _C253.values[:, :1]))),
            _one_step(_Q3, _C3, "3 heads, 4 cached tokens", holds(
                lambda g, w: close(g, _C3.values[:, :1]))),
        ),
    },
    raises={"k_dot_T_batched": (("", _SHAPEY),)},
    diagnostics=(
        Probe.of("3 heads, 5 cached tokens, values = identity (the output is the weights)",
                 "decode_step", _QI, _CI, axes=("head", "query", "key")),
    ),
    variants=(
        Fake("einsum_step", {"decode_step": lambda q_t, cache: _einsum_step(q_t, cache)}),
        Fake("logsumexp_step", {"decode_step": lambda q_t, cache: _lse_step(q_t, cache)}),
    ),
)


def _einsum_step(q_t, cache):
    """A correct variant: einsum for both products, the query scaled first."""
    q = q_t * (1.0 / np.sqrt(q_t.shape[-1])).astype(q_t.dtype)
    s = np.einsum("hqd,htd->hqt", q, cache.keys)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.einsum("hqt,htd->hqd", e / e.sum(axis=-1, keepdims=True), cache.values).astype(q_t.dtype)


def _lse_step(q_t, cache):
    """A correct variant: weights as exp(s − logsumexp(s)), computed in float64."""
    s = (q_t.astype(np.float64) @ np.swapaxes(cache.keys, -1, -2).astype(np.float64)
         / np.sqrt(q_t.shape[-1]))
    m = s.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True))
    return (np.exp(s - lse) @ cache.values.astype(np.float64)).astype(q_t.dtype)
# == end of diagnosis by behaviour, levels 0-2 ==
