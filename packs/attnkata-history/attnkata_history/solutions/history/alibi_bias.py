"""Reference · alibi_bias: geometric head slopes times the distance back, −∞ on the future."""

import math

import numpy as np

PREDICTIONS = {
    "first_slope_16": 0.7071067811865476,
    "fifth_slope_6": 0.5,
}


def alibi_slopes(n_heads: int) -> np.ndarray:
    if n_heads & (n_heads - 1) == 0:                      # a power of two
        return 2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads)
    p = 2 ** math.floor(math.log2(n_heads))
    extra = alibi_slopes(2 * p)[0::2][: n_heads - p]
    return np.concatenate([alibi_slopes(p), extra])


def alibi_bias(n_heads: int, n_q: int, n_k: int) -> np.ndarray:
    pos = np.arange(n_q)[:, None] + (n_k - n_q)           # [n_q, 1]
    dist = (pos - np.arange(n_k)[None, :]).astype(np.float64)   # [n_q, n_k]
    bias = -alibi_slopes(n_heads)[:, None, None] * dist   # [H, n_q, n_k]
    return np.where(dist >= 0, bias, -np.inf)
