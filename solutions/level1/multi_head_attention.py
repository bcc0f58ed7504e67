"""Reference · multi_head_attention: project, split into heads, attend, merge, project."""

import numpy as np

from .attention import attention

PREDICTIONS = {
    "d_head": 64,
    "scale_divisor": 8.0,
}


def multi_head_attention(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray,
                         w_o: np.ndarray, n_heads: int, mask: np.ndarray | None = None) -> np.ndarray:
    n, d_model = x.shape
    d_head = d_model // n_heads

    def split(t: np.ndarray) -> np.ndarray:
        return t.reshape(n, n_heads, d_head).transpose(1, 0, 2)   # (H, N, d_head)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    o = attention(q, k, v, mask)                                  # (H, N, d_head)
    merged = o.transpose(1, 0, 2).reshape(n, d_model)             # (N, d_model), head 0 first
    return merged @ w_o
