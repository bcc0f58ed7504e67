"""Level 6 · paged_attention_decode — one decode step over a paged KV cache.

Intuition
---------
In level 2, decoding a token meant: score the new query against every cached key,
softmax, and average the cached values. Nothing about that changes when the cache is
paged — only *where the keys are*. A sequence's keys are no longer one contiguous
array; they are spread over blocks of the shared pool, and its block table says which
block holds which stretch of tokens. So decoding over pages is "look up, then attend".

A batch decodes many sequences at once, each with its own length and its own block
table; each contributes one new query token per head.

The math
--------
For sequence s (of n = seq_lens[s] tokens) and query head h:

    K_s[t] = k_pages[ block_tables[s, t // B],  t % B,  g(h) ]      t = 0 … n − 1
    V_s[t] = v_pages[ block_tables[s, t // B],  t % B,  g(h) ]
    o[s, h] = softmax_t( q[s, h] · K_s[t] / √d ) · V_s

- q            : ``[S, H_q, d]``, the new token's query for each sequence and head
- k_pages      : ``[num_blocks, B, H_kv, d]``, the key pool; v_pages likewise
- block_tables : int ``[S, max_blocks]``; row s lists sequence s's physical blocks in
                 order. Entries past ⌈n / B⌉ are padding: arbitrary ids, never read
- seq_lens     : int ``[S]``, tokens in each sequence (≥ 1)
- B            : block size (tokens per block); d: head dim
- g(h) = h // (H_q / H_kv) : the KV head that query head h shares (GQA; level 3)
- Rows t % B ≥ n of the last block hold stale data: they are not part of the sequence.

Worked example
--------------
B = 4, one sequence with n = 6, block table [7, 2, 0] (the 0 is padding). Tokens 0–3
are rows 0–3 of block 7; tokens 4–5 are rows 0–1 of block 2; rows 2–3 of block 2 and
all of block 0 are not this sequence's. With d = 1, q = 2, keys [0, 0, 1, 0, 0, 1]
and values [1, 2, 3, 4, 5, 6]: scores q·k/√1 = [0, 0, 2, 0, 0, 2], softmax weights
e^s / Σ = [0.0533, 0.0533, 0.3935, 0.0533, 0.0533, 0.3935] (Σ = 4 + 2e² = 18.78),
o = 0.0533·(1 + 2 + 4 + 5) + 0.3935·(3 + 6) = 4.181.
"""

import torch

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # q is [3, 8, 64] and the pages hold H_kv = 2 heads: which KV head does query head 5
    # read? (an int)
    "kv_head_of_query_head_5": ...,
    # seq_len 33, block size 16: how many entries of the sequence's block table are read?
    "table_entries_read": ...,
    # Block size 16: logical token 20 lives at (block-table index, row in block) = ?
    # (a tuple of two ints)
    "token_20_location": ...,
}


def paged_attention_decode(q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor,
                           block_tables: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    """Attention of one new token per sequence over its pages: ``o`` ``[S, H_q, d]``, q's dtype."""
    raise NotImplementedError("kata paged_attention_decode: gather each sequence's keys and "
                              "values through its block table, then attend")
