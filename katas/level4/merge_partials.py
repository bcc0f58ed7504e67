"""Level 4 · merge_partials — combining attention computed over separate sets of keys.

Intuition
---------
Split a query's keys into two groups A and B (two GPUs, two halves of a KV cache, two
rounds of a ring). Each side can compute attention over its own keys: a normalised output
o_a (a weighted average of A's values) and lse_a, the log of A's softmax mass
Σ_{j∈A} exp(s_j). Can the two results be combined into attention over all keys, without
going back to the scores? Yes: o_a and o_b are averages, and the right way to combine two
averages is to weight each by how much mass stands behind it. The masses are exp(lse_a)
and exp(lse_b). That is all the merge is — and because it only adds masses, it does not
care about order or grouping (`rabe-2021`, `milakov-2018`): split-KV decoding and ring
attention rely on exactly this.

The math
--------
    lse = log(exp(lse_a) + exp(lse_b))
    o   = (exp(lse_a) · o_a + exp(lse_b) · o_b) / exp(lse)

computed stably by subtracting m = max(lse_a, lse_b) first:

    w_a = exp(lse_a − m),   w_b = exp(lse_b − m)
    lse = m + log(w_a + w_b)
    o   = (w_a · o_a + w_b · o_b) / (w_a + w_b)

- o_a, o_b   : `[..., N_q, d]`, each side's normalised attention output
- lse_a, lse_b : `[..., N_q]`, each side's natural-log sum of exp(scaled scores)
- m          : the larger lse, per query; subtracting it keeps exp() from overflowing
- w_a, w_b   : the sides' masses relative to exp(m); the larger side has weight 1
- o, lse     : attention output and lse over the union of the two key sets

A side with no keys has lse = −∞ and o = 0: its weight is exp(−∞) = 0 and it changes
nothing. If *both* sides are empty, m = −∞ and −∞ − (−∞) is NaN: use 0 in place of a
non-finite m, and divide by 1 where w_a + w_b = 0, so the result is o = 0, lse = −∞.

Worked example
--------------
One query, d = 1. Side A saw scores [0, ln 2] over values [4, 1]: softmax weights
[1/3, 2/3], so o_a = 4/3 + 2/3 = 2 and lse_a = ln(1 + 2) = ln 3 = 1.0986.
Side B saw one score, ln 6 = 1.7918, over the value [10]: o_b = 10, lse_b = ln 6.

    m = 1.7918,  w_a = exp(1.0986 − 1.7918) = 0.5,  w_b = 1
    o   = (0.5·2 + 1·10) / 1.5 = 7.3333
    lse = 1.7918 + ln 1.5 = 2.1972 = ln 9

Directly: scores [0, ln 2, ln 6] have masses [1, 2, 6], total 9 (lse = ln 9), and
o = (1·4 + 2·1 + 6·10) / 9 = 7.3333. The same.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Part A: o_a = 1, lse_a = ln 3. Part B: o_b = 5, lse_b = ln 1 = 0 (one query, d = 1).
    # The merged o.
    "merged_o": ...,
    # …and the merged lse.
    "merged_lse": ...,
    # The weight a part with no keys (lse = -inf) gets in the merge.
    "empty_weight": ...,
}


def merge_partials(o_a: np.ndarray, lse_a: np.ndarray, o_b: np.ndarray,
                   lse_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge two normalised partial attention outputs over disjoint key sets.

    ``o_*`` are ``[..., N_q, d]``, ``lse_*`` are ``[..., N_q]``. Returns ``(o, lse)`` over
    the union of the keys, in the inputs' dtype. Associative and commutative; a side with
    no keys (lse = -inf, o = 0) changes nothing, and two empty sides give o = 0, lse = -inf.
    """
    raise NotImplementedError("kata merge_partials: weight each side by exp(lse - max lse), renormalise")
