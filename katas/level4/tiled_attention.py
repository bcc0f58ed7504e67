"""Level 4 · tiled_attention — FlashAttention's forward pass, in NumPy.

Intuition
---------
Plain attention builds the score matrix S = Q·Kᵀ/√d, all N_q × N_k of it, then the
probabilities P = softmax(S), then O = P·V. At N = 8192 that is tens of millions of
scores per head; on a GPU, writing them to slow memory and reading them back costs more
than the arithmetic. FlashAttention (`dao-2022`) never builds S. It cuts the queries
into blocks of block_q rows and the keys into blocks of block_k rows; for one query block
it walks the key blocks, computes one small score *tile* at a time, folds it into a running
softmax (the online softmax of the previous kata), and throws the tile away. Memory for
scores drops from N_q × N_k to block_q × block_k, whatever N is.

Causal attention makes many tiles pointless: a tile whose keys all lie in every one of its
queries' future is entirely masked. FlashAttention skips those tiles instead of computing
and masking them — about half of them when N_q = N_k.

The math
--------
For each query block i (rows q0 … q1−1) start with m_i = −∞, l_i = 0, acc = 0, then for
each key block j (rows k0 … k1−1):

    S_ij  = Q_i · K_jᵀ / √d                    the score tile, [Bq, Bk]; −∞ where masked
    m_new = max(m_i, rowmax S_ij)
    α     = exp(m_i − m_new)                   rescales what was accumulated so far
    P̃_ij  = exp(S_ij − m_new)                  unnormalised probabilities of this tile
    l_i   = α · l_i + rowsum P̃_ij
    acc   = α · acc + P̃_ij · V_j
    m_i   = m_new

and after the last key block:   O_i = acc / l_i,   lse_i = m_i + log l_i.

- q `[..., N_q, d]`, k `[..., N_k, d]`, v `[..., N_k, d_v]`; leading dims broadcast
- Q_i, K_j, V_j : the row blocks q[..., q0:q1, :], k[..., k0:k1, :], v[..., k0:k1, :]
- Bq, Bk : the block sizes block_q, block_k (the last block of each may be shorter)
- d      : the feature width, q.shape[-1]; the scale is 1/√d
- m_i, l_i : per query, the running max and the running Σ exp(S − m_i) (online softmax)
- acc    : per query, Σ exp(S − m_i) · v — the output before dividing by l_i
- α      : exp(m_old − m_new) ≤ 1; forgetting to apply it to acc is the classic bug
- lse    : the natural-log sum of exp of each query's scaled scores (the backward needs it)
- causal : aligned to the end, as in level 1: query i sees key j when j ≤ i + N_k − N_q.
           The key loop of block [q0, q1) can stop at min(N_k, q1 + N_k − N_q). A query
           that sees no key at all keeps l = 0: it gets o = 0 and lse = −∞.

Divide by l_i once, at the end: the sum is not complete until the last tile.

Worked example
--------------
The online_softmax kata walks one query through two tiles of four keys, with m, l, acc
and the output after each tile: scores [1, 3, 2, 0 | 5, 2, 4, 1], values
[1, 0, 2, 1 | 0, 3, 1, 2], output 0.5930 after tile 1 and 0.4122 after tile 2.
Here every row of a query block runs that same recurrence, side by side.

The tile grid of a causal pass with N_q = N_k = 6 and 2×2 tiles (✓ computed, · skipped):

                 keys 0-1  keys 2-3  keys 4-5
    queries 0-1     ✓         ·         ·
    queries 2-3     ✓         ✓         ·
    queries 4-5     ✓         ✓         ✓

Six tiles of nine; the diagonal tiles are computed and masked inside.

How the hidden tests watch
--------------------------
- Values: o and lse against softmax(Q·Kᵀ/√d)·V for many shapes and block sizes.
- Tiles, counted (never timed): q and k arrive as a numpy array subclass that counts
  every score tile. Compute each tile with `@` (or np.matmul / np.einsum) on slices of
  q and k, one per (query block, key block), and do not convert q and k with np.asarray,
  np.array or np.ascontiguousarray (np.asanyarray is fine). No score array may be larger
  than block_q × block_k.
- Memory: tracemalloc's peak across N = 512 … 4096 must grow linearly, not as N².
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # One query, scores [0, 2, 1, 2 | 3, 0, 3, 1], values [1, 0, 0, 1 | 0, 1, 2, 0],
    # two tiles of four keys. The output acc / l after tile 1.
    "o_after_tile1": ...,
    # …and after tile 2 (the final output).
    "o_after_tile2": ...,
    # MiB taken by one fp16 N×N score matrix at N = 8192 (one head, one batch element).
    "fp16_scores_mib_8192": ...,
    # N_q = N_k = 256, 64×64 tiles, causal: how many of the 16 score tiles are skipped?
    "causal_tiles_skipped": ...,
}


def tiled_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_q: int = 64,
                    block_k: int = 64, causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q·kᵀ/√d)·v computed tile by tile, never holding more than a
    ``block_q × block_k`` tile of scores.

    Returns ``(o, lse)``: o ``[..., N_q, d_v]`` and lse ``[..., N_q]`` in q's dtype.
    With ``causal``, query i sees keys j ≤ i + N_k − N_q, tiles the mask empties are
    skipped, and a query that sees no key gets o = 0, lse = -inf.
    """
    raise NotImplementedError("kata tiled_attention: loop over query blocks, then key blocks, with m_i, l_i, acc")
