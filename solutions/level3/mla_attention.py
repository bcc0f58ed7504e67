"""Reference · mla_attention: attend through a cached latent; absorb W_UK into the query."""

import numpy as np

PREDICTIONS = {
    "mla_bytes_per_token_layer": 1024,
    "mha_over_mla": 16,
    "absorbed_query_width": 512,
}


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mla_attention(q: np.ndarray, c_kv: np.ndarray, w_uk: np.ndarray, w_uv: np.ndarray,
                  absorb: bool = False) -> np.ndarray:
    d = q.shape[-1]                                  # the key width: the scale is 1/√d
    scale = np.asarray(1 / np.sqrt(d), dtype=q.dtype)
    if absorb:
        q_lat = q @ w_uk.T                           # (N_q, d) @ (d, d_c) -> (N_q, d_c)
        p = _softmax_rows((q_lat @ c_kv.T) * scale)  # (N_q, N): no [N, d] key is built
        return ((p @ c_kv) @ w_uv).astype(q.dtype, copy=False)  # (N_q, d_c) @ (d_c, d_v)
    k = c_kv @ w_uk                                  # (N, d_c) @ (d_c, d) -> (N, d)
    v = c_kv @ w_uv                                  # (N, d_v)
    p = _softmax_rows((q @ k.T) * scale)             # (N_q, N)
    return (p @ v).astype(q.dtype, copy=False)
