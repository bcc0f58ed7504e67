"""Issue 14, levels 3-5: for every kata, mistakes written *here*, differently from the
modelled wrong implementations in plugins/core/levelN/<kata>.py, are named by the
diagnosis (probes, raises, shapes); a correct way of writing each kata names nothing.

Each variant is the kind of code a learner writes: another loop order, another NumPy
spelling, a Triton kernel with the mistake in it; none is copied from a kata's module.
Only the checks that catch a variant are run (named in each row), so the file stays
quick; the Triton kernels here run in the interpreter at small sizes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from attnkata.harness import Ctx, Namespace
from attnkata.runner import FAILED, PASSED

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"

from variants import assert_named, kata_and_ref  # noqa: E402
from variants import verdicts as _verdicts  # noqa: E402


def verdicts(kata, ref, impls: dict, checks: tuple = (), max_examples: int = 6):
    return _verdicts(kata, ref, impls, checks, max_examples)


def probes_name(kata, ref, impls: dict) -> list[str]:
    """What the probes alone (no failing check, no reproduction) name, in rank order."""
    d = Ctx(kata, Namespace(ref, impls, "variant"), ref).explain([])
    return [m.id for m in d.misconceptions]


# ---------------------------------------------------------------------------
# Level 3
# ---------------------------------------------------------------------------

def kv_ratio_float(q_head, n_q_heads, n_kv_heads):
    """h · H_kv / H_q with true division: 13 · 8 / 32 = 3.25."""
    if n_q_heads % n_kv_heads:
        raise ValueError("groups must be equal")
    return q_head * n_kv_heads / n_q_heads


def kv_numpy_float(q_head, n_q_heads, n_kv_heads):
    """np.divide: a numpy float64 head index."""
    if n_kv_heads <= 0 or n_q_heads % n_kv_heads != 0:
        raise ValueError(f"{n_q_heads} % {n_kv_heads} != 0")
    return np.divide(q_head, n_q_heads // n_kv_heads)


def kv_correct_table(q_head, n_q_heads, n_kv_heads):
    if n_kv_heads < 1 or n_q_heads % n_kv_heads:
        raise ValueError("n_kv_heads must divide n_q_heads")
    table = np.repeat(np.arange(n_kv_heads), n_q_heads // n_kv_heads)
    return int(table[q_head])


def gqa_loop_modulo(q, k, v, mask=None):
    """Head by head, KV head h % H_kv (an interleaving a learner reads off a diagram)."""
    B, H_q, N_q, d = q.shape
    out = np.zeros((B, H_q, N_q, v.shape[-1]), dtype=np.float64)
    for h in range(H_q):
        j = h % k.shape[1]
        s = np.einsum("bqd,bkd->bqk", q[:, h], k[:, j]) / math.sqrt(d)
        if mask is not None:
            s = np.where(np.broadcast_to(mask, (B, H_q, N_q, k.shape[2]))[:, h], s, -np.inf)
        m = s.max(-1, keepdims=True)
        e = np.exp(s - np.where(np.isfinite(m), m, 0))
        t = e.sum(-1, keepdims=True)
        out[:, h] = np.einsum("bqk,bkd->bqd", e / np.where(t == 0, 1, t), v[:, j])
    return out.astype(q.dtype)


def gqa_concat_copies(q, k, v, mask=None):
    """K and V concatenated G times along the head axis (tile order), then plain attention."""
    g = q.shape[1] // k.shape[1]
    kk, vv = np.concatenate([k] * g, axis=1), np.concatenate([v] * g, axis=1)
    s = q @ np.swapaxes(kk, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    t = e.sum(-1, keepdims=True)
    return ((e / np.where(t == 0, 1, t)) @ vv).astype(q.dtype)


def gqa_correct_einsum(q, k, v, mask=None):
    B, H_q, N_q, d = q.shape
    H_kv, N_k = k.shape[1], k.shape[2]
    q5 = q.reshape(B, H_kv, H_q // H_kv, N_q, d)
    s = np.einsum("bjgqd,bjkd->bjgqk", q5, k) / math.sqrt(d)
    if mask is not None:
        s = np.where(np.broadcast_to(mask, (B, H_q, N_q, N_k)).reshape(s.shape), s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    t = e.sum(-1, keepdims=True)
    o = np.einsum("bjgqk,bjkd->bjgqd", e / np.where(t == 0, 1, t), v)
    return o.reshape(B, H_q, N_q, v.shape[-1]).astype(q.dtype)


def pool_last_head(w_kv, n_heads, n_kv_heads):
    """Keeps the LAST head of each group."""
    g, d_model = n_heads // n_kv_heads, w_kv.shape[0]
    d_head = w_kv.shape[1] // n_heads
    cols = [w_kv[:, (j * g + g - 1) * d_head:(j * g + g) * d_head] for j in range(n_kv_heads)]
    return np.concatenate(cols, axis=1).astype(w_kv.dtype).reshape(d_model, -1)


def pool_middle_head(w_kv, n_heads, n_kv_heads):
    """Keeps head G // 2 of each group, by a strided slice of a 3-D view."""
    heads = w_kv.reshape(w_kv.shape[0], n_heads, -1)
    g = n_heads // n_kv_heads
    return heads[:, g // 2::g].reshape(w_kv.shape[0], -1).copy()


def pool_correct_loop(w_kv, n_heads, n_kv_heads):
    d_head = w_kv.shape[1] // n_heads
    g = n_heads // n_kv_heads
    out = np.zeros((w_kv.shape[0], n_kv_heads * d_head), dtype=np.float64)
    for h in range(n_heads):
        out[:, (h // g) * d_head:(h // g + 1) * d_head] += w_kv[:, h * d_head:(h + 1) * d_head]
    return (out / g).astype(w_kv.dtype)


def _mla_attend(q, k, v):
    s = q @ k.T / math.sqrt(q.shape[-1])
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def mla_einsum_no_transpose(q, c_kv, w_uk, w_uv, absorb=False):
    """Absorbs with einsum over W_UK's wrong axis (q·W_UK instead of q·W_UKᵀ)."""
    if not absorb:
        return _mla_attend(q, c_kv @ w_uk, c_kv @ w_uv).astype(q.dtype)
    q_lat = np.einsum("qd,dc->qc", q, w_uk)
    s = q_lat @ c_kv.T / math.sqrt(q.shape[-1])
    e = np.exp(s - s.max(-1, keepdims=True))
    return ((e / e.sum(-1, keepdims=True)) @ c_kv @ w_uv).astype(q.dtype)


def mla_transposed_key_side(q, c_kv, w_uk, w_uv, absorb=False):
    """Puts the transpose on the latent keys instead: scores q · (c_kv · W_UKᵀ)ᵀ."""
    if not absorb:
        return _mla_attend(q, c_kv @ w_uk, c_kv @ w_uv).astype(q.dtype)
    s = q @ (c_kv @ w_uk.T).T / math.sqrt(q.shape[-1])
    e = np.exp(s - s.max(-1, keepdims=True))
    return ((e / e.sum(-1, keepdims=True)) @ (c_kv @ w_uv)).astype(q.dtype)


def mla_correct_absorbed(q, c_kv, w_uk, w_uv, absorb=False):
    if absorb:
        s = (q @ w_uk.T) @ c_kv.T / math.sqrt(q.shape[-1])
        s = s - s.max(-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(-1, keepdims=True)
        return (p @ (c_kv @ w_uv)).astype(q.dtype)
    return _mla_attend(q, c_kv @ w_uk, c_kv @ w_uv).astype(q.dtype)


# ---------------------------------------------------------------------------
# Level 4
# ---------------------------------------------------------------------------

def online_no_rescale_blocks(x, block):
    """Updates the max first, then adds the block's exps against it: l never rescaled."""
    m = np.full(x.shape[:-1], -np.inf, dtype=x.dtype)
    l = np.zeros(x.shape[:-1], dtype=x.dtype)
    for s in range(0, x.shape[-1], block):
        blk = x[..., s:s + block]
        m = np.fmax(m, blk.max(axis=-1))
        ref = np.nan_to_num(m, neginf=0.0)
        l += np.sum(np.exp(blk - ref[..., None]), axis=-1)
    return m, l


def online_no_rescale_elements(x, block):
    """One element at a time (never wider than a block), no rescale either."""
    m = np.full(x.shape[:-1], -np.inf, dtype=x.dtype)
    l = np.zeros(x.shape[:-1], dtype=x.dtype)
    for i in range(x.shape[-1]):
        xi = x[..., i]
        m = np.maximum(m, xi)
        l = l + np.exp(xi - np.where(np.isfinite(m), m, 0))
    return m, l


def online_correct_log_space(x, block):
    m = np.full(x.shape[:-1], -np.inf, dtype=x.dtype)
    l = np.zeros(x.shape[:-1], dtype=x.dtype)
    for s in range(0, x.shape[-1], block):
        blk = x[..., s:s + block]
        new = np.maximum(m, blk.max(axis=-1))
        safe = np.where(np.isinf(new), 0, new)
        l = l * np.exp(m - safe) + np.exp(blk - safe[..., None]).sum(axis=-1)
        m = new
    return m, l


def _softmax_merge(o_a, lse_a, o_b, lse_b):
    top = np.maximum(lse_a, lse_b)
    top = np.where(np.isfinite(top), top, 0)
    wa, wb = np.exp(lse_a - top), np.exp(lse_b - top)
    tot = wa + wb
    return (wa[..., None] * o_a + wb[..., None] * o_b) / np.where(tot == 0, 1, tot)[..., None], top, tot


def merge_fmax_lse(o_a, lse_a, o_b, lse_b):
    o, _, _ = _softmax_merge(o_a, lse_a, o_b, lse_b)
    return o, np.fmax(lse_a, lse_b)


def merge_where_lse(o_a, lse_a, o_b, lse_b):
    """Picks the larger lse with np.where, as if the bigger part's mass were all of it."""
    o, _, _ = _softmax_merge(o_a, lse_a, o_b, lse_b)
    return o, np.where(lse_a >= lse_b, lse_a, lse_b)


def merge_correct(o_a, lse_a, o_b, lse_b):
    o, top, tot = _softmax_merge(o_a, lse_a, o_b, lse_b)
    with np.errstate(divide="ignore"):
        return o, np.where(tot > 0, top + np.log(np.where(tot > 0, tot, 1)), -np.inf)


def _tiled(q, k, v, block_q, block_k, causal, rescale_acc, rescale_l):
    n_q, d = q.shape[-2:]
    n_k = k.shape[-2]
    off = n_k - n_q
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    o = np.zeros((*lead, n_q, v.shape[-1]), dtype=q.dtype)
    lse = np.full((*lead, n_q), -np.inf, dtype=q.dtype)
    for q0 in range(0, n_q, block_q):
        q1 = min(q0 + block_q, n_q)
        m = np.full((*lead, q1 - q0), -np.inf, dtype=q.dtype)
        l = np.zeros((*lead, q1 - q0), dtype=q.dtype)
        acc = np.zeros((*lead, q1 - q0, v.shape[-1]), dtype=q.dtype)
        stop = min(n_k, max(0, q1 + off)) if causal else n_k
        for k0 in range(0, stop, block_k):
            k1 = min(k0 + block_k, n_k)
            s = q[..., q0:q1, :] @ np.swapaxes(k[..., k0:k1, :], -1, -2) / math.sqrt(d)
            if causal:
                s = np.where(np.arange(k0, k1)[None] <= np.arange(q0, q1)[:, None] + off, s, -np.inf)
            new = np.maximum(m, s.max(-1))
            safe = np.where(np.isfinite(new), new, 0)
            alpha = np.exp(m - safe)
            p = np.exp(s - safe[..., None])
            l = (alpha * l if rescale_l else l) + p.sum(-1)
            acc = (alpha[..., None] * acc if rescale_acc else acc) + p @ v[..., k0:k1, :]
            m = new
        o[..., q0:q1, :] = acc / np.where(l == 0, 1, l)[..., None]
        with np.errstate(divide="ignore"):
            lse[..., q0:q1] = m + np.log(l)
    return o, lse


def tiled_acc_only(q, k, v, block_q=64, block_k=64, causal=False):
    """l rescaled, acc not (written with its own loops)."""
    return _tiled(q, k, v, block_q, block_k, causal, rescale_acc=False, rescale_l=True)


def tiled_neither(q, k, v, block_q=64, block_k=64, causal=False):
    """Neither acc nor l rescaled: o and lse both off when the max rises."""
    return _tiled(q, k, v, block_q, block_k, causal, rescale_acc=False, rescale_l=False)


def tiled_correct(q, k, v, block_q=64, block_k=64, causal=False):
    return _tiled(q, k, v, block_q, block_k, causal, rescale_acc=True, rescale_l=True)


def _bwd(q, k, v, o, lse, do, block_q, block_k, causal, use_d, query_outer):
    n_q, d = q.shape[-2:]
    n_k = k.shape[-2]
    off = n_k - n_q
    lse = np.where(np.isfinite(lse), lse, 0)
    D = (do * o).sum(-1) if use_d else np.zeros(o.shape[:-1], o.dtype)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    pairs = [(q0, k0) for q0 in range(0, n_q, block_q) for k0 in range(0, n_k, block_k)]
    if not query_outer:
        pairs.sort(key=lambda t: (t[1], t[0]))
    for q0, k0 in pairs:
        q1, k1 = min(q0 + block_q, n_q), min(k0 + block_k, n_k)
        s = q[..., q0:q1, :] @ np.swapaxes(k[..., k0:k1, :], -1, -2) / math.sqrt(d)
        if causal:
            s = np.where(np.arange(k0, k1)[None] <= np.arange(q0, q1)[:, None] + off, s, -np.inf)
        p = np.exp(s - lse[..., q0:q1, None])
        dv[..., k0:k1, :] += np.swapaxes(p, -1, -2) @ do[..., q0:q1, :]
        ds = p * (do[..., q0:q1, :] @ np.swapaxes(v[..., k0:k1, :], -1, -2) - D[..., q0:q1, None])
        dq[..., q0:q1, :] += ds @ k[..., k0:k1, :] / math.sqrt(d)
        dk[..., k0:k1, :] += np.swapaxes(ds, -1, -2) @ q[..., q0:q1, :] / math.sqrt(d)
    return dq, dk, dv


def bwd_no_delta_query_outer(q, k, v, o, lse, do, block_q=64, block_k=64, causal=False):
    return _bwd(q, k, v, o, lse, do, block_q, block_k, causal, use_d=False, query_outer=True)


def bwd_no_delta_full(q, k, v, o, lse, do, block_q=64, block_k=64, causal=False):
    """No tiles at all and no D: dS = P ∘ (dO·Vᵀ)."""
    d = q.shape[-1]
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(d)
    if causal:
        s = np.where(np.arange(k.shape[-2])[None] <= np.arange(q.shape[-2])[:, None]
                     + k.shape[-2] - q.shape[-2], s, -np.inf)
    p = np.exp(s - np.where(np.isfinite(lse), lse, 0)[..., None])
    ds = p * (do @ np.swapaxes(v, -1, -2))
    return ds @ k / math.sqrt(d), np.swapaxes(ds, -1, -2) @ q / math.sqrt(d), np.swapaxes(p, -1, -2) @ do


def bwd_correct_query_outer(q, k, v, o, lse, do, block_q=64, block_k=64, causal=False):
    return _bwd(q, k, v, o, lse, do, block_q, block_k, causal, use_d=True, query_outer=True)


# level, kata, expected misconception, label, impls, checks that catch it
CASES = [
    (3, "kv_head_for", "float_division", "ratio_true_division",
     {"kv_head_for": kv_ratio_float}, ("head_mapping_matches",)),
    (3, "kv_head_for", "float_division", "numpy_divide",
     {"kv_head_for": kv_numpy_float}, ("head_mapping_matches",)),
    (3, "gqa_attention", "modulo_mapping", "loop_h_mod_hkv",
     {"gqa_attention": gqa_loop_modulo}, ("gqa_equals_per_head",)),
    (3, "gqa_attention", "modulo_mapping", "concatenate_copies",
     {"gqa_attention": gqa_concat_copies}, ("gqa_equals_per_head",)),
    (3, "mha_to_gqa", "first_head_of_group", "last_head",
     {"mha_to_gqa": pool_last_head}, ("pool_matches_reference", "pool_extremes")),
    (3, "mha_to_gqa", "first_head_of_group", "middle_head",
     {"mha_to_gqa": pool_middle_head}, ("pool_matches_reference", "pool_extremes")),
    (3, "mla_attention", "absorb_wrong_transpose", "einsum_wrong_axis",
     {"mla_attention": mla_einsum_no_transpose}, ("mla_absorb_exact",)),
    (3, "mla_attention", "absorb_wrong_transpose", "transpose_on_keys",
     {"mla_attention": mla_transposed_key_side}, ("mla_absorb_exact",)),
    (4, "online_softmax", "no_rescale", "fmax_nan_to_num",
     {"online_softmax": online_no_rescale_blocks}, ("online_equals_full_softmax",)),
    (4, "online_softmax", "no_rescale", "element_by_element",
     {"online_softmax": online_no_rescale_elements}, ("online_equals_full_softmax",)),
    (4, "merge_partials", "lse_is_max", "fmax",
     {"merge_partials": merge_fmax_lse}, ("merge_two_parts",)),
    (4, "merge_partials", "lse_is_max", "where_larger",
     {"merge_partials": merge_where_lse}, ("merge_two_parts",)),
    (4, "tiled_attention", "missing_rescale", "acc_only",
     {"tiled_attention": tiled_acc_only}, ("tiled_broadcasts",)),
    (4, "tiled_attention", "missing_rescale", "neither_acc_nor_l",
     {"tiled_attention": tiled_neither}, ("tiled_broadcasts",)),
    (4, "tiled_attention_backward", "forgot_D", "query_outer_no_D",
     {"tiled_attention_backward": bwd_no_delta_query_outer}, ("backward_square",)),
    (4, "tiled_attention_backward", "forgot_D", "untiled_no_D",
     {"tiled_attention_backward": bwd_no_delta_full}, ("backward_square",)),
]

CORRECT = [
    (3, "kv_head_for", {"kv_head_for": kv_correct_table}),
    (3, "gqa_attention", {"gqa_attention": gqa_correct_einsum}),
    (3, "mha_to_gqa", {"mha_to_gqa": pool_correct_loop}),
    (3, "mla_attention", {"mla_attention": mla_correct_absorbed}),
    (4, "online_softmax", {"online_softmax": online_correct_log_space}),
    (4, "merge_partials", {"merge_partials": merge_correct}),
    (4, "tiled_attention", {"tiled_attention": tiled_correct}),
    (4, "tiled_attention_backward", {"tiled_attention_backward": bwd_correct_query_outer}),
]


@pytest.mark.parametrize("level, name, expected, label, impls, checks", CASES,
                         ids=[f"{c[1]}-{c[3]}" for c in CASES])
def test_numpy_variants_are_named(level, name, expected, label, impls, checks):
    kata, ref = kata_and_ref(level, name)
    assert_named(verdicts(kata, ref, impls, checks), expected)
    assert probes_name(kata, ref, impls)[:1] == [expected]


@pytest.mark.parametrize("level, name, impls", CORRECT, ids=[c[1] for c in CORRECT])
def test_numpy_correct_variants_name_nothing(level, name, impls):
    kata, ref = kata_and_ref(level, name)
    checks = tuple(c.id for c in kata.checks
                   if c.id not in ("gqa_no_repeat", "mla_absorb_no_keys", "tiled_memory_linear",
                                   "online_reads_in_blocks", "tiled_counts_tiles",
                                   "backward_counts_tiles"))
    results = verdicts(kata, ref, impls, checks)
    bad = [r for r in results if r.outcome != PASSED or r.misconception_ids]
    assert not bad, bad[0].message
    assert probes_name(kata, ref, impls) == []


def test_a_shape_mistake_is_named_by_its_shape():
    """mha_to_gqa returning [H_kv·d_head, d_model] (pooled in nn.Linear's [out, in]
    layout, written with a loop over rows): named, not just "shape mismatch"."""
    def rows_loop(w_kv, n_heads, n_kv_heads):
        wt = w_kv.T
        d_head, g = wt.shape[0] // n_heads, n_heads // n_kv_heads
        return np.concatenate([wt[j * g * d_head:(j + 1) * g * d_head].reshape(g, d_head, -1).mean(0)
                               for j in range(n_kv_heads)]).astype(w_kv.dtype)

    kata, ref = kata_and_ref(3, "mha_to_gqa")
    assert_named(verdicts(kata, ref, {"mha_to_gqa": rows_loop}, ("pool_extremes",)),
                 "pooled_rows_transposed")


def test_unknown_tiled_mistake_says_where():
    """The last query tile dropped to zeros: no misconception fits; the failure says which
    query tile is wrong."""
    kata, ref = kata_and_ref(4, "tiled_attention")

    def last_tile_zero(q, k, v, block_q=64, block_k=64, causal=False):
        o, lse = ref.tiled_attention(q, k, v, block_q, block_k, causal)
        n = q.shape[-2]
        o[..., (n - 1) // block_q * block_q:, :] = 0
        return o, lse

    results = verdicts(kata, ref, {"tiled_attention": last_tile_zero}, ("tiled_counts_tiles",))
    failed = [r for r in results if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    assert any("Where it goes wrong" in r.message and "query 4 of 0–4" in r.message
               for r in failed), failed[0].message


# ---------------------------------------------------------------------------
# Level 5: Triton kernels (triton_softmax) and torch emulations of mistaken kernels
# (the flash katas, as in tests/test_diagnosis.py), judged under the interpreter
# ---------------------------------------------------------------------------

def _softmax_kernels():
    """Three softmax launchers: padding lanes loaded as 0, padding lanes left to the load's
    default (no `other`), and a correct one that works in base 2."""
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def pad_zero(Y, X, sy, sx, n, BLOCK: tl.constexpr):
        r = tl.program_id(0)
        c = tl.arange(0, BLOCK)
        x = tl.load(X + r * sx + c, mask=c < n, other=0.0).to(tl.float32)
        e = tl.exp(x - tl.max(x, axis=0))
        tl.store(Y + r * sy + c, e / tl.sum(e, axis=0), mask=c < n)

    @triton.jit
    def pad_default(Y, X, sy, sx, n, BLOCK: tl.constexpr):
        r = tl.program_id(0)
        c = tl.arange(0, BLOCK)
        x = tl.load(X + r * sx + c, mask=c < n).to(tl.float32)
        e = tl.exp(x - tl.max(x, axis=0))
        tl.store(Y + r * sy + c, e / tl.sum(e, axis=0), mask=c < n)

    @triton.jit
    def base2(Y, X, sy, sx, n, BLOCK: tl.constexpr):
        r = tl.program_id(0)
        c = tl.arange(0, BLOCK)
        x = tl.load(X + r * sx + c, mask=c < n, other=-float("inf")).to(tl.float32)
        e = tl.exp2((x - tl.max(x, axis=0)) * 1.4426950408889634)
        y = e / tl.sum(e, axis=0)
        tl.store(Y + r * sy + c, y.to(Y.dtype.element_ty), mask=c < n)

    def launcher(kernel):
        def triton_softmax(x):
            x = x if x.stride(1) == 1 else x.contiguous()
            y = torch.empty_like(x, memory_format=torch.contiguous_format)
            kernel[(x.shape[0],)](y, x, y.stride(0), x.stride(0), x.shape[1],
                                  BLOCK=triton.next_power_of_2(x.shape[1]))
            return y
        return triton_softmax

    return launcher(pad_zero), launcher(pad_default), launcher(base2)


@pytest.fixture(scope="module")
def softmax_launchers():
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    return _softmax_kernels()


@pytest.mark.parametrize("which", [0, 1], ids=["other_zero", "no_other"])
def test_triton_softmax_padding_kernels_are_named(softmax_launchers, which):
    kata, ref = kata_and_ref(5, "triton_softmax")
    impls = {"triton_softmax": softmax_launchers[which]}
    assert_named(verdicts(kata, ref, impls, ("softmax_ragged_rows",)), "masked_lanes_zero")
    assert probes_name(kata, ref, impls)[:1] == ["masked_lanes_zero"]


def test_triton_softmax_base2_kernel_names_nothing(softmax_launchers):
    kata, ref = kata_and_ref(5, "triton_softmax")
    impls = {"triton_softmax": softmax_launchers[2]}
    results = verdicts(kata, ref, impls, ("softmax_ragged_rows", "softmax_no_overflow",
                                          "softmax_strided_rows"))
    assert all(r.outcome == PASSED for r in results), [r.message for r in results]
    assert probes_name(kata, ref, impls) == []


def _flash_fwd(*, hide_diagonal: bool, guard_empty: bool):
    """Attention in torch (what a kernel computes) whose causal mask is j < i: query i
    misses its own key; row 0 is NaN (no guard) or zeros (a guarded kernel)."""
    def flash_attention_forward(q, k, v, causal=False, sm_scale=None):
        import torch

        scale = q.shape[-1] ** -0.5 if sm_scale is None else sm_scale
        g = q.shape[1] // k.shape[1]
        kk, vv = (t.double().repeat_interleave(g, dim=1) for t in (k, v))
        s = q.double() @ kk.transpose(-1, -2) * scale
        if causal:
            n = q.shape[2]
            hidden = torch.ones(n, n, dtype=torch.bool).triu(0 if hide_diagonal else 1)
            s = s.masked_fill(hidden, float("-inf"))
        m = s.amax(-1, keepdim=True)
        if guard_empty:
            m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = torch.exp(s - m)
        tot = e.sum(-1, keepdim=True)
        o = e / (torch.where(tot == 0, torch.ones_like(tot), tot) if guard_empty else tot) @ vv
        lse = (m + torch.log(tot)).squeeze(-1)
        return o.to(q.dtype), lse.float()
    return flash_attention_forward


def _flash_bwd_no_delta(*, fold_by_view: bool):
    """The backward in torch without D (dS = P ∘ dP); GQA folded by a view-sum or a loop."""
    def flash_attention_backward(q, k, v, o, lse, do, causal=False, sm_scale=None):
        import torch

        scale = q.shape[-1] ** -0.5 if sm_scale is None else sm_scale
        B, H_q, N, d = q.shape
        H_kv = k.shape[1]
        g = H_q // H_kv
        kk, vv = (t.double().repeat_interleave(g, dim=1) for t in (k, v))
        s = q.double() @ kk.transpose(-1, -2) * scale
        if causal:
            s = s.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), float("-inf"))
        p = torch.exp(s - lse.double()[..., None])
        ds = p * (do.double() @ vv.transpose(-1, -2))
        dq = ds @ kk * scale
        dk_h, dv_h = ds.transpose(-1, -2) @ q.double() * scale, p.transpose(-1, -2) @ do.double()
        if fold_by_view:
            dk, dv = (t.view(B, H_kv, g, N, d).sum(2) for t in (dk_h, dv_h))
        else:
            dk = torch.stack([dk_h[:, j * g:(j + 1) * g].sum(1) for j in range(H_kv)], 1)
            dv = torch.stack([dv_h[:, j * g:(j + 1) * g].sum(1) for j in range(H_kv)], 1)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)
    return flash_attention_backward


FLASH = [
    ("flash_attention_forward", "causal_excludes_diagonal", "triu0_nan",
     _flash_fwd(hide_diagonal=True, guard_empty=False), ("fwd_causal_diagonal",)),
    ("flash_attention_forward", "causal_excludes_diagonal", "triu0_guarded",
     _flash_fwd(hide_diagonal=True, guard_empty=True), ("fwd_causal_diagonal",)),
    ("flash_attention_backward", "missing_delta", "view_sum",
     _flash_bwd_no_delta(fold_by_view=True), ("bwd_gqa_group_sum",)),
    ("flash_attention_backward", "missing_delta", "loop_sum",
     _flash_bwd_no_delta(fold_by_view=False), ("bwd_gqa_group_sum",)),
]


@pytest.mark.parametrize("name, expected, label, fn, checks", FLASH,
                         ids=[f"{f[0]}-{f[2]}" for f in FLASH])
def test_flash_variants_are_named(name, expected, label, fn, checks):
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    kata, ref = kata_and_ref(5, name)
    impls = {name: fn}
    assert_named(verdicts(kata, ref, impls, checks, max_examples=2), expected)
    assert probes_name(kata, ref, impls)[:1] == [expected]


@pytest.mark.parametrize("name", ["flash_attention_forward", "flash_attention_backward"])
def test_flash_correct_emulations_fire_no_probe(name):
    """Correct torch versions (the diagonal kept, D subtracted) name nothing."""
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    kata, ref = kata_and_ref(5, name)
    if name == "flash_attention_forward":
        fn = _flash_fwd(hide_diagonal=False, guard_empty=True)
    else:
        from attnkata_plugins.core.level5.flash_attention_backward import grads64

        fn = grads64
    assert probes_name(kata, ref, {name: fn}) == []
