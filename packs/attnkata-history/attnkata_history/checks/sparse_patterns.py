"""sparse_patterns — Longformer/BigBird masks and block-sparse attention by tiles
(Beltagy et al. 2020; Zaheer et al. 2020)."""

from __future__ import annotations

import math

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, filled, seeds, sizes

from .common import call_shaped, dense_attention, softmax_rows, tol


def _globals(n, rng, count):
    return np.sort(rng.choice(n, size=min(count, n), replace=False)).astype(np.int64)


@check("longformer_mask and bigbird_mask match the reference for n ≤ 20, several radii, "
       "globals and seeds")
def sparse_masks_match(ctx):
    rng = np.random.default_rng(5)
    for n in (1, 2, 5, 9, 16, 20):
        for radius in (0, 1, 3):
            for count in (0, 1, 3):
                g = _globals(n, rng, count)
                ctx.expect("longformer_mask", n, radius, g)
                for r, seed in ((1, 0), (2, 11), (5, 7)):
                    ctx.expect("bigbird_mask", n, radius, g, r, seed)


@check("the worked example of the stub and the global rows and columns")
def sparse_worked_example(ctx):
    ctx.expect("longformer_mask", 6, 1, np.array([0]))
    got = np.asarray(call_shaped(ctx, "longformer_mask", 30, 2, np.array([4, 17])), dtype=bool)
    for g in (4, 17):
        if not (got[g].all() and got[:, g].all()):
            ctx.expect("longformer_mask", 30, 2, np.array([4, 17]))
            ctx.fail(f"global token {g} must see every key (row {g}) and be seen by every query "
                     f"(column {g}).")


@check("bigbird adds exactly min(r, unseen) keys to each row, only new ones, and a seed fixes them")
def sparse_bigbird_counts(ctx):
    n, radius, g, r = 24, 1, np.array([0, 12]), 3
    base = np.asarray(call_shaped(ctx, "longformer_mask", n, radius, g), dtype=bool)
    got = np.asarray(call_shaped(ctx, "bigbird_mask", n, radius, g, r, 4), dtype=bool)
    if (base & ~got).any():
        ctx.fail("bigbird_mask dropped a key the window or a global token allows: random keys are "
                 "added on top of the Longformer mask.")
    added = (got & ~base).sum(axis=-1)
    want = np.minimum(r, (~base).sum(axis=-1))
    ctx.match(added, want, f"random keys added per row by bigbird_mask({n}, {radius}, {g.tolist()}, "
              f"n_random={r}) versus min(r, keys the row could not see)",
              rerun=lambda ns: (np.asarray(ns.bigbird_mask(n, radius, g.copy(), r, 4), dtype=bool)
                                & ~base).sum(axis=-1))
    again = np.asarray(call_shaped(ctx, "bigbird_mask", n, radius, g, r, 4), dtype=bool)
    if (again != got).any():
        ctx.fail("bigbird_mask with the same seed gave a different mask: draw from "
                 "np.random.default_rng(seed), created inside the call.")


@st.composite
def _sparse_case(draw):
    n_q, n_k, d, d_v = draw(sizes(1, 23)), draw(sizes(1, 23)), draw(sizes(1, 8)), draw(sizes(1, 5))
    block = draw(st.sampled_from((1, 2, 3, 4, 8)))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    seed = draw(seeds())
    rng = np.random.default_rng(seed)
    bm = rng.random((math.ceil(n_q / block), math.ceil(n_k / block))) < draw(st.sampled_from((0.3, 0.6, 1.0)))
    return (filled((n_q, d), dtype, 1.0, seed), filled((n_k, d), dtype, 1.0, seed + 1),
            filled((n_k, d_v), dtype, 1.0, seed + 2), bm, block)


@check("blockify matches the reference on random masks, sizes not multiples of the block")
def sparse_blockify_match(ctx):
    rng = np.random.default_rng(9)
    for n_q, n_k, block, p in ((7, 7, 2, 0.1), (16, 16, 4, 0.05), (5, 11, 3, 0.2), (9, 4, 8, 0.3), (1, 1, 1, 1.0)):
        ctx.expect("blockify", rng.random((n_q, n_k)) < p, block)
    ctx.expect("blockify", np.abs(np.arange(64)[:, None] - np.arange(64)) <= 8, 8)


@check("block_sparse_attention equals dense attention under the expanded block mask, and counts "
       "block_mask.sum() tiles")
def sparse_attention_match(ctx):
    @ctx.given(case=_sparse_case())
    def prop(case):
        ctx.expect("block_sparse_attention", *case)

    prop()


@check("block_sparse_attention never reads a disallowed tile: NaN in those keys and values "
       "leaves the output finite and unchanged")
def sparse_poisoned(ctx):
    block, d = 4, 6
    for trial in range(3):
        rng = np.random.default_rng(40 + trial)
        n_k = 22
        q = rng.standard_normal((block, d))
        k, v = rng.standard_normal((n_k, d)), rng.standard_normal((n_k, 3))
        bm = rng.random((1, math.ceil(n_k / block))) < 0.5
        bm[0, trial] = True
        token = np.repeat(bm, block, axis=1)[:, :n_k].repeat(block, axis=0)
        k2, v2 = k.copy(), v.copy()
        k2[~token[0]], v2[~token[0]] = np.nan, np.nan
        got = call_shaped(ctx, "block_sparse_attention", q, k2, v2, bm, block)
        out = np.asarray(got[0])
        want = dense_attention(q, k, v, token)
        if not np.isfinite(out).all():
            ctx.expect("block_sparse_attention", q, k, v, bm, block)   # names a misconception
            ctx.fail("NaN in keys and values of DISALLOWED tiles reached the output: your code read "
                     "(or multiplied by) tiles the block mask excludes. Compute only the allowed "
                     "tiles; masking a dense result still multiplies 0 by NaN.",
                     misconception="dense_then_mask")
        ctx.match(out, want, f"block_sparse_attention with NaN in the disallowed tiles (trial {trial})",
                  rerun=lambda ns, a=(q, k2, v2, bm, block): np.asarray(ns.block_sparse_attention(*a)[0]),
                  tol=tol(np.float64, 10.0))


# --- misconceptions ------------------------------------------------------------

def _lf(n, radius, global_idx, *, rows_only=False, causal=False, exclusive=False):
    i = np.arange(n)
    diff = i[:, None] - i[None, :]
    reach = np.abs(diff) < radius if exclusive else np.abs(diff) <= radius
    mask = reach & (diff >= 0) if causal else reach
    g = np.asarray(global_idx, dtype=np.int64)
    mask[g, :] = True
    if not rows_only:
        mask[:, g] = True
    return mask


def _bb(lf, all_keys=False):
    def bigbird(n, radius, global_idx, n_random, seed):
        mask = lf(n, radius, global_idx)
        rng = np.random.default_rng(seed)
        for i in range(n):
            candidates = np.arange(n) if all_keys else np.flatnonzero(~mask[i])
            if all_keys and not (~mask[i]).any():
                continue
            if len(candidates) and n_random > 0:
                mask[i, rng.choice(candidates, size=min(n_random, len(candidates)), replace=False)] = True
        return mask

    return bigbird


def _variant(**kw):
    def lf(n, radius, global_idx):
        return _lf(n, radius, global_idx, **kw)

    return {"longformer_mask": lf, "bigbird_mask": _bb(lf)}


def _blockify_all(mask, block):
    n_q, n_k = mask.shape
    bq, bk = math.ceil(n_q / block), math.ceil(n_k / block)
    padded = np.ones((bq * block, bk * block), dtype=bool)
    padded[:n_q, :n_k] = mask
    return padded.reshape(bq, block, bk, block).all(axis=(1, 3))


def _token_mask(bm, block, n_q, n_k):
    return np.repeat(np.repeat(bm, block, axis=0), block, axis=1)[:n_q, :n_k]


def _dense_then_mask(q, k, v, block_mask, block):
    token = _token_mask(block_mask, block, q.shape[0], k.shape[0])
    s = q @ k.T / math.sqrt(q.shape[-1])
    p = softmax_rows(np.where(token, s, -np.inf))
    return (p @ v).astype(q.dtype), int(block_mask.size)


def _no_scale(q, k, v, block_mask, block):
    token = _token_mask(block_mask, block, q.shape[0], k.shape[0])
    p = softmax_rows(np.where(token, q @ k.T, -np.inf))
    return (p @ v).astype(q.dtype), int(block_mask.sum())


def _per_tile_softmax(q, k, v, block_mask, block):
    out = np.zeros((q.shape[0], v.shape[-1]), dtype=q.dtype)
    for a in range(block_mask.shape[0]):
        rows = slice(a * block, (a + 1) * block)
        for b in np.flatnonzero(block_mask[a]):
            cols = slice(b * block, (b + 1) * block)
            s = q[rows] @ k[cols].T / math.sqrt(q.shape[-1])
            out[rows] += (softmax_rows(s) @ v[cols]).astype(q.dtype)
    return out, int(block_mask.sum())


def _dense_honest_count(q, k, v, block_mask, block):
    """Dense scores masked afterwards, reporting the tile count it should have had."""
    return _dense_then_mask(q, k, v, block_mask, block)[0], int(block_mask.sum())


MISCONCEPTIONS = (
    # source: beltagy-2020 §3.1 — global attention is symmetric: a global token attends to all
    # tokens AND all tokens attend to it.
    Misconception("global_rows_only", "gave global tokens their rows only (they see all, nobody "
                  "sees them)", _variant(rows_only=True),
                  "Global attention goes both ways: set row g AND column g to True."),
    # source: beltagy-2020 §3.1 — the sliding window of an encoder covers w/2 tokens on each side.
    Misconception("window_one_sided", "made the window causal (only keys before the query)",
                  _variant(causal=True),
                  "Longformer's window is two-sided: keys up to radius AFTER the query count too "
                  "(its decoder variants are another matter)."),
    # source: beltagy-2020 §3.1 — a window of radius r includes the keys at distance exactly r.
    Misconception("radius_exclusive", "used |i − j| < radius", _variant(exclusive=True),
                  "radius = 1 means the query, one key before and one after: |i − j| ≤ radius."),
    # source: zaheer-2020 §2 — the random keys are extra connections; here they are drawn among
    # the keys a row cannot see yet.
    Misconception("random_among_all_keys", "drew random keys among all keys, not the unseen ones",
                  {"bigbird_mask": _bb(lambda n, r, g: _lf(n, r, g), all_keys=True)},
                  "Draw from the keys the row cannot see yet (np.flatnonzero(~mask[i])), so each row "
                  "gains exactly min(r, unseen) new keys."),
    # source: the tile view of dao-2022 / zaheer-2020 §2 (blocked implementation) — a tile is
    # needed when ANY of its pairs is allowed.
    Misconception("blockify_all", "kept a tile only when every pair in it is allowed",
                  {"blockify": _blockify_all},
                  "A tile must be computed if it holds at least one allowed pair: any(), not all()."),
    # source: zaheer-2020 §2 — the savings come from computing only the allowed blocks.
    Misconception("dense_then_mask", "computed every tile and masked afterwards",
                  {"block_sparse_attention": _dense_then_mask},
                  "Same numbers, none of the savings: loop over query blocks and compute q_a·K_Aᵀ for "
                  "the allowed key blocks A only; count those tiles."),
    # source: vaswani-2017 §3.2.1 — the scores are divided by √d.
    Misconception("forgot_scale", "forgot the 1/√d", {"block_sparse_attention": _no_scale},
                  "Sparse or dense, the scores are q·k/√d."),
    # source: milakov-2018 — one softmax per query over ALL its allowed keys; per-tile softmaxes
    # need the online-softmax rescaling to combine.
    Misconception("softmax_per_tile", "took a softmax inside each tile and added the results",
                  {"block_sparse_attention": _per_tile_softmax},
                  "Each tile's softmax sums to 1 on its own: join the allowed tiles' scores into one "
                  "row and normalise once (or rescale as in online softmax)."),
)

SPARSE_PATTERNS = Kata(
    id="sparse_patterns",
    level=22,
    title="Sparse patterns: window, global and random keys, computed by tiles",
    path="history/sparse_patterns.py",
    entries=("longformer_mask", "bigbird_mask", "blockify", "block_sparse_attention"),
    checks=(sparse_masks_match, sparse_worked_example, sparse_bigbird_counts, sparse_blockify_match,
            sparse_attention_match, sparse_poisoned),
    predictions=(
        Prediction("longformer_allowed", "True entries of longformer_mask(8, radius=1, "
                   "global_idx=[0])", 34, kind="exact",
                   why="The band has 8 + 2·7 = 22; row 0 adds the 6 keys it did not have, column 0 "
                       "adds rows 2 … 7 (6 more): 34."),
        Prediction("window_tiles", "tiles for N = 1024, block 64, window radius 64", 46, kind="exact",
                   why="16 query blocks each need the tiles at block offsets −1, 0, +1, except the "
                       "first and last (2 each): 16·3 − 2 = 46, about 18% of the 256 dense tiles."),
    ),
    misconceptions=MISCONCEPTIONS,
    fakes=(Fake("dense_with_claimed_tiles", {"block_sparse_attention": _dense_honest_count}),),
    claims=(
        Claim("block-sparse-equals-dense", "Block-sparse attention over the allowed tiles equals "
              "dense attention under the expanded block mask; its output never depends on keys or "
              "values outside the allowed tiles (NaN there changes nothing), and it reports "
              "block_mask.sum() tiles computed.",
              scope="exact", source="zaheer-2020", evidence=("sparse_attention_match", "sparse_poisoned"),
              not_claimed="Speed: tiles are counted (as the code reports them), not timed; and a block "
                          "mask allows a few pairs the token mask forbids (those in partly allowed "
                          "tiles)."),
        Claim("longformer-global-symmetric", "Longformer's global tokens see every key and are seen "
              "by every query; BigBird adds exactly min(r, unseen) random keys per row, fixed by the "
              "seed.", scope="exact", source="beltagy-2020",
              evidence=("sparse_worked_example", "sparse_bigbird_counts"),
              not_claimed="BigBird draws its random keys per BLOCK in the paper; per token here. "
                          "Nothing about accuracy on long documents."),
    ),
    hints=(
        "longformer: i = np.arange(n); np.abs(i[:, None] - i[None, :]) <= radius; then set the "
        "global rows and columns to True.",
        "bigbird: one rng = np.random.default_rng(seed) before the loop; for each row, candidates = "
        "np.flatnonzero(~mask[i]); skip empty rows without drawing. blockify: pad to whole tiles, "
        "reshape to [bq, B, bk, B], .any(axis=(1, 3)).",
        "block_sparse_attention: for each query block a, gather the key indices of the allowed "
        "blocks (np.flatnonzero(block_mask[a])), compute those scores only, softmax once over them, "
        "tiles += number of allowed blocks; rows with none stay zero.",
    ),
)
