"""Reference · qk_scores: raw scores q·kᵀ over the last two axes."""

import numpy as np

PREDICTIONS = {
    "scores_shape": (2, 3, 5),
    "unscaled_variance": 64,
}


def qk_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    return q @ np.swapaxes(k, -1, -2)  # (..., N_q, d) @ (..., d, N_k) -> (..., N_q, N_k)
