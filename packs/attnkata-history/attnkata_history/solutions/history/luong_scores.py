"""Reference · luong_scores: dot, general and concat alignment scores."""

import numpy as np

PREDICTIONS = {
    "sdpa_ancestor": "dot",
    "concat_parameters": 524800,
}


def dot_score(h_t: np.ndarray, h_s: np.ndarray) -> np.ndarray:
    return (h_t @ np.swapaxes(h_s, -1, -2)).astype(h_t.dtype, copy=False)


def general_score(h_t: np.ndarray, h_s: np.ndarray, w: np.ndarray) -> np.ndarray:
    return ((h_t @ w) @ np.swapaxes(h_s, -1, -2)).astype(h_t.dtype, copy=False)


def concat_score(h_t: np.ndarray, h_s: np.ndarray, w_a: np.ndarray, v_a: np.ndarray) -> np.ndarray:
    d = h_t.shape[-1]
    a = h_t @ w_a[:, :d].T                # [..., N_t, d_a]: W_a's first half sees h_t
    b = h_s @ w_a[:, d:].T                # [..., N_s, d_a]: its second half sees h_s
    hidden = np.tanh(a[..., :, None, :] + b[..., None, :, :])   # [..., N_t, N_s, d_a]
    return (hidden @ v_a).astype(h_t.dtype, copy=False)
