"""Level 1 — multi-head attention: project, split into heads, attend, merge, project."""

from __future__ import annotations

import math

import numpy as np
from attnkata.strategies import st

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


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): every mistake here is a different deterministic formula, so
# its output on two inputs (2 heads of width 4, 3 heads of width 4 under a causal mask)
# pins it; the formulas were checked pairwise distinct on these inputs by selfcheck.
# Where learners go wrong — a source note per misconception:
# - scaled_by_d_model: lucidrains/vit-pytorch#65, chelsea0x3b/dfdx#171 and
#   omihub777/ViT-CIFAR#11 (√d_model where √d_head is meant).
# - heads_from_sequence: reczoo/FuxiCTR#30 and hyunwoongko/transformer#15 (view to
#   (H, N, d_head) without the transpose).
# - forgot_output_projection: the concatenated heads returned as the output.
# - merged_wrong_order: lsdefine/attention-is-all-you-need-keras#36 (a transpose that
#   puts the axes in the wrong order before the reshape).
# - one_big_head: the head split skipped, one attention over d_model.
# - merge_without_transpose, weights_transposed: notes at their implementations below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, check as holds, close  # noqa: E402


def _merge_no_transpose(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    # source: jsbaan/transformer-from-scratch#6 and ajhalthor/Transformer-Neural-Network#4
    # (heads merged by a reshape of (H, N, d_head) with no permute first: a token's row
    # gathers other tokens' features)
    o = attend(_split(x @ w_q, n_heads), _split(x @ w_k, n_heads), _split(x @ w_v, n_heads), mask)
    return o.reshape(x.shape[0], -1) @ w_o


def _weights_transposed(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    # source: pytorch/pytorch#129834 and #139598 (nn.Linear computes x @ W.T with W
    # [out, in]; here the weights are [d_in, d_out] and multiply x directly)
    o = attend(_split(x @ w_q.T, n_heads), _split(x @ w_k.T, n_heads), _split(x @ w_v.T, n_heads),
               mask)
    return _merge(o) @ w_o.T


_RM = np.random.default_rng(1405)
_XA, _WA = _RM.standard_normal((5, 8)), [_RM.standard_normal((8, 8)) / 3 for _ in range(4)]
_XB, _WB = _RM.standard_normal((4, 12)), [_RM.standard_normal((12, 12)) / 3 for _ in range(4)]
_CAUSAL4 = causal(4, 4)
_IN_A = (_XA, *_WA, 2)
_IN_B = (_XB, *_WB, 3, _CAUSAL4)


def _as(fn):
    """Two probes: the output is ``fn``'s formula on each input (and the answer is not)."""
    out = []
    for args, what in ((_IN_A, "x [5, 8], 2 heads of width 4"),
                       (_IN_B, "x [4, 12], 3 heads of width 4, causal mask")):
        want = fn(*args)
        out.append(Probe.of(what, "multi_head_attention", *args,
                            holds=holds(lambda g, w, want=want: close(g, want) and not close(want, w)),
                            axes=("token", "feature"), tiles={"feature": 4}))
    return tuple(out)


MULTI_HEAD_ATTENTION = attach(
    MULTI_HEAD_ATTENTION,
    add=(
        Misconception("merge_without_transpose", "merged the heads with a reshape of (H, N, "
                      "d_head) and no transpose", {"multi_head_attention": _merge_no_transpose},
                      "(H, N, d_head).reshape(N, d_model) reads head 0's rows first, so token 0 "
                      "gets tokens 0..H−1 of head 0. Transpose to (N, H, d_head) first."),
        Misconception("weights_transposed", "multiplied by the transposed weights (x @ w.T, "
                      "torch Linear's layout)", {"multi_head_attention": _weights_transposed},
                      "Here w_q, w_k, w_v, w_o are [d_in, d_out] and act as x @ w. torch's "
                      "nn.Linear stores [d_out, d_in] and computes x @ W.T: do not mix the two."),
    ),
    probes={
        "scaled_by_d_model": _as(_by_d_model),
        "heads_from_sequence": _as(_from_sequence),
        "forgot_output_projection": _as(_no_output_projection),
        "merged_wrong_order": _as(_merged_wrong_order),
        "one_big_head": _as(_one_big_head),
        "merge_without_transpose": _as(_merge_no_transpose),
        "weights_transposed": _as(_weights_transposed),
    },
    diagnostics=(
        Probe.of("x [5, 8], 2 heads of width 4, w_o = I", "multi_head_attention",
                 _XA, *_WA[:3], np.eye(8), 2, axes=("token", "feature"), tiles={"feature": 4}),
    ),
    variants=(
        Fake("loop_over_heads", {"multi_head_attention": lambda x, w_q, w_k, w_v, w_o, n_heads,
                                 mask=None: _mha_loop(x, w_q, w_k, w_v, w_o, n_heads, mask)}),
        Fake("einsum_heads", {"multi_head_attention": lambda x, w_q, w_k, w_v, w_o, n_heads,
                              mask=None: _mha_einsum(x, w_q, w_k, w_v, w_o, n_heads, mask)}),
    ),
)


def _mha_loop(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    """A correct variant: one head at a time on column slices, concatenated."""
    dh = x.shape[-1] // n_heads
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    heads = [attend(q[:, h * dh:(h + 1) * dh], k[:, h * dh:(h + 1) * dh], v[:, h * dh:(h + 1) * dh],
                    mask) for h in range(n_heads)]
    return np.concatenate(heads, axis=-1) @ w_o


def _mha_einsum(x, w_q, w_k, w_v, w_o, n_heads, mask=None):
    """A correct variant: weights reshaped per head, einsum for every product."""
    n, d = x.shape
    dh = d // n_heads
    q, k, v = (np.einsum("nd,dhe->hne", x, w.reshape(d, n_heads, dh)) for w in (w_q, w_k, w_v))
    o = attend(q, k, v, mask)
    return np.einsum("hne,hef->nf", o, w_o.reshape(n_heads, dh, d)).astype(x.dtype)
# == end of diagnosis by behaviour, levels 0-2 ==
