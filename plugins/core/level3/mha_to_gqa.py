"""Level 3 · mha_to_gqa: converting MHA weights to GQA by averaging each group's heads."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

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


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): weights whose heads all differ, pooled at
# head layouts that separate the mistakes — MQA (H_kv = 1), where interleaved and
# consecutive groups coincide; d_head = 1, where adjacent columns are adjacent heads.
# ---------------------------------------------------------------------------

from typing import Any  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, all_of, attach, attempt, check as _holds, close,  # noqa: E402
                               equals, scaled, shape_is)

_R = np.random.default_rng(1430)
_W8 = _R.standard_normal((5, 8 * 3))      # 8 heads of width 3
_W6 = _R.standard_normal((4, 6 * 2))      # 6 heads of width 2
_W4 = _R.standard_normal((3, 4 * 1))      # 4 heads of width 1


def _on(w, n, n_kv) -> Any:
    return lambda ns: ns.mha_to_gqa(w.copy(), n, n_kv)


def _pair(first: tuple, second: tuple) -> Any:
    return lambda ns: tuple(attempt(lambda a=a: ns.mha_to_gqa(a[0].copy(), *a[1:]))
                            for a in (first, second))


def _one_head_per_group(w, n, n_kv) -> Any:
    """Every pooled head is one of its group's heads (whichever), not their mean."""
    d_model, g = w.shape[0], n // n_kv
    heads = w.reshape(d_model, n_kv, g, -1)

    def fn(got, want):
        got = np.asarray(got).reshape(d_model, n_kv, -1)
        return all(any(close(got[:, j], heads[:, j, i]) for i in range(g)) for j in range(n_kv))
    return _holds(fn)


def _rows_pooled(w_kv, n_heads, n_kv_heads):
    """Pools the [out, in] way (heads as rows of w_kv.T) and never transposes back."""
    rows = w_kv.T.reshape(n_kv_heads, n_heads // n_kv_heads, -1, w_kv.shape[0])
    return rows.mean(axis=1).reshape(-1, w_kv.shape[0]).astype(w_kv.dtype)


def _einsum_pool(w_kv, n_heads, n_kv_heads):
    """Correct, written differently: an averaging matrix over heads, applied by einsum."""
    g = n_heads // n_kv_heads
    avg = np.kron(np.eye(n_kv_heads), np.full((1, g), 1.0 / g))       # [H_kv, H]
    heads = w_kv.reshape(w_kv.shape[0], n_heads, -1)
    return np.einsum("jh,mhd->mjd", avg, heads).reshape(w_kv.shape[0], -1).astype(w_kv.dtype)


MHA_TO_GQA = attach(
    MHA_TO_GQA,
    add=(
        # source: huggingface/transformers#28425 (mean-pooling Llama's k_proj/v_proj into
        # GQA heads with nn.Linear's [out, in] weights, split by rows)
        Misconception("pooled_rows_transposed", "pooled w_kv as if heads were rows ([out, in], "
                      "nn.Linear's layout) and returned [H_kv·d_head, d_model]",
                      {"mha_to_gqa": _rows_pooled},
                      "Here w_kv is [d_model, H·d_head]: x @ w_kv gives keys, so heads are "
                      "COLUMNS. nn.Linear stores the transpose; if you pool rows of w_kv.T, "
                      "transpose back before returning."),
    ),
    probes={
        # source: ainslie-2023-gqa §2.1 (mean pooling beats keeping the first head);
        # huggingface/transformers#28425 (a pooling that kept one head per group)
        "first_head_of_group": (
            Probe("8 heads → 2 KV heads, every head different", _on(_W8, 8, 2),
                  all_of(_one_head_per_group(_W8, 8, 2), _holds(lambda g, w: not close(g, w))),
                  axes=("d_model", "column")),
            Probe("6 heads → 3 KV heads", _on(_W6, 6, 3),
                  all_of(_one_head_per_group(_W6, 6, 3), _holds(lambda g, w: not close(g, w))),
                  axes=("d_model", "column")),
        ),
        # source: apple/axlearn#842 (repeat vs tile order of KV heads: which heads form a
        # group); the same order decides which heads are pooled together
        "interleaved_groups": (
            Probe("MQA (8 → 1: every order pools the same heads), then 8 → 2",
                  _pair((_W8, 8, 1), (_W8, 8, 2)),
                  _holds(lambda g, w: close(g[0], w[0]) and not close(g[1], w[1]))),
            Probe("6 → 3: pooled heads h, h + 3", _on(_W6, 6, 3),
                  all_of(equals(_W6.reshape(4, 2, 3, 2).mean(axis=1).reshape(4, 6)),
                         _holds(lambda g, w: not close(g, w))), axes=("d_model", "column")),
        ),
        # source: ainslie-2023-gqa §2.1 (the mean of the group); a sum scales every key by G
        "summed_not_averaged": (
            Probe("8 heads → 2 KV heads: the output is the mean times a constant",
                  _on(_W8, 8, 2), scaled(), axes=("d_model", "column")),
            Probe("6 heads → 3 KV heads: the output is the mean times a constant",
                  _on(_W6, 6, 3), scaled(), axes=("d_model", "column")),
        ),
        # source: MarcoMeter/episodic-transformer-memory-ppo#22 (heads split before the
        # projection: features of different heads mixed)
        "pooled_adjacent_columns": (
            Probe("d_head = 1 (adjacent columns are adjacent heads), then d_head = 3",
                  _pair((_W4, 4, 2), (_W8, 8, 2)),
                  _holds(lambda g, w: close(g[0], w[0]) and not close(g[1], w[1]))),
            Probe("8 heads of width 3 → 2: each column the mean of G neighbouring columns",
                  _on(_W8, 8, 2), all_of(equals(_W8.reshape(5, -1, 4).mean(axis=-1)),
                                         _holds(lambda g, w: not close(g, w))),
                  axes=("d_model", "column")),
        ),
        "pooled_rows_transposed": (
            Probe("8 heads of width 3 → 2 from a [5, 24] w_kv", _on(_W8, 8, 2),
                  all_of(shape_is("transposed_last_two"),
                         _holds(lambda g, w: close(np.asarray(g).T, w)))),
            Probe("6 heads of width 2 → 3 from a [4, 12] w_kv", _on(_W6, 6, 3),
                  all_of(shape_is("transposed_last_two"),
                         _holds(lambda g, w: close(np.asarray(g).T, w)))),
        ),
    },
    shapes={"pooled_rows_transposed": ("transposed_last_two",)},
    diagnostics=(Probe("8 heads of width 3 → 2 KV heads", _on(_W8, 8, 2),
                       axes=("d_model", "column")),),
    variants=(Fake("averaging_matrix", {"mha_to_gqa": _einsum_pool}),),
)
