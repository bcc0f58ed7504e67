"""Reference · kv_quantize: symmetric int8 with per-channel key scales and per-token value scales."""

import numpy as np

PREDICTIONS = {
    "ratio_d64_g64": 0.515625,
    "rounding_error_bound": 0.5,
    "small_channel_per_token": 0.0,
}

QMAX = 127  # symmetric int8: −127 … 127, so that −x quantises to −q


def _quantize(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """One scale per slice along ``axis``: s = max|x| / 127, q = round(x / s)."""
    scale = np.abs(x).max(axis=axis, keepdims=True) / np.asarray(QMAX, dtype=x.dtype)
    safe = np.where(scale == 0, np.ones_like(scale), scale)       # an all-zero slice stays 0
    q = np.clip(np.rint(x / safe), -QMAX, QMAX).astype(np.int8)
    return q, scale.astype(x.dtype, copy=False)


def quantize_keys(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k [..., T, d] float -> (k_q int8 [..., T, d], k_scale [..., 1, d] in k's dtype)."""
    return _quantize(k, axis=-2)                      # per channel: reduce over the T tokens


def quantize_values(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v [..., T, d] float -> (v_q int8 [..., T, d], v_scale [..., T, 1] in v's dtype)."""
    return _quantize(v, axis=-1)                      # per token: reduce over the d channels


def dequantize(x_q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """x̂ = q · s, broadcast; in the scale's dtype."""
    return x_q.astype(scale.dtype) * scale


def int8_kv_bytes(tokens: int, kv_heads: int, head_dim: int, group: int,
                  scale_bytes: int = 2) -> int:
    """Bytes of one layer's int8 K and V for ``tokens`` tokens, scales included."""
    data = 2 * tokens * kv_heads * head_dim                       # K and V, 1 byte each
    key_scales = -(-tokens // group) * kv_heads * head_dim * scale_bytes
    value_scales = tokens * kv_heads * scale_bytes
    return data + key_scales + value_scales
