"""A failing check names only misconceptions about the functions it exercised.

QA findings F7 (kv_quantize: a values failure named after the per-token *key* mistake)
and F21 (speculative_decoding: a ZeroDivisionError in expected_tokens_per_step named
after the resampling mistake of speculative_step). The learner code is written here,
differently from each kata's modelled implementation; several mistakes at once, in
different functions, as a learner makes them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from attnkata.compare import compare
from attnkata.harness import Namespace
from attnkata.runner import FAILED, run_check
from attnkata.selfcheck import reference_for


def run_checks(kata_id: str, impls: dict, max_examples: int = 10) -> dict:
    """check id → its result, every check of the kata on the reference with ``impls``."""
    kata, ref = reference_for(kata_id)
    target = Namespace(ref, impls, "learner")
    with np.errstate(all="ignore"):
        return {c.id: run_check(kata, c, target, ref, target_root=None,
                                max_examples=max_examples, shrink=True) for c in kata.checks}


def first_name(result) -> str | None:
    return result.misconception_ids[0] if result.misconception_ids else None


# -- F7: kv_quantize, keys per token AND values scaled by max/128 --------------------

def keys_per_token(k):
    """Per-token key scales (one per row), written as a learner would."""
    scale = np.max(np.abs(k), axis=-1, keepdims=True) / 127.0
    scale = scale.astype(k.dtype)
    safe = np.where(scale > 0, scale, 1)
    return np.clip(np.round(k / safe), -127, 127).astype(np.int8), scale


def values_over_128(v):
    """Per-token value scales (right axis), but max/128 and a ±127 clip."""
    scale = (np.abs(v).max(axis=-1, keepdims=True) / 128).astype(v.dtype)
    safe = np.where(scale == 0, 1, scale)
    return np.clip(np.rint(v / safe), -127, 127).astype(np.int8), scale


KV_BUGS = {"quantize_keys": keys_per_token, "quantize_values": values_over_128}
KEY_MISTAKES = {"per_token_keys"}


@pytest.fixture(scope="module")
def kv_results():
    return run_checks("kv_quantize", KV_BUGS)


def test_kv_value_failures_are_not_named_after_the_key_mistake(kv_results):
    values = kv_results["values_match_reference"]
    assert values.outcome == FAILED
    assert first_name(values) == "range_128", values.message
    assert not KEY_MISTAKES & set(values.misconception_ids), values.message
    strided = kv_results["values_strided_inputs"]
    assert strided.outcome == FAILED
    assert not KEY_MISTAKES & set(strided.misconception_ids), strided.message


def test_kv_key_failures_name_the_key_mistake(kv_results):
    keys = kv_results["keys_match_reference"]
    assert keys.outcome == FAILED and first_name(keys) == "per_token_keys", keys.message


def test_kv_each_failure_is_named_after_a_mistake_in_its_own_function(kv_results):
    kata, _ = reference_for("kv_quantize")
    impls = {m.id: set(m.impls) for m in kata.misconceptions}
    for check_id, r in kv_results.items():
        if r.outcome != FAILED or not r.misconception_ids:
            continue
        called = set(re.findall(r"(quantize_keys|quantize_values|dequantize|int8_kv_bytes)\(",
                                r.message.split("\n")[0]))
        for name in r.misconception_ids:
            assert not called or impls[name] & called, (check_id, name, r.message)


def test_kv_value_failure_shows_expected_and_actual(kv_results):
    msg = kv_results["values_match_reference"].message
    assert "expected" in msg and "got" in msg, msg


def test_kv_key_mistake_elsewhere_is_only_mentioned():
    """Values wrong alone (keys right on this input): the key mistake the probes see on
    quantize_keys is at most 'also seen elsewhere', never the name."""
    kata, ref = reference_for("kv_quantize")
    results = run_checks("kv_quantize", KV_BUGS)
    msg = results["values_match_reference"].message
    assert 'This looks like the misconception "quantised keys per token' not in msg
    if "per_token_keys" in msg:
        assert "Also seen elsewhere" in msg, msg


# -- F21: speculative_decoding, three mistakes in two functions ----------------------

def step_no_bonus_resample_p(target_probs, draft_probs, draft_tokens, accept_u, resample_u):
    """Accepts by min(1, p/q); on a rejection draws from p (not the residual); no bonus."""
    p, q = np.asarray(target_probs, float), np.asarray(draft_probs, float)
    out = []
    for i, x in enumerate(int(t) for t in draft_tokens):
        if accept_u[i] < min(1.0, p[i, x] / q[i, x]):
            out.append(x)
            continue
        cdf = np.cumsum(p[i])
        out.append(int(min(np.searchsorted(cdf, resample_u, side="right"), p.shape[1] - 1)))
        break
    return out


def tokens_dividing(alpha, gamma):
    """The closed form copied literally: divides by 1 − α, also at α = 1."""
    return (1 - alpha ** (gamma + 1)) / (1 - alpha)


SPEC_BUGS = {"speculative_step": step_no_bonus_resample_p,
             "expected_tokens_per_step": tokens_dividing}
STEP_MISTAKES = {"ratio_inverted", "resample_from_target", "residual_not_normalised",
                 "no_bonus_token", "greedy_verify", "keeps_going_after_reject"}


@pytest.fixture(scope="module")
def spec_results():
    return run_checks("speculative_decoding", SPEC_BUGS)


def test_spec_division_by_zero_is_named_after_itself(spec_results):
    rates = spec_results["spec_rates"]
    assert rates.outcome == FAILED and "ZeroDivisionError" in rates.message, rates.message
    assert first_name(rates) == "divides_at_alpha_one", rates.message
    assert not STEP_MISTAKES & set(rates.misconception_ids), rates.message


def test_spec_step_failures_name_step_mistakes(spec_results):
    exact = spec_results["spec_exact_distribution"]
    assert exact.outcome == FAILED
    assert first_name(exact) in STEP_MISTAKES, exact.message
    assert "divides_at_alpha_one" not in exact.misconception_ids


def test_spec_rates_pass_once_the_alpha_one_case_is_fixed():
    """With only speculative_step wrong, spec_rates passes: its earlier name was wrong."""
    results = run_checks("speculative_decoding", {"speculative_step": step_no_bonus_resample_p},
                         max_examples=6)
    assert results["spec_rates"].outcome != FAILED, results["spec_rates"].message


# -- F2/F8: layout advice only when the contiguous inputs are right ------------------

def test_layout_note_only_when_contiguous_inputs_are_right():
    def k_dot_T(q, k):          # fails on a batch whatever the layout
        return q @ k.T

    results = run_checks("qk_scores", {"qk_scores": k_dot_T}, max_examples=4)
    strided = results["qk_strided_inputs"]
    assert strided.outcome == FAILED
    assert "Address memory through the strides" not in strided.message, strided.message
    # named (k.T on a batch) already: no layout sentence at all; unnamed: it says why not
    assert ("not about memory layout" in strided.message) == (not strided.misconception_ids)


# -- F6: −∞ is reported as −∞, with advice that fits it ------------------------------

def test_minus_inf_reported_with_its_sign():
    want = np.zeros((2, 3))
    got = want.copy()
    got[1, 2] = -np.inf
    problem = compare(got, want)
    text = " ".join([problem.summary, *problem.details])
    assert "got -inf in 1 of 6" in text and "exp() of a large" not in text, text
    got[1, 2] = np.inf
    problem = compare(got, want)
    assert "got inf in 1 of 6" in problem.summary and "exp()" in " ".join(problem.details)


# -- F27: a failing kata's claims are not "witnessed" --------------------------------

def test_claims_of_a_failing_kata_are_not_witnessed():
    """A rope written with the other pairing still rotates, so the evidence checks of its
    claims pass; the kata is failing, and its claims are not listed as witnessed."""
    from attnkata.ladder import FAILING, READY, KataRow, Ladder, kata_claims
    from attnkata.manager import load_registry

    _, registry = load_registry()
    kata = registry.get("rope")
    assert kata.claims
    checks = {c.id: "passed" for c in kata.checks}
    checks[kata.checks[0].id] = "failed"
    rows = [KataRow(k.id, k.level, k.title, k.pack) for k in registry.katas]
    row = next(r for r in rows if r.id == "rope")
    row.status, row.checks = FAILING, checks
    ladder = Ladder("katas", dict(registry.levels), rows)
    claims = [c for c in kata_claims(registry, ladder) if c.kata == "rope"]
    assert claims and not any(c.witnessed for c in claims)
    row.status = READY
    assert all(c.witnessed for c in kata_claims(registry, ladder) if c.kata == "rope")


# -- F7: a repeated name keeps the failure's own expected/actual lines ---------------

def test_repeated_misconception_keeps_its_values():
    from attnkata.render import fold_repeat

    first = ('[kv_quantize · a] quantize_values(x [2, 3]): scale: values differ in 1 of 2\n'
             '  largest error at [0, 0]: expected 0.1, got 0.2\n'
             'This looks like the misconception "max/128" [range_128].\n  explanation')
    later = first.replace("[kv_quantize · a]", "[kv_quantize · b]").replace("0.2", "0.3")
    seen: set[str] = set()
    assert fold_repeat(first, seen) == first
    folded = fold_repeat(later, seen)
    assert "expected 0.1, got 0.3" in folded and "Same misconception as above" in folded
    assert "explanation" not in folded


# -- R1: a shape relation found while ranking must not break the entry filter ----------

def test_a_transposed_qk_is_diagnosed_without_an_internal_error():
    """``k @ swapaxes(q)`` returns Sᵀ: the shape evidence and the entry filter of one
    explain() once shared a variable, and three checks crashed in the judge."""
    def transposed(q, k):
        return k @ np.swapaxes(q, -1, -2)

    results = run_checks("qk_scores", {"qk_scores": transposed})
    assert any(r.outcome == FAILED for r in results.values())
    for r in results.values():
        assert "internal error" not in (r.message or ""), r.message
