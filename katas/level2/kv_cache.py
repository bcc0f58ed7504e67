"""Level 2 · kv_cache — a cache that grows one token at a time, cheaply.

Intuition
---------
During decoding the cache gains one token per step, thousands of times. The obvious
code — `keys = np.concatenate([keys, k_new], axis=1)` — allocates a new array and
copies every cached token, every step: step T copies T tokens, so generating T
tokens copies about T²/2 of them. The fix is the one Python's list uses: keep spare
room. Allocate a buffer larger than needed, write new tokens into the free slots,
and only when it is full allocate one twice as large and copy once. Copies then add
up to less than 2T over the cache's life: amortised O(1) per token.

The math
--------
Buffers K_buf, V_buf of shape [H, C, d], a fill count T ≤ C:

- H : heads (n_heads);  d : head_dim;  C : capacity, the tokens the buffer can hold
- T : tokens stored so far; `len(cache)` is T
- append(k, v) with k, v of shape [H, t, d] (t new tokens — 1 per decode step, or a
  whole prompt at once) writes K_buf[:, T:T+t] = k and sets T ← T + t
- when T + t > C: a new buffer with C' = max(T + t, 2C), copy the T filled tokens
- keys  = K_buf[:, :T] — a *view* [H, T, d] of the filled part (no copy, and never
  the unfilled slots);  values likewise

Why doubling is O(1) amortised: filling to T tokens copies at most
1 + 2 + 4 + … + T/2 + T < 2T tokens in total, because each doubling copies as many
tokens as all earlier doublings together.

The cache owns its dtype: store in `dtype` whatever arrives (an fp16 cache holds half
the bytes of an fp32 one).

Worked example
--------------
Capacity 4, H = 1, d = 2. Append a 3-token prompt: T = 3, no copy. Append one token:
T = 4, no copy. Append one more: full, so allocate C = 8, copy 4 tokens, write the
5th: T = 5. Three more appends fill C = 8; the ninth allocates C = 16 and copies 8.
Nine tokens cost 4 + 8 = 12 token copies in total. Concatenating instead would copy
the whole cache at each of the six one-token appends: 3 + 4 + 5 + 6 + 7 + 8 = 33, and
the gap widens as T²/2 against 2T.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # The context doubles from T to 2T, all else fixed. By what factor does the KV
    # cache grow? (a number)
    "double_t_factor": ...,
    # The Llama-3-70B-like model (80 layers, 8 KV heads, d_head = 128, fp16) holding
    # 131,072 tokens, batch 1: the KV cache in GiB (1 GiB = 2^30 bytes)?
    "llama70b_128k_gib": ...,
    # A cache starts with room for 1 token and doubles whenever it is full. How many
    # times does it reallocate on its way to holding 1,000,000 tokens?
    "doublings_to_1m": ...,
}


class KVCache:
    """Keys and values of every token so far, per head.

    KVCache(n_heads, head_dim, dtype=np.float32); append(k, v) with k, v
    [n_heads, t, head_dim]; keys / values are [n_heads, T, head_dim] views of the
    filled part; len(cache) is T. Appends must cost amortised O(1) per token.
    """

    def __init__(self, n_heads: int, head_dim: int, dtype=np.float32):
        raise NotImplementedError("kata kv_cache: allocate K and V buffers with spare capacity")

    def __len__(self) -> int:
        raise NotImplementedError("kata kv_cache: return the number of tokens stored, T")

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        raise NotImplementedError("kata kv_cache: write k, v after the last token; double when full")

    @property
    def keys(self) -> np.ndarray:
        raise NotImplementedError("kata kv_cache: return a view of the filled keys, [H, T, d]")

    @property
    def values(self) -> np.ndarray:
        raise NotImplementedError("kata kv_cache: return a view of the filled values, [H, T, d]")
