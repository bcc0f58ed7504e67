"""Level 3 · gqa_attention — many query heads, few K/V heads, no copies.

Intuition
---------
With grouped-query attention, G query heads read the same K/V head. The quick way
to code it is to copy each K/V head G times (np.repeat) and run ordinary multi-head
attention. It gives the right numbers — and rebuilds, in memory, exactly the H_q
K/V heads that GQA exists to avoid storing. At decode time, when each step reads
the whole cache, that copy is the dominant cost. The better way is to *view* the
query heads as groups and let broadcasting pair each group with its K/V head: the
shared head is read, never duplicated.

The math
--------
    G = H_q / H_kv
    o[b, h] = softmax(q[b, h] k[b, h // G]ᵀ / √d + mask) v[b, h // G]

- q : [B, H_q, N_q, d] queries;  k, v : [B, H_kv, N_k, d] keys and values
- B : batch;  H_q, H_kv : query and KV heads;  N_q, N_k : query and key positions
- d : head width;  G : query heads per KV head; h // G is kv_head_for(h)
- mask : boolean, True = may attend, broadcastable to [B, H_q, N_q, N_k] (or None);
         masked scores become −inf; a query that may attend to nothing outputs zeros
- o : [B, H_q, N_q, d], in q's dtype

Without copying: reshape q to [B, H_kv, G, N_q, d] — a view, since the G heads of a
group are adjacent — and give k, v a length-1 group axis, k[:, :, None] of shape
[B, H_kv, 1, N_k, d]. Matrix multiplication broadcasts that axis over G.

Worked example
--------------
B = 1, H_q = 4, H_kv = 2 (G = 2), N_q = 1, N_k = 4096, d = 64, float32:
    K and V:              2 × (2 · 4096 · 64 · 4 B) = 4.2 MB
    repeated to 4 heads:  8.4 MB — G times as much; at H_q = 32, H_kv = 1 it is 32×
    scores, broadcast:    [1, 2, 2, 1, 4096] · 4 B = 64 KiB — the only new large array
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # One layer, batch 1, 32 query heads, T = 4000 tokens, d_head = 128, fp16.
    # MHA (32 KV heads): the KV cache in MiB (1 MiB = 2^20 bytes)?
    "mha_layer_mib": ...,
    # The same layer with GQA, 8 KV heads: MiB?
    "gqa8_layer_mib": ...,
    # And with 16 KV heads: MiB?
    "gqa16_layer_mib": ...,
}


def gqa_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask=None) -> np.ndarray:
    """Grouped-query attention: q [B, H_q, N_q, d], k, v [B, H_kv, N_k, d] → [B, H_q, N_q, d].

    MHA when H_kv = H_q, MQA when H_kv = 1. Broadcast the shared K/V heads; do not
    copy them per query head.
    """
    raise NotImplementedError("kata gqa_attention: view q as [B, H_kv, G, N_q, d], broadcast k, v")
