"""The hidden-test engine: comparisons, guarded calls, misconception naming."""

from __future__ import annotations

import types

import numpy as np
import pytest

from attnkata import Kata, Misconception, check
from attnkata.compare import compare, describe
from attnkata.harness import Ctx, KataFailure, LearnerError, LearnerTimeout, NotStarted
from attnkata.runner import FAILED, NOT_STARTED, PASSED, run_check


def double(x):
    return x * 2


def triple(x):
    return x * 3


@check("doubles")
def doubles(ctx):
    ctx.expect("double", np.arange(4.0))


KATA = Kata(id="double", level=0, title="t", path="x/double.py", entries=("double",),
            checks=(doubles,), misconceptions=(Misconception("tripled", "tripled instead", {"double": triple}),),
            timeout=0.5)
REF = types.SimpleNamespace(double=double)


def ctx_for(fn):
    return Ctx(KATA, types.SimpleNamespace(double=fn), REF)


@pytest.mark.parametrize("got, want, says", [
    (np.zeros((2, 3)), np.zeros((3, 2)), "shape: expected [3, 2], got [2, 3]"),
    (np.zeros(3), np.zeros(3, np.float32), "dtype: expected float32, got float64"),
    (np.array([np.nan, 1.0]), np.array([0.0, 1.0]), "got NaN in 1 of 2 entries"),
    (np.array([1.0, 2.5]), np.array([1.0, 2.0]), "values differ in 1 of 2 entries"),
    ([1, 2], np.zeros(2), "expected a numpy array [2] float64, got list"),
    ((np.zeros(1),), (np.zeros(1), np.zeros(1)), "expected a tuple of 2 values"),
    (5, 6, "expected the integer 6, got 5"),
])
def test_compare_says_what_differs(got, want, says):
    problem = compare(got, want)
    assert problem is not None and says in problem.summary


def test_compare_accepts_within_tolerance():
    assert compare(np.float32([1.0]) + np.float32(1e-6), np.float32([1.0])) is None
    assert compare(np.array([np.nan]), np.array([np.nan])) is None


def test_describe_shows_shapes_and_small_values():
    assert describe("f", (np.zeros((2, 3), np.float32), 4), {"mask": None}) == "f([2, 3] float32, 4, mask=None)"


def test_not_implemented_is_not_started():
    def stub(x):
        raise NotImplementedError("kata double: not yet")
    with pytest.raises(NotStarted, match="not yet"):
        ctx_for(stub).expect("double", np.arange(3.0))


def test_learner_exception_is_explained():
    def broken(x):
        return x.nonexistent
    with pytest.raises(LearnerError, match="AttributeError"):
        ctx_for(broken).expect("double", np.arange(3.0))


def test_hang_times_out():
    def hang(x):
        while True:
            pass
    with pytest.raises(LearnerTimeout, match="did not finish within 0.5 s"):
        ctx_for(hang).call("double", np.arange(3.0))


def test_mutation_is_detected_by_name():
    def sneaky(x):
        out = x * 2
        x[0] = 99
        return out
    with pytest.raises(KataFailure, match="modified its input `x` in place"):
        ctx_for(sneaky).expect("double", np.arange(3.0))


def test_misconception_is_named():
    with pytest.raises(KataFailure) as info:
        ctx_for(triple).expect("double", np.arange(3.0))
    assert info.value.misconception.id == "tripled"
    assert 'looks like the misconception "tripled instead"' in info.value.message


def test_unknown_wrong_answer_is_not_misnamed():
    with pytest.raises(KataFailure) as info:
        ctx_for(lambda x: x * 5).expect("double", np.arange(3.0))
    assert info.value.misconception is None


def test_run_check_outcomes():
    assert run_check(KATA, doubles, REF, REF, target_root=None).outcome == PASSED
    wrong = run_check(KATA, doubles, types.SimpleNamespace(double=triple), REF, target_root=None)
    assert wrong.outcome == FAILED and wrong.misconception_ids == ("tripled",)

    def stub(x):
        raise NotImplementedError
    assert run_check(KATA, doubles, types.SimpleNamespace(double=stub), REF,
                     target_root=None).outcome == NOT_STARTED


def test_given_stops_at_once_on_not_started():
    calls = []

    def stub(x):
        calls.append(1)
        raise NotImplementedError

    ctx = ctx_for(stub)
    from hypothesis import strategies as st

    @ctx.given(n=st.integers(1, 5))
    def prop(n):
        ctx.call("double", np.arange(float(n)))

    with pytest.raises(NotStarted):
        prop()
    assert len(calls) == 1


def test_nondeterministic_learner_code_is_a_failure_not_a_crash():
    import itertools

    counter = itertools.count()

    def moody(x):
        return x * 2 + (next(counter) % 2)

    @check("doubles on generated inputs")
    def generated(ctx):
        from hypothesis import strategies as st

        @ctx.given(n=st.integers(1, 4))
        def prop(n):
            ctx.expect("double", np.arange(float(n)))
        prop()

    result = run_check(KATA, generated, types.SimpleNamespace(double=moody), REF, target_root=None)
    assert result.outcome == FAILED


def test_run_seed_changes_generated_inputs():
    from hypothesis import strategies as st

    def seen_with(seed):
        ctx = Ctx(KATA, REF, REF, seed=seed)
        values = []

        @ctx.given(max_examples=5, n=st.integers(0, 10**9))
        def prop(n):
            values.append(n)

        prop()
        return values

    assert seen_with(0) == seen_with(0)   # reproducible: the seed is printed in the header
    assert seen_with(0) != seen_with(1)


def test_recorded_figures_reach_the_result():
    @check("measures something")
    def measures(ctx):
        ctx.record("peak 1.0 MB at N=512")

    result = run_check(KATA, measures, REF, REF, target_root=None)
    assert result.outcome == PASSED and result.figures == ("peak 1.0 MB at N=512",)
