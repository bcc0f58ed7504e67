"""Reference · decode_step: one new query against every cached key and value."""

import numpy as np

PREDICTIONS = {
    "dots_per_step": 1000,
    "total_dots_1000": 500500,
}


def decode_step(q_t: np.ndarray, cache) -> np.ndarray:
    k, v = cache.keys, cache.values                     # (H, T, d) each
    d = q_t.shape[-1]
    s = q_t @ np.swapaxes(k, -1, -2)                    # (H, 1, d) @ (H, d, T) -> (H, 1, T)
    s = s / np.asarray(np.sqrt(d), dtype=q_t.dtype)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return (p @ v).astype(q_t.dtype, copy=False)        # (H, 1, T) @ (H, T, d) -> (H, 1, d)
