"""Level 8 · swa_kv_cache — a sliding-window KV cache: a ring buffer of W tokens.

Intuition
---------
With sliding-window attention (Longformer's local attention; Mistral 7B uses it in
every layer) a token attends only to the last W tokens, itself included. So at decode
time nothing older than W tokens will ever be read again, and the cache never needs
more than W slots per head. Keep a fixed buffer of W slots and write token number p
into slot p mod W: once the buffer is full, each new token overwrites exactly the
token that has just left the window. That is a *ring buffer*. Memory stays constant
however long the conversation runs, and no token is ever moved or copied on append.

The convention here, as in level 1's sliding_window_mask: the window counts the
current token. The query at position p sees keys p − W + 1 … p, which is W keys.

Attention does not care in which order its keys sit: the scores are a set, and
softmax and the weighted sum of values do not depend on the order (positions enter
through RoPE, applied before a key is cached). So decoding may read the ring as is.
But anyone who reads `keys` expecting a sequence does care, so this cache hands its
contents out oldest first: unroll the ring from the slot of the oldest token.

The math
--------
    slot(p) = p mod W                     where token p's key and value live
    held    = { p : P − W ≤ p < P }       the tokens still cached after P appends
    len     = min(P, W)
    o_p     = softmax(q_p K_heldᵀ / √d) V_held     (decoding after appending token p)

- p : a token's position, counted from 0;  P : tokens appended so far (tokens_seen)
- W : the window (slots per head);  H : heads;  d : head_dim
- K_held, V_held : [H, len, d], oldest first — `keys` and `values`
- memory: 2·H·W·d numbers, whatever P is (a full cache would hold 2·H·P·d)

An append may carry several tokens (a prompt): write them one after another; if a
chunk is longer than W, only its last W tokens survive.

Worked example
--------------
W = 4, one head, d = 1, tokens whose keys are their positions 0, 1, 2, …:
    append 0,1,2      ring = [0, 1, 2, _]   len 3   keys = [0, 1, 2]
    append 3          ring = [0, 1, 2, 3]   len 4   keys = [0, 1, 2, 3]
    append 4          ring = [4, 1, 2, 3]   len 4   keys = [1, 2, 3, 4]  (4 overwrote 0)
    append 5,6        ring = [4, 5, 6, 3]   len 4   keys = [3, 4, 5, 6]
    unroll: the oldest held token is P − W = 7 − 4 = 3, in slot 3 mod 4 = 3:
            ring[3:] + ring[:3] = [3] + [4, 5, 6]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # A Mistral-7B-like model: 32 layers, 8 KV heads, head_dim 128, fp16, window
    # W = 4096, batch 1. The sliding-window KV cache after a 32,768-token
    # conversation, in MiB (2^20 bytes)? (a number)
    "mistral_cache_mib": ...,
    # W = 6. Into which ring slot goes the token at position 20? (an int)
    "slot_of_position_20": ...,
    # W = 6, tokens 0 … 20 appended one by one. Which position does keys[:, 0]
    # (the oldest token held) belong to? (an int)
    "oldest_position": ...,
}


class SlidingWindowKVCache:
    """Keys and values of the last `window` tokens, in memory that does not grow.

    SlidingWindowKVCache(n_heads, head_dim, window, dtype=np.float32);
    append(k, v) with k, v [n_heads, t, head_dim] (t ≥ 1, stored in `dtype`);
    len(cache) = min(tokens_seen, window); tokens_seen = tokens appended so far;
    keys / values: [n_heads, len(cache), head_dim], oldest first.
    """

    def __init__(self, n_heads: int, head_dim: int, window: int, dtype=np.float32):
        raise NotImplementedError("kata swa_kv_cache: allocate a ring of `window` slots per head")

    def __len__(self) -> int:
        raise NotImplementedError("kata swa_kv_cache: tokens held, min(tokens_seen, window)")

    @property
    def tokens_seen(self) -> int:
        raise NotImplementedError("kata swa_kv_cache: tokens appended so far")

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        raise NotImplementedError("kata swa_kv_cache: write token p into slot p % window")

    @property
    def keys(self) -> np.ndarray:
        raise NotImplementedError("kata swa_kv_cache: the held keys, oldest first")

    @property
    def values(self) -> np.ndarray:
        raise NotImplementedError("kata swa_kv_cache: the held values, oldest first")
