"""An example third-party pack: registers one kata through the ``attnkata_packs`` hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from attnkata.strategies import st

import attnkata
from attnkata import Claim, Kata, Misconception, Pack, Prediction, check
from attnkata.strategies import filled, seeds, sizes

HERE = Path(__file__).resolve().parent


@st.composite
def _rows(draw):
    shape = (draw(sizes(1, 5)), draw(sizes(1, 9)))
    return filled(shape, draw(st.sampled_from((np.float32, np.float64))),
                  draw(st.sampled_from((1.0, 500.0))), draw(seeds()))


@check("matches a stable log-sum-exp on random rows, including huge values")
def matches(ctx):
    @ctx.given(x=_rows())
    def prop(x):
        ctx.expect("logsumexp", x)

    prop()


@check("an all -inf row gives -inf, not NaN")
def empty_row(ctx):
    ctx.expect("logsumexp", np.array([[-np.inf, -np.inf], [0.0, 0.0]]))


def _naive(x, axis=-1):
    return np.log(np.exp(x).sum(axis=axis))


def _forgot_max(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return np.log(np.exp(x - m).sum(axis=axis))


def _max_only(x, axis=-1):
    return np.max(x, axis=axis)


LOGSUMEXP = Kata(
    id="logsumexp", level=50, title="log Σ exp without overflow (example pack)",
    path="extras/logsumexp.py", entries=("logsumexp",), checks=(matches, empty_row),
    predictions=(Prediction("lse_two_zeros", "logsumexp([0, 0]) (a number)", float(np.log(2)),
                            why="log(e⁰ + e⁰) = log 2 ≈ 0.693."),),
    misconceptions=(
        Misconception("naive", "exponentiated before subtracting the maximum", {"logsumexp": _naive},
                      "exp(1000) overflows; compute m + log Σ exp(x − m)."),
        Misconception("dropped_max", "subtracted the maximum but forgot to add it back",
                      {"logsumexp": _forgot_max}, "log Σ exp(x) = m + log Σ exp(x − m): keep the m."),
        Misconception("max_only", "returned the maximum alone", {"logsumexp": _max_only},
                      "The max is a lower bound; the log of the remaining sum is missing."),
    ),
    claims=(Claim("lse-shift", "log Σ exp(x) = m + log Σ exp(x − m) for any m; with m = max it never "
                  "overflows.", scope="exact", source="milakov-2018",
                  not_claimed="An example pack: nothing beyond this identity."),),
    hints=("Take m = max over the axis first.", "Return m + log(sum(exp(x - m))).",
           "Guard rows whose max is -inf: their answer is -inf."),
)


@attnkata.hookimpl
def attnkata_packs():
    return Pack("example", katas=(LOGSUMEXP,), katas_dir=HERE / "katas",
                solutions_dir=HERE / "solutions", levels={50: "Extras (example pack)"})
