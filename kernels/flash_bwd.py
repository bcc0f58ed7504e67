"""FlashAttention backward in Triton (FlashAttention-2 schedule, ``dao-2023``).

With ``S = sm_scale * Q K^T``, ``P = softmax(S)`` and ``O = P V``, the gradients are::

    dV = P^T dO
    dP = dO V^T
    dS = P * (dP - D),   D = rowsum(dO * O)    (the softmax Jacobian, one number per row)
    dQ = sm_scale * dS K
    dK = sm_scale * dS^T Q

P is never stored: each program recomputes a tile of it from Q, K and the forward's
``lse`` as ``P = exp(S - lse)`` (in the log2 domain, ``exp2(qk * sm_scale * log2 e -
lse * log2 e)``, the first product and the subtraction one FMA). Two launches:

1. ``_attn_bwd_preprocess`` -- ``D = rowsum(dO * O)``, float32 ``[B, H_q, N]``.
2. ``_attn_bwd`` -- one program per key tile of one KV head. It holds K, V and the dK,
   dV accumulators and streams query tiles past them, for every query head of its GQA
   group in turn, so the group's sum lands in one accumulator. Per (query tile, key
   tile) it runs five matmuls -- ``Q K^T`` (to rebuild P), ``P^T dO``, ``dO V^T``,
   ``dS^T Q`` and ``dS K`` -- and adds the last, that tile's share of dQ, into a float32
   dQ buffer with atomic adds.

Five matmuls is the least the math allows (``dao-2023``). A separate dQ kernel that
streams key tiles past a query tile (the forward's loop shape) avoids the atomics but
must rebuild P and dP itself: seven matmuls per tile pair, 40% more tensor-core work.
The price of the atomics: dQ's float32 sums land in whatever order the programs finish,
so dQ can differ in the last bits from run to run (dK and dV cannot).

Masking: only query tiles that cross the causal diagonal pay for the mask; they run in
a short loop of their own before the unmasked loop. Rows past N load as zeros with ``lse = +inf``, which makes
their ``P`` exactly zero; keys past N load as zeros, so they add nothing to dQ.
"""

import math

import torch
import triton
import triton.language as tl

from ._tuning import INTERPRET, ConfigTable, bucket
from .flash_fwd import (GATE_DTYPES, GATE_HEAD_DIMS, LOG2E, _use_tma, check_qkv,
                        dot_precision)

GATE_HELPERS = ("_attn_bwd_tiles",)  # inlined into _attn_bwd; the gate compiles it there


# Tile table (BLOCK_M query rows streamed, BLOCK_N key rows held, warps, stages, where).
# A program holds k, v and two float32 [BLOCK_N, d] accumulators for its whole life, so
# wide key tiles need 8 warps to stay out of local memory. Every row passed the compile
# gate (no spill, shared memory within the limit) on sm_90 and sm_80 at the head dims it
# allows. Dropped for spills: 64 x 128 with 8 warps (0.2-2 KB at d = 128); 32 x 128 and
# 32 x 64 with 4 warps at d = 128 (sm_80); 64 x 64 with 8 warps at d = 64 (8 bytes, sm_80).
BWD_TABLE = ConfigTable(("BLOCK_M", "BLOCK_N"), [
    (32, 64, 8, 3, None),
    (64, 64, 8, 2, {"head_dims": (128,)}),
    (32, 64, 4, 2, {"head_dims": (16, 32, 64)}),
    (32, 128, 8, 2, {"head_dims": (16, 32, 64)}),
    (16, 64, 4, 2, None),
], interpret=(16, 16))


@triton.jit
def _attn_bwd_preprocess(O, DO, Delta,
                         stride_qz, stride_qh, stride_qm, stride_qk,
                         H_Q, N,
                         BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_M), B * H_q)``: ``Delta = rowsum(dO * O)`` for one row tile."""
    off_hz = tl.program_id(1)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    base = (off_hz // H_Q).to(tl.int64) * stride_qz + (off_hz % H_Q).to(tl.int64) * stride_qh
    ptrs = base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk
    row_ok = offs_m < N
    o = tl.load(O + ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    tl.store(Delta + off_hz.to(tl.int64) * N + offs_m, tl.sum(o * do, axis=1), mask=row_ok)


@triton.jit
def _attn_bwd_tiles(dk, dv, k, v, Q, DO, DQ, LSE, Delta, stride_qh, stride_qm, stride_qk,
                    offs_n, lo, hi, N, GROUP, sm_scale, qk_scale,
                    BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr,
                    DIAGONAL: tl.constexpr, DOT_PRECISION: tl.constexpr, USE_TMA: tl.constexpr):
    """Stream query tiles ``[lo, hi)`` of each of the GROUP query heads past the key tile
    (five matmuls each); return ``dk, dv`` and add the tiles' dQ shares into ``DQ``.

    ``Q, DO, DQ`` point at the group's first query head, ``LSE, Delta`` at its first row.
    One flat loop walks (head, tile) pairs, so the software pipeline runs through all the
    group's heads without draining between them, and the compiler sees one loop rather
    than a loop nest (with a loop over heads around this one, ptxas spilled at d = 128).
    ``DIAGONAL`` tiles hide keys after each query. (A runtime ``if`` choosing the mask
    inside one loop would save the second loop, but on sm_80 ptxas then falls back to 32
    registers and spills kilobytes: the compile gate caught it.)
    """
    offs_d = tl.arange(0, HEAD_DIM)
    tiles = tl.cdiv(hi - lo, BLOCK_M)
    if USE_TMA:
        # -- Hopper: the copy engine moves Q, dO in and reduces dQ out; one descriptor
        # spans the group's heads [GROUP, N, d] and clips each head at N
        q_desc = tl.make_tensor_descriptor(Q, shape=[GROUP, N, HEAD_DIM],
                                           strides=[stride_qh, stride_qm, 1],
                                           block_shape=[1, BLOCK_M, HEAD_DIM])
        do_desc = tl.make_tensor_descriptor(DO, shape=[GROUP, N, HEAD_DIM],
                                            strides=[stride_qh, stride_qm, 1],
                                            block_shape=[1, BLOCK_M, HEAD_DIM])
        dq_desc = tl.make_tensor_descriptor(DQ, shape=[GROUP, N, HEAD_DIM],
                                            strides=[stride_qh, stride_qm, 1],
                                            block_shape=[1, BLOCK_M, HEAD_DIM])
    for it in range(0, GROUP * tiles):
        g = it // tiles  # which query head of the group
        start_m = lo + (it - g * tiles) * BLOCK_M
        offs_m = start_m + tl.arange(0, BLOCK_M)
        row_ok = offs_m < N
        q_ptrs = g * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk
        # -- load Q, dO [BLOCK_M, HEAD_DIM] and the row statistics --
        if USE_TMA:
            q = tl.reshape(q_desc.load([g, start_m, 0]), [BLOCK_M, HEAD_DIM])
            do = tl.reshape(do_desc.load([g, start_m, 0]), [BLOCK_M, HEAD_DIM])
        else:
            q = tl.load(Q + q_ptrs, mask=row_ok[:, None], other=0.0)
            do = tl.load(DO + q_ptrs, mask=row_ok[:, None], other=0.0)
        rows = g * N + offs_m
        lse2 = tl.load(LSE + rows, mask=row_ok, other=float("inf")) * LOG2E
        Di = tl.load(Delta + rows, mask=row_ok, other=0.0)
        # -- (1) rebuild P^T [BLOCK_N, BLOCK_M] from lse: one FMA and one exp2 --
        qkT = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION)
        pT = tl.math.exp2(tl.fma(qkT, qk_scale, -lse2[None, :]))
        if DIAGONAL:
            pT = tl.where(offs_m[None, :] >= offs_n[:, None], pT, 0.0)
        # -- (2) dV += P^T dO --
        dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=DOT_PRECISION)
        # -- (3) dP^T = V dO^T; dS^T = P^T * (dP^T - D) --
        dpT = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        dsT = (pT * (dpT - Di[None, :])).to(q.dtype)
        # -- (4) dK += dS^T Q --
        dk = tl.dot(dsT, q, dk, input_precision=DOT_PRECISION)
        # -- (5) this key tile's share of dQ = dS K, added into float32 dQ --
        dq = tl.dot(tl.trans(dsT), k, input_precision=DOT_PRECISION) * sm_scale
        if USE_TMA:
            dq_desc.atomic_add([g, start_m, 0], tl.reshape(dq, [1, BLOCK_M, HEAD_DIM]))
        else:
            tl.atomic_add(DQ + q_ptrs, dq, mask=row_ok[:, None], sem="relaxed")
    return dk, dv


@triton.autotune(configs=BWD_TABLE.configs,
                 key=["N_BUCKET", "BH", "GROUP", "HEAD_DIM", "CAUSAL", "USE_TMA"],
                 prune_configs_by={"early_config_prune": BWD_TABLE.prune},
                 reset_to_zero=["DQ"])  # each timing run adds into DQ: start it from zero
@triton.jit
def _attn_bwd(Q, K, V, DO, LSE, Delta, DQ, DK, DV, sm_scale,
              stride_qz, stride_qh, stride_qm, stride_qk,
              stride_kz, stride_kh, stride_kn, stride_kk,
              H_Q, H_KV, GROUP, N, N_BUCKET, BH,
              HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
              USE_TMA: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_N), B * H_kv)``: dK, dV of one key tile (summed over its GQA
    group) and that tile's float32 share of dQ, added atomically.

    Q, dO and the float32 DQ share ``stride_q*``; K, V, dK, dV share ``stride_k*``.
    ``N_BUCKET`` and ``BH`` only key the autotuner.
    """
    tl.static_assert(BLOCK_N % BLOCK_M == 0, "the causal diagonal must be whole query tiles")
    start_n = tl.program_id(0) * BLOCK_N  # causal: tile 0 sees every query, so it goes first
    off_zkv = tl.program_id(1)
    off_z = (off_zkv // H_KV).to(tl.int64)
    off_kvh = (off_zkv % H_KV).to(tl.int64)
    kv_base = off_z * stride_kz + off_kvh * stride_kh

    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    kv_ptrs = kv_base + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kk
    col_ok = offs_n[:, None] < N
    # -- the key tile stays put: k, v and the two accumulators live for the whole program
    k = tl.load(K + kv_ptrs, mask=col_ok, other=0.0)
    v = tl.load(V + kv_ptrs, mask=col_ok, other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * LOG2E

    # the group's first query head: its rows of Q, dO, dQ and of lse, Delta
    q_base = off_z * stride_qz + off_kvh * GROUP * stride_qh
    row_base = (off_z * H_Q + off_kvh * GROUP) * N
    if CAUSAL:
        # query tiles inside this key tile's span cross the diagonal: masked
        diag_hi = tl.minimum(start_n + BLOCK_N, N)
        dk, dv = _attn_bwd_tiles(dk, dv, k, v, Q + q_base, DO + q_base, DQ + q_base,
                                 LSE + row_base, Delta + row_base,
                                 stride_qh, stride_qm, stride_qk, offs_n, start_n, diag_hi,
                                 N, GROUP, sm_scale, qk_scale,
                                 BLOCK_M, HEAD_DIM, True, DOT_PRECISION, USE_TMA)
        lo = diag_hi  # later query tiles see the whole key tile; earlier ones none of it
    else:
        lo = 0
    dk, dv = _attn_bwd_tiles(dk, dv, k, v, Q + q_base, DO + q_base, DQ + q_base,
                             LSE + row_base, Delta + row_base,
                             stride_qh, stride_qm, stride_qk, offs_n, lo, N,
                             N, GROUP, sm_scale, qk_scale,
                             BLOCK_M, HEAD_DIM, False, DOT_PRECISION, USE_TMA)

    dk *= sm_scale
    tl.store(DK + kv_ptrs, dk.to(DK.dtype.element_ty), mask=col_ok)
    tl.store(DV + kv_ptrs, dv.to(DV.dtype.element_ty), mask=col_ok)


def flash_bwd(q, k, v, o, lse, do, causal=False, sm_scale=None):
    """Gradients of ``o = softmax(q k^T * sm_scale) v`` from the forward's ``o`` and ``lse``.

    :param q: ``[B, H_q, N, d]``; ``k, v``: ``[B, H_kv, N, d]`` (GQA when ``H_kv < H_q``).
    :param o: the forward output, like ``q``.
    :param lse: float32 ``[B, H_q, N]``, natural-log sum-exp from :func:`flash_fwd`.
    :param do: the upstream gradient, like ``q``.
    :returns: ``(dq, dk, dv)`` shaped and typed like ``q, k, v``; a KV head's gradient
        is the sum over the query heads that share it.
    """
    return _backward(q, k, v, o, lse, do, causal, sm_scale, use_tma=None)


def _backward(q, k, v, o, lse, do, causal, sm_scale, use_tma):
    """:func:`flash_bwd` with the load path chosen (``None``: TMA where the GPU has it)."""
    B, H_q, H_kv, N, d = check_qkv(q, k, v)
    # one layout per role: Q, O, dO, dQ share strides; K, V, dK, dV share strides
    q, k, v, o, do = (t.contiguous() for t in (q, k, v, o, do))
    lse = lse.contiguous()
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    dq32 = torch.zeros(q.shape, device=q.device, dtype=torch.float32)  # atomics add into it
    if q.numel() == 0:
        return dq32.to(q.dtype), dk, dv
    delta = torch.empty_like(lse)

    pre_block = 16 if INTERPRET else 128
    _attn_bwd_preprocess[(triton.cdiv(N, pre_block), B * H_q)](
        o, do, delta, *o.stride(), H_q, N, BLOCK_M=pre_block, HEAD_DIM=d)
    use_tma = _use_tma(q, do, dq32) if use_tma is None else use_tma
    grid, args = _launch_args(q, k, v, do, lse, delta, dq32, dk, dv, causal, sm_scale, use_tma)
    _attn_bwd[grid](**args)
    return dq32.to(q.dtype), dk, dv


def _launch_args(q, k, v, do, lse, delta, dq32, dk, dv, causal, sm_scale, use_tma):
    """The grid and every argument of ``_attn_bwd`` but the tile sizes (the autotuner's)."""
    B, H_q, H_kv, N, d = check_qkv(q, k, v)
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)

    def grid(meta):
        return (triton.cdiv(N, meta["BLOCK_N"]), B * H_kv)

    values = (q, k, v, do, lse, delta, dq32, dk, dv, sm_scale, *q.stride(), *k.stride(),
              H_q, H_kv, H_q // H_kv, N, bucket(N), B * H_q,
              d, causal, dot_precision(q.dtype), use_tma)
    return grid, dict(zip(_attn_bwd.fn.arg_names, values))


def gate_cases(arch):
    """Compile-gate cases (see ``attnkata.compilegate``) for one target ``arch`` (90, 80).

    ``_attn_bwd``: every config the table allows on ``arch``, for fp16 and bf16 x d in
    (64, 128) x (causal or not) x (GQA group 1 or 4), TMA on sm_90 and pointers on sm_80.
    The preprocess kernel at each dtype and d.
    """
    cases = []
    for dtype in GATE_DTYPES:
        for d in GATE_HEAD_DIMS:
            q = torch.empty(2, 8, 4096, d, dtype=dtype, device="meta")
            lse = torch.empty(2, 8, 4096, dtype=torch.float32, device="meta")
            dq32 = torch.empty(q.shape, dtype=torch.float32, device="meta")
            name = f"{str(dtype)[6:]} d{d}"
            pre = dict(zip(_attn_bwd_preprocess.arg_names,
                           (q, q, lse, *q.stride(), 8, 4096, 128, d)))
            cases.append({"kernel": _attn_bwd_preprocess, "label": name, "args": pre})
            for causal in (False, True):
                for group in (1, 4):
                    k = torch.empty(2, 8 // group, 4096, d, dtype=dtype, device="meta")
                    _, args = _launch_args(q, k, k, q, lse, lse, dq32, k, k, causal, None,
                                           use_tma=arch >= 90)
                    cases.append({"kernel": _attn_bwd, "args": args,
                                  "label": f"{name} {'causal' if causal else 'full'} g{group}",
                                  "configs": BWD_TABLE.select(d, arch)})
    return cases
