"""Level 3 · mha_to_gqa — turning a trained MHA checkpoint into a GQA one.

Intuition
---------
Training a GQA model from scratch is expensive; most models that use it started as,
or are compared against, multi-head models. The GQA paper's recipe converts an MHA
checkpoint: for each group of query heads, build the group's single K head (and V
head) by averaging the K (and V) projections of the heads in the group, then train a
little more ("uptraining") so the model adapts. Averaging keeps what the heads have
in common; because a projection is linear, the pooled head's keys are exactly the
average of the group's old keys.

The math
--------
    W_kv = [W_0 | W_1 | … | W_{H−1}]          each W_h is [d_model, d_head]
    W'_j = (1/G) Σ_{g=0}^{G−1} W_{j·G + g}      for j = 0 … H_kv − 1
    result = [W'_0 | W'_1 | … | W'_{H_kv−1}]     [d_model, H_kv · d_head]

- W_kv    : the MHA key (or value) projection, [d_model, n_heads · d_head]; head h
            owns columns h·d_head … (h+1)·d_head − 1
- H       : n_heads;  H_kv : n_kv_heads;  G = H / H_kv heads per group
- d_model : the model width;  d_head : one head's width (= width / n_heads)
- Group j is the consecutive heads j·G … j·G + G − 1 — the heads that
  kv_head_for sends to KV head j.

Worked example
--------------
d_model = 1, 4 heads of width 2, pooled to 2 KV heads (G = 2):
    W_kv = [[1, 2 | 3, 4 | 10, 20 | 30, 40]]
    head pairs (0, 1) and (2, 3):  W'_0 = ([1, 2] + [3, 4]) / 2 = [2, 3]
                                   W'_1 = ([10, 20] + [30, 40]) / 2 = [20, 30]
    result = [[2, 3, 20, 30]]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # w_k is [4096, 32·128]: 32 heads of width 128. Pooled to 8 KV heads, what shape
    # is the result? Write a tuple, e.g. (1, 2).
    "pooled_shape": ...,
    # How many MHA heads' columns are averaged into each of those 8 KV heads?
    "heads_per_kv_head": ...,
}


def mha_to_gqa(w_kv: np.ndarray, n_heads: int, n_kv_heads: int) -> np.ndarray:
    """Mean-pool the per-head columns of each group: [d_model, n_heads·d_head] → [d_model, n_kv_heads·d_head].

    Keeps w_kv's dtype.
    """
    raise NotImplementedError("kata mha_to_gqa: reshape to [d_model, H_kv, G, d_head], mean over G")
