"""Level 3 · mha_to_gqa: converting MHA weights to GQA by averaging each group's heads."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import FLOAT_DTYPES, filled, seeds, sizes


@st.composite
def _weights(draw):
    n_kv, g = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    d_model, d_head = draw(sizes(1, 9)), draw(sizes(1, 8))
    w = filled((d_model, n_kv * g * d_head), draw(st.sampled_from(FLOAT_DTYPES)), 1.0, draw(seeds()))
    return w, n_kv * g, n_kv


@check("matches the reference on random d_model, d_head, head counts and dtypes")
def pool_matches_reference(ctx):
    @ctx.given(case=_weights())
    def prop(case):
        ctx.expect("mha_to_gqa", *case)

    prop()


@check("n_kv_heads = n_heads changes nothing; n_kv_heads = 1 averages every head (MQA)")
def pool_extremes(ctx):
    w = np.arange(24, dtype=np.float64).reshape(2, 12) ** 1.5   # 4 heads of width 3
    ctx.expect("mha_to_gqa", w, 4, 4)
    ctx.expect("mha_to_gqa", w, 4, 1)
    ctx.expect("mha_to_gqa", w.astype(np.float32), 4, 2)


@check("each pooled KV head's keys are the mean of its group's MHA keys, for any input x")
def pool_means_keys(ctx):
    rng = np.random.default_rng(int(ctx.rng.integers(2**31)))
    n_heads, n_kv, d_model, d_head = 8, 2, 6, 5
    w = rng.standard_normal((d_model, n_heads * d_head))
    x = rng.standard_normal((7, d_model))

    def pooled_keys(ns):
        w_gqa = ns.mha_to_gqa(w.copy(), n_heads, n_kv)
        return (x @ w_gqa).reshape(7, n_kv, d_head)

    got = ctx.run(lambda: pooled_keys(ctx.target), "x @ mha_to_gqa(w, 8, 2)")
    want = (x @ w).reshape(7, n_kv, n_heads // n_kv, d_head).mean(axis=2)  # heads j·G .. j·G+G−1
    ctx.match(got, want, "x @ mha_to_gqa(w, 8, 2), per KV head, vs the mean of each group's "
              "MHA keys x @ w", rerun=pooled_keys, entries=("mha_to_gqa",))


def _first(w_kv, n_heads, n_kv_heads):
    d_model = w_kv.shape[0]
    w = w_kv.reshape(d_model, n_kv_heads, n_heads // n_kv_heads, -1)
    return w[:, :, 0].reshape(d_model, -1).copy()


def _interleaved(w_kv, n_heads, n_kv_heads):
    d_model = w_kv.shape[0]
    w = w_kv.reshape(d_model, n_heads // n_kv_heads, n_kv_heads, -1)  # head h = g·H_kv + j
    return w.mean(axis=1).reshape(d_model, -1).astype(w_kv.dtype)


def _summed(w_kv, n_heads, n_kv_heads):
    d_model = w_kv.shape[0]
    return w_kv.reshape(d_model, n_kv_heads, n_heads // n_kv_heads, -1).sum(axis=2).reshape(d_model, -1)


def _adjacent_columns(w_kv, n_heads, n_kv_heads):
    d_model = w_kv.shape[0]
    return w_kv.reshape(d_model, -1, n_heads // n_kv_heads).mean(axis=-1).astype(w_kv.dtype)



pool_strided_inputs = layout_check(
    "mha_to_gqa", lambda ctx: [((ctx.rng.standard_normal((6, 12)), 4, 2), {}),
                               ((ctx.rng.standard_normal((5, 8)).astype(np.float32), 4, 1), {})],
    "w_kv as transposed, sliced and Fortran-ordered views", id="pool_strided_inputs",
    layouts=("transposed", "sliced", "fortran"))


MHA_TO_GQA = Kata(
    id="mha_to_gqa", level=3, title="From an MHA checkpoint to GQA: mean-pool each group",
    path="level3/mha_to_gqa.py", entries=("mha_to_gqa",),
    checks=(pool_matches_reference, pool_extremes, pool_means_keys,
            pool_strided_inputs),
    predictions=(
        Prediction("pooled_shape", "w_k is [4096, 32·128] (32 heads of width 128); pooled to 8 KV "
                   "heads, what shape is the result?", (4096, 1024), kind="exact",
                   why="8 KV heads × 128 columns each; d_model is untouched."),
        Prediction("heads_per_kv_head", "how many MHA heads' columns are averaged into each of "
                   "those 8 KV heads?", 4, kind="exact", why="32 / 8 = 4 consecutive heads."),
    ),
    misconceptions=(
        Misconception("first_head_of_group", "kept the first head of each group instead of the mean",
                      {"mha_to_gqa": _first},
                      "The uptraining recipe averages every head of the group; keeping one throws "
                      "the others' information away."),
        Misconception("interleaved_groups", "pooled interleaved heads (h, h + H_kv, …) instead of "
                      "consecutive ones", {"mha_to_gqa": _interleaved},
                      "Group j is heads j·G … j·G + G − 1, the ones kv_head_for sends to KV head j: "
                      "reshape to [d_model, H_kv, G, d_head] and average axis 2."),
        Misconception("summed_not_averaged", "summed the group's heads instead of averaging",
                      {"mha_to_gqa": _summed},
                      "A sum scales the keys by G and sharpens every softmax: take the mean."),
        Misconception("pooled_adjacent_columns", "averaged adjacent columns, mixing features "
                      "within a head", {"mha_to_gqa": _adjacent_columns},
                      "Column c of head h must be averaged with column c of the other heads in its "
                      "group, not with its neighbours: split off a d_head axis first."),
    ),
    claims=(
        Claim("gqa-mean-pool-init", "Mean-pooling the K (or V) projections of each group gives "
              "every KV head the average of its group's keys.", scope="exact",
              source="ainslie-2023-gqa", evidence=("pool_means_keys",),
              not_claimed="Not that the pooled model is as good as the original: the paper "
                          "uptrains it for a fraction of the pre-training compute."),
    ),
    hints=(
        "Columns are heads side by side: head h owns columns h·d_head … (h+1)·d_head − 1.",
        "Reshape w_kv to [d_model, n_kv_heads, G, d_head] — consecutive heads land in the same "
        "group — then average over the G axis.",
        "return w_kv.reshape(d_model, n_kv_heads, G, d_head).mean(axis=2).reshape(d_model, "
        "n_kv_heads * d_head), in w_kv's dtype.",
    ),
)
