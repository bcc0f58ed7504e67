"""additive_attention — Bahdanau's score v_a·tanh(q W_q + k W_k), its weights and context."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, batch_dims, filled, seeds, sizes

from ..show import ALIGNMENT, toy_translation
from .common import call_shaped, softmax_rows


@st.composite
def _inputs(draw, masked=False):
    lead = draw(batch_dims(max_rank=1))
    n_q, n_k = draw(sizes(1, 9)), draw(sizes(1, 9))
    d_q, d_k, d_a, d_v = (draw(sizes(1, 6)) for _ in range(4))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    scale = draw(st.sampled_from((1.0, 1.0, 0.1, 5.0)))
    seed = draw(seeds())
    q = filled((*lead, n_q, d_q), dtype, scale, seed)
    k = filled((*lead, n_k, d_k), dtype, scale, seed + 1)
    v = filled((*lead, n_k, d_v), dtype, 1.0, seed + 2)
    w_q = filled((d_q, d_a), dtype, 1.0, seed + 3)
    w_k = filled((d_k, d_a), dtype, 1.0, seed + 4)
    v_a = filled((d_a,), dtype, 2.0, seed + 5)
    if not masked:
        return q, k, v, w_q, w_k, v_a
    mask = np.random.default_rng(seed).random((n_q, n_k)) < 0.6
    mask[np.random.default_rng(seed + 6).random(n_q) < 0.3] = False   # some empty rows
    return q, k, v, w_q, w_k, v_a, mask


@check("scores match v_a·tanh(q W_q + k W_k) on random shapes, widths and dtypes")
def add_scores_match(ctx):
    @ctx.given(case=_inputs())
    def prop(case):
        q, k, v, w_q, w_k, v_a = case
        ctx.expect("additive_scores", q, k, w_q, w_k, v_a)

    prop()


@check("context and weights match the reference, with and without masks (empty rows give zeros)")
def add_attention_match(ctx):
    @ctx.given(case=_inputs(masked=True))
    def prop(case):
        ctx.expect("additive_attention", *case[:6])
        ctx.expect("additive_attention", *case)

    prop()


@check("the worked example of the stub: context [7.239, 2.761]")
def add_worked_example(ctx):
    args = (np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]),
            np.array([[10.0, 0.0], [0.0, 10.0]]), np.eye(2), np.eye(2), np.array([1.0, -1.0]))
    ctx.expect("additive_attention", *args)


@check("weights are a distribution over source positions; |score| ≤ Σ|v_a|")
def add_weights_distribution(ctx):
    rng = ctx.rng
    q, k, v = rng.standard_normal((4, 3)) * 3, rng.standard_normal((6, 3)) * 3, rng.standard_normal((6, 2))
    w_q, w_k, v_a = rng.standard_normal((3, 5)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    s = call_shaped(ctx, "additive_scores", q, k, w_q, w_k, v_a)
    if np.abs(s).max() > np.abs(v_a).sum() + 1e-9:
        ctx.fail(f"a score of {np.abs(s).max():.4g} exceeds Σ|v_a| = {np.abs(v_a).sum():.4g}: "
                 "tanh keeps each hidden unit in (−1, 1), so |v_a·tanh(·)| ≤ Σ|v_a|.")
    _, alpha = call_shaped(ctx, "additive_attention", q, k, v, w_q, w_k, v_a)
    ctx.match(alpha.sum(axis=-1), np.ones(4), "row sums of the weights",
              rerun=lambda ns: ns.additive_attention(q.copy(), k.copy(), v.copy(), w_q.copy(),
                                                     w_k.copy(), v_a.copy())[1].sum(axis=-1))
    if (alpha < 0).any():
        ctx.fail("attention weights must be non-negative")


@check("the weights depend on the query: two decoder states, two different alignments")
def add_depends_on_query(ctx):
    rng = ctx.rng
    q = rng.standard_normal((2, 4)) * 2
    k, v = rng.standard_normal((5, 4)) * 2, rng.standard_normal((5, 3))
    w_q, w_k, v_a = rng.standard_normal((4, 6)), rng.standard_normal((4, 6)), rng.standard_normal(6) * 3
    _, alpha = call_shaped(ctx, "additive_attention", q, k, v, w_q, w_k, v_a)
    if np.abs(alpha[0] - alpha[1]).max() < 1e-3:
        ctx.expect("additive_attention", q, k, v, w_q, w_k, v_a)   # names the misconception
        ctx.fail("two different queries got the same weights: the query must interact with "
                 "the key INSIDE the tanh, or it cancels in the softmax.")


@check("the toy translation aligns le→the, chat→cat, noir→black, dort→sleeps")
def add_toy_alignment(ctx):
    _, _, args = toy_translation()
    _, alpha = call_shaped(ctx, "additive_attention", *args)
    got = tuple(int(j) for j in np.argmax(alpha, axis=-1))
    ctx.match(got, tuple(ALIGNMENT), "the source word each target word attends to most",
              rerun=lambda ns: tuple(int(j) for j in np.argmax(ns.additive_attention(*args)[1], axis=-1)))


# --- misconceptions ------------------------------------------------------------

def _finish(e, q, v, mask, axis=-1, from_=None):
    if mask is not None:
        e = np.where(mask, e, -np.inf)
    alpha = softmax_rows(e, axis=axis).astype(q.dtype)
    return (alpha @ (v if from_ is None else from_)).astype(q.dtype), alpha


def _separate_tanh(q, k, v, w_q, w_k, v_a, mask=None):
    # source: bahdanau-2014 appendix A.1.2 — tanh wraps the SUM W_a s + U_a h, not each term.
    e = (np.tanh(q @ w_q) @ v_a)[..., :, None] + (np.tanh(k @ w_k) @ v_a)[..., None, :]
    return _finish(e.astype(q.dtype), q, v, mask)


def _separate_tanh_scores(q, k, w_q, w_k, v_a):
    return ((np.tanh(q @ w_q) @ v_a)[..., :, None] + (np.tanh(k @ w_k) @ v_a)[..., None, :]).astype(q.dtype)


def _no_tanh_scores(q, k, w_q, w_k, v_a):
    # source: bahdanau-2014 eq. (6) and A.1.2 — the alignment model is a one-hidden-layer
    # network; without the nonlinearity it collapses to a sum of two separate terms.
    return (((q @ w_q)[..., :, None, :] + (k @ w_k)[..., None, :, :]) @ v_a).astype(q.dtype)


def _no_tanh(q, k, v, w_q, w_k, v_a, mask=None):
    return _finish(_no_tanh_scores(q, k, w_q, w_k, v_a), q, v, mask)


def _ref_scores(q, k, w_q, w_k, v_a):
    return (np.tanh((q @ w_q)[..., :, None, :] + (k @ w_k)[..., None, :, :]) @ v_a).astype(q.dtype)


def _over_queries(q, k, v, w_q, w_k, v_a, mask=None):
    # source: bahdanau-2014 eq. (6) — α_ij normalises over the source positions j.
    return _finish(_ref_scores(q, k, w_q, w_k, v_a), q, v, mask, axis=-2)


def _context_from_keys(q, k, v, w_q, w_k, v_a, mask=None):
    # source: bahdanau-2014 eq. (5) — c_i = Σ α_ij h_j averages what is attended to (here v);
    # in the paper keys and values are both the annotations h_j, which hides the mix-up.
    e = _ref_scores(q, k, w_q, w_k, v_a)
    if mask is not None:
        e = np.where(mask, e, -np.inf)
    alpha = softmax_rows(e).astype(q.dtype)
    return (alpha @ k).astype(q.dtype), alpha


def _mask_after(q, k, v, w_q, w_k, v_a, mask=None):
    # source: vaswani-2017 §3.2.3 — masked positions are set to −∞ before the softmax.
    alpha = softmax_rows(_ref_scores(q, k, w_q, w_k, v_a)).astype(q.dtype)
    if mask is not None:
        alpha = np.where(mask, alpha, 0).astype(q.dtype)
    return (alpha @ v).astype(q.dtype), alpha


ADDITIVE_ATTENTION = Kata(
    id="additive_attention",
    level=20,
    title="Additive attention (Bahdanau): a tiny network scores every pair",
    path="history/additive_attention.py",
    entries=("additive_scores", "additive_attention"),
    checks=(add_scores_match, add_attention_match, add_worked_example, add_weights_distribution,
            add_depends_on_query, add_toy_alignment),
    predictions=(
        Prediction("separate_tanh_depends_on_query", "with tanh applied to each projection "
                   "separately, do the weights change with the query? (choose: yes, no)", "no",
                   kind="choice", choices=("yes", "no"),
                   why="e[i, j] = a_i + b_j: the query's term a_i is the same for every key, and "
                       "softmax ignores a constant added to a whole row."),
        Prediction("largest_score", "v_a = [3, −4]: the largest |e[i, j]| possible", 7.0,
                   why="Each tanh unit lies in (−1, 1), so |v_a·tanh(·)| < |3| + |−4| = 7 "
                       "(approached, never reached)."),
    ),
    misconceptions=(
        Misconception("separate_tanh", "applied tanh to each projection separately",
                      {"additive_scores": _separate_tanh_scores, "additive_attention": _separate_tanh},
                      "v_a·(tanh(qW_q) + tanh(kW_k)) splits into a query term plus a key term; the "
                      "query term cancels in the softmax. Add the projections, THEN apply tanh."),
        Misconception("no_tanh", "left out the tanh",
                      {"additive_scores": _no_tanh_scores, "additive_attention": _no_tanh},
                      "Without the nonlinearity the score is v_a·qW_q + v_a·kW_k: separable, so "
                      "every query gets the same weights. The tanh is what lets q and k interact."),
        Misconception("softmax_over_queries", "normalised over the target positions (queries)",
                      {"additive_attention": _over_queries},
                      "Each target word distributes its attention over the SOURCE words: softmax "
                      "along the last axis, so each row of the alignment sums to 1."),
        Misconception("context_from_keys", "averaged the keys instead of the values",
                      {"additive_attention": _context_from_keys},
                      "The context is Σ_j α_ij v_j. In the paper keys and values are the same "
                      "annotations, which hides the difference; here they are separate arguments."),
        Misconception("mask_after_softmax", "zeroed masked weights after the softmax",
                      {"additive_attention": _mask_after},
                      "Set masked scores to −∞ BEFORE the softmax, so the visible weights still sum to 1."),
    ),
    claims=(
        Claim("additive-alignment", "Additive attention gives each target position a distribution "
              "over source positions (weights ≥ 0 summing to 1) and a context vector that is their "
              "weighted average of the values; |score| ≤ Σ|v_a|.", scope="exact",
              source="bahdanau-2014", evidence=("add_attention_match", "add_weights_distribution"),
              not_claimed="Nothing about translation quality or trained models: no encoder or "
                          "decoder RNN is built here."),
        Claim("additive-toy-alignment", "On a hand-built toy translation (the black cat sleeps → "
              "le chat noir dort), the alignment matrix follows the adjective–noun swap.",
              scope="toy", source="bahdanau-2014", evidence=("add_toy_alignment",),
              not_claimed="The toy's vectors are built by hand, not learned; real alignments are "
                          "softer and come from training."),
    ),
    hints=(
        "Project first: hq = q @ w_q is [..., N_q, d_a] and hk = k @ w_k is [..., N_k, d_a]. "
        "Every (i, j) pair needs hq[i] + hk[j].",
        "Broadcast to [..., N_q, N_k, d_a]: hq[..., :, None, :] + hk[..., None, :, :]; tanh it; "
        "then @ v_a gives [..., N_q, N_k].",
        "For the weights: np.where(mask, e, -np.inf), subtract the row max (0 where it is −inf), "
        "exponentiate, divide by the row sum (1 where it is 0); context = weights @ v.",
    ),
)
