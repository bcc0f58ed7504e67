"""Reference · sliding_window_mask: causal, and at most `window` keys back (own one included)."""

import numpy as np

PREDICTIONS = {
    "allowed_8x8_w3": 21,
    "receptive_field_L4_w3": 9,
}


def sliding_window_mask(n_q: int, n_k: int, window: int) -> np.ndarray:
    pos = np.arange(n_q)[:, None] + (n_k - n_q)   # each query's position among the keys
    cols = np.arange(n_k)[None, :]
    return (cols <= pos) & (cols > pos - window)  # [n_q, n_k] bool
