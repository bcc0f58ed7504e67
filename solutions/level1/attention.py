"""Reference · attention: softmax(QKᵀ/√d)·V with a boolean mask; an empty row gives zeros."""

import math

import numpy as np

PREDICTIONS = {
    "identical_keys_output": (3.0, 4.0),
    "first_causal_output": "v[0]",
}


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    d = q.shape[-1]
    s = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(d)   # [..., N_q, N_k]; a Python float keeps the dtype
    if mask is not None:
        s = np.where(mask, s, -np.inf)                 # a masked key can never win weight
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)                 # a row with no visible key: exps become 0
    e = np.exp(s - m)
    total = np.sum(e, axis=-1, keepdims=True)
    p = e / np.where(total == 0, 1, total)             # [..., N_q, N_k], rows sum to 1 (or are 0)
    return (p @ v).astype(q.dtype, copy=False)         # [..., N_q, d_v]
