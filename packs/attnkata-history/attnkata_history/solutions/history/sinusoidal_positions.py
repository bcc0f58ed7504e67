"""Reference · sinusoidal_positions: interleaved sin/cos clocks, and the offset as a rotation."""

import numpy as np

PREDICTIONS = {
    "self_dot": 2.0,
    "pe0_sum": 4.0,
}


def _speeds(d: int, base: float) -> np.ndarray:
    return base ** (-2.0 * np.arange(d // 2) / d)          # [d/2]


def sinusoidal_positions(n: int, d: int, base: float = 10000.0) -> np.ndarray:
    angles = np.arange(n, dtype=np.float64)[:, None] * _speeds(d, base)   # [n, d/2]
    pe = np.empty((n, d), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe


def position_shift(offset: int, d: int, base: float = 10000.0) -> np.ndarray:
    b = offset * _speeds(d, base)                           # [d/2]
    m = np.zeros((d, d), dtype=np.float64)
    i = np.arange(0, d, 2)
    m[i, i], m[i, i + 1] = np.cos(b), -np.sin(b)            # row 2i:   [cos, −sin]
    m[i + 1, i], m[i + 1, i + 1] = np.sin(b), np.cos(b)     # row 2i+1: [sin,  cos]
    return m
