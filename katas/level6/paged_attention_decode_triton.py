"""Level 6 · paged_attention_decode_triton — the paged decode step as one Triton kernel.

Intuition
---------
The torch version gathered every sequence's pages into a contiguous tensor and then
attended: it reads the cache, writes a copy, and reads the copy again. Decoding is
memory-bound — each step does about one multiply-add per byte of cache it reads — so
that copy is the whole cost twice over. A kernel can read the pages where they are.

One Triton *program* handles one (sequence, query head) pair. It walks the sequence's
block table one block at a time: look up the physical block, load that block's keys
``[BLOCK_SIZE, HEAD_DIM]``, score them against the query, fold them into a running
softmax (level 4's online softmax), and accumulate the values. Nothing the size of the
whole sequence is ever held; the output is written once at the end.

The math
--------
For the program's sequence s and query head h, with m_i, l_i, acc the running state:

    for j = 0 … ⌈n / B⌉ − 1:
        b       = block_tables[s, j]                        the physical block
        t       = j·B + r,  r = 0 … B − 1                   token positions in it
        x_t     = (q_h · k_pages[b, r, g(h)]) · scale       or −∞ where t ≥ n
        m_new   = max(m_i, max_t x_t)
        α       = exp(m_i − m_new)                          rescales the old sums
        l_i     = α·l_i + Σ_t exp(x_t − m_new)
        acc     = α·acc + Σ_t exp(x_t − m_new) · v_pages[b, r, g(h)]
        m_i     = m_new
    o[s, h] = acc / l_i

- n = seq_lens[s]; B = BLOCK_SIZE, tokens per block; d = HEAD_DIM
- g(h) = h // GROUP, the KV head that query head h shares (GQA), GROUP = H_q / H_kv
- scale = 1/√d; m_i starts at −∞, l_i at 0, acc at zeros(d)
- Masked tokens (t ≥ n) get score −∞, so exp gives 0: the stale rows of the last block
  never count. Only load rows you need: ``tl.load(ptr, mask=..., other=0.0)``.

Worked example
--------------
B = 4, n = 6, table = [7, 2]. Block 7 holds tokens 0–3 (all valid). Block 2 holds
tokens 4–5 in rows 0–1; rows 2–3 are masked. Suppose the six scores are
[1, 0, 2, 1 | 3, 0]: after block 7, m = 2, l = e^−1 + e^−2 + 1 + e^−1 = 1.8711; after
block 2, m = 3, α = e^−1, l = 1.8711·0.3679 + 1 + e^−3 = 1.7381. Same l as
Σ_t exp(x_t − 3) over all six scores at once.

Sizes: ``tl.arange`` needs powers of two, so BLOCK_SIZE and HEAD_DIM are powers of two
here (the checks use block sizes 1–8 and head dims 16 and 32). Without a GPU the kernel
runs on Triton's interpreter: correct, slow, and printable (``print`` works inside).
"""

import math

import torch
import triton
import triton.language as tl

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # The launcher below starts one program per (sequence, query head). With S = 4
    # sequences and H_q = 8 query heads, how many programs run? (an int)
    "programs_in_grid": ...,
    # One decode step for one sequence of 4096 tokens with H_kv = 8 KV heads, d = 128,
    # fp16 (2 bytes): how many bytes of keys and values must be read? (an int)
    "bytes_read_per_step": ...,
    # With H_q = H_kv (no GQA), how many FLOPs does decode do per byte of K/V it reads,
    # in fp16? (count a multiply-add as 2 FLOPs; a number)
    "flops_per_byte_mha": ...,
}


@triton.jit
def _paged_decode_kernel(Q, K_pages, V_pages, Block_tables, Seq_lens, Out, sm_scale,
                         stride_qs, stride_qh,              # q [S, H_q, d]; last stride is 1
                         stride_kb, stride_kt, stride_kh,   # pages [num_blocks, B, H_kv, d]
                         stride_bts,                        # block_tables [S, max_blocks]
                         stride_os, stride_oh,              # out like q
                         GROUP,                             # H_q // H_kv
                         BLOCK_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr):
    """One program: sequence ``tl.program_id(0)``, query head ``tl.program_id(1)``.

    V_pages has the same strides as K_pages (the launcher makes both contiguous).
    Steps: load q (HEAD_DIM values) and seq_len; set m_i, l_i, acc; loop over the
    sequence's blocks (``tl.cdiv(seq_len, BLOCK_SIZE)`` of them) as in the docstring at
    the top; store acc / l_i, cast to ``Out.dtype.element_ty``.
    """
    pass  # your kernel body here


def _launch(q, k_pages, v_pages, block_tables, seq_lens):
    """Given: checks the shapes, makes the tensors contiguous and starts the grid."""
    S, H_q, d = q.shape
    num_blocks, block_size, H_kv, d_k = k_pages.shape
    if v_pages.shape != k_pages.shape or d_k != d or H_q % H_kv:
        raise ValueError(f"q {tuple(q.shape)}, k_pages {tuple(k_pages.shape)} and v_pages "
                         f"{tuple(v_pages.shape)} do not fit together")
    q, k_pages, v_pages = q.contiguous(), k_pages.contiguous(), v_pages.contiguous()
    block_tables = block_tables.to(torch.int32).contiguous()
    seq_lens = seq_lens.to(torch.int32).contiguous()
    o = torch.empty_like(q)
    _paged_decode_kernel[(S, H_q)](
        q, k_pages, v_pages, block_tables, seq_lens, o, 1.0 / math.sqrt(d),
        q.stride(0), q.stride(1),
        k_pages.stride(0), k_pages.stride(1), k_pages.stride(2),
        block_tables.stride(0),
        o.stride(0), o.stride(1),
        H_q // H_kv,
        BLOCK_SIZE=block_size, HEAD_DIM=d,
    )
    return o


def paged_attention_decode_triton(q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor,
                                  block_tables: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    """Same contract as ``paged_attention_decode``: ``o`` ``[S, H_q, d]`` in q's dtype.

    When ``_paged_decode_kernel`` has a body, replace the raise below with
    ``return _launch(q, k_pages, v_pages, block_tables, seq_lens)``.
    """
    raise NotImplementedError("kata paged_attention_decode_triton: write _paged_decode_kernel's "
                              "body, then return _launch(...)")
