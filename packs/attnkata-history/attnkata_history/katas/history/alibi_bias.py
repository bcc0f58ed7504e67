"""History pack · alibi_bias — no position vectors at all: a distance penalty on the scores.

Intuition
---------
ALiBi (Attention with Linear Biases) drops position embeddings. Instead, each head
subtracts from every score a penalty proportional to how far back the key is: a
key d steps in the past loses m·d. A head with a large slope m only looks at the
last few tokens; a head with a tiny m sees far back. The slopes are fixed, not
learned: a geometric sequence, one per head, so the heads spread from very local
to nearly global. Because the penalty only knows distances, a model trained on
short sequences meets nothing new on longer ones — the reason the paper gives
for its better length extrapolation.

The math
--------
    slopes, H a power of two:  m_h = 2^(−8(h+1)/H),   h = 0 … H − 1
    slopes, any other H:       P = the largest power of two below H;
                               slopes(P) followed by the first H − P entries of
                               slopes(2P)[0::2]  (every other slope of the 2P-head list)
    bias[h, i, j] = −m_h · (pos_i − j)     for j ≤ pos_i
                  = −∞                     for j > pos_i   (the causal mask, folded in)
    pos_i = i + n_k − n_q                  (queries are the LAST n_q positions)

- H      : number of heads; m_h is head h's slope (for H a power of two head 0
           has the largest; the extra slopes of other H come after, not sorted)
- i, j   : query row and key column; pos_i is query i's position among the keys
- n_q, n_k : numbers of queries and keys (n_q < n_k when a chunk is appended to a cache)
- the bias is added to the scores q·k/√d before the softmax; it is float64 [H, n_q, n_k]

Worked example
--------------
H = 4:  m = [2^−2, 2^−4, 2^−6, 2^−8] = [0.25, 0.0625, 0.015625, 0.00390625]
n_q = n_k = 3, head 0:

    bias[0] = [[ 0.00,  −∞,   −∞ ],
               [−0.25,  0.00, −∞ ],
               [−0.50, −0.25, 0.00]]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # H = 16: the slope of head 0 (a number).
    "first_slope_16": ...,
    # H = 6: the slope of head 4, the fifth head (a number).
    "fifth_slope_6": ...,
}


def alibi_slopes(n_heads: int) -> np.ndarray:
    """The H slopes, float64 [H], in the paper's order (head 0 first), as in its recipe."""
    raise NotImplementedError("kata alibi_bias: 2^(−8(h+1)/H), and the recipe for other H")


def alibi_bias(n_heads: int, n_q: int, n_k: int) -> np.ndarray:
    """bias [H, n_q, n_k] float64: −m_h·(pos_i − j) for j ≤ pos_i, −inf after it."""
    raise NotImplementedError("kata alibi_bias: −slope · distance, −inf on future keys")
