"""Reference · rope: rotate each interleaved pair (2i, 2i+1) by position · base^(−2i/d)."""

import numpy as np

PREDICTIONS = {
    "pair1_angle": 0.3,
    "shift_changes_score": "no",
}


def rope(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    d = x.shape[-1]
    i = np.arange(d // 2)                                       # pair index
    inv_freq = base ** (-2.0 * i / d)                           # [d/2], float64
    theta = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq  # [N, d/2]
    cos, sin = np.cos(theta).astype(x.dtype), np.sin(theta).astype(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]                  # [..., N, d/2] each
    out = np.empty_like(x)
    out[..., 0::2] = x_even * cos - x_odd * sin
    out[..., 1::2] = x_even * sin + x_odd * cos
    return out
