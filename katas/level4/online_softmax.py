"""Level 4 · online_softmax — a softmax that reads its row one block at a time.

Intuition
---------
A stable softmax needs two numbers per row: the maximum m (to subtract before exp) and
the sum l = Σ exp(x − m) (to divide by). Computed the usual way, both need the whole row
at once. FlashAttention cannot afford that: a query's scores arrive one key tile at a
time and are thrown away after use. The trick (Milakov & Gimelshein, `milakov-2018`)
is to keep a *running* max and a *running* sum and repair the sum whenever the max moves.
The repair is one multiplication, because exponentials turn a shift of the reference
point into a factor:

    exp(x − m_new) = exp(x − m_old) · exp(m_old − m_new)

So a sum taken against the old max becomes a sum against the new max by multiplying it
by exp(m_old − m_new), a number in (0, 1].

The math
--------
Read x in blocks B_1, B_2, …; start with m = −∞ and l = 0. For each block B:

    m_new = max(m, max_{j∈B} x_j)
    l     = l · exp(m − m_new) + Σ_{j∈B} exp(x_j − m_new)
    m     = m_new

- x       : one row of scores, `[..., N]` (the last axis is the row)
- block   : how many values of the row are read at a time; the last block may be shorter
- B       : the indices of the current block, x[..., s:s + block]
- m       : the running maximum of everything read so far (−∞ before the first value)
- l       : the running sum Σ exp(x_j − m) over everything read so far, always measured
            against the *current* m
- exp(m − m_new) : the rescale factor; 1 when the max did not move, < 1 when it rose

At the end, m = max x and l = Σ exp(x − max x): exactly the statistics of a full softmax,
whatever the block size. softmax(x)_j = exp(x_j − m) / l, and log Σ exp(x) = m + log l.

A masked score is −∞ and contributes exp(−∞) = 0. A row of all −∞ has m = −∞ and l = 0;
careful: while m is still −∞, m − m_new is −∞ − (−∞) = NaN. Use 0 in place of a
non-finite m_new when subtracting, so the exponentials come out as exact zeros.

Worked example
--------------
Eight scores in two tiles of four, x = [1, 3, 2, 0 | 5, 2, 4, 1], with one value per
key, v = [1, 0, 2, 1 | 0, 3, 1, 2] (the attention output is Σ softmax(x)_j · v_j).
Besides m and l, carry acc = Σ exp(x_j − m) · v_j, rescaled exactly like l.

Tile 1, [1, 3, 2, 0]:
    m = max(−∞, 3) = 3                  rescale exp(−∞ − 3) = 0 (nothing to rescale)
    exp(x − 3) = [0.1353, 1, 0.3679, 0.0498]
    l   = 0.1353 + 1 + 0.3679 + 0.0498                   = 1.5530
    acc = 0.1353·1 + 1·0 + 0.3679·2 + 0.0498·1           = 0.9209
    output so far: acc / l = 0.5930        (attention over the first four keys)

Tile 2, [5, 2, 4, 1]:
    m = max(3, 5) = 5                   rescale exp(3 − 5) = 0.1353
    exp(x − 5) = [1, 0.0498, 0.3679, 0.0183]
    l   = 1.5530·0.1353 + (1 + 0.0498 + 0.3679 + 0.0183) = 0.2102 + 1.4360 = 1.6462
    acc = 0.9209·0.1353 + (0 + 0.0498·3 + 0.3679·1 + 0.0183·2) = 0.1246 + 0.5539 = 0.6785
    output: acc / l = 0.4122             (attention over all eight keys)

Check: max x = 5 and Σ exp(x − 5) = 1.6462 — the full softmax's statistics.
`tiled_attention` does exactly this, with a whole tile of queries at once.

How the hidden tests watch
--------------------------
They check the numbers against max and Σ exp(x − max) for many block sizes, and they
watch the reads: x arrives as a numpy array subclass, and no single operation may touch
more than `block` values of it. Slice it (x[..., s:s + block]); do not convert it with
np.asarray, np.array or np.ascontiguousarray first (np.asanyarray is fine).
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
# Scores x = [0, 2, 1, 2 | 3, 0, 3, 1], read in two tiles of four.
PREDICTIONS = {
    # The running max m after tile 1.
    "m_after_tile1": ...,
    # The running sum l = Σ exp(x − m) after tile 1 (four decimals are plenty).
    "l_after_tile1": ...,
    # m after tile 2.
    "m_after_tile2": ...,
    # l after tile 2.
    "l_after_tile2": ...,
}


def online_softmax(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Running max and sum of ``x [..., N]`` read in blocks of ``block`` along the last axis.

    Returns ``(m, l)``, each ``[...]`` in x's dtype: m = max x, l = Σ exp(x − m).
    A row of all -inf gives m = -inf, l = 0 (no NaN).
    """
    raise NotImplementedError("kata online_softmax: keep m and l per row, rescale l by exp(m_old - m_new)")
