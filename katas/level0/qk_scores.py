"""Level 0 · qk_scores — how strongly does each query match each key?

Intuition
---------
Attention is a soft lookup. Every position asks a question (its *query*) and every
position advertises what it holds (its *key*). Before anything is mixed, we need a
number for every (question, advertisement) pair saying how well they match. A dot
product is the cheapest such number: large and positive when the two vectors point
the same way, near zero when they are unrelated, negative when they disagree.

The math
--------
    S = Q Kᵀ        S[i, j] = Σ_c  Q[i, c] · K[j, c]

- Q : the queries, one row per query position, shape [N_q, d]
- K : the keys, one row per key position, shape [N_k, d]
- d : the feature width of one query or key vector (the head dimension)
- c : runs over the d features
- S : the scores, shape [N_q, N_k] — row i holds query i's match with every key

Leading dimensions (batch, heads, …) are independent problems side by side: for
q [..., N_q, d] and k [..., N_k, d] the result is [..., N_q, N_k], and leading
dimensions broadcast the way matrix multiplication broadcasts them.

Worked example
--------------
    q = [[1, 0, 2]]            (one query, d = 3)
    k = [[1, 1, 1],            (two keys)
         [0, 3, -1]]

    S[0, 0] = 1·1 + 0·1 + 2·1    =  3
    S[0, 1] = 1·0 + 0·3 + 2·(-1) = -2      →  S = [[3, -2]]   shape [1, 2]

The query agrees with the first key and disagrees with the second.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
# Answer before you implement: replace each ... with your answer. The first value
# the framework sees is kept in your ledger, so a later change shows as revised.
PREDICTIONS = {
    # q has shape [2, 3, 8] and k has shape [2, 5, 8]. What shape does
    # qk_scores(q, k) return? Write a tuple, e.g. (1, 2, 3).
    "scores_shape": ...,
    # Every entry of q and k is drawn from a standard normal, and d = 64.
    # What is the variance of one unscaled score q·k? (a number)
    "unscaled_variance": ...,
}


def qk_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Raw attention scores.

    q: [..., N_q, d], k: [..., N_k, d] (float32 or float64, same dtype).
    Returns [..., N_q, N_k] in q's dtype: entry [i, j] is q_i · k_j. No scaling.
    """
    raise NotImplementedError("kata qk_scores: return q @ kᵀ over the last two axes")
