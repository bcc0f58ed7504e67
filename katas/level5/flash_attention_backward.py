"""Level 5 · flash_attention_backward — gradients without the N × N matrix, rebuilt from lse.

Intuition
---------
Autograd would keep the probability matrix P (N × N per head) from the forward pass so
the backward can use it. At N = 4096 that is gigabytes per layer. FlashAttention keeps
one float per query row instead, lse_i = ln Σ_j exp(s_ij), and REBUILDS any tile of P on
demand: p_ij = exp(s_ij − lse_i). Recomputing Q·Kᵀ costs one extra matmul per tile, but
matmuls are what GPUs are fast at; the memory traffic it saves was the real cost.

The backward needs two loops with opposite owners. dK and dV of a key tile collect
contributions from EVERY query, so one program owns a key tile (keeps k, v, dk, dv in
registers) and streams query tiles past it. dQ of a query tile collects from every key,
so another program owns a query tile and streams key tiles — the forward's loop shape.
Splitting the work this way means no two programs ever add into the same output, so no
atomics are needed. With GQA, one KV head serves G query heads: its dK/dV program loops
over the G heads of its group and sums their contributions.

The math
--------
Forward (one head):  S = sm_scale · Q Kᵀ,  P = softmax(S) = exp(S − lse),  O = P V.
Given dO = ∂L/∂O:

    dV = Pᵀ dO                        [N, d]   each value row gathers the weight it was given
    dP = dO Vᵀ                        [N, N]   (only ever a tile of it)
    D_i = Σ_c dO_ic · O_ic            [N]      one number per query row
    dS = P ∘ (dP − D[:, None])        [N, N]   the softmax Jacobian applied to dP
    dQ = sm_scale · dS K              [N, d]
    dK = sm_scale · dSᵀ Q             [N, d]

- Q, K, V, O, dO : [N, d] for one (batch, head); K, V belong to the KV head h // G
- lse_i  : natural-log sum-exp of row i of S, saved by the forward (float32)
- P_ij   : rebuilt inside a tile as exp(sm_scale · q_i·k_j − lse_i), 0 where masked
- D_i    : Σ_j P_ij dP_ij, which simplifies to dO_i · O_i — cheap, from O and dO alone;
           compute it in a tiny pre-pass before the two main kernels
- ∘      : element-wise product;  sm_scale : 1/√d unless given
- causal : p_ij = 0 for j > i, in the backward exactly as in the forward

Why D: softmax's Jacobian is ∂P_ij/∂S_ik = P_ij (δ_jk − P_ik), so
dS_ik = P_ik (dP_ik − Σ_j P_ij dP_ij), and Σ_j P_ij dP_ij = Σ_j P_ij (dO_i·v_j) = dO_i·O_i.
Each row of dS sums to 0.

Worked example
--------------
One query q = [1], two keys k = [0, 1], values v = [2, 4], sm_scale = 1, dO = [1]:

    S = [0, 1],  lse = ln(1 + e) = 1.31326,  P = exp(S − lse) = [0.26894, 0.73106]
    O = 0.26894·2 + 0.73106·4 = 3.46212,     D = dO·O = 3.46212
    dP = dO·v = [2, 4]
    dS = P ∘ (dP − D) = [0.26894·(−1.46212), 0.73106·0.53788] = [−0.39322, 0.39322]
    dV = Pᵀ dO = [0.26894, 0.73106]
    dQ = dS·K = −0.39322·0 + 0.39322·1 = 0.39322
    dK = dSᵀ q = [−0.39322, 0.39322]

Check dQ by hand: O(q) = (2 + 4e^q)/(1 + e^q), dO/dq = 2e^q/(1 + e^q)² = 0.39322 at q = 1. ✓
Forget D and dS = P ∘ dP = [0.53788, 2.92423]: dQ = 2.92423, seven times too big.
"""

import math
import os

import torch
import triton
import triton.language as tl

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # How many tile-sized matmuls does the backward do per (query tile, key tile)
    # pair? (The forward does 2: Q·Kᵀ and P·V.) An int.
    "backward_matmuls": ...,
    # FLOPs of the backward at B = 4, H = 32, N = 4096, d = 128, not causal, counting
    # those matmuls at 2·N²·d each per head (a number).
    "backward_flops": ...,
    # Bytes to store P for the backward at B = 4, H = 32, N = 4096 in fp16 — what
    # recomputing from lse avoids (a number).
    "stored_p_bytes": ...,
    # Bytes of the float32 lse [B, H, N] that replaces it (a number).
    "lse_bytes": ...,
}

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
LOG2E = 1.4426950408889634  # if you use exp2: exp(x) == exp2(x * LOG2E)


@triton.jit
def bwd_preprocess_kernel(O, DO, Delta, stride_qz, stride_qh, stride_qm, stride_qk, H_Q, N,
                          BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_M), B * H_q)``: ``Delta[z, h, i] = Σ_c dO[z, h, i, c] · O[z, h, i, c]``.

    O and DO share the strides ``stride_q*``; Delta is float32, contiguous [B, H_q, N].
    """
    raise NotImplementedError("kata flash_attention_backward: write bwd_preprocess_kernel "
                              "(D = rowsum(dO * O) for one row tile)")


@triton.jit
def bwd_dkdv_kernel(Q, K, V, DO, LSE, Delta, DK, DV, sm_scale,
                    stride_qz, stride_qh, stride_qm, stride_qk,
                    stride_kz, stride_kh, stride_kn, stride_kk,
                    H_Q, H_KV, GROUP, N,
                    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_N), B * H_kv)``: dK, dV of one key tile of one KV head.

    Loop over the GROUP query heads h = kv_head * GROUP + g and over their query tiles
    (BLOCK_M rows at a time); sum every contribution into dk, dv (float32 registers).
    Q, DO share ``stride_q*``; K, V, DK, DV share ``stride_k*``. LSE and Delta are float32,
    contiguous [B, H_q, N]. Scale dk by sm_scale before the store.
    """
    raise NotImplementedError("kata flash_attention_backward: write bwd_dkdv_kernel "
                              "(rebuild P from lse; dv += Pᵀ dO; dk += dSᵀ Q over the group)")


@triton.jit
def bwd_dq_kernel(Q, K, V, DO, LSE, Delta, DQ, sm_scale,
                  stride_qz, stride_qh, stride_qm, stride_qk,
                  stride_kz, stride_kh, stride_kn, stride_kk,
                  H_Q, GROUP, N,
                  HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_M), B * H_q)``: dQ of one query tile, looping over key tiles.

    Q, DO, DQ share ``stride_q*``; K, V share ``stride_k*`` (KV head = h // GROUP).
    Scale dq by sm_scale before the store.
    """
    raise NotImplementedError("kata flash_attention_backward: write bwd_dq_kernel "
                              "(rebuild P from lse; dq += dS K)")


def flash_attention_backward(q, k, v, o, lse, do, causal=False, sm_scale=None):
    """``(dq, dk, dv)`` for ``o = softmax(q kᵀ · sm_scale) v``, by three Triton launches.

    q, o, do: [B, H_q, N, d]; k, v: [B, H_kv, N, d] (H_kv divides H_q); lse: float32
    [B, H_q, N] from the forward (natural log). Returns gradients shaped and typed like
    q, k, v; a KV head's gradient sums over the query heads that share it. Inputs may be
    views in any layout: the launcher makes each contiguous, so the kernels see one
    layout per role. Written for you: the learner's part is the three kernel bodies.
    """
    B, H_q, N, d = q.shape  # (B, H_q, N, d)
    H_kv = k.shape[1]  # k, v: (B, H_kv, N, d)
    if H_q % H_kv:
        raise ValueError(f"H_kv = {H_kv} must divide H_q = {H_q}")
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    # one layout per role: Q, O, dO, dQ share strides; K, V, dK, dV share strides
    q, k, v, o, do, lse = (t.contiguous() for t in (q, k, v, o, do, lse))
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    delta = torch.empty((B, H_q, N), device=q.device, dtype=torch.float32)
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    # dK/dV: key tiles stay, query tiles stream (BLOCK_N ≥ BLOCK_M); dQ: the reverse
    dkdv_m, dkdv_n = (16, 16) if INTERPRET else (32, 64)
    dq_m, dq_n = (16, 16) if INTERPRET else (64, 32)

    bwd_preprocess_kernel[(triton.cdiv(N, dq_m), B * H_q)](
        o, do, delta, *o.stride(), H_q, N, BLOCK_M=dq_m, HEAD_DIM=d)
    bwd_dkdv_kernel[(triton.cdiv(N, dkdv_n), B * H_kv)](
        q, k, v, do, lse, delta, dk, dv, sm_scale, *q.stride(), *k.stride(),
        H_q, H_kv, H_q // H_kv, N, HEAD_DIM=d, CAUSAL=causal, DOT_PRECISION=precision,
        BLOCK_M=dkdv_m, BLOCK_N=dkdv_n, num_warps=4, num_stages=2)
    bwd_dq_kernel[(triton.cdiv(N, dq_m), B * H_q)](
        q, k, v, do, lse, delta, dq, sm_scale, *q.stride(), *k.stride(),
        H_q, H_q // H_kv, N, HEAD_DIM=d, CAUSAL=causal, DOT_PRECISION=precision,
        BLOCK_M=dq_m, BLOCK_N=dq_n, num_warps=4, num_stages=2)
    return dq, dk, dv
