"""Level 0 · softmax: a softmax that never overflows, along any axis."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import FLOAT_DTYPES, filled, seeds, sizes


@st.composite
def _logits(draw):
    shape = tuple(draw(st.lists(sizes(1, 9), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    x = filled(shape, dtype, draw(st.sampled_from((1.0, 10.0, 1000.0))), draw(seeds()))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return x, axis


@check("matches a stable softmax on random shapes, axes and scales up to ±1000s")
def softmax_matches_reference(ctx):
    @ctx.given(case=_logits())
    def prop(case):
        x, axis = case
        ctx.expect("softmax", x, axis=axis)

    prop()


@check("the default axis is the last one")
def softmax_default_axis(ctx):
    x = ctx.rng.standard_normal((3, 4)).astype(np.float32)
    ctx.expect("softmax", x)


@check("huge logits do not overflow: softmax([1000, 1000]) = [0.5, 0.5]")
def softmax_no_overflow(ctx):
    ctx.expect("softmax", np.array([1000.0, 1000.0]))
    ctx.expect("softmax", np.array([[1000.0, -1000.0, 999.0], [-1e4, -1e4, -1e4]], dtype=np.float32))


@check("a row of all -inf gives zeros, not NaN; other rows are unaffected")
def softmax_empty_row(ctx):
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 1.0]])
    ctx.expect("softmax", x)


@check("every row sums to 1 and every entry lies in [0, 1]")
def softmax_rows_sum_to_one(ctx):
    x = (ctx.rng.standard_normal((5, 7)) * 30).astype(np.float32)
    for axis in (-1, 0):
        p = ctx.call("softmax", x, axis=axis)
        ctx.expect("softmax", x, axis=axis)
        if not (np.allclose(p.sum(axis=axis), 1.0, atol=1e-5) and (p >= 0).all() and (p <= 1).all()):
            ctx.fail(f"softmax(axis={axis}): rows must sum to 1 with entries in [0, 1]")


def _naive(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _wrong_axis(x, axis=-1):
    other = 0 if x.ndim > 1 and axis in (-1, x.ndim - 1) else -1
    return _stable(x, other)


def _stable(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def _unnormalised(x, axis=-1):
    return np.exp(x - np.max(x, axis=axis, keepdims=True))


def _nan_rows(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)



softmax_strided_inputs = layout_check(
    "softmax", lambda ctx: [((ctx.rng.standard_normal((4, 9)).astype(np.float32) * 3,), {}),
                            ((ctx.rng.standard_normal((5, 6)) * 40,), {"axis": 0})],
    "x as transposed, sliced and Fortran-ordered views, along the last axis and axis 0",
    id="softmax_strided_inputs", layouts=("transposed", "sliced", "fortran"))


SOFTMAX = Kata(
    id="softmax",
    level=0,
    title="A softmax that survives ±1000 and empty rows",
    path="level0/softmax.py",
    entries=("softmax",),
    checks=(softmax_matches_reference, softmax_default_axis, softmax_no_overflow,
            softmax_empty_row, softmax_rows_sum_to_one,
            softmax_strided_inputs),
    predictions=(
        Prediction("softmax_1000", "softmax([1000, 1000]): the two probabilities", (0.5, 0.5),
                   rel_tol=1e-6, why="Equal logits share the mass equally, however large."),
        Prediction("naive_exp_1000", "what np.exp(1000.0) returns in float64 "
                   "(choose: inf, 1e434, nan)", "inf", kind="choice",
                   choices=("inf", "1e434", "nan"),
                   why="float64 tops out near 1.8e308: e^1000 overflows to inf, and inf/inf is NaN."),
    ),
    misconceptions=(
        Misconception("no_max_subtraction", "exponentiated without subtracting the row maximum",
                      {"softmax": _naive},
                      "exp(1000) overflows to inf and inf/inf is NaN. softmax(x) = "
                      "softmax(x − c) for any c: subtract the row maximum first."),
        Misconception("wrong_axis", "normalised over the wrong axis", {"softmax": _wrong_axis},
                      "Reduce along `axis` (default the last), with keepdims=True so it broadcasts back."),
        Misconception("not_normalised", "forgot to divide by the sum", {"softmax": _unnormalised},
                      "After exp(x − max), divide by the sum along the axis."),
        Misconception("nan_on_empty_rows", "a fully masked (all -inf) row becomes NaN",
                      {"softmax": _nan_rows},
                      "The max of an all -inf row is -inf, and -inf − (-inf) is NaN. Replace a "
                      "non-finite max by 0 so the row's exps are 0 and its result is 0."),
    ),
    claims=(
        Claim("softmax-shift-invariant", "softmax(x) = softmax(x − max x): the stable form is exact "
              "and never overflows.", scope="exact", source="vaswani-2017",
              evidence=("softmax_no_overflow", "softmax_matches_reference"),
              not_claimed="Nothing about low-precision (fp16/bf16) softmax kernels."),
    ),
    hints=(
        "Subtract the maximum along the axis (keepdims=True) before exp: the result is unchanged.",
        "An all -inf row has max -inf: np.where(np.isfinite(m), m, 0) avoids -inf − (-inf).",
        "Divide by the sum along the same axis; if that sum is 0 (empty row) the exps are all 0 "
        "too, so guard the division: e / np.where(total == 0, 1, total).",
    ),
)
