"""Level 0 · qk_scores: every query against every key, q·kᵀ."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import qkv


@check("matches q·kᵀ on random shapes, dtypes and scales")
def qk_matches_reference(ctx):
    @ctx.given(arrays=qkv())
    def prop(arrays):
        q, k, _ = arrays
        ctx.expect("qk_scores", q, k)

    prop()


@check("broadcasts leading dimensions like matmul")
def qk_broadcasts(ctx):
    rng = ctx.rng
    q = rng.standard_normal((2, 1, 3, 4)).astype(np.float32)
    k = rng.standard_normal((1, 3, 5, 4)).astype(np.float32)
    ctx.expect("qk_scores", q, k)


@check("one query and one key give their dot product")
def qk_single_token(ctx):
    q = np.array([[1.0, 2.0, 3.0]])
    k = np.array([[4.0, -5.0, 6.0]])
    ctx.expect("qk_scores", q, k)


def _kq(q, k):
    return k @ np.swapaxes(q, -1, -2)


def _over_sequence(q, k):
    return np.swapaxes(q, -1, -2) @ k


def _prescaled(q, k):
    return (q @ np.swapaxes(k, -1, -2)) / np.asarray(np.sqrt(q.shape[-1]), dtype=q.dtype)


def _flattened(q, k):
    d = q.shape[-1]
    return (q.reshape(-1, d) @ k.reshape(-1, d).T).astype(q.dtype)



qk_strided_inputs = layout_check(
    "qk_scores", lambda ctx: [((ctx.rng.standard_normal((2, 5, 8)).astype(np.float32),
                                ctx.rng.standard_normal((2, 7, 8)).astype(np.float32)), {}),
                              ((ctx.rng.standard_normal((3, 4)), ctx.rng.standard_normal((6, 4))),
                               {})],
    "q and k as transposed, sliced and Fortran-ordered views of other buffers",
    id="qk_strided_inputs", layouts=("transposed", "sliced", "fortran"))


QK_SCORES = Kata(
    id="qk_scores",
    level=0,
    title="QKᵀ: how well each query matches each key",
    path="level0/qk_scores.py",
    entries=("qk_scores",),
    checks=(qk_matches_reference, qk_broadcasts, qk_single_token,
            qk_strided_inputs),
    predictions=(
        Prediction("scores_shape", "q is [2, 3, 8] and k is [2, 5, 8]: the shape of qk_scores(q, k)",
                   (2, 3, 5), kind="exact",
                   why="One score per (query, key) pair, per batch element: [..., N_q, N_k]."),
        Prediction("unscaled_variance", "q, k rows are standard normal with d = 64: the variance "
                   "of one unscaled score q·k", 64, rel_tol=0.1,
                   why="A sum of d independent products, each with variance 1: variance d."),
    ),
    misconceptions=(
        Misconception("keys_times_queries", "scores transposed (k·qᵀ instead of q·kᵀ)",
                      {"qk_scores": _kq},
                      "Rows must be queries and columns keys: s[i, j] = q_i · k_j."),
        Misconception("contract_over_sequence", "contracted over the sequence axis (qᵀ·k)",
                      {"qk_scores": _over_sequence},
                      "The dot product runs over the feature axis d, the last one of both q and k."),
        Misconception("scaled_too_early", "divided by √d already (that is the next kata)",
                      {"qk_scores": _prescaled},
                      "qk_scores returns raw dot products; scaled_scores divides by √d."),
        Misconception("mixed_batches", "flattened the batch, so queries meet other batches' keys",
                      {"qk_scores": _flattened},
                      "Leading dims are independent problems: use a batched matmul "
                      "(q @ k.swapaxes(-1, -2)) or einsum('...id,...jd->...ij')."),
    ),
    claims=(
        Claim("scores-are-dot-products", "Each score s[i, j] is the dot product of query i with key j.",
              scope="exact", source="vaswani-2017",
              not_claimed="Nothing about scale: unscaled scores grow with d (next kata)."),
    ),
    hints=(
        "Scores pair every query with every key: for q [N_q, d] and k [N_k, d] the result is [N_q, N_k].",
        "Transpose only the last two axes of k: np.swapaxes(k, -1, -2), so leading batch axes stay put.",
        "q @ np.swapaxes(k, -1, -2) is the whole answer; `@` broadcasts leading dimensions.",
    ),
)


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): small inputs that tell each mistake apart from the others,
# with a predicate true for every way of writing it and false for correct code.
# Where learners go wrong — a source note per misconception:
# - keys_times_queries: stanford-cs336/assignment1-basics#29 (row- vs column-major
#   notation leaves learners unsure whether the scores are QKᵀ or KQᵀ).
# - contract_over_sequence: huggingface/pytorch-openai-transformer-lm#2 (a reader
#   contracts over the sequence axis, "matmul(k.t(), q)", when the layout changes).
# - scaled_too_early: getalp/Flaubert#45 (scaling q early is fine in the full formula,
#   but here the raw scores are asked for).
# - mixed_batches: reczoo/FuxiCTR#30 (views that flatten batch and heads together let
#   rows meet the wrong partners).
# - k_dot_T_batched, dot_with_diagonal: notes at their implementations below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, Raised, attach, attempt, check as holds, close  # noqa: E402
from attnkata.diagnose import raises  # noqa: E402


def _k_dot_T(q, k):
    # source: `.T` reverses every axis of a batched array (HomericIntelligence/Odyssey#5648,
    # deepset-ai/haystack#9393: torch warns about x.T beyond 2-D); right on 2-D inputs only
    return q @ k.T


def _diagonal_only(q, k):
    # source: spro/practical-pytorch#135 (one score per position from an elementwise
    # product, `hidden.dot(energy)`, instead of every query against every key)
    return (q * k).sum(axis=-1)


_RQ = np.random.default_rng(1401)
_Q4, _K4 = _RQ.standard_normal((4, 8)), _RQ.standard_normal((4, 8))       # square
_Q3, _K5 = _RQ.standard_normal((3, 8)), _RQ.standard_normal((5, 8))       # 3 queries, 5 keys
_QB, _KB = _RQ.standard_normal((2, 3, 4)), _RQ.standard_normal((2, 5, 4))  # a batch of 2
_QB4, _KB4 = _RQ.standard_normal((2, 1, 3, 4)), _RQ.standard_normal((1, 3, 5, 4))
_Q16, _K16 = _RQ.standard_normal((3, 16)), _RQ.standard_normal((5, 16))
_Q1b, _K1b = _QB[:1], _KB[:1]                                              # a batch of 1
_SHAPEY = "mismatch|shape|size|align|broadcast|operand|dimension"


def _right_2d_wrong_batched(q, k, both):
    """A probe: right on the 2-D slice, wrong (or raising) on the batch it came from —
    but not the flattened-batch answer (that is mixed_batches)."""
    flat = (q.reshape(-1, q.shape[-1]) @ k.reshape(-1, k.shape[-1]).T).shape

    def fn(g, w):
        two, batch = g
        bad = isinstance(batch, Raised) or not close(batch, w[1])
        return close(two, w[0]) and bad and np.shape(batch) != flat
    return Probe(f"2-D inputs, then a batch {q.shape} · {k.shape}",
                 lambda ns: (attempt(lambda: ns.qk_scores(both[0].copy(), both[1].copy())),
                             attempt(lambda: ns.qk_scores(q.copy(), k.copy()))), holds(fn))


QK_SCORES = attach(
    QK_SCORES,
    add=(
        Misconception("k_dot_T_batched", "k.T on a batched array (reverses every axis)",
                      {"qk_scores": _k_dot_T},
                      "For [..., N, d] arrays .T reverses ALL axes, so a batch of keys becomes "
                      "[d, N, ...]. Swap only the last two: np.swapaxes(k, -1, -2)."),
        Misconception("dot_with_diagonal", "multiplied q and k elementwise and summed: one "
                      "score per position instead of every pair",
                      {"qk_scores": _diagonal_only},
                      "(q * k).sum(-1) pairs query i with key i only. Every query meets every "
                      "key: q @ np.swapaxes(k, -1, -2) gives [..., N_q, N_k]."),
    ),
    probes={
        "keys_times_queries": (
            Probe.of("4 queries, 4 keys", "qk_scores", _Q4, _K4,
                     holds=holds(lambda g, w: close(g, np.swapaxes(w, -1, -2)) and not close(g, w))),
            Probe.of("3 queries, 5 keys", "qk_scores", _Q3, _K5,
                     holds=holds(lambda g, w: close(g, np.swapaxes(w, -1, -2)))),
        ),
        "contract_over_sequence": (
            Probe.of("4 queries, 4 keys, d = 8", "qk_scores", _Q4, _K4,
                     holds=holds(lambda g, w: close(g, _Q4.T @ _K4))),
            Probe.of("3 queries, 5 keys", "qk_scores", _Q3, _K5, holds=raises("", _SHAPEY)),
        ),
        "scaled_too_early": (
            Probe.of("d = 16", "qk_scores", _Q16, _K16,
                     holds=holds(lambda g, w: close(g, np.asarray(w) / 4))),
            Probe.of("d = 4, a batch of 2", "qk_scores", _QB, _KB,
                     holds=holds(lambda g, w: close(g, np.asarray(w) / 2))),
        ),
        "mixed_batches": (
            Probe.of("a batch of 2, 3 queries and 5 keys each", "qk_scores", _QB, _KB,
                     holds=holds(lambda g, w: np.shape(g) == (6, 10)
                                 and close(np.asarray(g)[:3, :5], w[0]))),
            Probe.of("a batch of 1", "qk_scores", _Q1b, _K1b,
                     holds=holds(lambda g, w: np.shape(g) == (3, 5) and close(g, w[0]))),
        ),
        "k_dot_T_batched": (
            _right_2d_wrong_batched(_QB, _KB, (_QB[0], _KB[0])),
            _right_2d_wrong_batched(_QB4, _KB4, (_QB4[0, 0], _KB4[0, 0])),
        ),
        "dot_with_diagonal": (
            Probe.of("4 queries, 4 keys", "qk_scores", _Q4, _K4,
                     holds=holds(lambda g, w: np.shape(g) == (4,) and close(g, np.diagonal(w)))),
            Probe.of("3 queries, 5 keys", "qk_scores", _Q3, _K5, holds=raises("", _SHAPEY)),
        ),
    },
    raises={"contract_over_sequence": (("", _SHAPEY),), "k_dot_T_batched": (("", _SHAPEY),),
            "dot_with_diagonal": (("", _SHAPEY),)},
    shapes={"keys_times_queries": ("transposed_last_two",), "dot_with_diagonal": ("dropped_axis",),
            "mixed_batches": (lambda g, w: len(g) == 2 and len(w) >= 3
                              and g == (int(np.prod(w[:-1])), g[1]) and g != tuple(w[-2:]),)},
    diagnostics=(
        Probe.of("a batch of 2, 3 queries, 5 keys", "qk_scores", _QB, _KB,
                 axes=("batch", "query", "key")),
    ),
    variants=(
        Fake("einsum", {"qk_scores": lambda q, k: np.einsum("...id,...jd->...ij", q, k)}),
        Fake("matmul_transpose_view", {"qk_scores": lambda q, k: np.matmul(
            q, k.transpose(*range(k.ndim - 2), k.ndim - 1, k.ndim - 2))}),
    ),
)
# == end of diagnosis by behaviour, levels 0-2 ==
