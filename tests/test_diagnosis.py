"""Diagnosis by behaviour (attnkata.diagnose): probes name the mistake's family, not only
the one modelled implementation; a wrong name is never given; where is said otherwise.

The *variants* below are written here, differently from each kata's modelled wrong
implementation, the way a learner would write the same mistake.
"""

from __future__ import annotations

import dataclasses
import math
import types
from pathlib import Path

import numpy as np
import pytest

from attnkata import Kata, Misconception, check
from attnkata.diagnose import (Probe, Raised, along, attach, equals, growth_order, locate,
                               loglog_slope, nan_in, raises, scaled, shape_is, spacing, spans,
                               wrong, wrong_only_in)
from attnkata.harness import Ctx, KataFailure, Namespace, probes_off
from attnkata.runner import FAILED, PASSED, run_check
from attnkata.target import load_module

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


def reference(rel: str):
    return load_module(SOLUTIONS / rel, SOLUTIONS)


def verdicts(kata: Kata, ref, impls: dict, max_examples: int = 8):
    """Every check of ``kata`` run on the reference with ``impls`` replaced."""
    target = Namespace(ref, impls, "variant")
    with np.errstate(all="ignore"):
        return [run_check(kata, c, target, ref, target_root=None, max_examples=max_examples,
                          shrink=False) for c in kata.checks]


def assert_named(results, expected: str) -> None:
    """Caught; named ``expected`` by some check; and no check names anything else first."""
    failed = [r for r in results if r.outcome == FAILED]
    assert failed, "the variant passed every check"
    firsts = {r.misconception_ids[0] for r in failed if r.misconception_ids}
    assert expected in {i for r in failed for i in r.misconception_ids}, \
        [r.message for r in failed][:2]
    assert firsts <= {expected}, f"wrongly named {firsts - {expected}}: " + \
        next(r.message for r in failed if r.misconception_ids and r.misconception_ids[0] != expected)


# ---------------------------------------------------------------------------
# The engine on a toy kata
# ---------------------------------------------------------------------------

def double(x):
    return x * 2


@check("doubles")
def doubles(ctx):
    ctx.expect("double", np.arange(1.0, 5.0))


X = np.arange(1.0, 7.0)
TOY = Kata(id="toy", level=0, title="t", path="x/toy.py", entries=("double",), checks=(doubles,),
           misconceptions=(
               Misconception("tripled", "multiplied by 3", {"double": lambda x: x * 3},
                             probes=(Probe.of("x = 1..6", "double", X, holds=scaled()),
                                     Probe.of("x = -1", "double", np.array([-1.0]),
                                              holds=equals(np.array([-3.0]))))),
               Misconception("last_dropped", "forgot the last entry",
                             {"double": lambda x: (x * 2)[:-1]},
                             shapes=("dropped_axis",),
                             probes=(Probe.of("x = 1..6", "double", X,
                                              holds=shape_is(lambda g, w: g[0] == w[0] - 1)),
                                     Probe.of("one entry", "double", np.array([3.0]),
                                              holds=shape_is(lambda g, w: g == (0,))))),
           ),
           diagnostics=(Probe.of("x = 1..6", "double", X, axes=("entry",)),))
TOY_REF = types.SimpleNamespace(double=double)


def run_toy(fn):
    with np.errstate(all="ignore"):
        return run_check(TOY, doubles, types.SimpleNamespace(double=fn), TOY_REF, target_root=None)


def test_probes_name_a_family_member_that_reproduction_misses():
    # x * 3 + tiny noise: not the modelled output, but a scale and an x = -1 of -3
    r = run_toy(lambda x: x * 3.0 * (1 + 1e-5 * (x > 3)))
    assert r.outcome == FAILED and r.misconception_ids == ("tripled",)
    assert "on x = 1..6; and on x = -1" in r.message


def test_one_agreeing_probe_gives_closest_not_a_name():
    r = run_toy(lambda x: x * 3 if len(x) > 1 else x * 2)     # fits one probe of two
    assert r.outcome == FAILED and r.misconception_ids == ()
    assert "Closest to the misconception \"multiplied by 3\"" in r.message
    assert "not named" in r.message


def test_nothing_matches_says_where():
    r = run_toy(lambda x: np.where(np.arange(len(x)) == 2, 0.0, x * 2))
    assert r.misconception_ids == ()
    assert "entry 2 of 0–5" in r.message


def test_exact_reproduction_still_names_first():
    r = run_toy(lambda x: x * 3)
    assert r.misconception_ids[0] == "tripled"


def test_reproduction_contradicted_by_its_own_probe_is_demoted():
    # reproduces "tripled" on the check's input 1..4 but not on x = -1
    r = run_toy(lambda x: np.where(x > 0, 3 * x, 0.0))
    assert "tripled" not in r.misconception_ids
    assert "Closest to" in r.message


def test_shape_relation_and_exception_count_as_evidence():
    r = run_toy(lambda x: (x * 2)[:-1])
    assert r.misconception_ids == ("last_dropped",)
    kata = attach(TOY, raises={"tripled": (("ValueError", "three"),)})
    ctx = Ctx(kata, types.SimpleNamespace(double=lambda x: x * 2), TOY_REF)
    d = ctx.explain([], raised=Raised("ValueError", "three times"))
    assert d.closest is not None and d.closest.misconception.id == "tripled"


def test_probes_off_names_by_reproduction_only():
    with probes_off():
        r = run_toy(lambda x: x * 3.0 * (1 + 1e-5 * (x > 3)))
    assert r.misconception_ids == ()


def test_attach_refuses_unknown_ids():
    with pytest.raises(KeyError):
        attach(TOY, probes={"no_such": ()})


# ---------------------------------------------------------------------------
# Predicates, localisers, growth
# ---------------------------------------------------------------------------

def test_predicates_on_plain_data():
    w = np.arange(12.0).reshape(3, 4)
    g = w.copy()
    g[1, 2] = 99
    assert wrong_only_in(along(-2, 1))(g, w) and not wrong_only_in(along(-2, 0))(g, w)
    assert scaled()(w * 0.5, w) and not scaled()(w, w) and not scaled()(g, w)
    assert nan_in(along(-2, 2))(np.where(w > 9, np.nan, w), w)
    assert raises("ValueError", "core dim")(Raised("ValueError", "mismatch in its core dimension"), w)
    assert not raises("ValueError")(w, w)
    assert shape_is("transposed_last_two")(w.T, w) and shape_is("batch_flattened")(
        np.zeros((6, 4)), np.zeros((2, 3, 4)))
    assert wrong(g, w).sum() == 1


def test_locate_in_the_katas_terms():
    mask = np.zeros((2, 40, 8), bool)
    mask[1, 32:, :] = True
    text = locate(mask, ("head", "query", "feature"), {"query": 16})
    assert "head 1 of 0–1" in text and "query 32–39 of 0–39" in text
    assert "tiles 2 of 0–2 (tiles of 16) (the last, partial one)" in text
    assert spans([0, 1, 2, 5, 7, 8]) == "0–2, 5, 7–8"


def test_growth_slope():
    ns = [256, 512, 1024, 2048]
    assert abs(loglog_slope(ns, [3 * n for n in ns]) - 1) < 1e-9
    assert growth_order(ns, [n * n / 128 + n for n in ns]) == "quadratic"
    assert growth_order(ns, [2 * n for n in ns]) == "linear"
    assert spacing([64, 128, 192]) == 64 and spacing([16, 32, 64]) is None


# ---------------------------------------------------------------------------
# Level 1 · attention: variants of its mistakes, written differently
# ---------------------------------------------------------------------------

def _sm(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _nan_safe_sm(s):
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    t = e.sum(axis=-1, keepdims=True)
    return e / np.where(t == 0, 1, t)


def att_fill(fill):
    """Masked scores replaced by a finite ``fill`` (−1e4, finfo.min), softmax NaN-safe."""
    def attention(q, k, v, mask=None):
        s = np.matmul(q, np.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
        if mask is not None:
            s = np.where(mask, s, fill(s.dtype) if callable(fill) else fill)
        return (_nan_safe_sm(s) @ v).astype(q.dtype)
    return attention


def att_times_mask(q, k, v, mask=None):
    """Multiplies the scores by the mask: masked scores become 0."""
    s = np.einsum("...qd,...kd->...qk", q, k) / np.sqrt(q.shape[-1]).astype(q.dtype)
    if mask is not None:
        s = s * mask
    return (_nan_safe_sm(s) @ v).astype(q.dtype)


def att_scipy_style(q, k, v, mask=None):
    """Subtracts the max, but NaN on an all −inf row (max −inf, −inf − −inf)."""
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    return (_sm(s) @ v).astype(q.dtype)


def att_naive_exp(q, k, v, mask=None):
    s = np.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    w = np.exp(np.where(mask, s, -np.inf) if mask is not None else s)
    return ((w / w.sum(-1)[..., None]) @ v).astype(q.dtype)


def att_dot_T(q, k, v, mask=None):
    d = q.shape[-1]
    s = np.dot(q, k.T) / d ** 0.5 if q.ndim == 2 else q @ k.transpose() / d ** 0.5
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    return (_nan_safe_sm(s) @ v).astype(q.dtype)


ATTENTION_VARIANTS = [
    ("masked_with_large_negative", att_fill(-1e4)),
    ("masked_with_large_negative", att_fill(lambda dt: np.finfo(dt).min)),
    ("masked_with_zero", att_times_mask),
    ("nan_on_empty_rows", att_scipy_style),
    ("no_max_subtraction", att_naive_exp),
    ("k_dot_T_batched", att_dot_T),
]


@pytest.fixture(scope="module")
def attention_kata():
    from attnkata_plugins.core.level1.attention import ATTENTION

    return ATTENTION, reference("level1/attention.py")


@pytest.mark.parametrize("expected, fn", ATTENTION_VARIANTS,
                         ids=[f"{e}-{f.__name__}" for e, f in ATTENTION_VARIANTS])
def test_attention_variants_are_named(attention_kata, expected, fn):
    kata, ref = attention_kata
    assert_named(verdicts(kata, ref, {"attention": fn}), expected)


def test_large_negative_is_not_named_masked_with_zero(attention_kata):
    """The issue's case: with probes off, the −1e9 mask reproduces "masked with zero" on
    a shrunk one-row input; with them it is named for what it is."""
    kata, ref = attention_kata
    results = verdicts(kata, ref, {"attention": att_fill(-1e9)})
    assert all(r.misconception_ids[:1] != ("masked_with_zero",) for r in results)
    assert_named(results, "masked_with_large_negative")


def test_attention_correct_variants_pass_and_fire_nothing(attention_kata):
    from attnkata.selfcheck import silence_verdicts

    kata, ref = attention_kata
    for variant in kata.variants:
        assert all(r.outcome == PASSED for r in verdicts(kata, ref, dict(variant.impls)))
    assert all(v.ok for v in silence_verdicts(kata, ref))


def test_unknown_attention_mistake_says_where(attention_kata):
    """A mistake no misconception models: the last query row is dropped to zeros."""
    kata, ref = attention_kata

    def last_row_zero(q, k, v, mask=None):
        out = ref.attention(q, k, v, mask)
        out[..., -1, :] = 0
        return out

    results = verdicts(kata, ref, {"attention": last_row_zero})
    failed = [r for r in results if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    assert any("Where it goes wrong" in r.message and "query 4 of 0–4" in r.message
               for r in failed), failed[0].message


# ---------------------------------------------------------------------------
# Level 5 · flash_attention_forward: variants as torch functions (what a kernel with
# the mistake computes), judged against the reference kernel under the interpreter
# ---------------------------------------------------------------------------

def _flash_variant(block_n, *, rescale_acc=True, rescale_l=True, dtype="float32",
                   kv_repeat=False):
    def flash_attention_forward(q, k, v, causal=False, sm_scale=None):
        import torch

        scale = sm_scale if sm_scale is not None else q.shape[-1] ** -0.5
        g = q.shape[1] // k.shape[1]
        if kv_repeat:   # tile the KV heads (h % H_kv) instead of interleaving (h // G)
            k, v = k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1)
        else:
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        acc_t = getattr(torch, dtype)
        s_all = (q.to(acc_t) @ k.to(acc_t).transpose(-1, -2)) * scale
        n = q.shape[2]
        if causal:
            s_all = s_all.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        m = torch.full(s_all.shape[:-1], float("-inf"), dtype=acc_t)
        l = torch.zeros_like(m)
        acc = torch.zeros(*s_all.shape[:-1], v.shape[-1], dtype=acc_t)
        for j in range(0, n, block_n):
            s = s_all[..., j:j + block_n]
            m_new = torch.maximum(m, s.amax(-1))
            alpha = torch.exp(m - m_new)
            p = torch.exp(s - m_new[..., None])
            l = (l * alpha if rescale_l else l) + p.sum(-1)
            acc = (acc * alpha[..., None] if rescale_acc else acc) + p @ v[..., j:j + block_n, :].to(acc_t)
            m = m_new
        return (acc / l[..., None]).to(q.dtype), (m + torch.log(l)).to(torch.float32)
    return flash_attention_forward


FLASH_VARIANTS = [
    ("missing_rescale", "block32_l_too", _flash_variant(32, rescale_acc=False, rescale_l=False),
     ("fwd_online_rescale",)),
    ("missing_rescale", "block8_float32", _flash_variant(8, rescale_acc=False),
     ("fwd_online_rescale",)),
    ("gqa_modulo", "kv_repeat_tiled", _flash_variant(16, kv_repeat=True), ("fwd_gqa_groups",)),
]


@pytest.fixture(scope="module")
def flash_kata():
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    from attnkata_plugins.core.level5.flash_attention_forward import FLASH_ATTENTION_FORWARD

    return FLASH_ATTENTION_FORWARD, reference("level5/flash_attention_forward.py")


@pytest.mark.parametrize("expected, label, fn, checks", FLASH_VARIANTS,
                         ids=[v[1] for v in FLASH_VARIANTS])
def test_flash_variants_are_named(flash_kata, expected, label, fn, checks):
    kata, ref = flash_kata
    chosen = [c for c in kata.checks if c.id in checks]
    sub = dataclasses.replace(kata, checks=tuple(chosen))
    assert_named(verdicts(sub, ref, {"flash_attention_forward": fn}, max_examples=3), expected)


def test_flash_missing_rescale_named_by_probes_alone(flash_kata):
    """No exact reproduction at all (block 32, l unrescaled too): the probes name it."""
    kata, ref = flash_kata
    target = Namespace(ref, {"flash_attention_forward": _flash_variant(
        32, rescale_acc=False, rescale_l=False)}, "variant")
    d = Ctx(kata, target, ref).explain([])
    assert d.misconceptions and d.misconceptions[0].id == "missing_rescale"


# ---------------------------------------------------------------------------
# Level 2 · kv_cache: growth mistakes named by which appends allocate, and the slope
# ---------------------------------------------------------------------------

def _chunked_cache(chunk):
    """Grows by a constant ``chunk`` tokens (np.concatenate of a zero block)."""
    class KVCache:
        def __init__(self, n_heads, head_dim, dtype=np.float32):
            self.dtype = np.dtype(dtype)
            self._k = np.empty((n_heads, chunk, head_dim), self.dtype)
            self._v = np.empty((n_heads, chunk, head_dim), self.dtype)
            self._t = 0

        def __len__(self):
            return self._t

        def append(self, k, v):
            t = k.shape[1]
            while self._t + t > self._k.shape[1]:
                pad = np.zeros((self._k.shape[0], chunk, self._k.shape[2]), self.dtype)
                self._k = np.concatenate([self._k, pad], axis=1)
                self._v = np.concatenate([self._v, pad.copy()], axis=1)
            self._k[:, self._t:self._t + t] = k
            self._v[:, self._t:self._t + t] = v
            self._t += t

        @property
        def keys(self):
            return self._k[:, :self._t]

        @property
        def values(self):
            return self._v[:, :self._t]
    return KVCache


class _AppendCache:
    """np.append on every append (a copy of the whole cache each time)."""

    def __init__(self, n_heads, head_dim, dtype=np.float32):
        self.keys = np.zeros((n_heads, 0, head_dim), dtype)
        self.values = np.zeros((n_heads, 0, head_dim), dtype)

    def __len__(self):
        return self.keys.shape[1]

    def append(self, k, v):
        self.keys = np.append(self.keys, k.astype(self.keys.dtype), axis=1)
        self.values = np.append(self.values, v.astype(self.values.dtype), axis=1)


class _HstackCache(_AppendCache):
    def append(self, k, v):
        self.keys = np.hstack([self.keys, k]).astype(self.keys.dtype)
        self.values = np.hstack([self.values, v]).astype(self.values.dtype)


KV_VARIANTS = [
    ("grows_by_fixed_chunk", "plus16", _chunked_cache(16)),
    ("grows_by_fixed_chunk", "plus64", _chunked_cache(64)),
    ("grows_by_fixed_chunk", "plus100", _chunked_cache(100)),
    ("realloc_every_append", "np_append", _AppendCache),
    ("realloc_every_append", "hstack", _HstackCache),
]


@pytest.fixture(scope="module")
def kv_kata():
    from attnkata_plugins.core.level2.kv_cache import KV_CACHE

    return KV_CACHE, reference("level2/kv_cache.py")


@pytest.mark.parametrize("expected, label, cls", KV_VARIANTS, ids=[v[1] for v in KV_VARIANTS])
def test_kv_growth_variants_are_named(kv_kata, expected, label, cls):
    kata, ref = kv_kata
    results = verdicts(kata, ref, {"KVCache": cls})
    growth = next(r for r in results if r.check == "cache_growth_amortised")
    assert growth.outcome == FAILED, "passed the growth check: its copying is quadratic"
    assert_named(results, expected)


def test_kv_doubling_variants_pass_the_slope(kv_kata):
    """Growing by 1.5× (not 2×) is still amortised O(1): no slope failure, no name."""
    kata, ref = kv_kata

    class OneAndAHalf(_chunked_cache(16)):
        def append(self, k, v):
            t = k.shape[1]
            if self._t + t > self._k.shape[1]:
                cap = max(self._t + t, int(self._k.shape[1] * 1.5) + 1)
                for name in ("_k", "_v"):
                    old = getattr(self, name)
                    new = np.empty((old.shape[0], cap, old.shape[2]), self.dtype)
                    new[:, :self._t] = old[:, :self._t]
                    setattr(self, name, new)
            self._k[:, self._t:self._t + t] = k
            self._v[:, self._t:self._t + t] = v
            self._t += t

    results = verdicts(kata, ref, {"KVCache": OneAndAHalf})
    assert all(r.outcome == PASSED for r in results), [r.message for r in results if r.outcome != PASSED]


def test_probes_run_in_the_learners_worker(project):
    """End to end through pytest: the learner's cache (grown by +32 tokens) runs only in
    its worker; the probes measure it there and the failure names the family."""
    text = (SOLUTIONS / "level2/kv_cache.py").read_text()
    old = "self._grow(max(end, 2 * self._k.shape[1]))"
    assert old in text
    project.write("level2/kv_cache.py", text.replace(old, "self._grow(max(end, self._k.shape[1] + 32))"))
    result = project.run("-k", "kv_cache")
    out = result.stdout.str()
    assert "cache_growth_amortised" in out and "grows_by_fixed_chunk" in out, out[-3000:]
    assert "realloc_every_append" not in out


def test_judge_variant_helper_for_kata_tests():
    from attnkata.selfcheck import judge_variant, reference_for

    kata, ref = reference_for("attention")
    good = judge_variant(kata, ref, {"attention": att_fill(-1e4)})
    assert good.names("masked_with_large_negative") and not good.names("masked_with_zero")
    assert not judge_variant(kata, ref, {"attention": ref.attention}).caught


def test_where_points_at_the_output_that_differs():
    from attnkata.diagnose import where_wrong

    probe = Probe.of("two outputs", "f", axes=("row", "column"))
    want = (np.zeros((2, 3)), np.zeros((4, 5)))
    got = (np.zeros((2, 3)), np.zeros((4, 5)))
    got[1][3, 1:3] = 1
    line = where_wrong(probe, got, want)
    assert "wrong in 2 of 20 entries" in line and "row 3 of 0–3" in line and "column 1–2 of 0–4" in line


def test_a_probe_that_hangs_stops_the_diagnosis_and_says_so():
    """The probe on x = -1 sleeps past the kata's timeout: the failure keeps its own
    message (and the name reproduction gives) and says which probe input did not finish."""
    import time

    def slow_on_one_entry(x):
        if len(x) == 1:
            time.sleep(5)
        return x * 3

    kata = attach(TOY, probes={})
    ctx = Ctx(kata, types.SimpleNamespace(double=slow_on_one_entry), TOY_REF, timeout=0.3)
    with pytest.raises(KataFailure) as caught:
        ctx.expect("double", np.arange(1.0, 5.0))
    assert "diagnosis stopped" in caught.value.message and "x = -1" in caught.value.message


def test_selfcheck_proofs_can_fail():
    """silence fails on a probe that holds for correct code; probe_naming fails when a
    misconception's own probe does not hold on its modelled implementation."""
    from attnkata.diagnose import is_right
    from attnkata.selfcheck import probe_naming, silence_verdicts

    bad = attach(TOY, probes={"tripled": (Probe.of("x = 2", "double", np.array([2.0]),
                                                   holds=is_right()),)})
    (verdict,) = silence_verdicts(bad, TOY_REF)
    assert not verdict.ok and "fires on the reference" in verdict.detail
    assert silence_verdicts(TOY, TOY_REF)[0].ok

    wrong_probe = attach(TOY, probes={"tripled": (Probe.of("x = 5", "double", np.array([5.0]),
                                                           holds=equals(np.array([11.0]))),)})
    m = next(m for m in wrong_probe.misconceptions if m.id == "tripled")
    ok, why = probe_naming(wrong_probe, m, TOY_REF)
    assert not ok and "does not hold" in why
    assert probe_naming(TOY, TOY.misconceptions[0], TOY_REF)[0]
