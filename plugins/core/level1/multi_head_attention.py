"""Level 1 — multi-head attention: project, split into heads, attend, merge, project."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import FLOAT_DTYPES, seeds, sizes

from .attention import attend
from .common import call_shaped, causal


@st.composite
def _mha_inputs(draw, masked=False):
    n = draw(sizes(1, 13))
    h = draw(st.sampled_from((1, 2, 3, 4)))
    d_head = draw(sizes(1, 8))
    d_model = h * d_head
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    scale = draw(st.sampled_from((1.0, 1.0, 0.001, 3.0)))
    rng = np.random.default_rng(draw(seeds()))
    x = (rng.standard_normal((n, d_model)) * scale).astype(dtype)
    ws = [(rng.standard_normal((d_model, d_model)) / math.sqrt(d_model)).astype(dtype)
          for _ in range(4)]
    mask = None
    if masked:
        mask = causal(n, n) if draw(st.booleans()) else rng.random((n, n)) < 0.5
    return x, ws, h, mask


def _weights(rng, d_model):
    return [rng.standard_normal((d_model, d_model)) / math.sqrt(d_model) for _ in range(4)]


@check("matches the reference on random sizes, head counts, dtypes and scales")
def mha_matches_reference(ctx):
    @ctx.given(case=_mha_inputs())
    def prop(case):
        x, ws, h, _ = case
        ctx.expect("multi_head_attention", x, *ws, h)

    prop()


@check("matches the reference under causal and random masks")
def mha_masked_matches_reference(ctx):
    @ctx.given(case=_mha_inputs(masked=True))
    def prop(case):
        x, ws, h, mask = case
        ctx.expect("multi_head_attention", x, *ws, h, mask)

    prop()


@check("with one head it is plain attention of the projections, then the output projection")
def mha_one_head(ctx):
    x = ctx.rng.standard_normal((5, 6))
    w_q, w_k, w_v, w_o = _weights(ctx.rng, 6)
    got = ctx.call("multi_head_attention", x, w_q, w_k, w_v, w_o, 1)
    want = attend(x @ w_q, x @ w_k, x @ w_v) @ w_o
    ctx.match(got, want, "multi_head_attention(x [5, 6], ..., n_heads=1) versus "
              "attention(x·w_q, x·w_k, x·w_v)·w_o",
              rerun=lambda ns: ns.multi_head_attention(x.copy(), w_q, w_k, w_v, w_o, 1))


@check("heads are independent: changing head 0's query weights changes only head 0's slice")
def mha_heads_independent(ctx):
    n, h, d_head = 6, 3, 4
    d_model = h * d_head
    x = ctx.rng.standard_normal((n, d_model))
    w_q, w_k, w_v, _ = _weights(ctx.rng, d_model)
    eye = np.eye(d_model)                       # w_o = I: the output is the merged heads
    w_q2 = w_q.copy()
    w_q2[:, :d_head] = ctx.rng.standard_normal((d_model, d_head)) * 3   # head 0's columns only
    before = call_shaped(ctx, "multi_head_attention", x, w_q, w_k, w_v, eye, h)
    after = call_shaped(ctx, "multi_head_attention", x, w_q2, w_k, w_v, eye, h)
    ctx.match(after[:, d_head:], before[:, d_head:],
              f"with w_o = I, output columns {d_head}: (heads 1 and 2) after changing only "
              f"w_q[:, :{d_head}] (head 0)",
              rerun=lambda ns: ns.multi_head_attention(x.copy(), w_q2, w_k, w_v, eye, h)[:, d_head:])
    if np.allclose(after[:, :d_head], before[:, :d_head]):
        ctx.fail(f"with w_o = I, changing head 0's query weights w_q[:, :{d_head}] left output "
                 f"columns :{d_head} (head 0's slice) unchanged: head h must use columns "
                 f"h·d_head:(h+1)·d_head of x·w_q.")


def _split(t, h):
    n, d_model = t.shape
    return t.reshape(n, h, d_model // h).transpose(1, 0, 2)       # (H, N, d_head)


def _merge(o):
    h, n, d_head = o.shape
    return o.transpose(1, 0, 2).reshape(n, h * d_head)


def _by_d_model(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    o = attend(_split(x @ w_q, n_heads), _split(x @ w_k, n_heads), _split(x @ w_v, n_heads), mask,
               scale=math.sqrt(x.shape[-1]))
    return _merge(o) @ w_o


def _from_sequence(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    n, d_model = x.shape

    def split(t):
        return t.reshape(n_heads, n, d_model // n_heads)            # no transpose: wrong rows

    o = attend(split(x @ w_q), split(x @ w_k), split(x @ w_v), mask)
    return o.reshape(n, d_model) @ w_o


def _no_output_projection(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    return _merge(attend(_split(x @ w_q, n_heads), _split(x @ w_k, n_heads),
                         _split(x @ w_v, n_heads), mask))


def _merged_wrong_order(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    o = attend(_split(x @ w_q, n_heads), _split(x @ w_k, n_heads), _split(x @ w_v, n_heads), mask)
    n = x.shape[0]
    return np.transpose(o, (1, 2, 0)).reshape(n, -1) @ w_o          # features interleaved by head


def _one_big_head(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    return attend(x @ w_q, x @ w_k, x @ w_v, mask) @ w_o



def _mha_layout_cases(ctx):
    w = [ctx.rng.standard_normal((8, 8)) / 3 for _ in range(4)]
    yield (ctx.rng.standard_normal((5, 8)), *w, 2), {}
    yield (ctx.rng.standard_normal((4, 8)).astype(np.float32),
           *[x.astype(np.float32) for x in w], 4), {"mask": np.tril(np.ones((4, 4), bool))}


mha_strided_inputs = layout_check(
    "multi_head_attention", _mha_layout_cases,
    "x and the weights as transposed (a torch Linear's W.T), sliced and Fortran-ordered views",
    id="mha_strided_inputs", layouts=("transposed", "sliced", "fortran"))


MULTI_HEAD_ATTENTION = Kata(
    id="multi_head_attention",
    level=1,
    title="Multi-head attention: several small attentions side by side",
    path="level1/multi_head_attention.py",
    entries=("multi_head_attention",),
    checks=(mha_matches_reference, mha_masked_matches_reference, mha_one_head,
            mha_heads_independent,
            mha_strided_inputs),
    predictions=(
        Prediction("d_head", "d_model = 512 split into 8 heads: the width d_head of one head",
                   64, kind="exact", why="The heads share the model width: 512 / 8 = 64."),
        Prediction("scale_divisor", "d_model = 512, 8 heads: each head's scores are divided by "
                   "which number?", 8.0, rel_tol=1e-6,
                   why="Each head's dot products run over d_head = 64 features: √64 = 8 "
                       "(not √512 ≈ 22.6)."),
    ),
    misconceptions=(
        Misconception("scaled_by_d_model", "scaled by √d_model instead of √d_head",
                      {"multi_head_attention": _by_d_model},
                      "Each head's scores are dot products over d_head features, so each head "
                      "divides by √d_head."),
        Misconception("heads_from_sequence", "split heads with a reshape but no transpose "
                      "(heads cut from the sequence axis)", {"multi_head_attention": _from_sequence},
                      "[N, d_model] → reshape(N, H, d_head) → transpose to (H, N, d_head). "
                      "reshape(H, N, d_head) directly mixes tokens across heads."),
        Misconception("forgot_output_projection", "forgot the output projection w_o",
                      {"multi_head_attention": _no_output_projection},
                      "After merging the heads back to [N, d_model], multiply by w_o."),
        Misconception("merged_wrong_order", "heads merged in the wrong order (features "
                      "interleaved across heads)", {"multi_head_attention": _merged_wrong_order},
                      "Merge is the inverse of split: (H, N, d_head) → transpose to "
                      "(N, H, d_head) → reshape(N, d_model), head 0's features first."),
        Misconception("one_big_head", "did not split into heads (one attention over all of d_model)",
                      {"multi_head_attention": _one_big_head},
                      "H heads each attend with their own d_head-wide slice, so each head has its "
                      "own weights over the keys."),
    ),
    claims=(
        Claim("mha-heads-independent", "Multi-head attention is H independent attentions of "
              "width d_model/H on slices of the projections, concatenated and projected by w_o.",
              scope="exact", source="vaswani-2017",
              evidence=("mha_one_head", "mha_heads_independent", "mha_matches_reference"),
              not_claimed="That the heads learn different things: that is a property of "
                          "training, not of this computation."),
    ),
    hints=(
        "Shapes first: x·w_q is [N, d_model]; view it as [N, H, d_head] and move the head axis "
        "to the front, (H, N, d_head). Your attention kata then handles all heads at once.",
        "Split with t.reshape(N, H, d_head).transpose(1, 0, 2); merge with the inverse, "
        "o.transpose(1, 0, 2).reshape(N, d_model). Each head scales by √d_head.",
        "y = merge(attention(split(x @ w_q), split(x @ w_k), split(x @ w_v), mask)) @ w_o; you may "
        "import your attention with `from .attention import attention`.",
    ),
)
