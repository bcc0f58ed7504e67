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
