"""Issue 14, levels 0-2: for every kata, mistakes written *here*, differently from the
modelled wrong implementations in plugins/core/levelN/<kata>.py, are named by the
diagnosis (probes, raises, shapes); a correct way of writing each kata names nothing.

Each variant is the kind of code a learner writes: another NumPy spelling, another
order of operations, another fill value; none is copied from a kata's module.
"""

from __future__ import annotations

import importlib
import math
import types
from pathlib import Path

import numpy as np
import pytest

from attnkata.harness import Namespace
from attnkata.runner import FAILED, PASSED, run_check
from attnkata.target import load_module

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


def kata_and_ref(level: int, name: str):
    mod = importlib.import_module(f"attnkata_plugins.core.level{level}.{name}")
    kata = getattr(mod, name.upper())
    return kata, load_module(SOLUTIONS / f"level{level}/{name}.py", SOLUTIONS)


def verdicts(kata, ref, impls: dict, max_examples: int = 8):
    """Every check of ``kata`` run on the reference with ``impls`` replaced, as a
    learner's module is run (the failure message and the ids it names)."""
    target = Namespace(ref, impls, "variant")
    with np.errstate(all="ignore"):
        return [run_check(kata, c, target, ref, target_root=None, max_examples=max_examples,
                          shrink=False) for c in kata.checks]


def assert_named(results, expected: str) -> None:
    """Caught; named ``expected`` by some check; no check names another one first."""
    failed = [r for r in results if r.outcome == FAILED]
    assert failed, "the variant passed every check"
    named = {i for r in failed for i in r.misconception_ids}
    assert expected in named, [r.message for r in failed][:2]
    firsts = {r.misconception_ids[0] for r in failed if r.misconception_ids}
    assert firsts <= {expected}, f"wrongly named {firsts - {expected}}: " + next(
        r.message for r in failed if r.misconception_ids and r.misconception_ids[0] != expected)


def assert_silent(results) -> None:
    """A correct variant: every check passes, nothing is named."""
    bad = [r for r in results if r.outcome != PASSED or r.misconception_ids]
    assert not bad, bad[0].message


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
        (1, "causal_mask"), (1, "sliding_window_mask"), (1, "rope"), (1, "multi_head_attention"))}
    for lv, name in katas:
        per = {}
        for c in CASES:
            if (c[0], c[1]) == (lv, name):
                per.setdefault(c[2], []).append(c[3])
        assert any(len(v) >= 2 for v in per.values()), (name, per)
        assert any((c[0], c[1]) == (lv, name) for c in CORRECT), name
