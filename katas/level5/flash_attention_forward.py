"""Level 5 · flash_attention_forward — level 4's tiled attention, now as a Triton kernel.

Intuition
---------
On a GPU the arithmetic is cheap and the trips to HBM (the big off-chip memory) are
dear. Plain attention writes the N × N score matrix to HBM, reads it back for the
softmax, writes the probabilities, reads them again for P·V. FlashAttention never lets
the scores leave the chip: one program holds a tile of BLOCK_M queries in registers and
streams the keys and values past it, BLOCK_N at a time. For each tile of keys it scores,
folds the scores into a running softmax (level 4's online softmax) and adds the weighted
values into an accumulator — all in registers. Only the finished output rows and one
number per row (the lse) go back to HBM.

The grid has one program per (query tile, batch × query head). Grouped-query attention
costs nothing extra here: H_q query heads share H_kv key/value heads in groups of
G = H_q / H_kv consecutive heads, so query head h simply points at KV head h // G —
K and V are never repeated in memory.

The math
--------
For one query row i of one head, keys j in tiles T_1, T_2, …:

    s_ij  = sm_scale · q_i · k_j                  scaled score (sm_scale = 1/√d by default)
    m_new = max(m_i, max_{j ∈ T} s_ij)            running max after this tile
    α     = exp(m_i − m_new)                      how much the old max overstated the new one
    p_ij  = exp(s_ij − m_new)                     this tile's unnormalised weights
    l_i   ← α · l_i + Σ_{j ∈ T} p_ij              running denominator
    acc_i ← α · acc_i + Σ_{j ∈ T} p_ij · v_j      running numerator (a d-vector)
    m_i   ← m_new
    at the end:  o_i = acc_i / l_i,   lse_i = m_i + ln l_i

- q_i, k_j, v_j : rows of Q, K, V (length d = HEAD_DIM)
- m_i, l_i, acc_i : per-row state kept in registers, float32; start at −inf, 0, 0
- α : rescales everything summed so far whenever the max rises; forgetting it on acc
      is THE classic FlashAttention bug
- lse_i : natural-log sum-exp of the scaled scores of row i, the one number per row
          the backward needs to rebuild P without storing it
- causal : key j is visible to query i only if j ≤ i (its own position included)

Masks. N need not be a multiple of the blocks: keys j ≥ N get s = −inf (load them with
`mask=..., other=0.0`), and rows i ≥ N are not stored. The causal split: for the query
tile starting at start_m·BLOCK_M, key tiles wholly left of the diagonal need no mask,
the tile(s) on the diagonal need j ≤ i, and tiles right of it are skipped entirely —
that skipping is where causal attention's 2× saving comes from.

Worked example
--------------
One query row, d = 1, BLOCK_N = 2, scaled scores s = [1, 3 | 2, 5], v = [10, 20 | 30, 40]:

    tile 1: m = 3,  p = [e^−2, e^0] = [0.13534, 1],  l = 1.13534,  acc = 21.3534
    tile 2: m_new = 5, α = e^(3−5) = 0.13534, p = [e^−3, e^0] = [0.04979, 1]
            l = 1.13534·0.13534 + 1.04979 = 1.20344
            acc = 21.3534·0.13534 + 0.04979·30 + 40 = 44.3835
    o = 44.3835 / 1.20344 = 36.8806,   lse = 5 + ln 1.20344 = 5.18518

Full softmax over all four: Σe^s = 178.606, o = 36.8806, ln 178.606 = 5.18518. ✓
Skip α on acc and you get acc = 62.847, o = 52.22: the first tile's values are
weighted as if its max (3) were still the max.

Tiles for causal N = 40, BLOCK_M = BLOCK_N = 16: 3 query tiles × 3 key tiles = 9; the
causal pass visits 1 + 2 + 3 = 6 of them, 3 of which (the diagonal) need the mask.

Triton you will use: `tl.program_id`, `tl.arange`, `tl.load`/`tl.store` with masks,
`tl.dot(a, b, input_precision=DOT_PRECISION)` (full fp32 products for fp32 inputs; it
needs every dimension ≥ 16), `tl.max`/`tl.sum(x, 1)` along a tile's rows, `tl.exp`
(or `tl.math.exp2` with log2(e) folded into the scale — then convert lse back to
natural log), `tl.where`, `tl.zeros`/`tl.full`, `tl.minimum`, `x[:, None]` broadcasting.
"""

import math
import os

import torch
import triton
import triton.language as tl

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # One inner-loop step of the forward at BLOCK_M = BLOCK_N = 64, d = 64, fp16.
    # FLOPs: count the two matmuls only, S = Q_tile·K_tileᵀ and P·V_tile, each
    # 2·BLOCK_M·BLOCK_N·d (a multiply-add is 2 FLOPs); ignore exp/max/sum. (a number)
    "tile_flops": ...,
    # Bytes that step reads from HBM: one K tile and one V tile (BLOCK_N × d each,
    # 2 bytes per fp16). The Q tile was loaded before the loop and stays in registers;
    # nothing is written inside the loop. (a number)
    "tile_bytes": ...,
    # Arithmetic intensity of that step: tile_flops / tile_bytes, in FLOPs per byte.
    "tile_intensity": ...,
    # FLOPs of one full forward pass, 4·B·H·N²·d, at B = 4, H = 32, N = 4096, d = 128.
    "forward_flops": ...,
    # The same pass with causal=True (a number).
    "forward_flops_causal": ...,
}

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# Small tiles under the CPU interpreter (every tile is a numpy call); GPU-sized ones compiled.
BLOCK_M, BLOCK_N = (16, 16) if INTERPRET else (64, 64)


@triton.jit
def flash_fwd_kernel(Q, K, V, Out, LSE, sm_scale,
                     stride_qz, stride_qh, stride_qm, stride_qk,
                     stride_kz, stride_kh, stride_kn, stride_kk,
                     stride_vz, stride_vh, stride_vn, stride_vk,
                     stride_oz, stride_oh, stride_om, stride_ok,
                     H_Q, GROUP, N,
                     HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_M), B * H_q)``: one BLOCK_M tile of queries of one (batch, query head).

    Q, K, V, Out : pointers to element [0, 0, 0, 0] of q, k, v, o
    LSE          : float32, contiguous [B, H_q, N]: the row of program (z, h) starts at
                   LSE + (z * H_Q + h) * N
    stride_*     : element strides; z = batch, h = head, m/n = query/key position, k = feature.
                   q, k, v may be views (transposed, sliced, [B, N, H, d] storage): rows
                   need not be HEAD_DIM apart, so address every load and store by them
    H_Q, GROUP   : query heads, and query heads per KV head (H_q // H_kv)
    N            : sequence length (queries and keys); HEAD_DIM = d
    CAUSAL       : query i sees keys j <= i only
    DOT_PRECISION: pass as tl.dot(..., input_precision=DOT_PRECISION)
    """
    raise NotImplementedError("kata flash_attention_forward: write the kernel body "
                              "(Q tile, loop over K/V tiles with the online softmax, store o and lse)")


def flash_attention_forward(q, k, v, causal=False, sm_scale=None):
    """``(o, lse)`` of softmax(q kᵀ · sm_scale) v, by a Triton kernel.

    q: [B, H_q, N, d]; k, v: [B, H_kv, N, d] with H_kv dividing H_q (GQA, MQA at H_kv = 1);
    fp32/fp16/bf16; d in {16, 32, 64, 128}. sm_scale defaults to 1/√d.
    Returns o like q and lse float32 [B, H_q, N] (natural log). Written for you: the
    learner's part is ``flash_fwd_kernel``'s body.
    """
    B, H_q, N, d = q.shape  # (B, H_q, N, d)
    H_kv = k.shape[1]  # k, v: (B, H_kv, N, d)
    if H_q % H_kv:
        raise ValueError(f"H_kv = {H_kv} must divide H_q = {H_q}")
    if d not in (16, 32, 64, 128):
        raise ValueError(f"head dim {d} not in (16, 32, 64, 128)")
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    o = torch.empty_like(q)
    lse = torch.empty((B, H_q, N), device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(N, BLOCK_M), B * H_q)
    flash_fwd_kernel[grid](
        q, k, v, o, lse, sm_scale,
        *q.stride(), *k.stride(), *v.stride(), *o.stride(),
        H_q, H_q // H_kv, N,
        HEAD_DIM=d, CAUSAL=causal,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, num_warps=4, num_stages=2,
    )
    return o, lse
