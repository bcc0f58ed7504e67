"""FlashAttention backward in Triton (FlashAttention-2 schedule, ``dao-2023``).

With ``S = sm_scale * Q K^T``, ``P = softmax(S)`` and ``O = P V``, the gradients are::

    dV = P^T dO
    dP = dO V^T
    dS = P * (dP - D),   D = rowsum(dO * O)    (the softmax Jacobian, one number per row)
    dQ = sm_scale * dS K
    dK = sm_scale * dS^T Q

P is never stored: each kernel recomputes a tile of it from Q, K and the forward's
``lse`` as ``P = exp(S - lse)`` (in the log2 domain, ``exp2(S * log2 e - lse * log2 e)``).
Three launches:

1. ``_attn_bwd_preprocess`` -- ``D = rowsum(dO * O)``, float32 ``[B, H_q, N]``.
2. ``_attn_bwd_dkdv`` -- one program per key tile of one KV head; it holds K, V and the
   dK, dV accumulators and streams query tiles past them, for every query head of its
   GQA group in turn, so the group's sum lands in one accumulator (no atomics, no
   per-query-head copy of dK, dV).
3. ``_attn_bwd_dq`` -- one program per query tile, streaming key tiles (the forward's
   loop shape), so dQ needs no atomics either.

Masking follows the forward: tiles strictly off the causal diagonal take no score mask;
rows past N load as zeros with ``lse = +inf``, which makes their ``P`` exactly zero.
"""

import math

import torch
import triton
import triton.language as tl

from .flash_fwd import INTERPRET, LOG2E, check_qkv, dot_precision


def _configs(m_name, n_name, shapes):
    if INTERPRET:
        return [triton.Config({m_name: 16, n_name: 16}, num_warps=1, num_stages=1)]
    return [triton.Config({m_name: bm, n_name: bn}, num_warps=w, num_stages=s)
            for bm, bn, w, s in shapes]


# dK/dV: wide key tiles stay resident, narrow query tiles stream past them; dQ: the reverse.
_DKDV_CONFIGS = _configs("BLOCK_M", "BLOCK_N", [
    (32, 128, 4, 3), (32, 128, 8, 3), (64, 128, 8, 2), (64, 128, 8, 3),
    (32, 64, 4, 3), (64, 64, 4, 3),
])
_DQ_CONFIGS = _configs("BLOCK_M", "BLOCK_N", [
    (128, 32, 4, 3), (128, 32, 8, 3), (128, 64, 8, 2), (128, 64, 8, 3),
    (64, 32, 4, 3), (64, 64, 4, 3),
])


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
def _attn_bwd_dkdv_inner(dk, dv, k, v, Q, DO, LSE, Delta,
                         stride_qm, stride_qk, offs_n, lo, hi, N, qk_scale,
                         BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr,
                         DIAGONAL: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Add query tiles ``[lo, hi)`` of one query head to the key tile's ``dk, dv``.

    Works on transposed tiles (keys along rows) so ``k, v, dk, dv`` never move.
    """
    offs_d = tl.arange(0, HEAD_DIM)
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        row_ok = offs_m < N
        # -- load Q^T [HEAD_DIM, BLOCK_M], dO [BLOCK_M, HEAD_DIM] and the row statistics --
        qT = tl.load(Q + offs_m[None, :] * stride_qm + offs_d[:, None] * stride_qk,
                     mask=row_ok[None, :], other=0.0)
        do = tl.load(DO + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk,
                     mask=row_ok[:, None], other=0.0)
        lse2 = tl.load(LSE + offs_m, mask=row_ok, other=float("inf")) * LOG2E
        Di = tl.load(Delta + offs_m, mask=row_ok, other=0.0)
        # -- recompute P^T from lse --
        qkT = tl.dot(k, qT, input_precision=DOT_PRECISION)
        pT = tl.math.exp2(qkT * qk_scale - lse2[None, :])
        if DIAGONAL:
            pT = tl.where(offs_m[None, :] >= offs_n[:, None], pT, 0.0)
        # -- dV += P^T dO --
        dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=DOT_PRECISION)
        # -- dS^T = P^T * (dP^T - D); dK += dS^T Q --
        dpT = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        dsT = pT * (dpT - Di[None, :])
        dk = tl.dot(dsT.to(qT.dtype), tl.trans(qT), dk, input_precision=DOT_PRECISION)
    return dk, dv


@triton.autotune(configs=_DKDV_CONFIGS, key=["N", "HEAD_DIM", "CAUSAL"])
@triton.jit
def _attn_bwd_dkdv(Q, K, V, DO, LSE, Delta, DK, DV, sm_scale,
                   stride_qz, stride_qh, stride_qm, stride_qk,
                   stride_kz, stride_kh, stride_kn, stride_kk,
                   H_Q, H_KV, GROUP, N,
                   HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_N), B * H_kv)``: dK, dV of one key tile, summed over its GQA group.

    Q, dO share ``stride_q*``; K, V, dK, dV share ``stride_k*``.
    """
    tl.static_assert(BLOCK_N % BLOCK_M == 0, "the causal diagonal must be whole query tiles")
    start_n = tl.program_id(0) * BLOCK_N
    off_zkv = tl.program_id(1)
    off_z = (off_zkv // H_KV).to(tl.int64)
    off_kvh = (off_zkv % H_KV).to(tl.int64)
    kv_base = off_z * stride_kz + off_kvh * stride_kh

    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    kv_ptrs = kv_base + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kk
    col_ok = offs_n[:, None] < N
    k = tl.load(K + kv_ptrs, mask=col_ok, other=0.0)
    v = tl.load(V + kv_ptrs, mask=col_ok, other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * LOG2E

    for g in range(GROUP):
        off_h = off_kvh * GROUP + g
        q_base = off_z * stride_qz + off_h * stride_qh
        row_base = (off_z * H_Q + off_h) * N
        if CAUSAL:
            # queries inside this key tile see part of it: masked; later queries see all of it
            diag_hi = tl.minimum(start_n + BLOCK_N, N)
            dk, dv = _attn_bwd_dkdv_inner(dk, dv, k, v, Q + q_base, DO + q_base,
                                          LSE + row_base, Delta + row_base,
                                          stride_qm, stride_qk, offs_n, start_n, diag_hi, N,
                                          qk_scale, BLOCK_M, HEAD_DIM, True, DOT_PRECISION)
            lo = diag_hi
        else:
            lo = 0
        dk, dv = _attn_bwd_dkdv_inner(dk, dv, k, v, Q + q_base, DO + q_base,
                                      LSE + row_base, Delta + row_base,
                                      stride_qm, stride_qk, offs_n, lo, N, N,
                                      qk_scale, BLOCK_M, HEAD_DIM, False, DOT_PRECISION)

    dk *= sm_scale
    tl.store(DK + kv_ptrs, dk.to(DK.dtype.element_ty), mask=col_ok)
    tl.store(DV + kv_ptrs, dv.to(DV.dtype.element_ty), mask=col_ok)


@triton.jit
def _attn_bwd_dq_inner(dq, q, do, lse2, Di, K, V,
                       stride_kn, stride_kk, offs_m, lo, hi, N, qk_scale,
                       BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                       MASKED: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Add key tiles ``[lo, hi)`` to the query tile's ``dq`` (``MASKED`` as in the forward)."""
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        # -- load K^T and V^T [HEAD_DIM, BLOCK_N] --
        ptrs = cols[None, :] * stride_kn + offs_d[:, None] * stride_kk
        if MASKED:
            kT = tl.load(K + ptrs, mask=cols[None, :] < N, other=0.0)
            vT = tl.load(V + ptrs, mask=cols[None, :] < N, other=0.0)
        else:
            kT = tl.load(K + ptrs)
            vT = tl.load(V + ptrs)
        # -- recompute P from lse --
        qk = tl.dot(q, kT, input_precision=DOT_PRECISION)
        p = tl.math.exp2(qk * qk_scale - lse2[:, None])
        if MASKED:
            visible = cols[None, :] < N
            if CAUSAL:
                visible = visible & (offs_m[:, None] >= cols[None, :])
            p = tl.where(visible, p, 0.0)
        # -- dS = P * (dP - D); dQ += dS K --
        dp = tl.dot(do, vT, input_precision=DOT_PRECISION)
        ds = p * (dp - Di[:, None])
        dq = tl.dot(ds.to(kT.dtype), tl.trans(kT), dq, input_precision=DOT_PRECISION)
    return dq


@triton.autotune(configs=_DQ_CONFIGS, key=["N", "HEAD_DIM", "CAUSAL"])
@triton.jit
def _attn_bwd_dq(Q, K, V, DO, LSE, Delta, DQ, sm_scale,
                 stride_qz, stride_qh, stride_qm, stride_qk,
                 stride_kz, stride_kh, stride_kn, stride_kk,
                 H_Q, GROUP, N,
                 HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_M), B * H_q)``: dQ of one query tile.

    Q, dO, dQ share ``stride_q*``; K, V share ``stride_k*``.
    """
    tl.static_assert(BLOCK_M % BLOCK_N == 0, "the causal diagonal must be whole key tiles")
    start_m = tl.program_id(0) * BLOCK_M
    off_hz = tl.program_id(1)
    off_z = (off_hz // H_Q).to(tl.int64)
    off_h = (off_hz % H_Q).to(tl.int64)
    q_base = off_z * stride_qz + off_h * stride_qh
    kv_base = off_z * stride_kz + (off_h // GROUP) * stride_kh
    row_base = off_hz.to(tl.int64) * N

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N
    q_ptrs = q_base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk
    q = tl.load(Q + q_ptrs, mask=row_ok[:, None], other=0.0)
    do = tl.load(DO + q_ptrs, mask=row_ok[:, None], other=0.0)
    lse2 = tl.load(LSE + row_base + offs_m, mask=row_ok, other=float("inf")) * LOG2E
    Di = tl.load(Delta + row_base + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * LOG2E

    if CAUSAL:
        full_hi = start_m
        masked_hi = tl.minimum(start_m + BLOCK_M, N)
    else:
        full_hi = (N // BLOCK_N) * BLOCK_N
        masked_hi = N
    dq = _attn_bwd_dq_inner(dq, q, do, lse2, Di, K + kv_base, V + kv_base,
                            stride_kn, stride_kk, offs_m, 0, full_hi, N, qk_scale,
                            BLOCK_N, HEAD_DIM, False, CAUSAL, DOT_PRECISION)
    dq = _attn_bwd_dq_inner(dq, q, do, lse2, Di, K + kv_base, V + kv_base,
                            stride_kn, stride_kk, offs_m, full_hi, masked_hi, N, qk_scale,
                            BLOCK_N, HEAD_DIM, True, CAUSAL, DOT_PRECISION)

    dq *= sm_scale
    tl.store(DQ + q_ptrs, dq.to(DQ.dtype.element_ty), mask=row_ok[:, None])


def flash_bwd(q, k, v, o, lse, do, causal=False, sm_scale=None):
    """Gradients of ``o = softmax(q k^T * sm_scale) v`` from the forward's ``o`` and ``lse``.

    :param q: ``[B, H_q, N, d]``; ``k, v``: ``[B, H_kv, N, d]`` (GQA when ``H_kv < H_q``).
    :param o: the forward output, like ``q``.
    :param lse: float32 ``[B, H_q, N]``, natural-log sum-exp from :func:`flash_fwd`.
    :param do: the upstream gradient, like ``q``.
    :returns: ``(dq, dk, dv)`` shaped and typed like ``q, k, v``; a KV head's gradient
        is the sum over the query heads that share it.
    """
    B, H_q, H_kv, N, d = check_qkv(q, k, v)
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    # one layout per role: Q, O, dO, dQ share strides; K, V, dK, dV share strides
    q, k, v, o, do = (t.contiguous() for t in (q, k, v, o, do))
    lse = lse.contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    if q.numel() == 0:
        return dq, dk, dv
    delta = torch.empty_like(lse)
    group = H_q // H_kv
    precision = dot_precision(q.dtype)

    pre_block = 16 if INTERPRET else 128
    _attn_bwd_preprocess[(triton.cdiv(N, pre_block), B * H_q)](
        o, do, delta, *o.stride(), H_q, N, BLOCK_M=pre_block, HEAD_DIM=d)

    def dkdv_grid(meta):
        return (triton.cdiv(N, meta["BLOCK_N"]), B * H_kv)

    _attn_bwd_dkdv[dkdv_grid](
        q, k, v, do, lse, delta, dk, dv, sm_scale, *q.stride(), *k.stride(),
        H_q, H_kv, group, N, HEAD_DIM=d, CAUSAL=causal, DOT_PRECISION=precision)

    def dq_grid(meta):
        return (triton.cdiv(N, meta["BLOCK_M"]), B * H_q)

    _attn_bwd_dq[dq_grid](
        q, k, v, do, lse, delta, dq, sm_scale, *q.stride(), *k.stride(),
        H_q, group, N, HEAD_DIM=d, CAUSAL=causal, DOT_PRECISION=precision)
    return dq, dk, dv
