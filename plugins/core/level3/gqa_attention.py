"""Level 3 · gqa_attention: query heads that share KV heads, without repeating K/V."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import FLOAT_DTYPES, SCALES, filled, seeds, sizes
from attnkata_plugins.kvlab import kv_cache_bytes as lab_bytes

from .common import peak_bytes

MiB = 2**20


def causal(n_q, n_k):
    """True = may attend; queries are the last n_q positions (level 1's alignment)."""
    return np.arange(n_k)[None, :] <= np.arange(n_q)[:, None] + (n_k - n_q)


@st.composite
def _gqa_case(draw):
    b, n_kv, g = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    n_q, n_k, d = draw(sizes(1, 13)), draw(sizes(1, 13)), draw(sizes(1, 16))
    dtype, scale, seed = draw(st.sampled_from(FLOAT_DTYPES)), draw(st.sampled_from(SCALES)), draw(seeds())
    q = filled((b, n_kv * g, n_q, d), dtype, scale, seed)
    k = filled((b, n_kv, n_k, d), dtype, scale, seed + 1)
    v = filled((b, n_kv, n_k, d), dtype, 1.0, seed + 2)
    kind = draw(st.sampled_from(("none", "causal", "random", "random")))
    mask = None if kind == "none" else causal(n_q, n_k) if kind == "causal" else \
        np.random.default_rng(seed + 3).random((b, 1, n_q, n_k)) < 0.6
    return q, k, v, mask


@check("matches the reference on random B, H_q, H_kv, N, d, dtypes, scales and masks")
def gqa_matches_reference(ctx):
    @ctx.given(case=_gqa_case())
    def prop(case):
        q, k, v, mask = case
        ctx.expect("gqa_attention", q, k, v, mask=mask)

    prop()


def _per_head(q, k, v, mask=None):
    """Head by head, each query head h reading KV head h // G: the definition, in float64."""
    B, H_q, N_q, d = q.shape
    G = H_q // k.shape[1]
    out = np.zeros((B, H_q, N_q, v.shape[-1]))
    for b in range(B):
        for h in range(H_q):
            s = q[b, h].astype(np.float64) @ k[b, h // G].T.astype(np.float64) / np.sqrt(d)
            if mask is not None:
                s = np.where(np.broadcast_to(mask, (B, H_q) + s.shape)[b, h], s, -np.inf)
            m = s.max(axis=-1, keepdims=True)
            e = np.exp(s - np.where(np.isfinite(m), m, 0))
            total = e.sum(axis=-1, keepdims=True)
            out[b, h] = (e / np.where(total == 0, 1, total)) @ v[b, h // G]
    return out.astype(q.dtype)


@check("MHA (H_kv = H_q), GQA and MQA (H_kv = 1) equal head-by-head attention with grouped heads")
def gqa_equals_per_head(ctx):
    for h_q, h_kv, mask in ((4, 4, None), (6, 2, causal(5, 7)), (8, 1, None), (6, 3, causal(7, 7))):
        rng = np.random.default_rng(int(ctx.rng.integers(2**31)))
        q = rng.standard_normal((2, h_q, mask.shape[0] if mask is not None else 3, 8))
        k, v = rng.standard_normal((2, 2, h_kv, 7, 8))
        got = ctx.call("gqa_attention", q, k, v, mask=mask)
        ctx.match(got, _per_head(q, k, v, mask), f"gqa_attention with H_q={h_q}, H_kv={h_kv} vs "
                  f"per-head attention", entries=("gqa_attention",),
                  rerun=lambda ns: ns.gqa_attention(q.copy(), k.copy(), v.copy(), mask=mask))


@check("a query whose mask row is all False gets zeros, not NaN")
def gqa_empty_rows(ctx):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 4, 3, 5)).astype(np.float32)
    k, v = rng.standard_normal((2, 1, 2, 4, 5)).astype(np.float32)
    rows = np.array([[False, False, False, False], [True, True, False, False],
                     [False, False, False, True]])               # row 0 sees nothing
    ctx.expect("gqa_attention", q, k, v, mask=rows)
    ctx.expect("gqa_attention", q, k, v, mask=causal(6, 4)[:3])  # rows 0 and 1 see nothing


MEMORY_SETUPS = ((32, 1), (32, 2))  # (H_q, H_kv) at decode: N_q = 1, N_k = 4096, d = 64


@check("never materialises repeated K/V: peak memory at H_q = 32, H_kv ∈ {1, 2}, N_k = 4096 "
       "(tracemalloc) stays far below one repeated copy")
def gqa_no_repeat(ctx):
    for h_q, h_kv in MEMORY_SETUPS:
        rng = np.random.default_rng(11)
        q = rng.standard_normal((1, h_q, 1, 64)).astype(np.float32)
        k, v = rng.standard_normal((2, 1, h_kv, 4096, 64)).astype(np.float32)
        ctx.expect("gqa_attention", q[:, :, :, :8], k[:, :, :33, :8], v[:, :, :33, :8])
        what = f"gqa_attention(q [1, {h_q}, 1, 64], k, v [1, {h_kv}, 4096, 64])"
        peak = peak_bytes(ctx, "gqa_attention", (q, k, v), {}, what)
        scores = 4 * h_q * 4096                                  # one float32 score row per head
        budget = 4 * (k.nbytes + v.nbytes) + 8 * scores
        repeated = (h_q // h_kv) * (k.nbytes + v.nbytes)
        ctx.record(f"H_q={h_q}, H_kv={h_kv}: peak {peak / 1e6:.1f} MB vs {repeated / 1e6:.1f} MB "
                   f"if K/V were repeated (tracemalloc)")
        if peak > budget:
            ctx.fail(f"gqa_attention with H_q={h_q}, H_kv={h_kv}: peak memory {peak / 1e6:.1f} MB, "
                     f"while K and V together are {(k.nbytes + v.nbytes) / 1e6:.1f} MB (budget "
                     f"{budget / 1e6:.1f} MB). K/V repeated for every query head would be "
                     f"{repeated / 1e6:.1f} MB: repeated K/V was materialised",
                     misconception="repeat_materialised")


def _attend(q, k, v, mask, scale=True, empty_nan=False):
    s = q @ np.swapaxes(k, -1, -2)
    if scale:
        s = s / np.asarray(np.sqrt(q.shape[-1]), dtype=q.dtype)
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    if not empty_nan:
        m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    return ((e / (total if empty_nan else np.where(total == 0, 1, total))) @ v).astype(q.dtype)


def _repeat(q, k, v, mask=None):
    g = q.shape[1] // k.shape[1]
    return _attend(q, np.repeat(k, g, axis=1), np.repeat(v, g, axis=1), mask)


def _tile(q, k, v, mask=None):
    g = q.shape[1] // k.shape[1]
    return _attend(q, np.tile(k, (1, g, 1, 1)), np.tile(v, (1, g, 1, 1)), mask)


def _no_scale(q, k, v, mask=None):
    g = q.shape[1] // k.shape[1]
    return _attend(q, np.repeat(k, g, axis=1), np.repeat(v, g, axis=1), mask, scale=False)


def _inverted(q, k, v, mask=None):
    return _repeat(q, k, v, None if mask is None else ~np.asarray(mask))


def _nan_rows(q, k, v, mask=None):
    g = q.shape[1] // k.shape[1]
    return _attend(q, np.repeat(k, g, axis=1), np.repeat(v, g, axis=1), mask, empty_nan=True)



gqa_strided_inputs = layout_check(
    "gqa_attention", lambda ctx: [((ctx.rng.standard_normal((1, 4, 5, 8)),
                                    ctx.rng.standard_normal((1, 2, 6, 8)),
                                    ctx.rng.standard_normal((1, 2, 6, 8))), {}),
                                  ((ctx.rng.standard_normal((2, 3, 4, 8)).astype(np.float32),
                                    ctx.rng.standard_normal((2, 1, 4, 8)).astype(np.float32),
                                    ctx.rng.standard_normal((2, 1, 4, 8)).astype(np.float32)),
                                   {"mask": np.tril(np.ones((4, 4), bool))})],
    "q, k, v as transposed, sliced and head-interleaved ([B, N, H, d] memory) views",
    id="gqa_strided_inputs", layouts=("transposed", "sliced", "heads_interleaved"))


GQA_ATTENTION = Kata(
    id="gqa_attention", level=3, title="Grouped-query attention without copying K and V",
    path="level3/gqa_attention.py", entries=("gqa_attention",),
    checks=(gqa_matches_reference, gqa_equals_per_head, gqa_empty_rows, gqa_no_repeat,
            gqa_strided_inputs),
    predictions=(
        Prediction("mha_layer_mib", "one layer, batch 1, 32 heads, T = 4000, d = 128, fp16, MHA "
                   "(32 KV heads): the KV cache in MiB (2^20 bytes)",
                   lab_bytes(1, 1, 4000, 32, 128) / MiB, rel_tol=0.01,
                   why="4000·32·128·2·2 = 65,536,000 bytes = 62.5 MiB (65.5 MB)."),
        Prediction("gqa8_layer_mib", "the same layer with 8 KV heads (GQA): MiB",
                   lab_bytes(1, 1, 4000, 8, 128) / MiB, rel_tol=0.01, why="62.5 × 8/32 = 15.625 MiB."),
        Prediction("gqa16_layer_mib", "and with 16 KV heads: MiB",
                   lab_bytes(1, 1, 4000, 16, 128) / MiB, rel_tol=0.01,
                   why="62.5 × 16/32 = 31.25 MiB: half of MHA's."),
    ),
    misconceptions=(
        Misconception("modulo_mapping", "query head h read KV head h % H_kv (np.tile: interleaved)",
                      {"gqa_attention": _tile},
                      "Consecutive query heads share a KV head: h reads h // (H_q / H_kv). "
                      "np.tile repeats the whole head list; the grouping is np.repeat's order."),
        Misconception("repeat_materialised", "materialised repeated K/V (np.repeat) for every "
                      "query head", {"gqa_attention": _repeat},
                      "Copying K and V H_q/H_kv times rebuilds the very memory GQA saves. View q "
                      "as [B, H_kv, G, N_q, d] and k as [B, H_kv, 1, N_k, d]: matmul broadcasts "
                      "the KV head over its G query heads without copying."),
        Misconception("forgot_scale", "forgot the 1/√d scaling", {"gqa_attention": _no_scale},
                      "Grouping changes which K/V a head reads, not the attention: divide by √d."),
        Misconception("mask_inverted", "treated mask True as 'blocked'", {"gqa_attention": _inverted},
                      "True = may attend: keep scores where the mask is True."),
        Misconception("nan_on_empty_rows", "a query that sees no key becomes NaN",
                      {"gqa_attention": _nan_rows},
                      "An all-False mask row has max −inf: replace it by 0 and divide by 1 where the "
                      "sum is 0, so that row's output is zeros."),
    ),
    claims=(
        Claim("mqa-shares-one-head", "With H_kv = 1 every query head attends over one shared K/V "
              "head; with H_kv = H_q it is multi-head attention.", scope="exact",
              source="shazeer-2019-mqa", evidence=("gqa_equals_per_head", "gqa_matches_reference"),
              not_claimed="Nothing about model quality under sharing."),
        Claim("gqa-broadcast-memory", "Grouped attention broadcasts the shared K/V: peak memory "
              "stays within a few copies of K+V, not H_q/H_kv copies.", scope="toy",
              source="ainslie-2023-gqa", evidence=("gqa_no_repeat",),
              not_claimed="Measured with tracemalloc in NumPy at N_k = 4096; a GPU kernel's "
                          "bandwidth is level 5's business."),
    ),
    hints=(
        "G = H_q // H_kv query heads share each KV head, and they are consecutive: query head h "
        "reads KV head h // G.",
        "Reshape q to [B, H_kv, G, N_q, d] (a view) and give k, v a size-1 axis: k[:, :, None] is "
        "[B, H_kv, 1, N_k, d]. `@` broadcasts that axis without copying.",
        "s = q5 @ swapaxes(k5, -1, -2) / √d; mask: broadcast to [B, H_q, N_q, N_k] then reshape "
        "to [B, H_kv, G, N_q, N_k]; stable softmax (empty rows → 0); o = p @ v5, reshaped back to "
        "[B, H_q, N_q, d].",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): small GQA inputs whose wrong output tells
# the mistakes apart — which query heads go wrong, which rows go NaN, whether the output
# is attention at scale 1 or under the opposite mask — and, for repeated K/V, the peak
# memory next to a right answer.
# ---------------------------------------------------------------------------

from typing import Any  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, all_of, along, attach, attempt, check as _holds,  # noqa: E402
                               close, equals, measure, nan_in, wrong, wrong_only_in)

_R = np.random.default_rng(1403)
_AXES = ("batch", "head", "query", "feature")
_Q4, _K2, _V2 = _R.standard_normal((1, 4, 3, 8)), *_R.standard_normal((2, 1, 2, 5, 8))
_Q6, _K3, _V3 = _R.standard_normal((1, 6, 2, 8)), *_R.standard_normal((2, 1, 3, 5, 8))
_QM, _KM, _VM = _R.standard_normal((1, 3, 4, 16)), *_R.standard_normal((2, 1, 3, 6, 16))
_SOME = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 0, 1]], bool)   # no row empty,
_EMPTY0 = np.array([[0, 0, 0, 0, 0], [1, 1, 0, 0, 1], [0, 0, 1, 0, 0]], bool)  # nor its inverse


def _heads_wrong(exactly: set) -> Any:
    """Wrong in exactly the query heads ``exactly`` (every one of them), right in the others."""
    def fn(g, w):
        bad = wrong(g, w)
        return bad is not None and {h for h in range(w.shape[1]) if bad[:, h].any()} == exactly
    return _holds(fn)


def _run(q, k, v, **kw: Any) -> Any:
    return lambda ns: ns.gqa_attention(q.copy(), k.copy(), v.copy(), **kw)


def _unscaled(q, k, v, mask=None):
    return _per_head(q * np.sqrt(q.shape[-1]), k, v, mask)


def _peak_and_value(h_q: int, h_kv: int) -> Any:
    """Peak memory of one decode step (N_k = 2048, d = 32) and the output on a small input."""
    def run(ns):
        rng = np.random.default_rng(h_q * 10 + h_kv)
        q = rng.standard_normal((1, h_q, 1, 32)).astype(np.float32)
        k, v = rng.standard_normal((2, 1, h_kv, 2048, 32)).astype(np.float32)
        seen = measure(ns, "attnkata.probes", "peak_call", "gqa_attention", (q, k, v), {})
        return float(seen["peak"]), attempt(lambda: ns.gqa_attention(_Q4.copy(), _K2.copy(),
                                                                     _V2.copy()))
    return run


def _repeated(h_q: int, h_kv: int) -> Any:
    kv_bytes = 2 * h_kv * 2048 * 32 * 4
    return _holds(lambda g, w: close(g[1], w[1]) and g[0] > 4 * kv_bytes
                  and g[0] > 0.5 * (h_q // h_kv) * kv_bytes)


def _by_group(q, k, v, mask=None):
    """Correct, written differently: one matmul per KV head over its G query heads."""
    B, H_q, N_q, d = q.shape
    H_kv = k.shape[1]
    G = H_q // H_kv
    out = np.empty((B, H_q, N_q, v.shape[-1]), dtype=q.dtype)
    full = None if mask is None else np.broadcast_to(mask, (B, H_q, N_q, k.shape[2]))
    for j in range(H_kv):
        s = np.einsum("bgqd,bkd->bgqk", q[:, j * G:(j + 1) * G], k[:, j]) / np.sqrt(d)
        if full is not None:
            s = np.where(full[:, j * G:(j + 1) * G], s, -np.inf)
        m = s.max(axis=-1, keepdims=True)
        e = np.exp(s - np.where(np.isfinite(m), m, 0))
        t = e.sum(axis=-1, keepdims=True)
        out[:, j * G:(j + 1) * G] = np.einsum("bgqk,bkd->bgqd", e / np.where(t == 0, 1, t), v[:, j])
    return out


GQA_ATTENTION = attach(
    GQA_ATTENTION,
    probes={
        # source: apple/axlearn#842 (jnp.repeat vs tile order of the KV heads);
        # fkodom/grouped-query-attention-pytorch#5 (query heads mixed with the wrong KV head)
        "modulo_mapping": (
            Probe("H_q = 4, H_kv = 2, no mask", _run(_Q4, _K2, _V2), _heads_wrong({1, 2}),
                  axes=_AXES),
            Probe("H_q = 6, H_kv = 3, no mask", _run(_Q6, _K3, _V3), _heads_wrong({1, 2, 3, 4}),
                  axes=_AXES),
        ),
        # source: meta-llama/llama#384 (repeat_kv copies K/V per query head);
        # state-spaces/mamba#462 (repeat before SDPA)
        "repeat_materialised": (
            Probe("a decode step at H_q = 32, H_kv = 1, N_k = 2048: peak memory, and a right "
                  "answer at H_q = 4, H_kv = 2", _peak_and_value(32, 1), _repeated(32, 1)),
            Probe("the same at H_q = 32, H_kv = 2", _peak_and_value(32, 2), _repeated(32, 2)),
        ),
        # source: vaswani-2017 §3.2.1 (the 1/√d factor); the omission is invisible at d = 1,
        # so these probes compare d = 1 with d = 16
        "forgot_scale": (
            Probe("MHA (3 heads), d = 1 then d = 16: right only at d = 1",
                  lambda ns: (attempt(lambda: _run(_QM[..., :1], _KM[..., :1], _VM)(ns)),
                              attempt(lambda: _run(_QM, _KM, _VM)(ns))),
                  _holds(lambda g, w: close(g[0], w[0]) and not close(g[1], w[1]))),
            Probe("H_q = 4, H_kv = 2, d = 8: the output is attention with scale 1",
                  _run(_Q4, _K2, _V2), all_of(equals(_unscaled(_Q4, _K2, _V2)),
                                              _holds(lambda g, w: not close(g, w))), axes=_AXES),
        ),
        # source: rasbt/LLMs-from-scratch#1061 and pytorch/pytorch#170415 (SDPA's True means
        # "take part", nn.MultiheadAttention's True means "ignore": masks get inverted)
        "mask_inverted": (
            Probe("a mask whose rows and their inverses all see a key: the output is attention "
                  "under the opposite mask", _run(_Q6[:, :3, :1].repeat(3, 2), _KM[..., :8][:, :, :5],
                                                  _VM[..., :8][:, :, :5], mask=_SOME),
                  all_of(equals(_per_head(_Q6[:, :3, :1].repeat(3, 2), _KM[..., :8][:, :, :5],
                                          _VM[..., :8][:, :, :5], ~_SOME)),
                         _holds(lambda g, w: not close(g, w))), axes=_AXES),
            Probe("no mask, then a mask of all True: right only without the mask",
                  lambda ns: (attempt(lambda: _run(_Q4, _K2, _V2)(ns)),
                              attempt(lambda: _run(_Q4, _K2, _V2, mask=np.ones((3, 5), bool))(ns))),
                  _holds(lambda g, w: close(g[0], w[0]) and bool(wrong(g[1], w[1]).all()))),
        ),
        # source: pytorch/pytorch#41508 and #103963 (NaN from a fully masked row);
        # tracel-ai/burn#4694 (-inf − -inf = NaN in an attention fallback)
        "nan_on_empty_rows": (
            Probe("query 0 sees no key, queries 1 and 2 do (H_q = 6, H_kv = 3)",
                  _run(_Q6[:, :, :1].repeat(3, 2), _K3, _V3, mask=_EMPTY0),
                  all_of(nan_in(along(-2, 0)), wrong_only_in(along(-2, 0))), axes=_AXES),
            Probe("causal with 4 queries over 2 keys: queries 0 and 1 see nothing",
                  _run(_QM[:, :, :4], _KM[:, :, :2], _VM[:, :, :2], mask=causal(4, 2)),
                  all_of(nan_in(along(-2, slice(0, 2))), wrong_only_in(along(-2, slice(0, 2)))),
                  axes=_AXES),
        ),
    },
    diagnostics=(Probe("H_q = 6, H_kv = 3, a mask with query 0 empty",
                       _run(_Q6[:, :, :1].repeat(3, 2), _K3, _V3, mask=_EMPTY0), axes=_AXES),),
    variants=(Fake("loop_over_kv_heads", {"gqa_attention": _by_group}),),
)
