"""luong_scores — dot, general and concat scores (Luong et al. 2015)."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, batch_dims, filled, seeds, sizes

from .common import call_shaped


@st.composite
def _inputs(draw):
    lead = draw(batch_dims(max_rank=1))
    n_t, n_s, d, d_a = draw(sizes(1, 9)), draw(sizes(1, 9)), draw(sizes(1, 8)), draw(sizes(1, 6))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    scale = draw(st.sampled_from((1.0, 1.0, 0.1, 3.0)))
    seed = draw(seeds())
    return (filled((*lead, n_t, d), dtype, scale, seed), filled((*lead, n_s, d), dtype, scale, seed + 1),
            filled((d, d), dtype, 1.0, seed + 2), filled((d_a, 2 * d), dtype, 1.0, seed + 3),
            filled((d_a,), dtype, 2.0, seed + 4))


@check("dot, general and concat match the reference on random shapes and dtypes")
def luong_match(ctx):
    @ctx.given(case=_inputs())
    def prop(case):
        h_t, h_s, w, w_a, v_a = case
        ctx.expect("dot_score", h_t, h_s)
        ctx.expect("general_score", h_t, h_s, w)
        ctx.expect("concat_score", h_t, h_s, w_a, v_a)

    prop()


@check("the worked example of the stub")
def luong_worked_example(ctx):
    h_t, h_s = np.array([[1.0, 2.0]]), np.array([[3.0, 0.0], [1.0, 1.0]])
    ctx.expect("dot_score", h_t, h_s)
    ctx.expect("general_score", h_t, h_s, np.array([[1.0, 0.0], [0.0, -1.0]]))
    ctx.expect("concat_score", h_t, h_s, np.array([[1.0, 0.0, 0.0, 1.0]]), np.array([2.0]))


@check("general with W = I is dot; general with a non-symmetric W is not symmetric in W")
def luong_general_identity(ctx):
    h_t, h_s = ctx.rng.standard_normal((3, 5)), ctx.rng.standard_normal((4, 5))
    eye = np.eye(5)
    ctx.match(call_shaped(ctx, "general_score", h_t, h_s, eye), call_shaped(ctx, "dot_score", h_t, h_s),
              "general_score(h_t, h_s, W=I) versus dot_score(h_t, h_s)",
              rerun=lambda ns: ns.general_score(h_t.copy(), h_s.copy(), eye.copy()))
    w = np.triu(ctx.rng.standard_normal((5, 5)))
    want = np.einsum("id,de,je->ij", h_t, w, h_s)
    ctx.match(call_shaped(ctx, "general_score", h_t, h_s, w), want,
              "general_score with an upper-triangular W versus Σ h_t[i,d]·W[d,e]·h_s[j,e]",
              rerun=lambda ns: ns.general_score(h_t.copy(), h_s.copy(), w.copy()))


@check("concat with W_a = [A | B] is Bahdanau's additive score with W_q = Aᵀ, W_k = Bᵀ")
def luong_concat_is_additive(ctx):
    d, d_a = 4, 6
    h_t, h_s = ctx.rng.standard_normal((3, d)), ctx.rng.standard_normal((5, d))
    w_a, v_a = ctx.rng.standard_normal((d_a, 2 * d)), ctx.rng.standard_normal(d_a)
    a, b = w_a[:, :d], w_a[:, d:]
    want = np.tanh((h_t @ a.T)[:, None, :] + (h_s @ b.T)[None, :, :]) @ v_a
    ctx.match(call_shaped(ctx, "concat_score", h_t, h_s, w_a, v_a), want,
              "concat_score(h_t, h_s, [A | B], v_a) versus v_a·tanh(h_t Aᵀ + h_s Bᵀ)",
              rerun=lambda ns: ns.concat_score(h_t.copy(), h_s.copy(), w_a.copy(), v_a.copy()))


# --- misconceptions ------------------------------------------------------------

def _scaled_dot(h_t, h_s):
    # source: vaswani-2017 §3.2.1 — the 1/√d_k factor is the Transformer's addition; Luong's
    # dot score has none.
    return (h_t @ np.swapaxes(h_s, -1, -2) / np.sqrt(h_t.shape[-1])).astype(h_t.dtype)


def _general_transposed(h_t, h_s, w):
    # source: luong-2015 eq. (8) — general is h_tᵀ W_a h̄_s: W sits between h_t and h_s in
    # that order; using Wᵀ swaps which side it transforms.
    return ((h_t @ w.T) @ np.swapaxes(h_s, -1, -2)).astype(h_t.dtype)


def _concat_swapped(h_t, h_s, w_a, v_a):
    # source: luong-2015 eq. (8) — concat stacks [h_t; h̄_s], target state first.
    d = h_t.shape[-1]
    hidden = np.tanh((h_t @ w_a[:, d:].T)[..., :, None, :] + (h_s @ w_a[:, :d].T)[..., None, :, :])
    return (hidden @ v_a).astype(h_t.dtype)


def _concat_no_tanh(h_t, h_s, w_a, v_a):
    # source: luong-2015 eq. (8) — the tanh is what makes concat more than a sum of two terms.
    d = h_t.shape[-1]
    hidden = (h_t @ w_a[:, :d].T)[..., :, None, :] + (h_s @ w_a[:, d:].T)[..., None, :, :]
    return (hidden @ v_a).astype(h_t.dtype)


LUONG_SCORES = Kata(
    id="luong_scores",
    level=20,
    title="Luong's scores: dot, general, concat",
    path="history/luong_scores.py",
    entries=("dot_score", "general_score", "concat_score"),
    checks=(luong_match, luong_worked_example, luong_general_identity, luong_concat_is_additive),
    predictions=(
        Prediction("sdpa_ancestor", "which score did scaled dot-product attention grow from? "
                   "(choose: dot, general, concat)", "dot", kind="choice",
                   choices=("dot", "general", "concat"),
                   why="Vaswani et al. call their attention dot-product attention with a 1/√d_k "
                       "factor added; the learned maps moved into W_Q and W_K."),
        Prediction("concat_parameters", "learned numbers in concat's W_a and v_a for d = 512, "
                   "d_a = 512", 524800, kind="exact",
                   why="W_a is d_a × 2d = 512 × 1024 = 524,288, plus v_a's 512."),
    ),
    misconceptions=(
        Misconception("scaled_dot", "divided the dot score by √d", {"dot_score": _scaled_dot},
                      "Luong's dot score is the plain dot product; the 1/√d came two years later "
                      "with the Transformer, to keep large-d scores from saturating the softmax."),
        Misconception("general_transposed", "used Wᵀ in the general score",
                      {"general_score": _general_transposed},
                      "score = h_t W h_sᵀ: in row form (h_t @ W) @ h_sᵀ. With a non-symmetric W, "
                      "h_t @ W.T is a different score."),
        Misconception("concat_halves_swapped", "stacked [h_s; h_t] instead of [h_t; h_s]",
                      {"concat_score": _concat_swapped},
                      "The first d columns of W_a multiply the target state h_t, the last d the "
                      "source state h_s."),
        Misconception("concat_no_tanh", "left out the tanh in concat", {"concat_score": _concat_no_tanh},
                      "Without the tanh, v_a·W_a[h_t; h_s] is a target term plus a source term, and "
                      "the target term cancels in the softmax."),
    ),
    claims=(
        Claim("luong-concat-is-additive", "Luong's concat score is Bahdanau's additive score: W_a "
              "split into [A | B] gives W_q = Aᵀ and W_k = Bᵀ.", scope="exact", source="luong-2015",
              evidence=("luong_concat_is_additive",),
              not_claimed="Luong's attention also differs in where it is used (on the current "
                          "decoder state, not the previous one); that is not modelled."),
        Claim("luong-general-dot", "general with W = I is dot; the Transformer's score is dot "
              "divided by √d, with the learned maps moved into the query and key projections.",
              scope="exact", source="vaswani-2017", evidence=("luong_general_identity",),
              not_claimed="Which score translates best: the papers' BLEU comparisons are not "
                          "reproduced."),
    ),
    hints=(
        "dot: h_t @ np.swapaxes(h_s, -1, -2). general: put W in the middle.",
        "general: (h_t @ w) @ np.swapaxes(h_s, -1, -2). concat: split W_a into its first d "
        "columns (for h_t) and its last d columns (for h_s).",
        "concat: a = h_t @ w_a[:, :d].T, b = h_s @ w_a[:, d:].T, then "
        "np.tanh(a[..., :, None, :] + b[..., None, :, :]) @ v_a.",
    ),
)
