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
        (0, "qk_scores"), (0, "scaled_scores"), (0, "softmax"))}
    for lv, name in katas:
        per = {}
        for c in CASES:
            if (c[0], c[1]) == (lv, name):
                per.setdefault(c[2], []).append(c[3])
        assert any(len(v) >= 2 for v in per.values()), (name, per)
        assert any((c[0], c[1]) == (lv, name) for c in CORRECT), name
