"""Paged-KV decode attention in Triton, with split-KV (flash-decoding).

Decoding adds one query token per sequence, so the work is reading the KV cache:
memory-bound, one pass over ``seq_len x H_kv x d`` keys and values per sequence. The
cache lives in fixed-size pages (``kwon-2023-paged``): logical token ``t`` of sequence
``s`` sits in physical page ``block_tables[s, t // page_size]`` at row ``t % page_size``.

``_paged_decode_split`` -- grid ``(S, H_kv, num_splits)``. A program owns one KV head of
one sequence and one contiguous share of its tokens. All query heads of the GQA group
ride along as the rows of one small ``q`` tile, so each K/V byte is read once per group,
not once per query head. Key tiles of ``BLOCK_N`` tokens are gathered page by page
through the block table and folded in with the online softmax (``m_i, l_i, acc``, log2
domain) of :mod:`attnkata_kernels.flash_fwd`. Each program writes its normalised
partial output and its ``lse``.

``_paged_decode_merge`` -- grid ``(S, H_q)``. When a sequence is split, the partials
over disjoint key sets combine with the log-sum-exp rule
``o = sum_j exp(lse_j - lse) o_j`` with ``lse = log sum_j exp(lse_j)``; an empty share
has ``lse = -inf`` and weight zero.

Splitting matters when ``S * H_kv`` programs cannot keep every SM streaming: at batch
32 with 8 KV heads an H100 (132 SMs) sees only 256 programs, so each sequence is cut in
a few shares to put several programs on every SM.

Shapes: ``q`` ``[S, H_q, d]``; ``k_pages, v_pages`` ``[num_blocks, page_size, H_kv, d]``;
``block_tables`` int32 ``[S, max_blocks]``; ``seq_lens`` int32 ``[S]``; ``o`` like ``q``.
"""

import math

import torch
import triton
import triton.language as tl

from .flash_fwd import INTERPRET, LN2, LOG2E, dot_precision


def _split_configs():
    if INTERPRET:
        return [triton.Config({"BLOCK_N": 16}, num_warps=1, num_stages=1)]
    # memory-bound: enough tokens per tile and pipeline stages to keep loads in flight
    return [triton.Config({"BLOCK_N": bn}, num_warps=w, num_stages=s)
            for bn, w, s in [(64, 4, 2), (64, 4, 3), (128, 4, 2), (128, 8, 3), (32, 4, 4)]]


@triton.autotune(configs=_split_configs(),
                 key=["HEAD_DIM", "GROUP_PAD", "PAGE_SIZE", "NUM_SPLITS"])
@triton.jit
def _paged_decode_split(Q, K_pages, V_pages, Block_tables, Seq_lens, Out, Out_lse, qk_scale,
                        stride_qs, stride_qh, stride_qd,
                        stride_kb, stride_kt, stride_kh, stride_kd,
                        stride_vb, stride_vt, stride_vh, stride_vd,
                        stride_bts, stride_btb,
                        stride_os, stride_oh, stride_osplit, stride_od,
                        stride_ls, stride_lh, stride_lsplit,
                        GROUP, NUM_SPLITS,
                        HEAD_DIM: tl.constexpr, GROUP_PAD: tl.constexpr, PAGE_SIZE: tl.constexpr,
                        DOT_PRECISION: tl.constexpr, BLOCK_N: tl.constexpr):
    """One (sequence, KV head, split): partial attention of the group's query heads."""
    tl.static_assert(GROUP_PAD >= 16, "tl.dot needs at least 16 rows; pad the query group")
    seq = tl.program_id(0)
    off_kvh = tl.program_id(1)
    split = tl.program_id(2)

    # this split's share of the sequence: a whole number of key tiles
    seq_len = tl.load(Seq_lens + seq)
    tiles_per_split = tl.cdiv(tl.cdiv(seq_len, BLOCK_N), NUM_SPLITS)
    lo = split * tiles_per_split * BLOCK_N
    hi = tl.minimum(lo + tiles_per_split * BLOCK_N, seq_len)

    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)
    heads = off_kvh * GROUP + offs_g
    head_ok = offs_g < GROUP
    q = tl.load(Q + seq * stride_qs + heads[:, None] * stride_qh + offs_d[None, :] * stride_qd,
                mask=head_ok[:, None], other=0.0)

    m_i = tl.full([GROUP_PAD], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([GROUP_PAD], dtype=tl.float32)
    acc = tl.zeros([GROUP_PAD, HEAD_DIM], dtype=tl.float32)
    Tables = Block_tables + seq.to(tl.int64) * stride_bts
    for start_n in range(lo, hi, BLOCK_N):
        tok = start_n + offs_n
        tok_ok = tok < hi
        # -- page lookup: logical token -> (physical page, row in page) --
        page = tl.load(Tables + (tok // PAGE_SIZE) * stride_btb, mask=tok_ok, other=0).to(tl.int64)
        row = tok % PAGE_SIZE
        k_rows = page * stride_kb + row * stride_kt + off_kvh * stride_kh
        v_rows = page * stride_vb + row * stride_vt + off_kvh * stride_vh
        # -- gather K^T [HEAD_DIM, BLOCK_N] and V [BLOCK_N, HEAD_DIM] --
        kT = tl.load(K_pages + k_rows[None, :] + offs_d[:, None] * stride_kd,
                     mask=tok_ok[None, :], other=0.0)
        v = tl.load(V_pages + v_rows[:, None] + offs_d[None, :] * stride_vd,
                    mask=tok_ok[:, None], other=0.0)
        # -- scores in the log2 domain; tokens past this share are hidden --
        qk = tl.dot(q, kT, input_precision=DOT_PRECISION) * qk_scale
        qk = tl.where(tok_ok[None, :], qk, float("-inf"))
        # -- online softmax update --
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_ij

    # an empty share (more splits than tiles) stores o = 0, lse = -inf: weight zero in the merge
    nonempty = l_i > 0.0
    l_safe = tl.where(nonempty, l_i, 1.0)
    acc = acc / l_safe[:, None]
    lse = tl.where(nonempty, (m_i + tl.math.log2(l_safe)) * LN2, float("-inf"))
    Out += seq * stride_os + split * stride_osplit
    Out_lse += seq * stride_ls + split * stride_lsplit
    tl.store(Out + heads[:, None] * stride_oh + offs_d[None, :] * stride_od,
             acc.to(Out.dtype.element_ty), mask=head_ok[:, None])
    tl.store(Out_lse + heads * stride_lh, lse, mask=head_ok)


@triton.jit
def _paged_decode_merge(Mid, Mid_lse, Out,
                        stride_ms, stride_mh, stride_msplit, stride_md,
                        stride_ls, stride_lh, stride_lsplit,
                        stride_os, stride_oh, stride_od,
                        NUM_SPLITS, SPLITS_PAD: tl.constexpr, HEAD_DIM: tl.constexpr):
    """One (sequence, query head): merge the split partials by their log-sum-exp weights."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    split_ok = offs_s < NUM_SPLITS
    lse = tl.load(Mid_lse + seq * stride_ls + head * stride_lh + offs_s * stride_lsplit,
                  mask=split_ok, other=float("-inf"))
    o = tl.load(Mid + seq * stride_ms + head * stride_mh + offs_s[:, None] * stride_msplit
                + offs_d[None, :] * stride_md, mask=split_ok[:, None], other=0.0)
    # split 0 always holds the first token, so the max is finite
    w = tl.math.exp2((lse - tl.max(lse, 0)) * LOG2E)
    out = tl.sum(w[:, None] * o, 0) / tl.sum(w, 0)
    tl.store(Out + seq * stride_os + head * stride_oh + offs_d * stride_od,
             out.to(Out.dtype.element_ty))


def pick_num_splits(S, H_kv, max_tokens, device):
    """Splits per sequence so that the split kernel puts about four programs on every SM.

    One when there is work enough already, on the interpreter, or for short contexts.
    """
    if INTERPRET or device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    splits = triton.cdiv(4 * sms, S * H_kv)
    return max(1, min(splits, triton.cdiv(max_tokens, 256), 64))


def paged_decode(q, k_pages, v_pages, block_tables, seq_lens, sm_scale=None, num_splits=None):
    """Attention of one new token per sequence over its paged KV cache.

    :param q: ``[S, H_q, d]``, fp32/fp16/bf16.
    :param k_pages: ``[num_blocks, page_size, H_kv, d]``, q's dtype; ``H_kv`` divides ``H_q``.
    :param v_pages: like ``k_pages``.
    :param block_tables: int32 ``[S, max_blocks]``; entries past a sequence's pages are ignored.
    :param seq_lens: int32 ``[S]``, each ``>= 1``.
    :param sm_scale: score scale; default ``1 / sqrt(d)``.
    :param num_splits: key shares per sequence (split-KV); ``None`` picks by GPU occupancy.
    :returns: ``o`` ``[S, H_q, d]`` in q's dtype.
    """
    S, H_q, d = q.shape
    num_blocks, page_size, H_kv, d_k = k_pages.shape
    if v_pages.shape != k_pages.shape or d_k != d or H_q % H_kv:
        raise ValueError(f"q {tuple(q.shape)}, k_pages {tuple(k_pages.shape)}, "
                         f"v_pages {tuple(v_pages.shape)} do not fit together")
    if not q.dtype == k_pages.dtype == v_pages.dtype:
        raise TypeError(f"q, k_pages, v_pages dtypes differ: {q.dtype}, {k_pages.dtype}, "
                        f"{v_pages.dtype}")
    if page_size & (page_size - 1) or d & (d - 1) or d < 16:
        raise ValueError(f"page size {page_size} and head dim {d} must be powers of two (d >= 16)")
    if block_tables.shape[0] != S or seq_lens.shape != (S,):
        raise ValueError("block_tables and seq_lens need one row per sequence")
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    group = H_q // H_kv
    if num_splits is None:
        num_splits = pick_num_splits(S, H_kv, block_tables.shape[1] * page_size, q.device)
    o = torch.empty_like(q)
    if o.numel() == 0:
        return o

    if num_splits == 1:
        mid = o.unsqueeze(2)  # [S, H_q, 1, d]: the split kernel's result is final
    else:
        mid = torch.empty((S, H_q, num_splits, d), device=q.device, dtype=torch.float32)
    mid_lse = torch.empty((S, H_q, num_splits), device=q.device, dtype=torch.float32)
    _paged_decode_split[(S, H_kv, num_splits)](
        q, k_pages, v_pages, block_tables, seq_lens, mid, mid_lse, sm_scale * LOG2E.value,
        *q.stride(), *k_pages.stride(), *v_pages.stride(), *block_tables.stride(),
        *mid.stride(), *mid_lse.stride(),
        group, num_splits,
        HEAD_DIM=d, GROUP_PAD=max(16, triton.next_power_of_2(group)), PAGE_SIZE=page_size,
        DOT_PRECISION=dot_precision(q.dtype),
    )
    if num_splits > 1:
        _paged_decode_merge[(S, H_q)](
            mid, mid_lse, o, *mid.stride(), *mid_lse.stride(), *o.stride(),
            num_splits, SPLITS_PAD=triton.next_power_of_2(num_splits), HEAD_DIM=d)
    return o
