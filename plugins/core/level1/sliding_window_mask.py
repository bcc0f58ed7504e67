"""Level 1 · sliding_window_mask: causal, and only the last ``window`` keys."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import covers

from .common import MASK_FAKES, call_shaped, causal


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



@covers("large_positions")
@check("queries at positions near 300,000 with a 4,096-token window: only the window is True")
def window_large_positions(ctx):
    # positions are integers, exact at any size; a mask built as n_k × n_k and sliced
    # would need 90 GB here
    for n_q, n_k, window in ((1, 300_000, 4096), (4, 300_004, 4096), (2, 250_000, 1)):
        ctx.expect("sliding_window_mask", n_q, n_k, window)


SLIDING_WINDOW_MASK = Kata(
    id="sliding_window_mask",
    level=1,
    title="Sliding windows: local attention that stacks into long reach",
    path="level1/sliding_window_mask.py",
    entries=("sliding_window_mask",),
    checks=(window_matches_reference, window_limits, window_row_counts, window_receptive_field,
            window_large_positions),
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


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): a window mask is determined by (n_q, n_k, window), so each
# mistake is one pattern; a square and a non-square case with windows that cut into the
# past tell them apart (checked for every pair of mistakes by selfcheck).
# Where learners go wrong — a source note per misconception:
# - window_plus_one: huggingface/transformers#39408 and apple/axlearn#1009 (window_size
#   = w attends to w + 1 tokens, the query itself included).
# - two_sided_window: huggingface/transformers#39408 ((w, w) passed as FlashAttention's
#   window_size looks w tokens into the future too) and keras-team/keras#22814.
# - window_aligned_to_start: Dao-AILab/flash-attention#517 (top-left alignment).
# - first_window_keys: the window anchored at key 0 instead of at the query.
# - window_integer_mask: pytorch/pytorch#26098 (mask conventions).
# - window_minus_one: note at its implementation below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, check as holds, close  # noqa: E402


def _minus_one(n_q, n_k, window):
    # source: vllm-project/vllm#9679 and sgl-project/sglang#26147 (sliding_window − 1 is
    # the left extent FlashAttention wants; subtracting it where it was already the
    # left extent leaves w − 1 keys, the query included)
    pos = np.arange(n_q)[:, None] + (n_k - n_q)
    cols = np.arange(n_k)[None, :]
    return (cols <= pos) & (cols > pos - window + 1)


def _pattern(fn, n_q, n_k, w):
    want = np.asarray(fn(n_q, n_k, w), dtype=float)
    return Probe.of(f"n_q = {n_q}, n_k = {n_k}, window = {w}", "sliding_window_mask", n_q, n_k, w,
                    holds=holds(lambda g, w_: close(np.asarray(g, float), want)),
                    axes=("query", "key"))


def _int_window(n_q, n_k, w):
    want = _window_int(n_q, n_k, w).astype(float)
    return Probe.of(f"n_q = {n_q}, n_k = {n_k}, window = {w}: dtype and values",
                    "sliding_window_mask", n_q, n_k, w,
                    holds=holds(lambda g, w_: np.asarray(g).dtype.kind in "iu"
                                and close(np.asarray(g, float), want)))


SLIDING_WINDOW_MASK = attach(
    SLIDING_WINDOW_MASK,
    add=(
        Misconception("window_minus_one", "window off by one the other way: only window − 1 "
                      "keys, the query included", {"sliding_window_mask": _minus_one},
                      "window counts every visible key, the query's own position included: "
                      "window = 3 is the token and the 2 before it (pos − window < j ≤ pos)."),
    ),
    probes={
        "window_plus_one": (_pattern(_plus_one, 6, 6, 3), _pattern(_plus_one, 3, 8, 2)),
        "two_sided_window": (_pattern(_two_sided, 6, 6, 3), _pattern(_two_sided, 5, 3, 2)),
        "window_aligned_to_start": (_pattern(_window_start_aligned, 3, 8, 2),
                                    _pattern(_window_start_aligned, 2, 9, 4)),
        "first_window_keys": (_pattern(_first_keys, 6, 6, 3), _pattern(_first_keys, 3, 8, 2)),
        "window_integer_mask": (_int_window(6, 6, 3), _int_window(3, 8, 2)),
        "window_minus_one": (_pattern(_minus_one, 6, 6, 3), _pattern(_minus_one, 3, 8, 2)),
    },
    diagnostics=(
        Probe.of("n_q = 4, n_k = 9, window = 3", "sliding_window_mask", 4, 9, 3,
                 axes=("query", "key")),
        Probe.of("n_q = n_k = 7, window = 2", "sliding_window_mask", 7, 7, 2,
                 axes=("query", "key")),
    ),
    variants=(
        Fake("fromfunction", {"sliding_window_mask": lambda n_q, n_k, window: np.fromfunction(
            lambda i, j: (j <= i + n_k - n_q) & (j > i + n_k - n_q - window), (n_q, n_k), dtype=int)}),
        Fake("band_of_offsets", {"sliding_window_mask": lambda n_q, n_k, window: (lambda d: (
            d >= 0) & (d < window))(np.subtract.outer(np.arange(n_q) + n_k - n_q, np.arange(n_k)))}),
    ),
)
# == end of diagnosis by behaviour, levels 0-2 ==
