"""FlashAttention forward in Triton (FlashAttention-2 schedule, ``dao-2023``).

One program owns a ``BLOCK_M`` tile of queries of one (batch, query head) and streams the
keys and values of its KV head past it in ``BLOCK_N`` tiles. It keeps three running
quantities per query row and never materialises the ``N x N`` score matrix:

* ``m_i`` -- the largest scaled score seen so far (log2 domain),
* ``l_i`` -- the sum of ``2^(s - m_i)`` over the keys seen so far,
* ``acc`` -- the matching sum of ``2^(s - m_i) * v``.

When a new tile raises the maximum from ``m_i`` to ``m_ij``, the old sums are rescaled
by ``alpha = 2^(m_i - m_ij)`` (online softmax, ``milakov-2018``). At the end
``o = acc / l_i`` and ``lse = (m_i + log2 l_i) * ln 2``.

Scores live in the log2 domain: ``log2(e)`` is folded into the softmax scale once, so
each score costs one multiply and one ``exp2`` (the GPU's native exponential).

The key loop has two stages. Key tiles every query row of the tile may see run without
any mask; only the remaining tiles -- the causal diagonal, or the ragged tail when N is
not a multiple of ``BLOCK_N`` -- pay for a mask. Grouped-query attention (GQA, MQA) maps
query head ``h`` to KV head ``h // (H_q // H_kv)`` in the pointer arithmetic; K and V are
never repeated.

Shapes: ``q`` ``[B, H_q, N, d]``, ``k, v`` ``[B, H_kv, N, d]``, ``o`` like ``q``,
``lse`` ``[B, H_q, N]`` float32.
"""

import math
import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
"""True when Triton runs on the CPU interpreter: launchers use one small fixed config."""

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
LOG2E = tl.constexpr(1.4426950408889634)  # log2(e): exp(x) == exp2(x * LOG2E)
LN2 = tl.constexpr(0.6931471805599453)  # ln(2): turns a log2-domain lse into natural log


def flops(B, H, N, d, causal=False):
    """FLOPs of one attention forward: two ``N x N x d`` matmuls (QK^T and PV) per head.

    Each matmul is ``2 * N * N * d`` multiply-adds counted as two FLOPs, so
    ``4 * B * H * N^2 * d``; a causal mask skips half of the score matrix.
    """
    total = 4 * B * H * N * N * d
    return total // 2 if causal else total


def check_qkv(q, k, v):
    """Validate ``q [B, H_q, N, d]``, ``k, v [B, H_kv, N, d]``; return ``(B, H_q, H_kv, N, d)``."""
    if q.dim() != 4 or k.shape != v.shape or k.dim() != 4:
        raise ValueError(f"expected q [B, H_q, N, d] and k, v [B, H_kv, N, d]; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    B, H_q, N, d = q.shape
    H_kv = k.shape[1]
    if k.shape[0] != B or k.shape[2] != N or k.shape[3] != d:
        raise ValueError(f"k, v {tuple(k.shape)} do not match q {tuple(q.shape)}")
    if H_q % H_kv:
        raise ValueError(f"H_kv={H_kv} must divide H_q={H_q}")
    if d not in HEAD_DIMS:
        raise ValueError(f"head dim {d} not in {HEAD_DIMS}")
    if not q.dtype == k.dtype == v.dtype or q.dtype not in DTYPES:
        raise TypeError(f"q, k, v must share one dtype of {DTYPES}; "
                        f"got {q.dtype}, {k.dtype}, {v.dtype}")
    return B, H_q, H_kv, N, d


def dot_precision(dtype):
    """``tl.dot`` precision: IEEE fp32 for fp32 inputs (no tf32 rounding); fp16/bf16 ignore it."""
    return "ieee" if dtype == torch.float32 else "tf32"


def _fwd_configs():
    if INTERPRET:
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16}, num_warps=1, num_stages=1)]
    # Hopper: 128-row query tiles keep the tensor cores busy; 8 warps give two warpgroups.
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [
            (128, 64, 4, 3), (128, 64, 8, 3), (128, 64, 8, 4),
            (128, 128, 8, 2), (128, 128, 8, 3),
            (64, 64, 4, 3), (64, 64, 4, 4),
        ]
    ]


@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q, K, V,
                    stride_kn, stride_kk, stride_vn, stride_vk,
                    offs_m, lo, hi, N, qk_scale,
                    BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                    MASKED: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Fold key tiles ``[lo, hi)`` into the running state ``(acc, l_i, m_i)``.

    ``MASKED`` tiles hide keys past N and, when ``CAUSAL``, keys after the query.
    """
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        # -- load K^T [HEAD_DIM, BLOCK_N] and V [BLOCK_N, HEAD_DIM] --
        kT_ptrs = K + cols[None, :] * stride_kn + offs_d[:, None] * stride_kk
        v_ptrs = V + cols[:, None] * stride_vn + offs_d[None, :] * stride_vk
        if MASKED:
            kT = tl.load(kT_ptrs, mask=cols[None, :] < N, other=0.0)
            v = tl.load(v_ptrs, mask=cols[:, None] < N, other=0.0)
        else:
            kT = tl.load(kT_ptrs)
            v = tl.load(v_ptrs)
        # -- scores in the log2 domain --
        qk = tl.dot(q, kT, input_precision=DOT_PRECISION) * qk_scale
        if MASKED:
            visible = cols[None, :] < N
            if CAUSAL:
                visible = visible & (offs_m[:, None] >= cols[None, :])
            qk = tl.where(visible, qk, float("-inf"))
        # -- new running max; rescale the old sums by alpha --
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        # -- accumulate P V --
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_ij
    return acc, l_i, m_i


@triton.autotune(configs=_fwd_configs(), key=["N", "HEAD_DIM", "CAUSAL"])
@triton.jit
def _attn_fwd(Q, K, V, Out, LSE, sm_scale,
              stride_qz, stride_qh, stride_qm, stride_qk,
              stride_kz, stride_kh, stride_kn, stride_kk,
              stride_vz, stride_vh, stride_vn, stride_vk,
              stride_oz, stride_oh, stride_om, stride_ok,
              H_Q, GROUP, N,
              HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_M), B * H_q)``: one query tile of one (batch, query head)."""
    tl.static_assert(BLOCK_M % BLOCK_N == 0, "the causal diagonal must be whole key tiles")
    tl.static_assert(HEAD_DIM >= 16, "tl.dot needs an inner dimension of at least 16")
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_z = (off_hz // H_Q).to(tl.int64)
    off_h = (off_hz % H_Q).to(tl.int64)
    off_kvh = off_h // GROUP  # GQA: query heads of one group share a KV head

    Q += off_z * stride_qz + off_h * stride_qh
    K += off_z * stride_kz + off_kvh * stride_kh
    V += off_z * stride_vz + off_kvh * stride_vh
    Out += off_z * stride_oz + off_h * stride_oh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N
    q = tl.load(Q + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk,
                mask=row_ok[:, None], other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * LOG2E  # scores go straight to the log2 domain

    if CAUSAL:
        # keys before this query tile are visible to all its rows; the diagonal block is not
        full_hi = start_m * BLOCK_M
        masked_hi = tl.minimum(full_hi + BLOCK_M, N)
    else:
        # whole key tiles are visible; only a ragged last tile needs the bound mask
        full_hi = (N // BLOCK_N) * BLOCK_N
        masked_hi = N
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, K, V,
                                    stride_kn, stride_kk, stride_vn, stride_vk,
                                    offs_m, 0, full_hi, N, qk_scale,
                                    BLOCK_N, HEAD_DIM, False, CAUSAL, DOT_PRECISION)
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, K, V,
                                    stride_kn, stride_kk, stride_vn, stride_vk,
                                    offs_m, full_hi, masked_hi, N, qk_scale,
                                    BLOCK_N, HEAD_DIM, True, CAUSAL, DOT_PRECISION)

    # epilogue: normalise, and store lse in natural log
    acc = acc / l_i[:, None]
    lse = (m_i + tl.math.log2(l_i)) * LN2
    tl.store(LSE + off_hz.to(tl.int64) * N + offs_m, lse, mask=row_ok)
    tl.store(Out + offs_m[:, None] * stride_om + offs_d[None, :] * stride_ok,
             acc.to(Out.dtype.element_ty), mask=row_ok[:, None])


def flash_fwd(q, k, v, causal=False, sm_scale=None):
    """Attention forward: ``o = softmax(q k^T * sm_scale) v`` and its row log-sum-exp.

    :param q: ``[B, H_q, N, d]`` fp32/fp16/bf16.
    :param k: ``[B, H_kv, N, d]``, same dtype; ``H_kv`` divides ``H_q`` (GQA/MQA).
    :param v: like ``k``.
    :param causal: query ``i`` attends to keys ``<= i``.
    :param sm_scale: score scale; default ``1 / sqrt(d)``.
    :returns: ``(o, lse)``: ``o`` like ``q``; ``lse`` float32 ``[B, H_q, N]``,
        natural-log sum-exp of the scaled scores (what the backward needs).
    """
    B, H_q, H_kv, N, d = check_qkv(q, k, v)
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    o = torch.empty_like(q)
    lse = torch.empty((B, H_q, N), device=q.device, dtype=torch.float32)
    if o.numel() == 0:
        return o, lse

    def grid(meta):
        return (triton.cdiv(N, meta["BLOCK_M"]), B * H_q)

    _attn_fwd[grid](
        q, k, v, o, lse, sm_scale,
        *q.stride(), *k.stride(), *v.stride(), *o.stride(),
        H_q, H_q // H_kv, N,
        HEAD_DIM=d, CAUSAL=causal, DOT_PRECISION=dot_precision(q.dtype),
    )
    return o, lse
