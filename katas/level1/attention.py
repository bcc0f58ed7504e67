"""Level 1 · attention — a soft lookup table, softmax(QKᵀ/√d)·V.

Intuition
---------
A dictionary lookup takes a query, finds the one key that matches, and returns its
value. Attention does the same thing softly: it scores the query against EVERY key,
turns the scores into weights that are positive and add up to 1 (softmax), and
returns the weighted average of the values. A key that matches well gets most of the
weight; if every key matches equally, the answer is the plain average.

A mask says which keys a query may use at all (causal: only the past). A masked key
must get weight exactly 0, and the remaining weights must still add up to 1. A query
that may see no key at all gets the zero vector.

The math
--------
    S = Q Kᵀ / √d                   scores        [..., N_q, N_k]
    S[i, j] = −∞  where mask[i, j] is False
    P = softmax(S) along the keys   weights       [..., N_q, N_k], each row sums to 1
    O = P V                         outputs       [..., N_q, d_v]

- Q [..., N_q, d]   : the queries, one row per query
- K [..., N_k, d]   : the keys, one row per key
- V [..., N_k, d_v] : the values, one row per key (what gets mixed); usually d_v = d
- d                 : the query/key width, q.shape[-1]; √d keeps scores near unit scale
- N_q, N_k          : numbers of queries and keys
- mask [N_q, N_k]   : boolean, True = may attend; it broadcasts against the leading
                      dimensions (batch, heads)
- O[i] = Σ_j P[i, j] · V[j] : output i is a weighted average of the value rows

Why −∞ and not 0: softmax gives a score s the weight e^s / Σ e^s. A score of 0 still
gets e^0 = 1 share; only −∞ gets e^−∞ = 0. A row that is all −∞ is the empty-row case
of your level-0 softmax: its weights are zeros, so its output is zeros.

Worked example
--------------
d = 4, one query, three keys:

    q = [1, 1, 0, 0]
    k = [[1,  1, 0, 0],        raw q·k = [2, 0, 0],  /√4  →  S = [1, 0, 0]
         [1, -1, 0, 0],
         [0,  0, 1, 1]]
    P = [e, 1, 1] / (e + 2) = [0.5761, 0.2119, 0.2119]
    v = [[1, 0], [0, 1], [2, 2]]
    O = 0.5761·[1, 0] + 0.2119·[0, 1] + 0.2119·[2, 2] = [1.0, 0.6358]

With mask [[False, True, True]]: S = [−∞, 0, 0], P = [0, 0.5, 0.5], O = [1.0, 1.5].
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Three keys, all identical, and v = [[1, 2], [3, 4], [5, 6]]. What is the
    # output for any query? Write it as a tuple of two numbers.
    "identical_keys_output": ...,
    # Causal self-attention (n_q = n_k). What is output 0 (the first position)?
    # Choose one: "v[0]", "mean of v", "zeros", "q[0]".
    "first_causal_output": ...,
}


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Scaled dot-product attention.

    q: [..., N_q, d], k: [..., N_k, d], v: [..., N_k, d_v], same float dtype.
    mask: optional boolean, [N_q, N_k] or broadcastable to [..., N_q, N_k];
    True = may attend. Returns [..., N_q, d_v] in q's dtype. A query that may attend
    to no key gets zeros. You may reuse level 0: ``from ..level0.softmax import softmax``.
    """
    raise NotImplementedError("kata attention: softmax(q kᵀ / √d, masked with -inf) @ v")
