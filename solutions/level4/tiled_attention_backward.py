"""Reference · tiled_attention_backward: recompute each score tile from lse, never store P.

The outer loop walks key blocks (FlashAttention-2's backward): dk_j and dv_j stay local,
dq accumulates across key blocks.
"""

import numpy as np

PREDICTIONS = {
    "d_row": 1.0,
    "p_over_lse_bytes": 4096,
}


def tiled_attention_backward(q: np.ndarray, k: np.ndarray, v: np.ndarray, o: np.ndarray,
                             lse: np.ndarray, do: np.ndarray, block_q: int = 64,
                             block_k: int = 64, causal: bool = False):
    n_q, d = q.shape[-2:]
    n_k = k.shape[-2]
    scale = d ** -0.5
    offset = n_k - n_q                                   # causal: query i sees keys j ≤ i + offset
    D = np.sum(do * o, axis=-1)                          # (..., N_q): rowsum(dO ∘ O)
    lse = np.where(np.isfinite(lse), lse, 0)             # a query that saw nothing: its P row is 0 anyway
    dq = np.zeros(q.shape, dtype=q.dtype)
    dk = np.zeros(k.shape, dtype=k.dtype)
    dv = np.zeros(v.shape, dtype=v.dtype)

    for k0 in range(0, n_k, block_k):
        k1 = min(k0 + block_k, n_k)
        k_j, v_j = k[..., k0:k1, :], v[..., k0:k1, :]    # (..., Bk, d)
        dk_j = np.zeros(k_j.shape, dtype=k.dtype)
        dv_j = np.zeros(v_j.shape, dtype=v.dtype)
        # causal: queries before k0 − offset see none of these keys; start at their block
        first = (max(0, k0 - offset) // block_q) * block_q if causal else 0
        for q0 in range(first, n_q, block_q):
            q1 = min(q0 + block_q, n_q)
            q_i, do_i = q[..., q0:q1, :], do[..., q0:q1, :]
            # -- recompute the tile: P = exp(S − lse) is already normalised
            s = (q_i @ np.swapaxes(k_j, -1, -2)) * scale                 # (..., Bq, Bk)
            if causal:
                allowed = np.arange(k0, k1)[None, :] <= np.arange(q0, q1)[:, None] + offset
                s = np.where(allowed, s, -np.inf)
            p = np.exp(s - lse[..., q0:q1, None])
            # -- gradients through O = P·V and P = softmax(S)
            dv_j += np.swapaxes(p, -1, -2) @ do_i
            dp = do_i @ np.swapaxes(v_j, -1, -2)                         # (..., Bq, Bk)
            ds = p * (dp - D[..., q0:q1, None])
            dq[..., q0:q1, :] += (ds @ k_j) * scale
            dk_j += (np.swapaxes(ds, -1, -2) @ q_i) * scale
        dk[..., k0:k1, :] = dk_j
        dv[..., k0:k1, :] = dv_j
    return dq, dk, dv
