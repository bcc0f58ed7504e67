"""Level 1 · multi_head_attention — several small attentions side by side.

Intuition
---------
One attention gives each query ONE set of weights over the keys: one idea of which
tokens matter. But a token may need several at once — the subject of its verb, the
previous word, the matching bracket. Multi-head attention cuts the model's width into
H slices and runs an independent attention in each, each with its own weights; then
it glues the H results back together and mixes them with one last matrix. The total
cost is about that of one full-width attention, because each head is H times narrower.

The math
--------
    Q = x W_q,  K = x W_k,  V = x W_v                       each [N, d_model]
    split:  [N, d_model] → [N, H, d_head] → (H, N, d_head)   head h owns columns
                                                             h·d_head … (h+1)·d_head − 1
    O_h = attention(Q_h, K_h, V_h, mask)                     each head scales by √d_head
    merge:  (H, N, d_head) → (N, H, d_head) → [N, d_model]   head 0's columns first
    y = merge(O) W_o                                         [N, d_model]

- x [N, d_model]              : one row per token
- W_q, W_k, W_v, W_o          : [d_model, d_model] projection matrices
- N                           : number of tokens
- H = n_heads                 : number of heads; it divides d_model
- d_head = d_model / H        : the width of one head
- Q_h, K_h, V_h [N, d_head]   : head h's slice of the projections
- mask [N, N]                 : as in attention; the same mask for every head

Splitting is a reshape AND a transpose: reshape(N, H, d_head) groups each token's
features by head, transpose(1, 0, 2) puts the head axis first. A reshape straight to
(H, N, d_head) would cut the rows of the sequence instead, mixing tokens across heads.

Worked example
--------------
d_model = 4, H = 2 (d_head = 2), N = 2, every W = identity,
x = [[1, 0, 0, 1], [0, 1, 1, 0]].
    head 0 sees columns 0–1: [[1, 0], [0, 1]]; head 1 sees columns 2–3: [[0, 1], [1, 0]]
    in each head, scores = [[1, 0], [0, 1]] / √2 → weights [0.6698, 0.3302] (row 0)
    head 0, token 0: 0.6698·[1, 0] + 0.3302·[0, 1] = [0.6698, 0.3302]
    head 1, token 0: 0.6698·[0, 1] + 0.3302·[1, 0] = [0.3302, 0.6698]
    y[0] = [0.6698, 0.3302, 0.3302, 0.6698]
With H = 1 the single head's scores are [[2, 0], [0, 2]] / √4 and y[0] is
[0.7311, 0.2689, 0.2689, 0.7311]: more heads, different (narrower, softer) views.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # d_model = 512 split into 8 heads: what is the width d_head of one head?
    # (an integer)
    "d_head": ...,
    # Same model: each head's scores are divided by which number? (a number)
    "scale_divisor": ...,
}


def multi_head_attention(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray,
                         w_o: np.ndarray, n_heads: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Multi-head self-attention of x [N, d_model] with n_heads heads.

    w_q, w_k, w_v, w_o: [d_model, d_model]; mask: optional boolean [N, N], True = may
    attend. Returns [N, d_model] in x's dtype. You may reuse your attention kata:
    ``from .attention import attention``.
    """
    raise NotImplementedError("kata multi_head_attention: split heads, attend, merge, project")
