"""Level 3, first half — query heads that share KV heads: the mapping and the attention."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, SCALES, filled, seeds, sizes
from attnkata_plugins.kvlab import kv_cache_bytes as lab_bytes

GiB, MiB = 2**30, 2**20

# ---------------------------------------------------------------------------
# kv_head_for
# ---------------------------------------------------------------------------

HEAD_SETUPS = ((1, 1), (4, 4), (4, 2), (4, 1), (6, 3), (6, 2), (8, 2), (12, 4), (32, 8),
               (32, 16), (32, 1), (64, 8), (40, 5))


def _mapping(ns, n_q, n_kv):
    return [ns.kv_head_for(h, n_q, n_kv) for h in range(n_q)]


@check("maps every query head for MHA, GQA and MQA layouts (H_q up to 64)")
def head_mapping_matches(ctx):
    for n_q, n_kv in HEAD_SETUPS:
        ctx.expect_scenario(lambda ns: _mapping(ns, n_q, n_kv),
                            f"[kv_head_for(h, {n_q}, {n_kv}) for h in range({n_q})]")


@check("every KV head serves exactly H_q / H_kv consecutive query heads")
def heads_evenly_shared(ctx):
    for n_q, n_kv in HEAD_SETUPS:
        got = ctx.run(lambda: _mapping(ctx.target, n_q, n_kv), f"kv_head_for(·, {n_q}, {n_kv})")
        counts = [got.count(j) for j in range(n_kv)]
        if counts != [n_q // n_kv] * n_kv or got != sorted(got):
            ctx.fail(f"kv_head_for(h, {n_q}, {n_kv}) for h = 0..{n_q - 1} gave {got}: each of the "
                     f"{n_kv} KV heads must serve {n_q // n_kv} consecutive query heads")


@check("raises ValueError when n_kv_heads does not divide n_q_heads")
def head_mapping_rejects(ctx):
    fn = ctx.entry("kv_head_for")
    for args in ((0, 6, 4), (5, 32, 3), (1, 4, 8)):
        def attempt(args=args):
            try:
                return "returned", fn(*args)
            except ValueError:
                return "raised", None
            except NotImplementedError:
                raise
            except Exception as exc:  # the wrong kind of error is feedback, not a crash
                # raised in the worker: a type only the worker knows comes back as
                # RemoteError, its own name in learner_type
                return getattr(exc, "learner_type", type(exc).__name__), exc

        what = f"kv_head_for{args}"
        outcome, value = ctx.run(attempt, what)
        if outcome == "returned":
            ctx.fail(f"{what} returned {value!r}: {args[2]} KV heads cannot split {args[1]} query "
                     f"heads into equal groups, so it must raise ValueError",
                     misconception="no_divisibility_check")
        if outcome != "raised":
            ctx.fail(f"{what} raised {outcome} ({value}); expected ValueError, naming the "
                     f"head counts", misconception="no_divisibility_check")


def _modulo(q_head, n_q_heads, n_kv_heads):
    return q_head % n_kv_heads


def _by_kv_heads(q_head, n_q_heads, n_kv_heads):
    return q_head // n_kv_heads


def _unchecked(q_head, n_q_heads, n_kv_heads):
    return q_head // max(n_q_heads // n_kv_heads, 1)


KV_HEAD_FOR = Kata(
    id="kv_head_for", level=3, title="Which KV head does a query head read?",
    path="level3/kv_head_for.py", entries=("kv_head_for",),
    checks=(head_mapping_matches, heads_evenly_shared, head_mapping_rejects),
    predictions=(
        Prediction("head_13_of_32_to_8", "32 query heads share 8 KV heads: which KV head does query "
                   "head 13 read?", 3, kind="exact", why="Groups of 32 / 8 = 4: 13 // 4 = 3."),
        Prediction("gqa_over_mha", "H_q = 32, H_kv = 8, all else equal: GQA's KV cache as a "
                   "fraction of MHA's", 0.25, rel_tol=0.01,
                   why="Only H_kv changes in the cache formula: 8 / 32 = H_kv / H_q."),
        Prediction("llama70b_no_gqa_gib", "the Llama-3-70B-like model (80 layers, d=128, fp16, "
                   "131,072 tokens) without GQA, 64 KV heads instead of 8: the cache in GiB",
                   lab_bytes(1, 80, 131072, 64, 128) / GiB, rel_tol=0.01,
                   why="8× the 40 GiB of the 8-KV-head model: 320 GiB (344 GB) for one request."),
    ),
    misconceptions=(
        Misconception("modulo_interleaved", "used q_head % n_kv_heads (interleaved heads)",
                      {"kv_head_for": _modulo},
                      "Groups are consecutive: heads 0..G−1 share KV head 0, G..2G−1 share KV "
                      "head 1 (G = H_q / H_kv). That is q_head // G, not q_head % H_kv."),
        Misconception("divided_by_kv_heads", "divided by the number of KV heads instead of the "
                      "group size", {"kv_head_for": _by_kv_heads},
                      "Divide by the group size G = n_q_heads // n_kv_heads, the query heads per "
                      "KV head."),
        Misconception("no_divisibility_check", "accepted head counts that do not divide",
                      {"kv_head_for": _unchecked},
                      "With 6 query heads and 4 KV heads the groups cannot be equal: raise "
                      "ValueError instead of silently returning a head."),
    ),
    claims=(
        Claim("gqa-kv-ratio", "Each KV head serves H_q / H_kv consecutive query heads, so GQA "
              "keeps H_kv / H_q of MHA's KV cache.", scope="exact", source="ainslie-2023-gqa",
              evidence=("heads_evenly_shared", "head_mapping_matches"),
              not_claimed="Nothing about quality: fewer KV heads can cost accuracy (the paper "
                          "uptrains to recover it)."),
    ),
    hints=(
        "Group size first: G = n_q_heads // n_kv_heads query heads share each KV head.",
        "Query heads 0..G−1 read KV head 0, heads G..2G−1 read KV head 1, and so on.",
        "if n_q_heads % n_kv_heads: raise ValueError(...); return q_head // (n_q_heads // n_kv_heads)",
    ),
    generic_fakes=("zeros", "echo", "constant", "random"),  # integer inputs: nothing to mutate
)

# ---------------------------------------------------------------------------
# gqa_attention
# ---------------------------------------------------------------------------


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


def peak_bytes(ctx, name, args, kwargs, what):
    """Peak bytes allocated while the target's ``name(*args, **kwargs)`` runs, measured by
    tracemalloc in the learner's own process (the worker), beyond what was live before."""
    ctx.entry(name)
    return ctx.probe("attnkata.probes", "peak_call", name, args, kwargs, what=what)["peak"]


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


GQA_ATTENTION = Kata(
    id="gqa_attention", level=3, title="Grouped-query attention without copying K and V",
    path="level3/gqa_attention.py", entries=("gqa_attention",),
    checks=(gqa_matches_reference, gqa_equals_per_head, gqa_empty_rows, gqa_no_repeat),
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
