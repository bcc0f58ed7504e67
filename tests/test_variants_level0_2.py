"""Issue 14, levels 0-2: for every kata, mistakes written *here*, differently from the
modelled wrong implementations in plugins/core/levelN/<kata>.py, are named by the
diagnosis (probes, raises, shapes); a correct way of writing each kata names nothing.

Each variant is the kind of code a learner writes: another NumPy spelling, another
order of operations, another fill value; none is copied from a kata's module.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from attnkata.runner import FAILED

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


from variants import assert_named, assert_silent, kata_and_ref, verdicts  # noqa: E402


CASES: list[tuple[int, str, str, str, dict]] = []     # level, kata, expected, label, impls
CORRECT: list[tuple[int, str, str, dict]] = []        # level, kata, label, impls


def mistake(level, kata, expected, label, **impls):
    CASES.append((level, kata, expected, label, impls))


def correct(level, kata, label, **impls):
    CORRECT.append((level, kata, label, impls))


# ---------------------------------------------------------------------------
# Level 0
# ---------------------------------------------------------------------------

def _sw(a):
    return np.swapaxes(a, -1, -2)


# qk_scores · keys_times_queries: the key-by-query table, two other spellings
mistake(0, "qk_scores", "keys_times_queries", "einsum_keys_first",
        qk_scores=lambda q, k: np.einsum("...kd,...qd->...kq", k, q))
mistake(0, "qk_scores", "keys_times_queries", "transpose_of_scores",
        qk_scores=lambda q, k: _sw(np.matmul(q, _sw(k))))
# qk_scores · k_dot_T_batched: np.dot with .T, and .transpose() with no axes
mistake(0, "qk_scores", "k_dot_T_batched", "np_dot_T",
        qk_scores=lambda q, k: np.dot(q, k.T))
mistake(0, "qk_scores", "k_dot_T_batched", "transpose_no_axes",
        qk_scores=lambda q, k: np.matmul(q, k.transpose()))
correct(0, "qk_scores", "tensordot_per_batch",
        qk_scores=lambda q, k: np.einsum("...qd,...kd->...qk", q, k))


# scaled_scores · divided_by_d, and the d ** 1/2 precedence slip, written other ways
mistake(0, "scaled_scores", "divided_by_d", "times_one_over_d",
        scaled_scores=lambda q, k: np.einsum("...qd,...kd->...qk", q, k) * (1.0 / q.shape[-1]))
mistake(0, "scaled_scores", "divided_by_d", "queries_divided_by_d",
        scaled_scores=lambda q, k: (q / q.shape[-1]) @ _sw(k))
mistake(0, "scaled_scores", "power_precedence", "half_d_float",
        scaled_scores=lambda q, k: (q @ _sw(k)) / (float(q.shape[-1]) ** 1 / 2))
mistake(0, "scaled_scores", "float64_promotion", "np_sqrt_of_shape",
        scaled_scores=lambda q, k: np.matmul(q, _sw(k)) * (1 / np.sqrt(q.shape[-1])))
correct(0, "scaled_scores", "math_sqrt_divide",
        scaled_scores=lambda q, k: np.matmul(q, _sw(k)) / math.sqrt(q.shape[-1]))


# softmax · global_max and no_keepdims, written other ways
def _sm_global_guarded(x, axis=-1):
    e = np.exp(x - np.amax(x))
    s = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(s == 0, 1, s)


def _sm_global_finite(x, axis=-1):
    m = np.max(x[np.isfinite(x)]) if np.isfinite(x).any() else 0.0
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def _sm_no_keepdims_max_too(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis)


def _sm_correct_take(x, axis=-1):
    x = np.moveaxis(x, axis, -1)
    m = x.max(axis=-1)[..., None]
    e = np.exp(x - np.where(np.isinf(m), 0, m))
    t = e.sum(axis=-1)[..., None]
    return np.moveaxis(np.divide(e, t, out=np.zeros_like(e), where=t > 0), -1, axis)


def _sm_max_but_nan_rows(x, axis=-1):
    """Subtracts each row's max (stable), but an all −inf row is −inf − (−inf) = NaN: the
    issue's case once named "no max subtraction"."""
    z = np.moveaxis(x, axis, -1)
    e = np.exp(z - z.max(axis=-1)[..., None])
    return np.moveaxis(e / e.sum(axis=-1)[..., None], -1, axis)


mistake(0, "softmax", "nan_on_empty_rows", "max_subtracted_nan_rows", softmax=_sm_max_but_nan_rows)
mistake(0, "softmax", "global_max", "amax_guarded", softmax=_sm_global_guarded)
mistake(0, "softmax", "global_max", "max_of_finite_entries", softmax=_sm_global_finite)
mistake(0, "softmax", "no_keepdims", "sum_without_keepdims", softmax=_sm_no_keepdims_max_too)
correct(0, "softmax", "moveaxis_divide_where", softmax=_sm_correct_take)


# ---------------------------------------------------------------------------
# Level 1
# ---------------------------------------------------------------------------

def _pos(n_q, n_k):
    return np.arange(n_q)[:, None] + (n_k - n_q)


# causal_mask · aligned_to_start (top-left, as older FlashAttention and SDPA did)
mistake(1, "causal_mask", "aligned_to_start", "tril_no_offset",
        causal_mask=lambda n_q, n_k: np.tril(np.ones((n_q, n_k), dtype=bool)))
mistake(1, "causal_mask", "aligned_to_start", "greater_equal_outer",
        causal_mask=lambda n_q, n_k: np.greater_equal.outer(np.arange(n_q), np.arange(n_k)))
# causal_mask · true_means_blocked (the future marked True, as attn_mask does)
mistake(1, "causal_mask", "true_means_blocked", "triu_above_diagonal",
        causal_mask=lambda n_q, n_k: np.triu(np.ones((n_q, n_k), dtype=bool), k=n_k - n_q + 1))
mistake(1, "causal_mask", "true_means_blocked", "keys_after_position",
        causal_mask=lambda n_q, n_k: np.arange(n_k)[None, :] > _pos(n_q, n_k))
correct(1, "causal_mask", "subtract_outer",
        causal_mask=lambda n_q, n_k: np.subtract.outer(np.arange(n_q) + n_k - n_q, np.arange(n_k)) >= 0)


# sliding_window_mask · window_plus_one (window keys before the query, and the query)
mistake(1, "sliding_window_mask", "window_plus_one", "distance_at_most_window",
        sliding_window_mask=lambda n_q, n_k, w: (np.arange(n_k)[None, :] <= _pos(n_q, n_k))
        & (_pos(n_q, n_k) - np.arange(n_k)[None, :] <= w))
mistake(1, "sliding_window_mask", "window_plus_one", "tril_minus_tril",
        sliding_window_mask=lambda n_q, n_k, w: np.tril(np.ones((n_q, n_k), bool), k=n_k - n_q)
        & ~np.tril(np.ones((n_q, n_k), bool), k=n_k - n_q - w - 1))
# sliding_window_mask · two_sided_window (a band |i − j| < w, no causal cut)
mistake(1, "sliding_window_mask", "two_sided_window", "abs_distance",
        sliding_window_mask=lambda n_q, n_k, w: np.abs(np.subtract.outer(
            np.arange(n_q) + n_k - n_q, np.arange(n_k))) <= w - 1)
correct(1, "sliding_window_mask", "tril_minus_tril",
        sliding_window_mask=lambda n_q, n_k, w: np.tril(np.ones((n_q, n_k), bool), k=n_k - n_q)
        & ~np.tril(np.ones((n_q, n_k), bool), k=n_k - n_q - w))


# rope · rotate_half (the GPT-NeoX / Hugging Face layout), written two other ways
def _inv_freq(d, base, dtype=np.float64):
    return 1.0 / (base ** (np.arange(0, d, 2, dtype=dtype) / dtype(d)))


def _rope_hf_rotate_half(x, positions, base=10000.0):
    d = x.shape[-1]
    freqs = np.outer(np.asarray(positions, np.float64), _inv_freq(d, base))
    emb = np.concatenate([freqs, freqs], axis=-1)
    half = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], axis=-1)
    return (x * np.cos(emb) + half * np.sin(emb)).astype(x.dtype)


def _rope_complex_halves(x, positions, base=10000.0):
    d = x.shape[-1]
    z = x[..., :d // 2].astype(np.float64) + 1j * x[..., d // 2:]
    z = z * np.exp(1j * np.outer(np.asarray(positions, np.float64), _inv_freq(d, base)))
    return np.concatenate([z.real, z.imag], axis=-1).astype(x.dtype)


def _rope_float32_freqs(x, positions, base=10000.0):
    """inv_freq and position·inv_freq in float32, the layout right (as in many ports)."""
    d = x.shape[-1]
    t = np.asarray(positions).astype(np.float32)
    freqs = np.einsum("i,j->ij", t, _inv_freq(d, np.float32(base), np.float32))
    out = np.empty_like(x)
    c, s = np.cos(freqs).astype(x.dtype), np.sin(freqs).astype(x.dtype)
    out[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
    out[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
    return out


def _rope_correct_repeat(x, positions, base=10000.0):
    d = x.shape[-1]
    theta = np.repeat(np.outer(np.asarray(positions, np.float64), _inv_freq(d, base)), 2, axis=-1)
    other = np.stack([-x[..., 1::2], x[..., 0::2]], axis=-1).reshape(x.shape)
    return (x * np.cos(theta) + other * np.sin(theta)).astype(x.dtype)


mistake(1, "rope", "rotate_half", "hf_rotate_half", rope=_rope_hf_rotate_half)
mistake(1, "rope", "rotate_half", "complex_halves", rope=_rope_complex_halves)
mistake(1, "rope", "angles_low_precision", "float32_inv_freq", rope=_rope_float32_freqs)
correct(1, "rope", "repeat_interleaved_angles", rope=_rope_correct_repeat)


# multi_head_attention · scaled_by_d_model and merge_without_transpose, per-head loops
def _att(q, k, v, mask, scale):
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    t = e.sum(axis=-1, keepdims=True)
    return (e / np.where(t == 0, 1, t)) @ v


def _mha_heads(x, w_q, w_k, w_v, n_heads, mask, scale_of):
    dh = x.shape[-1] // n_heads
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    return [_att(q[:, i * dh:(i + 1) * dh], k[:, i * dh:(i + 1) * dh], v[:, i * dh:(i + 1) * dh],
                 mask, scale_of(x, dh)) for i in range(n_heads)]


def _mha_loop_dmodel(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    heads = _mha_heads(x, w_q, w_k, w_v, n_heads, mask, lambda x, dh: 1 / math.sqrt(x.shape[-1]))
    return (np.concatenate(heads, axis=-1) @ w_o).astype(x.dtype)


def _mha_scale_from_weights(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    heads = _mha_heads(x, w_q, w_k, w_v, n_heads, mask, lambda x, dh: w_q.shape[0] ** -0.5)
    return (np.hstack(heads) @ w_o).astype(x.dtype)


def _mha_stack_reshape(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    heads = _mha_heads(x, w_q, w_k, w_v, n_heads, mask, lambda x, dh: dh ** -0.5)
    return (np.stack(heads).reshape(x.shape[0], x.shape[1]) @ w_o).astype(x.dtype)


def _mha_correct_hstack(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    heads = _mha_heads(x, w_q, w_k, w_v, n_heads, mask, lambda x, dh: dh ** -0.5)
    return (np.hstack(heads) @ w_o).astype(x.dtype)


mistake(1, "multi_head_attention", "scaled_by_d_model", "loop_sqrt_d_model",
        multi_head_attention=_mha_loop_dmodel)
mistake(1, "multi_head_attention", "scaled_by_d_model", "scale_from_weight_rows",
        multi_head_attention=_mha_scale_from_weights)
mistake(1, "multi_head_attention", "merge_without_transpose", "stack_then_reshape",
        multi_head_attention=_mha_stack_reshape)
correct(1, "multi_head_attention", "hstack_heads", multi_head_attention=_mha_correct_hstack)


# level 1 · attention: the mask read the other way round, two other spellings
def _att_nan_safe(s, v, dtype):
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    t = e.sum(axis=-1, keepdims=True)
    return ((e / np.where(t == 0, 1, t)) @ v).astype(dtype)


def _att_fill_where_true(q, k, v, mask=None):
    s = np.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(np.asarray(mask) == 1, -np.inf, s)          # masked_fill(mask, -inf)
    return _att_nan_safe(s, v, q.dtype)


def _att_keep_where_false(q, k, v, mask=None):
    s = (q @ np.swapaxes(k, -1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        s = s + np.where(np.logical_not(mask), 0.0, -np.inf)     # additive, built from ~mask
    return _att_nan_safe(s, v, q.dtype)


def _att_correct_additive(q, k, v, mask=None):
    s = (q @ np.swapaxes(k, -1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        s = s + np.where(mask, 0.0, -np.inf)
    return _att_nan_safe(s, v, q.dtype)


mistake(1, "attention", "mask_inverted", "masked_fill_true", attention=_att_fill_where_true)
mistake(1, "attention", "mask_inverted", "additive_from_not_mask", attention=_att_keep_where_false)
correct(1, "attention", "additive_mask", attention=_att_correct_additive)


# ---------------------------------------------------------------------------
# Level 2
# ---------------------------------------------------------------------------

# kv_cache_bytes · forgot_layers: one layer's cache, written as a per-token figure
def _bytes_per_token_one_layer(batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2):
    per_token = 2 * kv_heads * head_dim * bytes_per_elem        # "per token" — for one layer
    return per_token * tokens * batch


mistake(2, "kv_cache_bytes", "forgot_layers", "per_token_one_layer",
        kv_cache_bytes=_bytes_per_token_one_layer)
mistake(2, "kv_cache_bytes", "forgot_layers", "math_prod_without_layers",
        kv_cache_bytes=lambda batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2:
        math.prod([batch, tokens, kv_heads, head_dim, bytes_per_elem, 2]))
mistake(2, "kv_cache_bytes", "returned_gib", "divided_by_1024_cubed",
        kv_cache_bytes=lambda batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2:
        batch * layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem / 1024 ** 3)
correct(2, "kv_cache_bytes", "k_plus_v",
        kv_cache_bytes=lambda batch, layers, tokens, kv_heads, head_dim, bytes_per_elem=2:
        (batch * layers * tokens * kv_heads * head_dim * bytes_per_elem) * 2)


# kv_cache · len_counts_appends: a doubling buffer whose len() counts calls, two ways
class _DoublingCache:
    def __init__(self, n_heads, head_dim, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self._k = np.empty((n_heads, 4, head_dim), self.dtype)
        self._v = np.empty_like(self._k)
        self._t = 0

    def _grow(self, need):
        cap = self._k.shape[1]
        while cap < need:
            cap *= 2
        if cap != self._k.shape[1]:
            for name in ("_k", "_v"):
                old = getattr(self, name)
                new = np.empty((old.shape[0], cap, old.shape[2]), self.dtype)
                new[:, :self._t] = old[:, :self._t]
                setattr(self, name, new)

    def append(self, k, v):
        t = k.shape[1]
        self._grow(self._t + t)
        self._k[:, self._t:self._t + t] = k
        self._v[:, self._t:self._t + t] = v
        self._t += t

    def __len__(self):
        return self._t

    @property
    def keys(self):
        return self._k[:, :self._t]

    @property
    def values(self):
        return self._v[:, :self._t]


class _LenIsCalls(_DoublingCache):
    def append(self, k, v):
        super().append(k, v)
        self.calls = getattr(self, "calls", 0) + 1

    def __len__(self):
        return getattr(self, "calls", 0)


class _LenIsChunkList(_DoublingCache):
    def append(self, k, v):
        super().append(k, v)
        self.__dict__.setdefault("chunk_sizes", []).append(k.shape[1])

    def __len__(self):
        return len(self.__dict__.get("chunk_sizes", []))


mistake(2, "kv_cache", "len_counts_appends", "append_counter", KVCache=_LenIsCalls)
mistake(2, "kv_cache", "len_counts_appends", "list_of_chunk_sizes", KVCache=_LenIsChunkList)
correct(2, "kv_cache", "doubling_buffer", KVCache=_DoublingCache)


# decode_step · k_dot_T_batched and first_key_only, written other ways
def _dec_dot_T(q_t, cache):
    s = np.matmul(q_t, cache.keys.transpose()) / math.sqrt(q_t.shape[-1])
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return ((e / e.sum(axis=-1, keepdims=True)) @ cache.values).astype(q_t.dtype)


def _dec_top_left_mask(q_t, cache):
    k, v = cache.keys, cache.values
    s = np.einsum("hqd,htd->hqt", q_t, k) / math.sqrt(q_t.shape[-1])
    mask = np.tril(np.ones((q_t.shape[1], k.shape[1])))           # causal, as in training
    s = np.where(mask == 1, s, -1e9)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.einsum("hqt,htd->hqd", e / e.sum(axis=-1, keepdims=True), v).astype(q_t.dtype)


def _dec_first_key_slice(q_t, cache):
    return cache.values[:, :q_t.shape[1]].astype(q_t.dtype)     # "query i sees keys ≤ i"


def _dec_correct(q_t, cache):
    s = np.einsum("hqd,htd->hqt", q_t.astype(np.float64), cache.keys) / math.sqrt(q_t.shape[-1])
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("hqt,htd->hqd", p, cache.values).astype(q_t.dtype)


mistake(2, "decode_step", "k_dot_T_batched", "transpose_no_axes", decode_step=_dec_dot_T)
mistake(2, "decode_step", "first_key_only", "tril_top_left", decode_step=_dec_top_left_mask)
mistake(2, "decode_step", "first_key_only", "slice_of_first_values", decode_step=_dec_first_key_slice)
correct(2, "decode_step", "einsum_float64", decode_step=_dec_correct)


# next_token_probs · top_p_drops_crossing and top_p_inverted, as sorted-cumsum masks
def _ntp(logits, temperature, top_k, top_p, keep_sorted):
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p is not None:
        order = np.argsort(-p, kind="stable")
        ps = p[order]
        keep = keep_sorted(np.cumsum(ps), ps, top_p)
        keep[0] = True                                            # always keep one token
        mask = np.zeros(p.size, bool)
        mask[order[keep]] = True
        p = np.where(mask, p, 0)
        p /= p.sum()
    return p.astype(logits.dtype)


def _ntp_cumsum_le(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntp(logits, temperature, top_k, top_p, lambda c, ps, tp: c <= tp)


def _ntp_loop_until_exceeds(logits, temperature=1.0, top_k=None, top_p=None):
    def keep(c, ps, tp):
        out, total = np.zeros(ps.size, bool), 0.0
        for i, x in enumerate(ps):
            if total + x > tp and i > 0:
                break
            out[i], total = True, total + x
        return out
    return _ntp(logits, temperature, top_k, top_p, keep)


def _ntp_remove_above_one_minus(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntp(logits, temperature, top_k, top_p, lambda c, ps, tp: (c - ps) < 1 - tp)


def _ntp_correct(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntp(logits, temperature, top_k, top_p, lambda c, ps, tp: (c - ps) < tp)


mistake(2, "next_token_probs", "top_p_drops_crossing", "cumsum_at_most_p",
        next_token_probs=_ntp_cumsum_le)
mistake(2, "next_token_probs", "top_p_drops_crossing", "stop_before_exceeding",
        next_token_probs=_ntp_loop_until_exceeds)
def _ntp_cumsum_below_unguarded(logits, temperature=1.0, top_k=None, top_p=None):
    """cumsum < p with no keep-one guard: drops the crossing token, and when the top token
    alone exceeds p nothing is kept and 0/0 gives NaN (the issue's case that surfaced as a
    bare NaN with a generic hint)."""
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p is not None:
        order = np.argsort(-p, kind="stable")
        mask = np.zeros(p.size, bool)
        mask[order[np.cumsum(p[order]) < top_p]] = True
        p = np.where(mask, p, 0)
        p = p / p.sum()
    return p.astype(logits.dtype)


mistake(2, "next_token_probs", "top_p_drops_crossing", "cumsum_below_p_nan",
        next_token_probs=_ntp_cumsum_below_unguarded)
mistake(2, "next_token_probs", "top_p_inverted", "mass_before_below_one_minus_p",
        next_token_probs=_ntp_remove_above_one_minus)
correct(2, "next_token_probs", "mass_before_below_p", next_token_probs=_ntp_correct)


# sample_next · greedy and reseeds_every_call, written other ways
def _filtered(logits, temperature, top_k, top_p):
    return _ntp_correct(logits.astype(np.float64), temperature, top_k, top_p)


def _greedy_sorted(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(np.argsort(logits, kind="stable")[-1])


def _greedy_max_key(logits, rng, temperature=1.0, top_k=None, top_p=None):
    p = _filtered(logits, temperature, top_k, top_p)
    return max(range(p.size), key=lambda i: p[i])


def _reseed_inverse_cdf(logits, rng, temperature=1.0, top_k=None, top_p=None):
    r = np.random.default_rng(1234).random()                     # "reproducible" per call
    cdf = np.cumsum(_filtered(logits, temperature, top_k, top_p))
    return int(min(np.searchsorted(cdf, r * cdf[-1], side="right"), logits.size - 1))


def _sample_correct(logits, rng, temperature=1.0, top_k=None, top_p=None):
    p = _filtered(logits, temperature, top_k, top_p)
    return int(rng.choice(p.size, p=p / p.sum()))


mistake(2, "sample_next", "greedy", "argsort_last", sample_next=_greedy_sorted)
mistake(2, "sample_next", "greedy", "max_by_probability", sample_next=_greedy_max_key)
mistake(2, "sample_next", "reseeds_every_call", "fresh_generator_inverse_cdf",
        sample_next=_reseed_inverse_cdf)
correct(2, "sample_next", "choice_renormalised", sample_next=_sample_correct)


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

_KATAS: dict = {}


def _kata(level, name):
    if (level, name) not in _KATAS:
        _KATAS[level, name] = kata_and_ref(level, name)
    return _KATAS[level, name]


@pytest.mark.parametrize("level, kata, expected, label, impls", CASES,
                         ids=[f"{c[1]}-{c[2]}-{c[3]}" for c in CASES])
def test_variant_of_a_mistake_is_named(level, kata, expected, label, impls):
    k, ref = _kata(level, kata)
    assert expected in {m.id for m in k.misconceptions}
    assert_named(verdicts(k, ref, impls), expected)


@pytest.mark.parametrize("level, kata, label, impls", CORRECT,
                         ids=[f"{c[1]}-{c[2]}" for c in CORRECT])
def test_correct_variant_names_nothing(level, kata, label, impls):
    k, ref = _kata(level, kata)
    assert_silent(verdicts(k, ref, impls))


def test_every_kata_of_levels_0_to_2_has_two_named_variants_and_a_correct_one():
    katas = {(lv, name) for lv, name in (
        (0, "qk_scores"), (0, "scaled_scores"), (0, "softmax"),
        (1, "causal_mask"), (1, "sliding_window_mask"), (1, "attention"), (1, "rope"),
        (1, "multi_head_attention"), (2, "kv_cache_bytes"), (2, "kv_cache"), (2, "decode_step"),
        (2, "next_token_probs"), (2, "sample_next"))}
    for lv, name in katas:
        per = {}
        for c in CASES:
            if (c[0], c[1]) == (lv, name):
                per.setdefault(c[2], []).append(c[3])
        assert any(len(v) >= 2 for v in per.values()), (name, per)
        assert any((c[0], c[1]) == (lv, name) for c in CORRECT), name


# ---------------------------------------------------------------------------
# Probes, not reproduction: with probes off these variants are not named, or named
# wrongly (another mistake's modelled output happens to coincide on a shrunk input)
# ---------------------------------------------------------------------------

PROBE_ONLY = [c for c in CASES if c[3] in (
    "np_dot_T", "transpose_no_axes", "amax_guarded", "sum_without_keepdims", "float32_inv_freq",
    "fresh_generator_inverse_cdf")]


@pytest.mark.parametrize("level, kata, expected, label, impls", PROBE_ONLY,
                         ids=[f"{c[1]}-{c[3]}" for c in PROBE_ONLY])
def test_named_only_by_behaviour(level, kata, expected, label, impls):
    from attnkata.harness import probes_off

    k, ref = _kata(level, kata)
    with probes_off():
        results = verdicts(k, ref, impls)
    firsts = [r.misconception_ids[0] for r in results if r.outcome == FAILED and r.misconception_ids]
    assert expected not in firsts or set(firsts) != {expected}
    assert_named(verdicts(k, ref, impls), expected)


# ---------------------------------------------------------------------------
# A mistake no misconception models: the failure says where, in the kata's terms
# ---------------------------------------------------------------------------

def test_unmodelled_decode_mistake_says_which_head():
    k, ref = _kata(2, "decode_step")

    def head_one_dropped(q_t, cache):
        out = ref.decode_step(q_t, cache)
        if out.shape[0] > 1:
            out = out.copy()
            out[1] = 0
        return out

    failed = [r for r in verdicts(k, ref, {"decode_step": head_one_dropped}) if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    assert any("head 1 of 0–2" in r.message for r in failed), failed[0].message


def test_unmodelled_causal_mistake_says_which_query():
    k, ref = _kata(1, "causal_mask")

    def last_row_blind(n_q, n_k):
        m = ref.causal_mask(n_q, n_k).copy()
        m[-1, 0] = False                     # the newest query forgets the first key
        return m

    failed = [r for r in verdicts(k, ref, {"causal_mask": last_row_blind}) if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    assert any("query 2 of 0–2" in r.message and "key 0 of 0–5" in r.message for r in failed), \
        failed[0].message


def test_unmodelled_cache_mistake_says_which_token():
    k, ref = _kata(2, "kv_cache")

    class FourthTokenLost(_DoublingCache):
        """Head 1 of the 4th token stored is never written (a slicing slip)."""

        def append(self, k, v):
            t0 = self._t
            super().append(k, v)
            if t0 <= 3 < self._t and self._k.shape[0] > 1:
                self._k[1, 3] = 0

    failed = [r for r in verdicts(k, ref, {"KVCache": FourthTokenLost}) if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    assert any("head 1 of 0–1" in r.message and "token 3 of 0–5" in r.message for r in failed), \
        failed[0].message


def test_unmodelled_sampler_mistake_says_which_tokens():
    k, ref = _kata(2, "sample_next")

    def never_token_one(logits, rng, temperature=1.0, top_k=None, top_p=None):
        p = _filtered(logits, temperature, top_k, top_p)
        if p.size > 1 and p[1] < 1:
            p = np.where(np.arange(p.size) == 1, 0.0, p)          # token 1 silently banned
        return int(rng.choice(p.size, p=p / p.sum()))

    failed = [r for r in verdicts(k, ref, {"sample_next": never_token_one}) if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    # token 1 never drawn, so tokens 0 and 6 are drawn too often (same seed, same draws)
    assert any("frequency per token" in r.message and "token 0–1, 6 of 0–7" in r.message
               for r in failed), failed[0].message
