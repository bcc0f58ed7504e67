"""Level 3 · kv_head_for — which key/value head does a query head read?

Intuition
---------
In multi-head attention (MHA) every query head has its own key and value head, and
the KV cache stores all of them. But decoding is limited by how many bytes of cache
each step must read, and many heads' keys turn out to be alike. So heads can share:
multi-query attention (MQA) keeps a single K/V head for all query heads; grouped-query
attention (GQA) sits in between, splitting the query heads into equal groups that
each share one K/V head. The cache shrinks by the sharing factor, and the number of
query heads — the model's ability to look for different things — stays the same.

The math
--------
    G = H_q / H_kv            kv_head_for(h) = ⌊h / G⌋

- H_q  : query heads (n_q_heads);  H_kv : key/value heads (n_kv_heads)
- G    : the group size, query heads per KV head; it must be a whole number, so H_kv
         must divide H_q (otherwise raise ValueError)
- h    : a query head index, 0 ≤ h < H_q
- Groups are consecutive: heads 0..G−1 share KV head 0, heads G..2G−1 share KV head
  1, and so on. MHA is H_kv = H_q (G = 1, h ↦ h); MQA is H_kv = 1 (every h ↦ 0).

Only H_kv appears in the cache formula B · N_layers · T · H_kv · d_head · 2 · bytes,
so GQA's cache is H_kv / H_q of MHA's.

Worked example
--------------
H_q = 8, H_kv = 2 → G = 4:
    query heads 0 1 2 3 → KV head 0;   query heads 4 5 6 7 → KV head 1
    kv_head_for(5, 8, 2) = ⌊5 / 4⌋ = 1
H_q = 6, H_kv = 4 → 6 / 4 is not whole: ValueError.
"""

# --- Predict first ------------------------------------------------------------
# Answer before you implement: replace each ... with your answer. The first value
# the framework sees is kept in your ledger, so a later change shows as revised.
PREDICTIONS = {
    # 32 query heads share 8 KV heads. Which KV head does query head 13 read?
    "head_13_of_32_to_8": ...,
    # H_q = 32, H_kv = 8, everything else equal: GQA's KV cache as a fraction of
    # MHA's? (a number)
    "gqa_over_mha": ...,
    # The Llama-3-70B-like model (80 layers, d_head = 128, fp16, 131,072 tokens,
    # batch 1) WITHOUT GQA: 64 KV heads instead of 8. The cache in GiB (2^30 bytes)?
    "llama70b_no_gqa_gib": ...,
}


def kv_head_for(q_head: int, n_q_heads: int, n_kv_heads: int) -> int:
    """The KV head that query head ``q_head`` reads under grouped-query attention.

    Raises ValueError when n_kv_heads does not divide n_q_heads.
    """
    raise NotImplementedError("kata kv_head_for: q_head // (n_q_heads // n_kv_heads), after a check")
