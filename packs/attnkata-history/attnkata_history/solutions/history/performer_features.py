"""Reference · performer_features: positive random features for the softmax kernel (FAVOR+)."""

import numpy as np

PREDICTIONS = {
    "trig_can_be_negative": "trig",
    "error_at_1024": 0.05,
}


def positive_features(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    m = w.shape[0]
    proj = x @ w.T                                          # [..., N, m]
    half_norm = 0.5 * np.sum(x * x, axis=-1, keepdims=True)   # [..., N, 1]
    return (np.exp(proj - half_norm) / np.sqrt(m)).astype(x.dtype, copy=False)


def performer_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    c = q.shape[-1] ** -0.25                                # exp(q·k/√d) = exp((c q)·(c k))
    fq = positive_features((q * c).astype(q.dtype), w)      # [..., N_q, m]
    fk = positive_features((k * c).astype(k.dtype), w)      # [..., N_k, m]
    num = fq @ (np.swapaxes(fk, -1, -2) @ v)                # [..., N_q, d_v], linear in N
    den = fq @ fk.sum(axis=-2)[..., None]                   # [..., N_q, 1]
    return (num / den).astype(q.dtype, copy=False)
