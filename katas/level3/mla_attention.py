"""Level 3 · mla_attention — cache a small latent, rebuild keys and values from it.

Intuition
---------
GQA shrinks the cache by sharing heads. Multi-head latent attention (MLA, from
DeepSeek-V2) shrinks it differently: each token's keys and values are stored
compressed, as one short latent vector c (say 512 numbers), and up-projected back to
keys and values when attention needs them. The cache holds only c. Better still, the
key up-projection never has to run: because q·k = q·(c W_UK) = (q W_UKᵀ)·c, the
matrix W_UK can be folded ("absorbed") into the query once, and the query then scores
the cached latents directly. Same numbers, no keys built.

The math
--------
    k_j = c_j W_UK        v_j = c_j W_UV
    o   = softmax(q Kᵀ / √d) V                        (absorb=False: build K and V)
    o   = softmax((q W_UKᵀ) C_kvᵀ / √d) (C_kv W_UV)     (absorb=True: no K at all)

- q     : queries, [N_q, d] (one head, no RoPE part in this kata)
- c_kv  : the cached latents C_kv, one row c_j per token, [N, d_c]
- w_uk  : W_UK, the key up-projection, [d_c, d];  w_uv : W_UV, [d_c, d_v]
- d     : the key width — the scale stays 1/√d when absorbed;  d_c : the latent width
- q W_UKᵀ : the absorbed query, [N_q, d_c] — it lives in the latent space
- o     : [N_q, d_v], in q's dtype

With absorb=True you may also avoid building V: (P C_kv) W_UV equals P (C_kv W_UV).

Worked example
--------------
Cache per token per layer in fp16, MHA with 16 heads of d = 64 against MLA with d_c = 256:
    MHA: 16 · 64 · 2 (K and V) · 2 bytes = 4,096 bytes
    MLA: 256 · 2 bytes                   =   512 bytes   — 8× smaller
(DeepSeek-V2 also caches a small decoupled RoPE key per token; this kata leaves it out.)
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # MLA caches one latent of d_c = 512 numbers per token per layer, in fp16. How
    # many bytes per token per layer?
    "mla_bytes_per_token_layer": ...,
    # MHA with 32 heads of d = 128 in fp16 stores how many times more per token per
    # layer than that latent? (a number)
    "mha_over_mla": ...,
    # With d = 128 and d_c = 512, how many numbers wide is the absorbed query q·W_UKᵀ?
    "absorbed_query_width": ...,
}


def mla_attention(q: np.ndarray, c_kv: np.ndarray, w_uk: np.ndarray, w_uv: np.ndarray,
                  absorb: bool = False) -> np.ndarray:
    """Attention through the latent cache: q [N_q, d], c_kv [N, d_c] → [N_q, d_v].

    absorb=True folds w_uk into the query and must not materialise the [N, d] keys.
    """
    raise NotImplementedError("kata mla_attention: rebuild K, V from c_kv; absorb: q @ w_ukᵀ first")
