"""History pack · sparse_patterns — Longformer's window + global tokens, BigBird's random keys,
and attention that only touches the allowed tiles.

Intuition
---------
Most of what a token needs is nearby. Longformer lets each token attend to a window
of neighbours on both sides (an encoder, not a decoder: it may look ahead), and
picks a few *global* tokens — a [CLS] token, the question in a QA task — that attend
to everything and that everything attends to, so information can cross the whole
sequence in two steps. BigBird adds a few *random* keys per token on top, which
(the paper argues) keeps the pattern a good graph for spreading information.
A mask alone saves nothing if the full N × N score matrix is still computed and then
thrown away. The saving comes from working in tiles: cut queries and keys into
blocks of B, mark which [B × B] tiles hold any allowed pair, and compute only those.
Every allowed pair is then in a computed tile; a few disallowed ones ride along
inside partly allowed tiles, which is why hardware kernels use block-level masks.

The math
--------
    longformer: allowed[i, j] = |i − j| ≤ radius  or  i ∈ G  or  j ∈ G
    bigbird:    longformer's mask, then for each row i = 0, 1, …, n − 1 in order:
                C = the keys row i cannot see yet (ascending);  if C is not empty,
                add rng.choice(C, size=min(r, |C|), replace=False)
                with ONE rng = np.random.default_rng(seed) shared by all rows
    blockify:   block_mask[a, b] = any(allowed[i, j] for i in block a, j in block b)
    block-sparse attention: for query block a, S = q_a K_Aᵀ/√d over the keys of the
                allowed blocks A of row a; o_a = softmax(S) V_A;  no allowed block → zeros

- n        : sequence length; radius: how far the window reaches on EACH side
- G        : the global positions (an int array); r = n_random: random keys per row
- block    : tile size B; the last block may be shorter (n need not be a multiple of B)
- block_mask [⌈N_q/B⌉, ⌈N_k/B⌉] : True = compute this tile
- tiles    : how many [B × B] score tiles you computed — must be block_mask.sum()
- q [N_q, d], k [N_k, d], v [N_k, d_v] (2-D); outputs keep q's dtype

Worked example
--------------
longformer_mask(6, radius=1, global_idx=[0]):

    [[1 1 1 1 1 1]      row 0 is global: it sees everything
     [1 1 1 0 0 0]      column 0 is global: everyone sees token 0
     [1 1 1 1 0 0]      row 2: window {1, 2, 3} plus token 0
     [1 0 1 1 1 0]
     [1 0 0 1 1 1]
     [1 0 0 0 1 1]]

blockify(that, block=2) = [[1 1 1], [1 1 1], [1 1 1]] (every tile has an allowed pair);
with radius 0 and no globals on n = 4, block 2: [[1 0], [0 1]] → 2 tiles, not 4.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # How many entries of longformer_mask(8, radius=1, global_idx=[0]) are True? An integer.
    "longformer_allowed": ...,
    # N = 1024, block = 64, a window of radius 64 tokens (no globals): how many tiles does
    # blockify give (block_mask.sum())? An integer. Dense attention computes 256.
    "window_tiles": ...,
}


def longformer_mask(n: int, radius: int, global_idx: np.ndarray) -> np.ndarray:
    """bool [n, n]: |i − j| ≤ radius, or i or j among the global positions."""
    raise NotImplementedError("kata sparse_patterns: a two-sided band plus global rows and columns")


def bigbird_mask(n: int, radius: int, global_idx: np.ndarray, n_random: int, seed: int) -> np.ndarray:
    """longformer_mask plus, row by row with one seeded generator, n_random new random keys."""
    raise NotImplementedError("kata sparse_patterns: rng.choice among the keys a row cannot see yet")


def blockify(mask: np.ndarray, block: int) -> np.ndarray:
    """bool [⌈N_q/B⌉, ⌈N_k/B⌉]: True where the [B × B] tile holds at least one allowed pair."""
    raise NotImplementedError("kata sparse_patterns: pad to whole tiles, reshape, any()")


def block_sparse_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_mask: np.ndarray,
                           block: int) -> tuple[np.ndarray, int]:
    """(o [N_q, d_v], tiles): attention over the keys of each query block's allowed tiles,
    computing (and reading K and V for) those tiles only; tiles = how many you computed."""
    raise NotImplementedError("kata sparse_patterns: per query block, scores for allowed tiles only")
