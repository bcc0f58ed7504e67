"""Level 1 · causal_mask: who may attend to whom, queries aligned to the end."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import covers

from .common import MASK_FAKES, call_shaped, causal


@check("matches the end-aligned causal mask for every n_q, n_k ≤ 24 (n_q < n_k, =, >)")
def causal_matches_reference(ctx):
    # Exhaustive rather than sampled: the inputs are two small integers, and a grid is
    # deterministic, so a learner's nondeterministic answer fails cleanly.
    for n_q in range(1, 25):
        for n_k in range(1, 25):
            ctx.expect("causal_mask", n_q, n_k)


@check("a square causal mask is the lower triangle with its diagonal: n(n+1)/2 allowed pairs")
def causal_square_counts(ctx):
    for n in (1, 2, 8, 13):
        got = call_shaped(ctx, "causal_mask", n, n)
        lower = np.tril(np.ones((n, n), dtype=bool))
        ctx.match(got, lower, f"causal_mask({n}, {n}) versus the lower triangle with its diagonal",
                  rerun=lambda ns, n=n: ns.causal_mask(n, n))
        count = int(np.count_nonzero(got))
        if count != n * (n + 1) // 2:
            ctx.fail(f"causal_mask({n}, {n}) allows {count} pairs; a token sees itself and every "
                     f"earlier token, {n}·{n + 1}/2 = {n * (n + 1) // 2} pairs in all.")


@check("one new query (decoding) sees every key: causal_mask(1, n_k) is all True")
def causal_decode_row(ctx):
    for n_k in (1, 5, 16):
        ctx.expect("causal_mask", 1, n_k)


@check("more queries than keys: the first n_q − n_k rows see nothing")
def causal_more_queries(ctx):
    ctx.expect("causal_mask", 5, 3)
    ctx.expect("causal_mask", 4, 1)


def _start_aligned(n_q, n_k):
    return np.arange(n_k)[None, :] <= np.arange(n_q)[:, None]


def _strict(n_q, n_k):
    return np.arange(n_k)[None, :] < np.arange(n_q)[:, None] + (n_k - n_q)


def _upper(n_q, n_k):
    return np.arange(n_k)[None, :] >= np.arange(n_q)[:, None] + (n_k - n_q)


def _int_mask(n_q, n_k):
    return causal(n_q, n_k).astype(np.int64)


def _additive(n_q, n_k):
    return np.where(causal(n_q, n_k), 0.0, -np.inf)



@covers("large_positions")
@check("decoding at position 200,000: a few queries against every key, never an n_k × n_k mask")
def causal_large_positions(ctx):
    # integer positions are exact at any size: what fails here is building the square
    # n_k × n_k mask and slicing its last rows (40 GB of booleans at n_k = 200,000)
    for n_q, n_k in ((1, 200_000), (3, 200_003)):
        ctx.expect("causal_mask", n_q, n_k)


CAUSAL_MASK = Kata(
    id="causal_mask",
    level=1,
    title="The causal mask: no peeking at the future",
    path="level1/causal_mask.py",
    entries=("causal_mask",),
    checks=(causal_matches_reference, causal_square_counts, causal_decode_row, causal_more_queries,
            causal_large_positions),
    generic_fakes=MASK_FAKES,
    predictions=(
        Prediction("allowed_8x8", "how many entries of causal_mask(8, 8) are True", 36, kind="exact",
                   why="Row i allows keys 0..i, i + 1 of them: 1 + 2 + … + 8 = 8·9/2 = 36."),
        Prediction("decode_row", "how many entries of causal_mask(1, 5) are True (one new token "
                   "after four cached ones)", 5, kind="exact",
                   why="The single query is the last position, so every key is at or before it."),
    ),
    misconceptions=(
        Misconception("aligned_to_start", "aligned to the start instead of the end",
                      {"causal_mask": _start_aligned},
                      "The queries are the LAST n_q positions: query i sits at position "
                      "i + n_k − n_q. With one query and five keys it must see all five."),
        Misconception("strict_diagonal", "off by one: a token cannot see itself (< instead of ≤)",
                      {"causal_mask": _strict},
                      "The diagonal is allowed: a token attends to itself. Use ≤."),
        Misconception("upper_triangle", "kept the upper triangle (the future) instead of the past",
                      {"causal_mask": _upper},
                      "True means 'may attend': the past and the present, key j ≤ query position."),
        Misconception("integer_mask", "returned 0/1 integers instead of booleans",
                      {"causal_mask": _int_mask},
                      "Masks are boolean: np.where(mask, s, -inf) treats any nonzero as True, but "
                      "indexing with an int array gathers rows. Return the comparison itself."),
        Misconception("additive_mask", "returned an additive float mask (0 / −inf) instead of booleans",
                      {"causal_mask": _additive},
                      "Additive masks are one convention (added to the scores); here a mask is "
                      "boolean, True = may attend."),
    ),
    claims=(
        Claim("causal-pairs", "A causal mask over n tokens allows exactly n(n+1)/2 (query, key) "
              "pairs: each token sees itself and everything before it.",
              scope="exact", source="vaswani-2017", evidence=("causal_square_counts",),
              not_claimed="Nothing about speed: a dense mask still computes the masked scores."),
    ),
    hints=(
        "Compare two index grids: np.arange(n_q)[:, None] against np.arange(n_k)[None, :].",
        "Query i is the token at position i + (n_k − n_q) among the keys (the queries are the last "
        "n_q tokens). It may see key j when j ≤ that position.",
        "return np.arange(n_k)[None, :] <= np.arange(n_q)[:, None] + (n_k - n_q)",
    ),
)


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): a mask is determined by (n_q, n_k), so each mistake is one
# pattern; a square and a non-square shape (n_q < n_k, n_q > n_k) tell them apart, and
# the dtype tells the integer and additive conventions from the boolean one.
# Where learners go wrong — a source note per misconception:
# - aligned_to_start: Dao-AILab/flash-attention#517 and #402 (top-left versus
#   bottom-right alignment when seqlen_q != seqlen_k; FlashAttention 2.1 changed it).
# - strict_diagonal: pbloem/former#6 (the mask also excluded the diagonal).
# - upper_triangle: zhouhaoyi/Informer2020#597 and karpathy/nanoGPT#170 (triu or tril?).
# - integer_mask / additive_mask: pytorch/pytorch#26098 (additive −inf versus boolean
#   masks, and which one a function expects).
# - true_means_blocked, offset_sign_flipped, square_of_keys: notes at their
#   implementations below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, check as holds, close, shape_is  # noqa: E402


def _blocked(n_q, n_k):
    # source: karpathy/nanoGPT#170 and PyTorch's nn.MultiheadAttention attn_mask, where
    # True means "may NOT attend": the boolean mask of the future (triu(…, 1))
    return ~causal(n_q, n_k)


def _sign_flipped(n_q, n_k):
    # source: Dao-AILab/flash-attention#20 (what "causal" should mean when seqlen_q !=
    # seqlen_k: the offset n_k − n_q, added with the wrong sign)
    return np.arange(n_k)[None, :] <= np.arange(n_q)[:, None] + (n_q - n_k)


def _square_of_keys(n_q, n_k):
    # source: Dao-AILab/flash-attention#402 (a square n_k × n_k causal mask, as in
    # training, used for the queries of an inference step)
    return np.tril(np.ones((n_k, n_k), dtype=bool))


def _is_pattern(fn, n_q, n_k):
    want = fn(n_q, n_k)
    return holds(lambda g, w: close(np.asarray(g, float), want.astype(float)))


def _eq(fn, *shapes):
    return tuple(Probe.of(f"n_q = {a}, n_k = {b}", "causal_mask", a, b, holds=_is_pattern(fn, a, b),
                          axes=("query", "key")) for a, b in shapes)


def _int_values(n_q, n_k):
    return Probe.of(f"n_q = {n_q}, n_k = {n_k}: dtype and values", "causal_mask", n_q, n_k,
                    holds=holds(lambda g, w: np.asarray(g).dtype.kind in "iu"
                                and close(np.asarray(g, float), causal(n_q, n_k).astype(float))))


def _additive(n_q, n_k):
    allowed = causal(n_q, n_k)
    return Probe.of(f"n_q = {n_q}, n_k = {n_k}: dtype and values", "causal_mask", n_q, n_k,
                    holds=holds(lambda g, w: np.asarray(g).dtype.kind == "f"
                                and bool((np.asarray(g)[allowed] == 0).all())
                                and bool((np.asarray(g)[~allowed] < -1e3).all())))


def _square_k(g, w):
    return g == (w[1], w[1]) and w[0] != w[1]


CAUSAL_MASK = attach(
    CAUSAL_MASK,
    add=(
        Misconception("true_means_blocked", "True marks the blocked (future) keys — PyTorch's "
                      "attn_mask convention — instead of the allowed ones",
                      {"causal_mask": _blocked},
                      "Here True means 'may attend': key j ≤ the query's position. "
                      "nn.MultiheadAttention's masks use the opposite convention."),
        Misconception("offset_sign_flipped", "shifted the diagonal by n_q − n_k instead of "
                      "n_k − n_q", {"causal_mask": _sign_flipped},
                      "Query i sits at position i + (n_k − n_q): with one query after four cached "
                      "keys it is position 4 and sees all five keys."),
        Misconception("square_of_keys", "returned a square [n_k, n_k] mask, not [n_q, n_k]",
                      {"causal_mask": _square_of_keys},
                      "One row per query: the mask is [n_q, n_k]. When n_q < n_k keep the LAST "
                      "n_q rows of the square mask (the queries are the newest tokens)."),
    ),
    probes={
        "aligned_to_start": _eq(_start_aligned, (2, 5), (3, 7)),
        "strict_diagonal": _eq(_strict, (4, 4), (2, 5)),
        "upper_triangle": _eq(_upper, (4, 4), (2, 5)),
        "integer_mask": (_int_values(4, 4), _int_values(2, 5)),
        "additive_mask": (_additive(4, 4), _additive(2, 5)),
        "true_means_blocked": _eq(_blocked, (4, 4), (2, 5)),
        "offset_sign_flipped": _eq(_sign_flipped, (2, 5), (5, 3)),
        "square_of_keys": (
            Probe.of("n_q = 2, n_k = 5", "causal_mask", 2, 5, holds=shape_is(_square_k)),
            Probe.of("n_q = 5, n_k = 3", "causal_mask", 5, 3, holds=shape_is(_square_k)),
        ),
    },
    shapes={"square_of_keys": (_square_k,)},
    diagnostics=(
        Probe.of("n_q = 3, n_k = 6 (three new tokens after three cached)", "causal_mask", 3, 6,
                 axes=("query", "key")),
        Probe.of("n_q = 5, n_k = 3", "causal_mask", 5, 3, axes=("query", "key")),
    ),
    variants=(
        Fake("tril_offset", {"causal_mask": lambda n_q, n_k: np.tril(
            np.ones((n_q, n_k), dtype=bool), k=n_k - n_q)}),
        Fake("outer_comparison", {"causal_mask": lambda n_q, n_k: np.greater_equal.outer(
            np.arange(n_q) + (n_k - n_q), np.arange(n_k))}),
    ),
)
# == end of diagnosis by behaviour, levels 0-2 ==
