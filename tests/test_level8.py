"""Level 8's judge-side models: they must agree with the references they judge against, the
exact enumeration must cover every outcome, and the chi-square constant must be what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkata.target import load_module
from attnkata_plugins.core.level8 import continuous_batching as cb
from attnkata_plugins.core.level8 import serving_latency as sl
from attnkata_plugins.core.level8 import speculative_decoding as sd

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


def reference(name: str):
    return load_module(SOLUTIONS / "level8" / f"{name}.py", SOLUTIONS)


def test_chi_square_critical_value_is_p_one_in_a_million():
    torch = pytest.importorskip("torch")
    # survival function of chi-square with 4 degrees of freedom: Q(2, x / 2)
    sf = float(torch.special.gammaincc(torch.tensor(2.0, dtype=torch.float64),
                                       torch.tensor(sd.CHI2_CRIT_DF4 / 2, dtype=torch.float64)))
    assert sf == pytest.approx(1e-6, rel=0.01)


@pytest.mark.parametrize("gamma", [1, 2, 3])
def test_enumeration_covers_every_outcome(gamma):
    cases = sd.outcomes(gamma)
    assert sum(w for w, _ in cases) == pytest.approx(1.0, abs=1e-12)
    ref = reference("speculative_decoding")
    dist = sd.distribution(cases, [ref.speculative_step(*a) for _, a in cases])
    gap, _ = sd.conditional_gaps(dist)
    assert gap < 1e-12


def test_enumeration_sees_a_wrong_sampler():
    cases = sd.outcomes(2)
    dist = sd.distribution(cases, [sd._resample_from_target(*a) for _, a in cases])
    gap, where = sd.conditional_gaps(dist)
    assert gap > 0.01 and where is not None


@settings(max_examples=60, deadline=None, database=None)
@given(s=sd.steps())
def test_judge_step_matches_the_reference(s):
    ref = reference("speculative_decoding")
    assert sd.step(*s) == ref.speculative_step(*s)


@settings(max_examples=60, deadline=None, database=None)
@given(trace=sl.traces(max_requests=12))
def test_judge_server_matches_the_reference(trace):
    ref = reference("serving_latency")
    arrival, prompts, outputs, cost, slo = trace
    first, finish = sl.simulate(arrival, prompts, outputs, *cost)
    want_first, want_finish = ref.serve_trace(arrival, prompts, outputs, *cost)
    np.testing.assert_allclose(first, want_first)
    np.testing.assert_allclose(finish, want_finish)
    got, want = sl.metrics(arrival, outputs, first, finish, *slo), \
        ref.latency_metrics(arrival, outputs, first, finish, *slo)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key])


def test_worked_example_numbers_in_the_stub():
    arrival, prompts, outputs = sl.EXAMPLE
    first, finish = sl.simulate(arrival, prompts, outputs, 0.5, 10.0, 2.0)
    m = sl.metrics(arrival, outputs, first, finish, 60.0, 20.0)
    assert list(m["tpot_ms"]) == [23.0, 14.0] and list(m["e2e_ms"]) == [96.0, 64.0]
    assert m["p99_tpot_ms"] == pytest.approx(22.91)


@st.composite
def schedules(draw):
    n, bs = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    reqs = draw(st.lists(st.tuples(st.lists(st.integers(1, 10), min_size=1, max_size=9),
                                   st.integers(1, 8)), min_size=1, max_size=7))
    return n, bs, reqs


@settings(max_examples=80, deadline=None, database=None)
@given(case=schedules())
def test_judge_policy_matches_the_reference_scheduler(case):
    ref = reference("continuous_batching")
    n, bs, reqs = case
    mine, theirs = cb.Policy(n, bs, cb.EOS), ref.Scheduler(n, bs, cb.EOS)
    accepted = []
    for rid, (prompt, max_new) in enumerate(reqs):
        outcomes = []
        for s in (mine, theirs):
            try:
                s.add_request(rid, prompt, max_new)
                outcomes.append("ok")
            except ValueError:
                outcomes.append("ValueError")
        assert outcomes[0] == outcomes[1]
        if outcomes[0] == "ok":
            accepted.append(rid)
    for _ in range(sum(m for _, m in reqs) + 2):     # the liveness bound the check relies on
        batch = mine.schedule()
        assert theirs.schedule() == batch
        tokens = {rid: cb.toy_model(mine.tokens(rid)) for rid in batch}
        assert mine.update(tokens) == theirs.update(tokens)
        assert mine.num_free_blocks == theirs.num_free_blocks
        assert mine.num_preemptions == theirs.num_preemptions
        held = [b for rid in accepted for b in theirs.block_table(rid)]
        assert len(held) == len(set(held)) and len(held) + theirs.num_free_blocks == n
    for rid in accepted:
        assert theirs.status(rid) == "finished"
        assert theirs.output(rid) == cb.decode_alone(*reqs[rid])
