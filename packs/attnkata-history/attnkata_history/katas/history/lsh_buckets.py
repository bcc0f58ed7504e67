"""History pack · lsh_buckets — Reformer's shortcut: hash similar vectors into the same bucket,
and attend only within buckets.

Intuition
---------
Softmax attention is dominated by the few keys with the largest scores. If we could
find, for each query, the keys pointing in nearly the same direction, we could skip
the rest. Reformer does this with locality-sensitive hashing: rotate all vectors by
one random matrix and name each vector's bucket by the axis (or negative axis) it
points along most. Vectors with a small angle between them usually land in the same
bucket. Reformer shares queries and keys (one vector x per token), sorts the tokens
by bucket, cuts the sorted list into equal chunks, and lets each token attend to the
tokens of its own bucket in its own chunk and the chunk before. A near neighbour can
still be unlucky — split off by a random rotation or a chunk boundary — so Reformer
hashes several times with independent rotations and keeps every pair any round found.

The math
--------
    h(x) = argmax([x R ; −x R])                 one bucket in 0 … b − 1 per round
    order = tokens sorted by (bucket, position)    np.argsort(h, kind="stable")
    chunk(i) = (rank of token i in that order) // c
    allowed_round[i, j] = h(x_i) = h(x_j)  and  chunk(i) − chunk(j) ∈ {0, 1}
    allowed = OR over the rounds
    o_i = Σ_j softmax_j( x_i·x_j/√d  over allowed j ) v_j
    recall = fraction of tokens i whose best other key j* = argmax_{j≠i} x_i·x_j is allowed

- x [N, d]             : one vector per token, used as both query and key (shared QK)
- rotations [n_rounds, d, b/2] : one random matrix R per round; b buckets per round
- [xR ; −xR]           : the b/2 projections and their negatives side by side; argmax takes
                         the first of equal values
- c = chunk            : tokens per chunk (the last chunk may be shorter)
- v [N, d_v]           : values; outputs keep x's dtype; a token always sees itself
- No 1/‖x‖ normalisation of keys and no self-masking here (Reformer does both).

Worked example
--------------
x = [[1, 0], [−1, 0.5], [0.5, 1], [−2, −1]],  one round, R = [[1], [0]] (b = 2),  c = 2

    xR = [1, −1, 0.5, −2]   →  [xR ; −xR] argmax  →  h = [0, 1, 0, 1]
    sorted by (bucket, position): tokens 0, 2 | 1, 3    chunks: {0, 2} = 0, {1, 3} = 1
    allowed = [[1 0 1 0],        token 1's chunk looks back at chunk 0,
               [0 1 0 1],        but tokens 0 and 2 are in another bucket
               [1 0 1 0],
               [0 1 0 1]]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Suppose one round finds a token's best key with probability 0.5, independently per
    # round. What recall do 4 rounds give (a number)?
    "recall_four_rounds": ...,
    # Multiply every x by 10. Do any buckets change? Choose one: "yes", "no".
    "scaled_changes_bucket": ...,
}


def lsh_hash(x: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Buckets int64 [n_rounds, N]: argmax over [x R ; −x R] for each round's R."""
    raise NotImplementedError("kata lsh_buckets: argmax of the rotated vectors and their negatives")


def lsh_candidates(x: np.ndarray, rotations: np.ndarray, chunk: int) -> np.ndarray:
    """bool [N, N]: pairs some round puts in one bucket, in the same chunk or one chunk back."""
    raise NotImplementedError("kata lsh_buckets: stable sort by bucket, chunk, look one chunk back")


def lsh_attention(x: np.ndarray, v: np.ndarray, rotations: np.ndarray, chunk: int) -> np.ndarray:
    """Shared-QK attention softmax(x xᵀ/√d) v restricted to lsh_candidates; [N, d_v]."""
    raise NotImplementedError("kata lsh_buckets: attention over the candidate pairs only")


def top_key_recall(x: np.ndarray, candidates: np.ndarray) -> float:
    """Fraction of tokens whose best other key (largest x_i·x_j, j ≠ i) is a candidate."""
    raise NotImplementedError("kata lsh_buckets: argmax over j ≠ i, then look it up")
