"""Reference · sparse_patterns: Longformer and BigBird masks, block-sparse attention by tiles."""

import math

import numpy as np

PREDICTIONS = {
    "longformer_allowed": 34,
    "window_tiles": 46,
}


def longformer_mask(n: int, radius: int, global_idx: np.ndarray) -> np.ndarray:
    i = np.arange(n)
    mask = np.abs(i[:, None] - i[None, :]) <= radius       # the sliding window, both sides
    g = np.asarray(global_idx, dtype=np.int64)
    mask[g, :] = True                                       # global tokens see everything
    mask[:, g] = True                                       # and everything sees them
    return mask


def bigbird_mask(n: int, radius: int, global_idx: np.ndarray, n_random: int, seed: int) -> np.ndarray:
    mask = longformer_mask(n, radius, global_idx)
    rng = np.random.default_rng(seed)
    for i in range(n):                                      # rows in order, one draw per row
        candidates = np.flatnonzero(~mask[i])               # keys this row cannot see yet
        if len(candidates) and n_random > 0:
            pick = rng.choice(candidates, size=min(n_random, len(candidates)), replace=False)
            mask[i, pick] = True
    return mask


def blockify(mask: np.ndarray, block: int) -> np.ndarray:
    n_q, n_k = mask.shape
    bq, bk = math.ceil(n_q / block), math.ceil(n_k / block)
    padded = np.zeros((bq * block, bk * block), dtype=bool)
    padded[:n_q, :n_k] = mask
    return padded.reshape(bq, block, bk, block).any(axis=(1, 3))   # any allowed pair in the tile


def block_sparse_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_mask: np.ndarray,
                           block: int) -> tuple[np.ndarray, int]:
    n_q, d = q.shape
    out = np.zeros((n_q, v.shape[-1]), dtype=q.dtype)
    tiles = 0
    for bi in range(block_mask.shape[0]):
        rows = slice(bi * block, min((bi + 1) * block, n_q))
        cols = [np.arange(bj * block, min((bj + 1) * block, k.shape[0]))
                for bj in np.flatnonzero(block_mask[bi])]
        if not cols:
            continue                                        # no allowed tile: zeros
        keys = np.concatenate(cols)
        s = q[rows] @ k[keys].T / math.sqrt(d)              # only the allowed tiles
        tiles += len(cols)
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        out[rows] = (p / p.sum(axis=-1, keepdims=True)) @ v[keys]
    return out, tiles
