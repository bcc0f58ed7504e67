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
32 with 8 KV heads an H100 (132 SMs) sees only 256 programs. :func:`pick_num_splits`
counts the programs the GPU holds at once (SMs x programs per SM) and picks the split
count with the fewest, fullest waves, so no thin last wave keeps the GPU waiting.

Pipelining a gather: a K/V tile's address depends on a block-table load. Loaded in the
same iteration, that lookup sits between the loop's start and the K/V loads, so the
compiler cannot issue the K/V loads of later iterations early and each iteration waits
on DRAM. Here the next tile's pages are looked up one iteration ahead, so the K/V
addresses of an iteration are known when it starts, and ``num_stages`` can keep several
tiles in flight.

Shapes: ``q`` ``[S, H_q, d]``; ``k_pages, v_pages`` ``[num_blocks, page_size, H_kv, d]``;
``block_tables`` int32 ``[S, max_blocks]``; ``seq_lens`` int32 ``[S]``; ``o`` like ``q``.
"""

import math

import torch
import triton
import triton.language as tl

from ._tuning import INTERPRET, ConfigTable, bucket
from .flash_fwd import GATE_DTYPES, GATE_HEAD_DIMS, LN2, LOG2E, dot_precision

# Tile table (BLOCK_N tokens per step, warps, stages, where). Memory-bound: enough tokens
# per tile, and pipeline stages, to keep several K/V loads in flight per program. Every
# row passed the compile gate on sm_90 and sm_80.
SPLIT_TABLE = ConfigTable(("BLOCK_N",), [
    (64, 4, 2, None),
    (64, 4, 3, None),
    (128, 4, 2, None),
    (128, 8, 3, None),
    (32, 4, 4, None),
], interpret=(16,))


@triton.autotune(configs=SPLIT_TABLE.configs,
                 key=["SEQ_BUCKET", "GROUP", "HEAD_DIM", "GROUP_PAD", "PAGE_SIZE", "NUM_SPLITS"],
                 prune_configs_by={"early_config_prune": SPLIT_TABLE.prune})
@triton.jit
def _paged_decode_split(Q, K_pages, V_pages, Block_tables, Seq_lens, Out, Out_lse, qk_scale,
                        stride_qs, stride_qh, stride_qd,
                        stride_kb, stride_kt, stride_kh, stride_kd,
                        stride_vb, stride_vt, stride_vh, stride_vd,
                        stride_bts, stride_btb,
                        stride_os, stride_oh, stride_osplit, stride_od,
                        stride_ls, stride_lh, stride_lsplit,
                        GROUP, NUM_SPLITS, SEQ_BUCKET,
                        HEAD_DIM: tl.constexpr, GROUP_PAD: tl.constexpr, PAGE_SIZE: tl.constexpr,
                        DOT_PRECISION: tl.constexpr, BLOCK_N: tl.constexpr):
    """One (sequence, KV head, split): partial attention of the group's query heads.

    ``SEQ_BUCKET`` (tokens per split, rounded up to a power of two) only keys the autotuner.
    """
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
    # -- page lookup for the first tile: logical token -> physical page --
    tok = lo + offs_n
    page = tl.load(Tables + (tok // PAGE_SIZE) * stride_btb, mask=tok < hi, other=0).to(tl.int64)
    for start_n in range(lo, hi, BLOCK_N):
        tok = start_n + offs_n
        tok_ok = tok < hi
        row = tok % PAGE_SIZE  # row inside the page
        k_rows = page * stride_kb + row * stride_kt + off_kvh * stride_kh
        v_rows = page * stride_vb + row * stride_vt + off_kvh * stride_vh
        # -- gather K^T [HEAD_DIM, BLOCK_N] and V [BLOCK_N, HEAD_DIM]: their addresses came
        # from the previous iteration, so the compiler can issue them stages ahead
        kT = tl.load(K_pages + k_rows[None, :] + offs_d[:, None] * stride_kd,
                     mask=tok_ok[None, :], other=0.0)
        v = tl.load(V_pages + v_rows[:, None] + offs_d[None, :] * stride_vd,
                    mask=tok_ok[:, None], other=0.0)
        # -- look up the NEXT tile's pages now, one iteration ahead of their use --
        nxt = tok + BLOCK_N
        page = tl.load(Tables + (nxt // PAGE_SIZE) * stride_btb, mask=nxt < hi,
                       other=0).to(tl.int64)
        # -- raw scores; tokens past this share are hidden --
        qk = tl.dot(q, kT, input_precision=DOT_PRECISION)
        qk = tl.where(tok_ok[None, :], qk, float("-inf"))
        # -- online softmax update: scale and max subtraction in one FMA, base 2 --
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(tl.fma(qk, qk_scale, -m_ij[:, None]))
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


PROGRAMS_PER_SM = 4
"""Split programs one SM holds at once: a 4-warp program near 128 registers per thread
uses a quarter of the SM's 64K registers (Hopper and Ampere alike)."""

DEFAULT_SMS = 132
"""SM count assumed when no GPU is visible (H100 SXM), for planning on a CPU."""

MIN_TOKENS_PER_SPLIT = 256
"""A split shorter than this spends more on its merge than it saves."""


def resident_programs(device=None):
    """How many split programs the GPU runs at once: its SM count x ``PROGRAMS_PER_SM``."""
    if device is not None and getattr(device, "type", None) == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    else:
        sms = DEFAULT_SMS
    return sms * PROGRAMS_PER_SM


def pick_num_splits(S, H_kv, max_tokens, device, resident=None):
    """Splits per sequence that finish the decode in the fewest, fullest waves.

    ``S * H_kv * splits`` programs run ``resident`` at a time (:func:`resident_programs`),
    each over ``max_tokens / splits`` tokens, so the time goes as
    ``ceil(S * H_kv * splits / resident) * ceil(max_tokens / splits)``: waves times the
    length of one. The fewest splits at the minimum win (each split costs a merge). A
    rule like "enough splits for four programs per SM" can instead land on 1.16 waves,
    where the last 0.16 of a wave keeps the whole GPU waiting for a full split's time.

    One split on the interpreter or without CUDA, unless ``resident`` is given.
    """
    if resident is None:
        if INTERPRET or device.type != "cuda":
            return 1
        resident = resident_programs(device)
    programs = S * H_kv
    most = max(1, min(64, triton.cdiv(max_tokens, MIN_TOKENS_PER_SPLIT)))

    def cost(splits):
        return triton.cdiv(programs * splits, resident) * triton.cdiv(max_tokens, splits)

    return min(range(1, most + 1), key=lambda splits: (cost(splits), splits))


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
    grid, args = _split_args(q, k_pages, v_pages, block_tables, seq_lens, mid, mid_lse,
                             sm_scale, num_splits)
    _paged_decode_split[grid](**args)
    if num_splits > 1:
        _paged_decode_merge[(S, H_q)](
            mid, mid_lse, o, *mid.stride(), *mid_lse.stride(), *o.stride(),
            num_splits, SPLITS_PAD=triton.next_power_of_2(num_splits), HEAD_DIM=d)
    return o


def _split_args(q, k_pages, v_pages, block_tables, seq_lens, mid, mid_lse, sm_scale,
                num_splits):
    """The grid and every argument of ``_paged_decode_split`` but ``BLOCK_N``."""
    S, H_q, d = q.shape
    page_size, H_kv = k_pages.shape[1], k_pages.shape[2]
    group = H_q // H_kv
    max_tokens = block_tables.shape[1] * page_size
    values = (q, k_pages, v_pages, block_tables, seq_lens, mid, mid_lse, sm_scale * LOG2E.value,
              *q.stride(), *k_pages.stride(), *v_pages.stride(), *block_tables.stride(),
              *mid.stride(), *mid_lse.stride(),
              group, num_splits, bucket(triton.cdiv(max_tokens, num_splits)),
              d, max(16, triton.next_power_of_2(group)), page_size, dot_precision(q.dtype))
    return (S, H_kv, num_splits), dict(zip(_paged_decode_split.fn.arg_names, values))


def gate_cases(arch):
    """Compile-gate cases (see ``attnkata.compilegate``) for one target ``arch`` (90, 80).

    32 sequences of up to 4096 tokens in 16-token pages, 8 query heads: the split kernel
    at every config for each dtype, d in (64, 128) and GQA group 1 or 4, with 4 splits
    (a float32 partial buffer); the merge kernel at each dtype and d.
    """
    cases = []
    S, H_q, splits, page = 32, 8, 4, 16
    for dtype in GATE_DTYPES:
        for d in GATE_HEAD_DIMS:
            q = torch.empty(S, H_q, d, dtype=dtype, device="meta")
            mid = torch.empty(S, H_q, splits, d, dtype=torch.float32, device="meta")
            mid_lse = torch.empty(S, H_q, splits, dtype=torch.float32, device="meta")
            tables = torch.empty(S, 4096 // page, dtype=torch.int32, device="meta")
            seq_lens = torch.empty(S, dtype=torch.int32, device="meta")
            name = f"{str(dtype)[6:]} d{d}"
            for group in (1, 4):
                pages = torch.empty(S * 4096 // page, page, H_q // group, d, dtype=dtype,
                                    device="meta")
                _, args = _split_args(q, pages, pages, tables, seq_lens, mid, mid_lse, 0.1,
                                      splits)
                cases.append({"kernel": _paged_decode_split, "args": args,
                              "label": f"{name} g{group}", "configs": SPLIT_TABLE.select(d, arch)})
            merge = dict(zip(_paged_decode_merge.arg_names,
                             (mid, mid_lse, q, *mid.stride(), *mid_lse.stride(), *q.stride(),
                              splits, triton.next_power_of_2(splits), d)))
            cases.append({"kernel": _paged_decode_merge, "label": name, "args": merge})
    return cases
