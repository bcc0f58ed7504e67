"""Level 4 · tiled_attention_backward — gradients without ever storing P.

Intuition
---------
Training needs dQ, dK, dV, and the textbook backward of attention uses P, the N_q × N_k
probabilities of the forward pass. Storing P would undo everything the tiled forward
saved. FlashAttention (`dao-2022`) stores one number per query instead, lse, and
*recomputes* each tile of P during the backward: P_ij = exp(S_ij − lse_i) is already
normalised, because lse_i = log Σ_j exp(S_ij). Recomputing a tile costs one more small
matmul; storing P costs N² memory.

The math
--------
Forward (one tile): S = Q_i·K_jᵀ/√d, P = exp(S − lse_i), O = P·V. Backward, given dO:

    D    = rowsum(dO ∘ O)                  one number per query, computed once up front
    P    = exp(S_ij − lse_i)               recomputed for each tile (−∞ where masked: P = 0)
    dV_j += P_ijᵀ · dO_i
    dP   = dO_i · V_jᵀ                      [Bq, Bk]
    dS   = P_ij ∘ (dP − D_i)                [Bq, Bk]
    dQ_i += dS · K_j / √d
    dK_j += dSᵀ · Q_i / √d

- q, k, v, o, do : `[..., N_q, d]`, `[..., N_k, d]`, `[..., N_k, d_v]`, `[..., N_q, d_v]`,
                   `[..., N_q, d_v]`; here all share the same leading dims
- lse  : `[..., N_q]` from the forward; −∞ for a query that sees no key (use 0 in its
         place when subtracting: its scores are all −∞, so its P row is 0 anyway)
- dO   : the gradient of the loss with respect to O
- ∘    : elementwise product; rowsum sums over the last axis
- D_i  : Σ_j P_ij·dP_ij, the softmax Jacobian's shared term, which equals rowsum(dO ∘ O)
         since O = P·V; it is why dS is not simply P ∘ dP
- 1/√d : S was scaled, so its gradient carries the scale into dQ and dK
- causal: the same end-aligned mask and the same skipped tiles as the forward

Loop order is free. FlashAttention-2 puts key blocks outside (dK_j, dV_j stay local) and
query blocks inside (dQ_i accumulates across key blocks).

Worked example
--------------
One query q = [1], two keys k = [[0], [ln 3]] (d = 1, so √d = 1), values v = [[2], [6]],
and dO = [1].
    S = [0, 1.0986],  lse = ln(1 + 3) = 1.3863,  P = exp(S − lse) = [0.25, 0.75]
    O = 0.25·2 + 0.75·6 = 5,   D = dO·O = 5
    dV = Pᵀ·dO = [0.25, 0.75]
    dP = dO·Vᵀ = [2, 6],   dS = P ∘ (dP − D) = [0.25·(−3), 0.75·1] = [−0.75, 0.75]
    dQ = dS·K = −0.75·0 + 0.75·1.0986 = 0.8240
    dK = dSᵀ·q = [−0.75, 0.75]
torch autograd gives the same numbers. Without D, dS would be [0.5, 4.5]: wrong.

How the hidden tests watch
--------------------------
dq, dk, dv against torch autograd of plain attention (float64), and the score tiles are
counted as in the forward: compute each with `@` on slices of q and k (they arrive as a
numpy array subclass; do not convert them with np.asarray, np.array or
np.ascontiguousarray), never larger than
block_q × block_k; one or two passes over the live tiles are both fine.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # One query with o = [1, 2] and dO = [3, -1]: its D = rowsum(dO ∘ O).
    "d_row": ...,
    # N = 8192: bytes of P stored in fp16 (N×N) divided by bytes of lse stored in fp32 (N values).
    "p_over_lse_bytes": ...,
}


def tiled_attention_backward(q: np.ndarray, k: np.ndarray, v: np.ndarray, o: np.ndarray,
                             lse: np.ndarray, do: np.ndarray, block_q: int = 64,
                             block_k: int = 64, causal: bool = False):
    """Gradients ``(dq, dk, dv)`` of attention, tile by tile, recomputing P from ``lse``.

    ``o`` and ``lse`` are the forward's outputs, ``do`` the gradient of the loss with
    respect to o. Each gradient has the shape and dtype of its input.
    """
    raise NotImplementedError("kata tiled_attention_backward: recompute P = exp(S - lse), dS = P * (dP - D)")
