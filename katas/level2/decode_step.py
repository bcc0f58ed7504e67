"""Level 2 · decode_step — one new token reads the whole cache.

Intuition
---------
Generation is a loop: the newest token computes its query q_t, key k_t and value v_t;
k_t and v_t are appended to the cache; then q_t attends over every cached key —
including its own, since under a causal mask a token sees itself — and mixes the
cached values. Nothing about the past is recomputed. The result is exactly the row
that full causal attention over the whole sequence would give for that token: the
cache is an optimisation, never an approximation.

The math
--------
    o_t = softmax(q_t K_cacheᵀ / √d) V_cache

- q_t     : the new token's query, one per head: [H, 1, d]
- K_cache : cache.keys, every token so far including the new one: [H, T, d]
- V_cache : cache.values: [H, T, d]
- H       : heads;  T : tokens in the cache;  d : head_dim
- softmax : over the T keys (the last axis), computed stably (subtract the maximum)
- o_t     : [H, 1, d], in q_t's dtype

No mask is needed: every cached token is in the past or is the token itself.
Cost per step: T dot products per head — O(T) work, and a read of the whole cache.

`cache` is anything with `.keys` and `.values` of shape [H, T, d] — your KVCache
works, and so does any object with those two attributes (the hidden tests use a tiny
one of their own, so this kata does not depend on your kv_cache kata).

Worked example
--------------
One head, d = 4 (√d = 2), two cached tokens, q_t = [2, 0, 0, 0]:
    keys   = [[1, 0, 0, 0], [0, 1, 0, 0]]     scores = [2, 0] / 2 = [1, 0]
    values = [[10, 0, 0, 0], [0, 10, 0, 0]]   softmax([1, 0]) = [0.731, 0.269]
    o_t    = 0.731·[10, 0, 0, 0] + 0.269·[0, 10, 0, 0] = [7.31, 2.69, 0, 0]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # The cache holds T = 1000 tokens. How many query·key dot products does one
    # decode step compute, per head? (a number)
    "dots_per_step": ...,
    # Generating 1000 tokens one at a time with a cache: the total number of
    # query·key dot products per head over all steps, 1 + 2 + … + 1000? (a number)
    "total_dots_1000": ...,
}


def decode_step(q_t: np.ndarray, cache) -> np.ndarray:
    """Attention of the new token over everything cached.

    q_t: [n_heads, 1, head_dim]; cache.keys, cache.values: [n_heads, T, head_dim].
    Returns [n_heads, 1, head_dim] in q_t's dtype: the last row of full causal attention.
    """
    raise NotImplementedError("kata decode_step: softmax(q_t · keysᵀ / √d) · values")
