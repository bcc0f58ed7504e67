"""Reference · mha_to_gqa: average the K (or V) projections of each group's heads."""

import numpy as np

PREDICTIONS = {
    "pooled_shape": (4096, 1024),
    "heads_per_kv_head": 4,
}


def mha_to_gqa(w_kv: np.ndarray, n_heads: int, n_kv_heads: int) -> np.ndarray:
    d_model, width = w_kv.shape
    d_head = width // n_heads
    G = n_heads // n_kv_heads                                   # heads pooled per KV head
    w = w_kv.reshape(d_model, n_kv_heads, G, d_head)            # head h = j·G + g
    return w.mean(axis=2).reshape(d_model, n_kv_heads * d_head).astype(w_kv.dtype, copy=False)
