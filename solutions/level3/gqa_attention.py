"""Reference · gqa_attention: group the query heads; K and V are broadcast, never copied."""

import numpy as np

PREDICTIONS = {
    "mha_layer_mib": 62.5,
    "gqa8_layer_mib": 15.625,
    "gqa16_layer_mib": 31.25,
}


def gqa_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask=None) -> np.ndarray:
    B, H_q, N_q, d = q.shape
    H_kv, N_k = k.shape[1], k.shape[2]
    G = H_q // H_kv                                      # query heads per KV head
    q5 = q.reshape(B, H_kv, G, N_q, d)                   # (B, H_kv, G, N_q, d): a view
    k5 = k[:, :, None]                                   # (B, H_kv, 1, N_k, d): a view
    v5 = v[:, :, None]
    s = q5 @ np.swapaxes(k5, -1, -2)                     # (B, H_kv, G, N_q, N_k)
    s = s / np.asarray(np.sqrt(d), dtype=q.dtype)
    if mask is not None:
        m5 = np.broadcast_to(mask, (B, H_q, N_q, N_k)).reshape(B, H_kv, G, N_q, N_k)
        s = np.where(m5, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)                   # a row that sees nothing: exps are 0
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    p = e / np.where(total == 0, 1, total)
    o = p @ v5                                           # (B, H_kv, G, N_q, d_v)
    return o.reshape(B, H_q, N_q, v.shape[-1]).astype(q.dtype, copy=False)
