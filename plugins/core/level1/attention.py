"""Level 1 — attention: softmax(QKᵀ/√d)·V, with boolean masks."""

from __future__ import annotations

import math

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import qkv, seeds

from .common import attention_tol, call_shaped, causal

# ---------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------


@st.composite
def _masked_qkv(draw):
    """q, k, v and a boolean mask: random, causal, with empty rows, or batch-shaped."""
    q, k, v = draw(qkv())
    n_q, n_k = q.shape[-2], k.shape[-2]
    rng = np.random.default_rng(draw(seeds()))
    kind = draw(st.sampled_from(("random", "causal", "empty_rows", "batch_shaped")))
    if kind == "causal":
        mask = causal(n_q, n_k)
    elif kind == "batch_shaped":
        mask = rng.random((*q.shape[:-1], n_k)) < 0.6
    else:
        mask = rng.random((n_q, n_k)) < draw(st.sampled_from((0.2, 0.5, 0.9)))
        if kind == "empty_rows":
            mask[rng.random(n_q) < 0.4] = False
    return q, k, v, mask


@check("matches softmax(q·kᵀ/√d)·v on random shapes, dtypes and scales (no mask)")
def att_matches_reference(ctx):
    @ctx.given(arrays=qkv())
    def prop(arrays):
        ctx.expect("attention", *arrays, tol=attention_tol(*arrays))

    prop()


@check("matches the reference under random, causal, empty-row and batch-shaped masks")
def att_masked_matches_reference(ctx):
    @ctx.given(case=_masked_qkv())
    def prop(case):
        q, k, v, mask = case
        ctx.expect("attention", q, k, v, mask, tol=attention_tol(q, k, v))

    prop()


@check("a fully masked row gives zeros (not NaN); the other rows are unaffected")
def att_empty_row(ctx):
    q = ctx.rng.standard_normal((3, 4))
    k = ctx.rng.standard_normal((5, 4))
    v = ctx.rng.standard_normal((5, 2))
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False
    mask[2, :2] = False
    ctx.expect("attention", q, k, v, mask)
    ctx.expect("attention", q.astype(np.float32), k.astype(np.float32), v.astype(np.float32),
               np.zeros((3, 5), dtype=bool))


@check("self-attention with a causal mask: n_q = n_k, scores up to ±1000s")
def att_causal_self(ctx):
    @ctx.given(arrays=qkv(same_n=True))
    def prop(arrays):
        q, k, v = arrays
        ctx.expect("attention", q, k, v, causal(q.shape[-2], k.shape[-2]), tol=attention_tol(q, k, v))

    prop()


@check("leading dimensions broadcast like matmul; a [N_q, N_k] mask broadcasts over them")
def att_broadcasts(ctx):
    q = ctx.rng.standard_normal((2, 1, 6, 4)).astype(np.float32)
    k = ctx.rng.standard_normal((1, 3, 6, 4)).astype(np.float32)
    v = ctx.rng.standard_normal((1, 3, 6, 4)).astype(np.float32)
    ctx.expect("attention", q, k, v, causal(6, 6))


@check("when every key is identical, every output is the mean of the values")
def att_identical_keys(ctx):
    q = ctx.rng.standard_normal((4, 3))
    k = np.tile(ctx.rng.standard_normal((1, 3)), (5, 1))
    v = ctx.rng.standard_normal((5, 2))
    got = ctx.call("attention", q, k, v)
    want = np.broadcast_to(v.mean(axis=0), (4, 2)).copy()
    ctx.match(got, want, "attention(q, k with 5 identical rows, v): every output row should be "
              "v.mean(axis=0)", rerun=lambda ns: ns.attention(q.copy(), k.copy(), v.copy()))


@check("rows of the weights sum to 1 (read them off with v = identity)")
def att_weights_sum_to_one(ctx):
    n_q, n_k = 4, 6
    q = ctx.rng.standard_normal((n_q, 3)) * 2
    k = ctx.rng.standard_normal((n_k, 3)) * 2
    eye = np.eye(n_k)
    mask = causal(n_q, n_k)          # aligned to the end: every row sees at least 3 keys
    for m in (None, mask):
        p = call_shaped(ctx, "attention", q, k, eye, m)   # with v = I the output IS the weight matrix
        ctx.match(p.sum(axis=-1), np.ones(n_q),
                  f"row sums of attention(q, k, v=np.eye({n_k}), mask={'causal' if m is not None else None})",
                  rerun=lambda ns, m=m: ns.attention(q.copy(), k.copy(), eye.copy(), m).sum(axis=-1))
        if (p < -1e-12).any():
            ctx.fail("attention weights must be non-negative (read off with v = identity)")


@check("permutation equivariant: permuting queries permutes outputs; permuting keys with "
       "their values changes nothing")
def att_permutation_equivariant(ctx):
    q = ctx.rng.standard_normal((5, 4))
    k = ctx.rng.standard_normal((7, 4))
    v = ctx.rng.standard_normal((7, 3))
    pq, pk = ctx.rng.permutation(5), ctx.rng.permutation(7)
    base = call_shaped(ctx, "attention", q, k, v)
    got = call_shaped(ctx, "attention", q[pq], k[pk], v[pk])
    ctx.match(got, base[pq], "attention(q[perm_q], k[perm_k], v[perm_k]) versus "
              "attention(q, k, v)[perm_q]",
              rerun=lambda ns: ns.attention(q[pq], k[pk], v[pk]))


@check("under a causal mask, output i does not change when inputs after i change; "
       "output 0 is v[0]")
def att_causality(ctx):
    n = 9
    q, k, v = (ctx.rng.standard_normal((n, 4)) for _ in range(3))
    mask = causal(n, n)
    base = call_shaped(ctx, "attention", q, k, v, mask)
    ctx.match(base[0], v[0], "attention(q, k, v, causal)[0] versus v[0]",
              rerun=lambda ns: ns.attention(q.copy(), k.copy(), v.copy(), mask)[0])
    for i in (0, 3, 7):
        q2, k2, v2 = q.copy(), k.copy(), v.copy()
        for a in (q2, k2, v2):
            a[i + 1:] = ctx.rng.standard_normal(a[i + 1:].shape) * 5
        got = call_shaped(ctx, "attention", q2, k2, v2, mask)
        ctx.match(got[:i + 1], base[:i + 1],
                  f"outputs 0..{i} after changing every input after position {i} (causal mask)",
                  rerun=lambda ns, a=(q2, k2, v2), i=i: ns.attention(*(x.copy() for x in a), mask)[:i + 1])


def _softmax_rows(s, axis=-1):
    m = np.max(s, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    total = e.sum(axis=axis, keepdims=True)
    return e / np.where(total == 0, 1, total)


def _scores(q, k, scale=True):
    s = q @ np.swapaxes(k, -1, -2)
    return s / math.sqrt(q.shape[-1]) if scale else s


def _masked(s, mask, fill=-np.inf):
    return s if mask is None else np.where(mask, s, fill)


def attend(q, k, v, mask=None, scale=None):
    """Correct attention (optionally with a given score scale), for other katas' misconceptions."""
    s = q @ np.swapaxes(k, -1, -2)
    s = s / (math.sqrt(q.shape[-1]) if scale is None else scale)
    return (_softmax_rows(_masked(s, mask)) @ v).astype(q.dtype)


def _forgot_scale(q, k, v, mask=None):
    return (_softmax_rows(_masked(_scores(q, k, scale=False), mask)) @ v).astype(q.dtype)


def _over_queries(q, k, v, mask=None):
    return (_softmax_rows(_masked(_scores(q, k), mask), axis=-2) @ v).astype(q.dtype)


def _mask_after(q, k, v, mask=None):
    p = _softmax_rows(_scores(q, k))
    return ((p if mask is None else np.where(mask, p, 0)) @ v).astype(q.dtype)


def _mask_zero(q, k, v, mask=None):
    return (_softmax_rows(_masked(_scores(q, k), mask, 0.0)) @ v).astype(q.dtype)


def _mask_large_negative(q, k, v, mask=None):
    return (_softmax_rows(_masked(_scores(q, k), mask, -1e9)) @ v).astype(q.dtype)


def _mask_inverted(q, k, v, mask=None):
    mask = None if mask is None else ~np.asarray(mask, dtype=bool)
    return (_softmax_rows(_masked(_scores(q, k), mask)) @ v).astype(q.dtype)


def _nan_rows(q, k, v, mask=None):
    s = _masked(_scores(q, k), mask)
    e = np.exp(s - np.max(s, axis=-1, keepdims=True))
    return ((e / e.sum(axis=-1, keepdims=True)) @ v).astype(q.dtype)


def _weights_transposed(q, k, v, mask=None):
    p = _softmax_rows(_masked(_scores(q, k), mask))
    return (np.swapaxes(p, -1, -2) @ v).astype(q.dtype)



def _att_layout_cases(ctx):
    q, k, v = (ctx.rng.standard_normal(s) for s in ((2, 4, 8), (2, 6, 8), (2, 6, 5)))
    yield (q, k, v), {}
    yield (q.astype(np.float32), k.astype(np.float32), v.astype(np.float32)), {
        "mask": np.arange(6)[None, :] <= np.arange(4)[:, None] + 2}


att_strided_inputs = layout_check(
    "attention", _att_layout_cases,
    "q, k, v as transposed, sliced and Fortran-ordered views, masked or not",
    id="att_strided_inputs", layouts=("transposed", "sliced", "fortran"))


ATTENTION = Kata(
    id="attention",
    level=1,
    title="Attention: a soft lookup, softmax(QKᵀ/√d)·V",
    path="level1/attention.py",
    entries=("attention",),
    checks=(att_matches_reference, att_masked_matches_reference, att_empty_row, att_causal_self,
            att_broadcasts, att_identical_keys, att_weights_sum_to_one,
            att_permutation_equivariant, att_causality,
            att_strided_inputs),
    predictions=(
        Prediction("identical_keys_output", "all three keys are identical and v = [[1, 2], [3, 4], "
                   "[5, 6]]: the output for any query, as a tuple", (3.0, 4.0), rel_tol=1e-6,
                   why="Identical keys get identical scores, so equal weights 1/3: the mean of v's rows."),
        Prediction("first_causal_output", "under a causal mask (n_q = n_k), what is output 0? "
                   "(choose: v[0], mean of v, zeros, q[0])", "v[0]", kind="choice",
                   choices=("v[0]", "mean of v", "zeros", "q[0]"),
                   why="The first token may only see itself: all its weight is on key 0."),
    ),
    misconceptions=(
        Misconception("forgot_scale", "forgot the 1/√d scaling", {"attention": _forgot_scale},
                      "Divide the scores by √d (d = q.shape[-1]) before the softmax; without it "
                      "the softmax saturates as d grows."),
        Misconception("softmax_over_queries", "softmax over the wrong axis (over queries)",
                      {"attention": _over_queries},
                      "Each query distributes its weight over the keys: normalise along the last "
                      "axis (keys), so every ROW of the weights sums to 1."),
        Misconception("mask_after_softmax", "mask applied after the softmax (zeroed, not renormalised)",
                      {"attention": _mask_after},
                      "Zeroing probabilities afterwards leaves rows summing to less than 1. Set "
                      "masked scores to −inf BEFORE the softmax."),
        Misconception("masked_with_zero", "masked scores set to 0 instead of −inf",
                      {"attention": _mask_zero},
                      "A score of 0 still gets weight e⁰ = 1 relative to the others; only −inf "
                      "gives weight 0."),
        Misconception("masked_with_large_negative", "masked with a large negative number (−1e9), "
                      "so a fully masked row averages V instead of giving zeros",
                      {"attention": _mask_large_negative},
                      "−1e9 works while a row has at least one visible key, but when every key is "
                      "masked all scores tie and the row gets the mean of V. Use −inf, and make an "
                      "all −inf row give zeros."),
        Misconception("mask_inverted", "mask read the wrong way round (True = blocked)",
                      {"attention": _mask_inverted},
                      "True means 'may attend': keep scores where the mask is True."),
        Misconception("nan_on_empty_rows", "a fully masked row gives NaN", {"attention": _nan_rows},
                      "A row of all −inf has max −inf and −inf − (−inf) is NaN. Treat a non-finite "
                      "row max as 0 and divide by 1 where the row sum is 0: the row becomes zeros."),
        Misconception("weights_transposed", "V multiplied by the transposed weights (Pᵀ·V)",
                      {"attention": _weights_transposed},
                      "Output i is Σ_j P[i, j]·v_j: that is P @ v with P [N_q, N_k], not Pᵀ @ v."),
    ),
    claims=(
        Claim("attention-permutation-equivariant", "Without positions, attention is permutation-"
              "equivariant: permuting the queries permutes the outputs, and permuting keys with "
              "their values leaves the outputs unchanged.", scope="exact", source="vaswani-2017",
              evidence=("att_permutation_equivariant",),
              not_claimed="Nothing about models with position information (RoPE breaks this on "
                          "purpose: next kata)."),
        Claim("attention-causal", "Under a causal mask, output i depends on inputs 0..i only.",
              scope="exact", source="vaswani-2017", evidence=("att_causality",),
              not_claimed="Nothing about the cost: the masked scores are still computed here."),
    ),
    hints=(
        "Three steps: scores s = q·kᵀ/√d, weights p = softmax(s) over the keys (last axis), "
        "output p @ v. Your level-0 katas already do the first two.",
        "Masking happens on the SCORES: np.where(mask, s, -np.inf). Then a row with no visible key "
        "is all −inf — make its softmax zeros, not NaN (your level-0 softmax does).",
        "Keep the dtype: divide by math.sqrt(d) (a Python float) rather than np.sqrt(d) (a float64 "
        "that promotes float32 arrays), or cast the result with .astype(q.dtype).",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): each misconception's probes are small
# inputs chosen to tell it apart from the others, with a predicate true for every way
# of making that mistake and false for correct code (selfcheck proves both).
#
# Where learners go wrong — a source note per misconception:
# - forgot_scale: vaswani-2017 §3.2.1 gives the reason for 1/√d; leaving it out passes
#   at small d and saturates the softmax as d grows.
# - softmax_over_queries: PetrochukM/PyTorch-NLP#2 and
#   jadore801120/attention-is-all-you-need-pytorch#52 (softmax over dim 0, not −1).
# - mask_after_softmax: lucidrains/memory-compressed-attention#2 (the order of masking
#   and softmax).
# - masked_with_zero / masked_with_large_negative: pytorch/pytorch#26098 (which fill value
#   to use, and its fp16 trouble); ml-explore/mlx#2395 (a fully masked row comes back
#   neither zeros nor NaN: the mean of V a finite fill gives).
# - mask_inverted: PyTorch's two conventions for boolean masks — True means "masked" in
#   nn.MultiheadAttention's masks and "may attend" in F.scaled_dot_product_attention.
# - nan_on_empty_rows: pytorch/pytorch#41508 and #131060 (_safe_softmax);
#   tracel-ai/burn#4694 (−inf − (−inf) = NaN on a fully masked row).
# - weights_transposed: writing Σ_j P[i, j]·v_j as a matmul with the wrong operand
#   transposed; only square problems (n_q = n_k) run at all.
# - no_max_subtraction, k_dot_T_batched: notes at their implementations below.
# ---------------------------------------------------------------------------

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, all_of, along, attach, attempt, check as holds,  # noqa: E402
                               close, equals, nan_in, pick, raises, wrong_only_in)


def _no_max(q, k, v, mask=None):
    # source: the naive softmax overflows once a score passes ~709 (float64), ~88
    # (float32): exp gives inf and inf/inf is NaN; burn's fix in tracel-ai/burn#4697
    # clamps the max for the same reason, and milakov-2018 starts from this problem
    s = _masked(_scores(q, k), mask)
    e = np.exp(s)
    return ((e / e.sum(axis=-1, keepdims=True)) @ v).astype(q.dtype)


def _k_dot_T(q, k, v, mask=None):
    # source: `k.T` reverses EVERY axis of a batched array; only the last two should
    # swap (HomericIntelligence/Odyssey#5648: "transpose(key) reverses all axes", every
    # batched call raised; torch warns about x.T beyond 2-D, deepset-ai/haystack#9393)
    s = q @ k.T / math.sqrt(q.shape[-1])
    return (_softmax_rows(_masked(s, mask)) @ v).astype(q.dtype)


_R = np.random.default_rng(1414)
_Q, _K, _V = _R.standard_normal((4, 8)), _R.standard_normal((6, 8)), _R.standard_normal((6, 3))
_Q1, _K1 = _R.standard_normal((4, 1)), _R.standard_normal((6, 1))
_I6 = np.eye(6)
_PART = np.array([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1], [1, 1, 0, 1, 1, 0], [1, 0, 0, 1, 1, 1]], bool)
_EMPTY1 = _PART.copy()
_EMPTY1[1] = False
_NONE = np.zeros((4, 6), bool)
_QN, _KN = np.abs(_Q) * 3, -np.abs(_K) * 3        # every score strongly negative
_QB, _KB = _Q * 30, _K * 30                      # scores in the ±1000s
_Q5, _K5 = _R.standard_normal((5, 8)), _R.standard_normal((5, 8))
_QS, _KS, _VS = _R.standard_normal((2, 5, 8)), _R.standard_normal((2, 5, 8)), _R.standard_normal((2, 5, 3))


def _p(q, k, mask=None):
    return _softmax_rows(_masked(_scores(q, k), mask))


def _weights_only_where(allowed):
    """Read off with v = identity: no weight where ``allowed`` is False, some elsewhere."""
    return holds(lambda g, w: float(np.abs(np.asarray(g)[~allowed]).max()) < 1e-9
                 and float(np.asarray(g).sum()) > 0.5)


def _masked_keys_tie(mask):
    """Every masked key of a row gets the same, non-zero weight (their scores were all
    replaced by one finite number), while the answer gives them none."""
    def fn(g, w):
        g = np.asarray(g, dtype=np.float64)
        rows = [g[i, ~mask[i]] for i in range(len(mask)) if (~mask[i]).sum() >= 2]
        return bool(rows) and all(r.min() > 1e-6 and np.ptp(r) < 1e-9 * max(1, r.max()) for r in rows)
    return holds(fn)


ATTENTION = attach(
    ATTENTION,
    add=(
        Misconception("no_max_subtraction", "softmax without subtracting the row max (overflows)",
                      {"attention": _no_max},
                      "exp(s) overflows to inf once a score passes ~709 in float64 (~88 in "
                      "float32), and inf/inf is NaN. Subtract each row's max first: softmax is "
                      "unchanged by a constant shift, and every exponent is then ≤ 0."),
        Misconception("k_dot_T_batched", "k.T on a batched array (reverses every axis)",
                      {"attention": _k_dot_T},
                      "For [..., N, d] arrays .T reverses ALL axes, so a batch of keys becomes "
                      "[d, N, ...]. Swap only the last two: np.swapaxes(k, -1, -2) (or "
                      "k.transpose(-2, -1) in torch)."),
    ),
    probes={
        "forgot_scale": (
            Probe("d = 1 and d = 8", lambda ns: (attempt(lambda: ns.attention(_Q1, _K1, _V)),
                                                 attempt(lambda: ns.attention(_Q, _K, _V))),
                  holds(lambda g, w: close(g[0], w[0]) and not close(g[1], w[1]))),
            Probe.of("queries divided by √d beforehand", "attention", _Q / math.sqrt(8), _K, _V,
                     holds=equals(attend(_Q, _K, _V))),
        ),
        "softmax_over_queries": (
            Probe.of("a single query", "attention", _Q[:1], _K, _V,
                     holds=equals(_V.sum(axis=0, keepdims=True))),
            Probe.of("v = identity (the output is the weights)", "attention", _Q, _K, _I6,
                     holds=holds(lambda g, w: np.allclose(np.sum(g, axis=0), 1)
                                 and not np.allclose(np.sum(g, axis=1), 1))),
        ),
        "mask_after_softmax": (
            Probe.of("a partial mask, v = identity", "attention", _Q, _K, _I6, _PART,
                     holds=equals(np.where(_PART, _p(_Q, _K), 0))),
            Probe.of("a partial mask, v = ones (the output is each row's total weight)",
                     "attention", _Q, _K, np.ones((6, 1)), _PART,
                     holds=equals(np.where(_PART, _p(_Q, _K), 0).sum(axis=-1, keepdims=True))),
        ),
        "masked_with_zero": (
            Probe.of("strongly negative scores, a partial mask, v = identity", "attention",
                     _QN, _KN, _I6, _PART, holds=_masked_keys_tie(_PART)),
            Probe.of("one fully masked row", "attention", _Q, _K, _V, _EMPTY1,
                     holds=all_of(pick(1, equals(_V.mean(axis=0))),
                                  holds(lambda g, w: not close(g[0], w[0])))),
        ),
        "masked_with_large_negative": (
            Probe.of("one fully masked row, the others partly masked", "attention", _Q, _K, _V,
                     _EMPTY1, holds=all_of(wrong_only_in(along(-2, 1)),
                                           pick(1, equals(_V.mean(axis=0)))),
                     axes=("query", "feature")),
            Probe.of("every key masked (a padded sequence)", "attention", _Q, _K, _V, _NONE,
                     holds=equals(np.broadcast_to(_V.mean(axis=0), (4, 3)))),
        ),
        "mask_inverted": (
            Probe.of("a causal mask, v = identity", "attention", _Q5, _K5, np.eye(5), causal(5, 5),
                     holds=_weights_only_where(~causal(5, 5))),
            Probe.of("a partial mask, v = identity", "attention", _Q, _K, _I6, _PART,
                     holds=_weights_only_where(~_PART)),
        ),
        "nan_on_empty_rows": (
            Probe.of("one fully masked row, scores in the ±1000s elsewhere", "attention",
                     _QB, _KB, _V, _EMPTY1, holds=all_of(nan_in(along(-2, 1)),
                                                         wrong_only_in(along(-2, 1))),
                     axes=("query", "feature")),
            Probe.of("every key masked", "attention", _Q, _K, _V, _NONE,
                     holds=holds(lambda g, w: bool(np.isnan(np.asarray(g)).all()))),
        ),
        "no_max_subtraction": (
            Probe.of("scores in the ±1000s, float64, no mask", "attention", _QB, _KB, _V,
                     holds=nan_in()),
            Probe.of("scores in the ±100s, float32, no mask", "attention", *(
                (a * 10).astype(np.float32) for a in (_Q, _K)), _V.astype(np.float32),
                holds=nan_in()),
        ),
        "weights_transposed": (
            Probe.of("n_q = n_k = 5, v = identity", "attention", _Q5, _K5, np.eye(5),
                     holds=holds(lambda g, w: close(g, np.asarray(w).T) and not close(g, w))),
            Probe.of("4 queries, 6 keys", "attention", _Q, _K, _V,
                     holds=raises("", "mismatch|shape|size|align|broadcast")),
        ),
        "k_dot_T_batched": (
            Probe("2-D inputs, then the same as a batch of 2",
                  lambda ns: (attempt(lambda: ns.attention(_Q, _K, _V)),
                              attempt(lambda: ns.attention(_QS, _KS, _VS))),
                  holds(lambda g, w: close(g[0], w[0]) and not close(g[1], w[1]))),
            Probe.of("a batch of 2, 5 queries and keys, d = 8", "attention", _QS, _KS, _VS,
                     holds=raises("", "mismatch|shape|size|align|broadcast")),
        ),
    },
    raises={"k_dot_T_batched": (("", "mismatch|shape|size|align|broadcast"),),
            "weights_transposed": (("", "mismatch|shape|size|align|broadcast"),)},
    diagnostics=(
        Probe.of("a causal mask, n_q = n_k = 5", "attention", _Q5, _K5, np.eye(5)[:, :3],
                 causal(5, 5), axes=("query", "feature")),
        Probe.of("a batch of 2 with a partial mask", "attention", _QS, _KS, _VS,
                 np.vstack([_PART[:, :5], [[True, True, False, True, True]]]),
                 axes=("batch", "query", "feature")),
    ),
    variants=(
        Fake("einsum_scale_queries_first", {"attention": lambda q, k, v, mask=None: (
            _softmax_rows(_masked(np.einsum("...qd,...kd->...qk", q / math.sqrt(q.shape[-1]), k),
                                  mask)) @ v).astype(q.dtype)}),
        Fake("logsumexp_softmax", {"attention": lambda q, k, v, mask=None: _lse_attention(
            q, k, v, mask)}),
    ),
)


def _lse_attention(q, k, v, mask=None):
    """A correct variant: weights as exp(s − logsumexp(s)), empty rows set to zero."""
    s = _masked(_scores(q, k), mask)
    m = np.max(s, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        lse = safe + np.log(np.exp(s - safe).sum(axis=-1, keepdims=True))
    p = np.where(np.isfinite(lse), np.exp(s - np.where(np.isfinite(lse), lse, 0.0)), 0.0)
    return (p @ v).astype(q.dtype)
