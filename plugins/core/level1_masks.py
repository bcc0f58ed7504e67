"""Level 1 — masks: who may attend to whom (causal, sliding window)."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check

from .level1_common import call_shaped, causal

# Masks take only integers: there is no input array to mutate, and echoing the first
# argument returns an int, so the "mutate" fake does not apply.
MASK_FAKES = ("zeros", "echo", "constant", "random")


# ---------------------------------------------------------------------------
# causal_mask
# ---------------------------------------------------------------------------


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


CAUSAL_MASK = Kata(
    id="causal_mask",
    level=1,
    title="The causal mask: no peeking at the future",
    path="level1/causal_mask.py",
    entries=("causal_mask",),
    checks=(causal_matches_reference, causal_square_counts, causal_decode_row, causal_more_queries),
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

# ---------------------------------------------------------------------------
# sliding_window_mask
# ---------------------------------------------------------------------------


@check("matches the sliding-window mask for every n_q, n_k ≤ 13 and window ≤ 15")
def window_matches_reference(ctx):
    for n_q in range(1, 14):
        for n_k in range(1, 14):
            for window in range(1, 16):
                ctx.expect("sliding_window_mask", n_q, n_k, window)


@check("window 1 is the diagonal; a window as long as the sequence is the causal mask")
def window_limits(ctx):
    ctx.expect("sliding_window_mask", 6, 6, 1)
    for n_q, n_k in ((7, 7), (3, 9)):
        want = causal(n_q, n_k)
        ctx.match(ctx.call("sliding_window_mask", n_q, n_k, n_k), want,
                  f"sliding_window_mask({n_q}, {n_k}, window={n_k}) versus causal_mask({n_q}, {n_k})",
                  rerun=lambda ns, a=(n_q, n_k, n_k): ns.sliding_window_mask(*a))


@check("every allowed pair is causal, and each row allows min(window, position + 1) keys")
def window_row_counts(ctx):
    n, window = 11, 4
    got = call_shaped(ctx, "sliding_window_mask", n, n, window)
    allowed = np.asarray(got, dtype=bool)
    if (allowed & ~causal(n, n)).any():
        i, j = (int(a) for a in np.argwhere(allowed & ~causal(n, n))[0])
        ctx.fail(f"sliding_window_mask({n}, {n}, {window}) lets query {i} see key {j}, which comes "
                 f"after it: the window is causal too.")
    counts = allowed.sum(axis=-1)
    want = np.minimum(window, np.arange(n) + 1)
    ctx.match(counts, want, f"keys allowed per row of sliding_window_mask({n}, {n}, {window}) "
              f"versus min(window, position + 1)",
              rerun=lambda ns: np.asarray(ns.sliding_window_mask(n, n, window), dtype=bool).sum(axis=-1))


def _reach(mask: np.ndarray, layers: int) -> int:
    """Inputs that can reach the last position through ``layers`` layers with this mask."""
    m = np.asarray(mask, dtype=bool).astype(np.int64)
    reach = m
    for _ in range(layers - 1):
        reach = ((reach @ m) > 0).astype(np.int64)
    return int(np.count_nonzero(reach[-1]))


@check("stacked window layers reach back L·(w−1)+1 tokens (the receptive field)")
def window_receptive_field(ctx):
    cases = ((1, 3), (2, 3), (4, 3), (3, 5), (2, 1))
    n = 40

    def fields(ns):
        return tuple(_reach(ns.sliding_window_mask(n, n, w), layers) for layers, w in cases)

    got = tuple(_reach(call_shaped(ctx, "sliding_window_mask", n, n, w), layers)
                for layers, w in cases)
    want = tuple(layers * (w - 1) + 1 for layers, w in cases)
    ctx.match(got, want, "receptive field of the last token after (L, w) = "
              + ", ".join(str(c) for c in cases) + " stacked window layers", rerun=fields)


def _plus_one(n_q, n_k, window):
    pos = np.arange(n_q)[:, None] + (n_k - n_q)
    cols = np.arange(n_k)[None, :]
    return (cols <= pos) & (cols >= pos - window)


def _two_sided(n_q, n_k, window):
    pos = np.arange(n_q)[:, None] + (n_k - n_q)
    return np.abs(np.arange(n_k)[None, :] - pos) < window


def _window_start_aligned(n_q, n_k, window):
    pos = np.arange(n_q)[:, None]
    cols = np.arange(n_k)[None, :]
    return (cols <= pos) & (cols > pos - window)


def _first_keys(n_q, n_k, window):
    return causal(n_q, n_k) & (np.arange(n_k)[None, :] < window)


def _window_int(n_q, n_k, window):
    pos = np.arange(n_q)[:, None] + (n_k - n_q)
    cols = np.arange(n_k)[None, :]
    return ((cols <= pos) & (cols > pos - window)).astype(np.int64)


SLIDING_WINDOW_MASK = Kata(
    id="sliding_window_mask",
    level=1,
    title="Sliding windows: local attention that stacks into long reach",
    path="level1/sliding_window_mask.py",
    entries=("sliding_window_mask",),
    checks=(window_matches_reference, window_limits, window_row_counts, window_receptive_field),
    generic_fakes=MASK_FAKES,
    predictions=(
        Prediction("allowed_8x8_w3", "how many entries of sliding_window_mask(8, 8, 3) are True",
                   21, kind="exact",
                   why="Rows 0, 1, 2 see 1, 2, 3 keys; the other five rows see 3 each: 6 + 15 = 21."),
        Prediction("receptive_field_L4_w3", "4 stacked layers, each with window 3: how many input "
                   "tokens can reach the last token's output", 9, kind="exact",
                   why="Each layer reaches w − 1 = 2 tokens further back: 4·2 + 1 = 9."),
    ),
    misconceptions=(
        Misconception("window_plus_one", "window off by one: w keys before the query plus itself",
                      {"sliding_window_mask": _plus_one},
                      "The window counts the query's own position: window = 3 means the token "
                      "and the 2 before it."),
        Misconception("two_sided_window", "a two-sided band: the window also looks into the future",
                      {"sliding_window_mask": _two_sided},
                      "A decoder's window is causal: only keys at or before the query's position."),
        Misconception("window_aligned_to_start", "aligned to the start instead of the end",
                      {"sliding_window_mask": _window_start_aligned},
                      "As in causal_mask, query i sits at position i + n_k − n_q."),
        Misconception("first_window_keys", "kept the first `window` keys instead of the last",
                      {"sliding_window_mask": _first_keys},
                      "The window slides with the query: it ends at the query's own position."),
        Misconception("window_integer_mask", "returned 0/1 integers instead of booleans",
                      {"sliding_window_mask": _window_int},
                      "Masks are boolean, True = may attend: return the comparison itself."),
    ),
    claims=(
        Claim("window-receptive-field", "L stacked layers of window w (own position included) let "
              "the last token draw on L·(w−1)+1 input tokens.",
              scope="exact", source="beltagy-2020", evidence=("window_receptive_field",),
              not_claimed="How much of that reach a trained model actually uses; Longformer's "
                          "global tokens and dilated windows are not modelled."),
    ),
    hints=(
        "Start from the causal mask, then remove the keys that are too far back.",
        "With pos = i + (n_k − n_q), query i may see key j when pos − window < j ≤ pos.",
        "pos = np.arange(n_q)[:, None] + (n_k - n_q); cols = np.arange(n_k)[None, :]; "
        "return (cols <= pos) & (cols > pos - window)",
    ),
)
