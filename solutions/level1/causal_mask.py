"""Reference · causal_mask: key j is visible to query i when j ≤ i + (n_k − n_q)."""

import numpy as np

PREDICTIONS = {
    "allowed_8x8": 36,
    "decode_row": 5,
}


def causal_mask(n_q: int, n_k: int) -> np.ndarray:
    offset = n_k - n_q                          # queries are the last n_q positions
    rows = np.arange(n_q)[:, None] + offset     # each query's own position among the keys
    cols = np.arange(n_k)[None, :]
    return cols <= rows                         # [n_q, n_k] bool
