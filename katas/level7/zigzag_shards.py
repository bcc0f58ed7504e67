"""Level 7 · zigzag_shards — the same causal work on every rank.

Intuition
---------
Under a causal mask a token attends to itself and everything before it. Early tokens
have little to look at, late tokens a lot. Cut a sequence into P contiguous shards and
the ranks inherit that slope: rank 0 computes one small triangle, the last rank a
whole stripe of full blocks plus its triangle. In a ring every step waits for the
slowest rank, so the whole ring runs at the pace of the busiest one.

The fix is to deal the sequence like a deck dealt from both ends. Cut it into 2P
equal chunks; rank r takes chunk r (early, light) and chunk 2P − 1 − r (late, heavy).
The light and the heavy cancel: every rank ends up with exactly the same work. Ring
attention itself does not change — only where each token sits, so the causal mask
must be built from the zigzag positions (the `layout="zigzag"` of the ring katas).

The math
--------
    c = N / (2P)                         chunk length (must be a whole number)
    chunk i = tokens i·c … (i + 1)·c − 1,   i = 0 … 2P − 1
    shard r = chunk r  followed by  chunk 2P − 1 − r
    work(p) = p + 1                      keys a query at position p must score

- N : the length of dimension `dim` of x (any other dimensions ride along unchanged)
- P : world_size, the number of ranks; r ∈ {0 … P − 1}
- c : chunk length; N not divisible by 2P leaves chunks of different sizes, which a
  ring cannot use (every rank sends and receives equal blocks): raise ValueError
- work(p) : under a causal mask, query p scores keys 0 … p. A rank's work is the sum
  over its positions; with zigzag, chunk r and chunk 2P − 1 − r sum to the same for every r

Worked example
--------------
N = 8, P = 2, so c = 2 and the chunks are [0, 1], [2, 3], [4, 5], [6, 7].
    zigzag:      rank 0 = [0, 1, 6, 7]   work 1 + 2 + 7 + 8 = 18
                 rank 1 = [2, 3, 4, 5]   work 3 + 4 + 5 + 6 = 18
    contiguous:  rank 0 = [0, 1, 2, 3]   work 1 + 2 + 3 + 4 = 10
                 rank 1 = [4, 5, 6, 7]   work 5 + 6 + 7 + 8 = 26
The contiguous ring waits on rank 1 (26) at every step; the zigzag ring on 18.
"""

import torch

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # P = 4, causal, the sequence cut into 2P = 8 equal chunks; a tile is one
    # (query chunk, key chunk) pair causal attention needs (key chunk ≤ query chunk;
    # a diagonal tile counts as one). Contiguous shards (rank r holds chunks 2r and
    # 2r + 1): tiles per rank, as a tuple for ranks 0..3.
    "contiguous_tiles_p4": ...,
    # The same count with zigzag shards (rank r holds chunks r and 7 − r): a tuple.
    "zigzag_tiles_p4": ...,
    # Contiguous shards, P = 4, a very long sequence: the busiest rank's causal score
    # entries divided by the least busy rank's (a number).
    "contiguous_imbalance": ...,
    # P = 4: which chunk does rank 1 hold along with chunk 1?
    "partner_of_chunk_1": ...,
}


def zigzag_shards(x: torch.Tensor, world_size: int, dim: int) -> list[torch.Tensor]:
    """Split ``x`` along ``dim`` into ``world_size`` zigzag shards.

    Cut ``dim`` into 2P equal chunks; shard r is chunk r followed by chunk 2P − 1 − r
    (concatenated along ``dim``). ``dim`` may be negative. A length not divisible by
    2P raises ``ValueError``. ``x`` is not modified.
    """
    raise NotImplementedError("kata zigzag_shards: 2P chunks, rank r gets chunk r and chunk 2P-1-r")
