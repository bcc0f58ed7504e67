"""Reference · linear_attention: φ = elu + 1, φ(Q)(φ(K)ᵀV) normalised, causal as running sums."""

import numpy as np

PREDICTIONS = {
    "state_size": 4160,
    "flop_ratio": 64.0,
}


def elu_feature(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0))).astype(x.dtype, copy=False)


def linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    fq, fk = elu_feature(q), elu_feature(k)                 # [..., N_q, d], [..., N_k, d]
    s = np.swapaxes(fk, -1, -2) @ v                         # [..., d, d_v]
    z = fk.sum(axis=-2)                                     # [..., d]
    num = fq @ s                                            # [..., N_q, d_v]
    den = np.einsum("...nd,...d->...n", fq, z)[..., None]   # [..., N_q, 1]
    return (num / den).astype(q.dtype, copy=False)


def causal_linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    fq, fk = elu_feature(q), elu_feature(k)
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    n, d, d_v = q.shape[-2], q.shape[-1], v.shape[-1]
    s = np.zeros((*lead, d, d_v), dtype=q.dtype)            # the RNN state
    z = np.zeros((*lead, d), dtype=q.dtype)
    out = np.empty((*lead, n, d_v), dtype=q.dtype)
    for i in range(n):                                      # one token at a time
        s = s + fk[..., i, :, None] * v[..., i, None, :]    # S_i = S_{i−1} + φ(k_i) v_iᵀ
        z = z + fk[..., i, :]                               # z_i = z_{i−1} + φ(k_i)
        num = np.einsum("...d,...de->...e", fq[..., i, :], s)
        den = np.einsum("...d,...d->...", fq[..., i, :], z)[..., None]
        out[..., i, :] = num / den
    return out
