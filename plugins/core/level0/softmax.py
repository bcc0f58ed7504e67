"""Level 0 · softmax: a softmax that never overflows, along any axis."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

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


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): each mistake fails on its own kind of row — huge logits,
# rows far below the others, an all -inf row, a non-square array — and is right elsewhere.
# Where learners go wrong — a source note per misconception:
# - no_max_subtraction: deeplearning4j/deeplearning4j-examples#730 and
#   intel/xFasterTransformer#326 (exp of the raw input overflows to NaN).
# - wrong_axis: jadore801120/attention-is-all-you-need-pytorch#52 (softmax over dim 0).
# - not_normalised: FluxML/NNlib.jl#206-style hand-rolled softmax that stops at exp.
# - nan_on_empty_rows: pytorch/pytorch#41508 (an all -inf row gives NaN).
# - no_keepdims, global_max: notes at their implementations below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, along, attach, attempt, check as holds, close,  # noqa: E402
                               nan_in, raises, wrong_only_in)


def _no_keepdims(x, axis=-1):
    # source: the reduction loses its axis without keepdims=True, so the division
    # broadcasts along the wrong axis: it raises on [3, 4] and is silently wrong on
    # square arrays (the classic NumPy broadcasting trap in hand-written softmax)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis)


def _global_max(x, axis=-1):
    # source: open-edge-platform/geti#1507 (`np.exp(x - np.max(x))`: one maximum for the
    # whole array, so a row far below it underflows to 0/0)
    e = np.exp(x - np.max(x))
    return e / e.sum(axis=axis, keepdims=True)


_RX = np.random.default_rng(1403)
_X34, _X44 = _RX.standard_normal((3, 4)), _RX.standard_normal((4, 4))
_X25, _X23 = _RX.standard_normal((2, 5)), _RX.standard_normal((2, 3))
_FAR = np.array([[0.0, 1.0], [-800.0, -801.0]])            # row 1 far below row 0
_FAR_TOP = np.array([[1000.0, 999.0], [0.0, -1.0]])        # row 0 huge, row 1 ordinary
_EMPTY = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 1.0]])
_SHAPEY = "broadcast|shape|operand"


def _normalised_along(axis):
    return holds(lambda g, w: np.allclose(np.sum(g, axis=axis), 1)
                 and not np.allclose(np.sum(g, axis=-1 if axis == 0 else 0), 1))


def _right_then(first, second, pred):
    """Right on ``first``; ``pred`` on ``second`` (one probe, two inputs)."""
    return Probe(f"{first.tolist()}, then {second.tolist()}".replace("-inf", "−inf"),
                 lambda ns: (attempt(lambda: ns.softmax(first.copy())),
                             attempt(lambda: ns.softmax(second.copy()))),
                 holds(lambda g, w: close(g[0], w[0]) and pred(g[1], w[1])))


_row1_only_wrong = holds(lambda g, w: wrong_only_in(along(-2, 1))(g, w)
                         and not np.allclose(np.nan_to_num(np.asarray(g)[1]).sum(), 1))

SOFTMAX = attach(
    SOFTMAX,
    add=(
        Misconception("no_keepdims", "reduced without keepdims=True, so the sum broadcasts "
                      "along the wrong axis", {"softmax": _no_keepdims},
                      "x.sum(axis) drops the axis: dividing [3, 4] by a [3] array fails, and a "
                      "square array is divided by the wrong rows' sums. Use keepdims=True."),
        Misconception("global_max", "subtracted the maximum of the whole array, not of each row",
                      {"softmax": _global_max},
                      "One shift for every row is exact in theory, but a row far below the "
                      "global maximum underflows to all zeros and 0/0 is NaN. Subtract each "
                      "row's own maximum (np.max(x, axis=axis, keepdims=True))."),
    ),
    probes={
        "no_max_subtraction": (
            Probe.of("softmax([1000, 1000]) in float64", "softmax", np.array([1000.0, 1000.0]),
                     holds=nan_in()),
            Probe.of("float32 logits [[100, 99, 0]]", "softmax",
                     np.array([[100.0, 99.0, 0.0]], np.float32), holds=nan_in()),
        ),
        "wrong_axis": (
            Probe.of("a [3, 4] array, default axis", "softmax", _X34, holds=_normalised_along(0)),
            Probe.of("a [2, 5] array, axis=0", "softmax", _X25, axis=0, holds=_normalised_along(-1)),
        ),
        "not_normalised": (
            Probe.of("a [2, 3] array", "softmax", _X23, holds=holds(
                lambda g, w: not np.allclose(np.sum(g, -1), 1)
                and close(np.asarray(g) / np.sum(g, -1, keepdims=True), w))),
            Probe.of("[1, 2, 3] along axis 0", "softmax", np.array([1.0, 2.0, 3.0]), axis=0,
                     holds=holds(lambda g, w: not np.isclose(np.sum(g), 1)
                                 and close(np.asarray(g) / np.sum(g), w))),
        ),
        "nan_on_empty_rows": (
            _right_then(_FAR_TOP, _EMPTY, holds(
                lambda g, w: nan_in(along(-2, 0))(g, w) and wrong_only_in(along(-2, 0))(g, w))),
            _right_then(np.array([1000.0, 1000.0]), np.full(3, -np.inf),
                        holds(lambda g, w: bool(np.isnan(np.asarray(g, float)).all()))),
        ),
        "no_keepdims": (
            Probe.of("a [3, 4] array", "softmax", _X34, holds=raises("", _SHAPEY)),
            Probe.of("a [4, 4] array", "softmax", _X44,
                     holds=holds(lambda g, w: np.shape(g) == (4, 4) and not close(g, w))),
        ),
        "global_max": (
            Probe.of("rows [0, 1] and [−800, −801]", "softmax", _FAR, holds=_row1_only_wrong,
                     axes=("row", "entry")),
            Probe.of("rows [1000, 999] and [0, −1]", "softmax", _FAR_TOP, holds=_row1_only_wrong,
                     axes=("row", "entry")),
        ),
    },
    raises={"no_keepdims": (("", _SHAPEY),)},
    diagnostics=(
        Probe.of("rows of ordinary, huge, far-apart and all −inf logits", "softmax",
                 np.array([[0.5, -1.0, 2.0], [1000.0, 998.0, 999.0], [-700.0, -702.0, -701.0],
                           [-np.inf, -np.inf, -np.inf]]), axes=("row", "entry")),
    ),
    variants=(
        Fake("logsumexp", {"softmax": lambda x, axis=-1: _lse_softmax(x, axis)}),
        Fake("moved_axis", {"softmax": lambda x, axis=-1: np.moveaxis(
            _lse_softmax(np.moveaxis(x, axis, -1), -1), -1, axis)}),
    ),
)


def _lse_softmax(x, axis=-1):
    """A correct variant: exp(x − logsumexp(x)), an all −inf row set to zeros."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        lse = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    return np.where(np.isfinite(lse), np.exp(x - np.where(np.isfinite(lse), lse, 0)), 0).astype(x.dtype)
# == end of diagnosis by behaviour, levels 0-2 ==
