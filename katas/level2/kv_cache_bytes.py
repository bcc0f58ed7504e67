"""Level 2 · kv_cache_bytes — how much memory does remembering the past cost?

Intuition
---------
A language model writes one token at a time. To produce token T+1 it attends over all
T tokens before it, and every attention layer needs those tokens' keys and values.
Recomputing them at every step would redo the whole prefix each time, so decoders
keep them: the *KV cache*. It is cheap in compute and expensive in memory — every
layer, every KV head, every token keeps two vectors. At long contexts and large
batches this cache, not the weights, is often what runs out first.

The math
--------
    Mem_KV = B · N_layers · T · H_kv · d_head · 2 · bytes

- B        : batch — sequences decoded together, each with its own cache
- N_layers : transformer layers; each has its own attention and its own cache
- T        : tokens held per sequence (the context length so far)
- H_kv     : key/value heads per layer (= the query heads H_q in plain multi-head
             attention; fewer under GQA or MQA, the subject of level 3)
- d_head   : the width of one key (or value) vector
- 2        : one key AND one value vector per token per KV head
- bytes    : bytes per stored number — 2 for fp16/bf16, 4 for fp32, 1 for fp8

Units: 1 GB = 10^9 bytes, 1 GiB = 2^30 bytes ≈ 1.074 GB. Papers and tools mix
them; always say which you mean.

Worked example
--------------
A small model: B = 2, N_layers = 4, T = 1000, H_kv = 8, d_head = 64, fp16 (2 bytes):

    2 · 4 · 1000 · 8 · 64 · 2 · 2 = 16,384,000 bytes = 16.4 MB = 15.6 MiB

Per token and per sequence that is 4 · 8 · 64 · 2 · 2 = 8,192 bytes (8 KiB).

The command `attnkata kv` prints this for MHA, GQA and MQA side by side.
"""

# --- Predict first ------------------------------------------------------------
# Answer before you implement: replace each ... with your answer. The first value
# the framework sees is kept in your ledger, so a later change shows as revised.
PREDICTIONS = {
    # B = 4, T = 32,768, 32 layers, 32 KV heads, d_head = 128, fp16 (2 bytes).
    # The KV cache in GB (10^9 bytes)? (a number)
    "kv_lab_gb": ...,
    # The same lab with MQA: 1 KV head instead of 32. The cache in GB?
    "kv_lab_mqa_gb": ...,
    # A Llama-3-70B-like model: 80 layers, 8 KV heads, d_head = 128, fp16.
    # KV bytes per token (batch 1, all layers), in KiB (1 KiB = 1024 bytes)?
    "llama70b_kib_per_token": ...,
}


def kv_cache_bytes(batch: int, layers: int, tokens: int, kv_heads: int, head_dim: int,
                   bytes_per_elem: int = 2) -> int:
    """Bytes of the KV cache, as an exact int: B · N_layers · T · H_kv · d_head · 2 · bytes."""
    raise NotImplementedError("kata kv_cache_bytes: multiply the seven factors, return an int")
