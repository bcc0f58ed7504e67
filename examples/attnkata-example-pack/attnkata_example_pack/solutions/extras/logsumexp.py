"""Reference · logsumexp: shift by the maximum, add it back."""

import numpy as np

PREDICTIONS = {"lse_two_zeros": 0.6931471805599453}


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        out = safe + np.log(np.sum(np.exp(x - safe), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis).astype(x.dtype)
