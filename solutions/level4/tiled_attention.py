"""Reference · tiled_attention: FlashAttention's forward, one score tile at a time.

The outer loop walks query blocks (as FlashAttention-2 does), the inner loop key blocks;
each query block keeps its online-softmax state m_i, l_i and an unnormalised acc.
"""

import numpy as np

PREDICTIONS = {
    "o_after_tile1": 0.4536,
    "o_after_tile2": 0.7944,
    "fp16_scores_mib_8192": 128,
    "causal_tiles_skipped": 6,
}


def tiled_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_q: int = 64,
                    block_k: int = 64, causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    n_q, d = q.shape[-2:]
    n_k, d_v = k.shape[-2], v.shape[-1]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    scale = d ** -0.5            # a Python float: keeps float32 float32
    offset = n_k - n_q           # causal: query i sees keys j ≤ i + offset
    o = np.zeros((*lead, n_q, d_v), dtype=q.dtype)
    lse = np.full((*lead, n_q), -np.inf, dtype=q.dtype)

    for q0 in range(0, n_q, block_q):
        q1 = min(q0 + block_q, n_q)
        q_i = q[..., q0:q1, :]                                     # (..., Bq, d)
        m_i = np.full((*lead, q1 - q0), -np.inf, dtype=q.dtype)    # running max
        l_i = np.zeros((*lead, q1 - q0), dtype=q.dtype)            # running sum of exp(s − m_i)
        acc = np.zeros((*lead, q1 - q0, d_v), dtype=q.dtype)       # Σ exp(s − m_i)·v, not yet divided
        # causal: keys from q1 + offset on are masked for every query of this block
        k_end = min(n_k, q1 + offset) if causal else n_k
        for k0 in range(0, k_end, block_k):
            k1 = min(k0 + block_k, n_k)
            # -- the score tile, the only (Bq, Bk) array there is
            s = (q_i @ np.swapaxes(k[..., k0:k1, :], -1, -2)) * scale
            if causal:
                allowed = np.arange(k0, k1)[None, :] <= np.arange(q0, q1)[:, None] + offset
                s = np.where(allowed, s, -np.inf)
            # -- online softmax: a new max rescales what was accumulated under the old one
            m_new = np.maximum(m_i, s.max(axis=-1))
            m_safe = np.where(np.isfinite(m_new), m_new, 0)        # no key seen yet: exps are 0
            alpha = np.exp(m_i - m_safe)
            p = np.exp(s - m_safe[..., None])                      # (..., Bq, Bk)
            l_i = alpha * l_i + p.sum(axis=-1)
            acc = alpha[..., None] * acc + p @ v[..., k0:k1, :]
            m_i = m_new
        # -- normalise once, at the end; a query that saw no key keeps o = 0, lse = -inf
        o[..., q0:q1, :] = acc / np.where(l_i == 0, 1, l_i)[..., None]
        with np.errstate(divide="ignore"):
            lse[..., q0:q1] = m_i + np.log(l_i)
    return o, lse
