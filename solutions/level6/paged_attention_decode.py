"""Reference · paged_attention_decode: gather each sequence's pages, then one row of attention."""

import math

import torch

PREDICTIONS = {
    "kv_head_of_query_head_5": 1,
    "table_entries_read": 3,
    "token_20_location": (1, 4),
}


def paged_attention_decode(q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor,
                           block_tables: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    S, H_q, d = q.shape
    _, block_size, H_kv, _ = k_pages.shape
    kv_head = torch.arange(H_q) // (H_q // H_kv)  # GQA: query head h reads KV head h // group
    o = torch.empty_like(q)
    for s in range(S):
        n = int(seq_lens[s])
        pos = torch.arange(n)
        blocks = torch.as_tensor(block_tables[s]).long()[pos // block_size]  # (n,) physical block
        k = k_pages[blocks, pos % block_size][:, kv_head]  # (n, H_q, d): logical order
        v = v_pages[blocks, pos % block_size][:, kv_head]
        scores = torch.einsum("hd,nhd->hn", q[s], k) / math.sqrt(d)  # (H_q, n)
        p = torch.softmax(scores, dim=-1)
        o[s] = torch.einsum("hn,nhd->hd", p, v)
    return o
