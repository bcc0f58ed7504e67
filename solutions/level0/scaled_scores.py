"""Reference · scaled_scores: q·kᵀ / √d, in the input's dtype."""

import numpy as np

from .qk_scores import qk_scores

PREDICTIONS = {
    "scaled_variance": 1.0,
    "scale_factor_d64": 8.0,
}


def scaled_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    d = q.shape[-1]
    return qk_scores(q, k) / np.asarray(np.sqrt(d), dtype=q.dtype)
