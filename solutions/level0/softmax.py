"""Reference · softmax: subtract the maximum, exponentiate, normalise; empty rows give 0."""

import numpy as np

PREDICTIONS = {
    "softmax_1000": (0.5, 0.5),
    "naive_exp_1000": "inf",
}


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # an all -inf slice: exps become 0, not NaN
    e = np.exp(x - m)
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total == 0, 1, total)
