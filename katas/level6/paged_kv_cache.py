"""Level 6 · paged_kv_cache — many sequences' keys and values in one pool of pages.

Intuition
---------
Level 2's KV cache was one growing array per sequence. A server holds hundreds of
sequences at once, of unknown final lengths, so it keeps one big pool of fixed-size
*blocks* instead (the page frames of an operating system) and gives each sequence a
*block table*: the list of physical blocks holding its tokens, in order. A sequence
grows one block at a time, and its blocks can sit anywhere in the pool.

The table buys a second trick: sharing. Sampling several answers to one prompt, or
keeping several beams, means several sequences with the same prefix. A `fork` copies
only the block *table* and adds an owner to each block (the allocator's `incref`): no
keys or values move. The blocks stay shared until someone writes. Only the last block
of a sequence is ever written, and only if it is partly filled; when it is shared, the
writer first takes a private copy — *copy-on-write*, as after a Unix `fork()`.

The math
--------
    token t of a sequence  →  block  table[t // B],  row  t % B
    blocks a sequence of n tokens needs = ⌈n / B⌉
    append of m tokens to a sequence of n needs  ⌈(n + m) / B⌉ − ⌈n / B⌉  new blocks,
        plus 1 when the last block is partly filled (n % B ≠ 0) and shared (refcount > 1)

- B            : block_size, tokens per block
- table        : the sequence's block table, a list of physical block ids
- n, m         : tokens already in the sequence, tokens being appended
- k_pages      : the key pool, ``[num_blocks, B, n_heads, head_dim]``; v_pages likewise
- refcount     : owners of a block (your `BlockAllocator` from the previous kata)

An append that does not fit raises `RuntimeError` and changes nothing: count what it
needs against `num_free` *before* allocating anything.

Worked example
--------------
B = 4. Sequence s appends 6 tokens: it gets blocks, say, [5, 2] — rows 0–3 of block 5,
rows 0–1 of block 2. f = fork(s): f's table is [5, 2] too; refcounts of 5 and 2 are 2.
f appends one token (its 7th, row 2 of its second block). Block 2 is partly filled
(6 % 4 = 2 rows) and shared, so: allocate block 7, copy rows 0–1 of block 2 into it,
free (decref) block 2, set f's table to [5, 7], write the token at block 7, row 2.
Now refcount(5) = 2, refcount(2) = 1 (s alone), refcount(7) = 1. If s then appends,
block 2 is not shared any more: s writes into it directly.
"""

import torch

from .block_allocator import BlockAllocator

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Block size 16: a sequence of 1000 tokens, then one fork. How many physical blocks
    # do the two use together? (an int)
    "blocks_after_fork": ...,
    # ...then the fork appends one token. How many blocks are in use now? (an int)
    "blocks_after_fork_appends": ...,
    # ...and how many tokens' keys and values did that copy-on-write copy? (an int)
    "tokens_copied_on_write": ...,
    # Same, but the sequence had 1008 tokens when forked: blocks in use after the fork
    # appends one token? (an int)
    "blocks_after_fork_appends_full": ...,
}


class PagedKVCache:
    """Keys and values of many sequences in pages ``[num_blocks, block_size, n_heads, head_dim]``.

    ``add_sequence() -> seq_id``; ``append(seq_id, k, v)`` with ``k, v``
    ``[t, n_heads, head_dim]``; ``fork(seq_id) -> seq_id`` (shares every block;
    copy-on-write when a shared, partly filled block is appended to);
    ``free_sequence(seq_id)``; ``block_table(seq_id) -> list[int]``; ``seq_len(seq_id)``;
    tensors ``k_pages``, ``v_pages``. Use a ``BlockAllocator`` for the block ids.
    """

    def __init__(self, num_blocks: int, block_size: int, n_heads: int, head_dim: int,
                 dtype: torch.dtype = torch.float32):
        raise NotImplementedError("kata paged_kv_cache: an allocator, two page tensors, "
                                  "a block table per sequence")

    def add_sequence(self) -> int:
        raise NotImplementedError("kata paged_kv_cache: a new, empty sequence")

    def append(self, seq_id: int, k: torch.Tensor, v: torch.Tensor) -> None:
        raise NotImplementedError("kata paged_kv_cache: check room, copy-on-write, allocate, write")

    def fork(self, seq_id: int) -> int:
        raise NotImplementedError("kata paged_kv_cache: share every block (incref), copy nothing")

    def free_sequence(self, seq_id: int) -> None:
        raise NotImplementedError("kata paged_kv_cache: free every block of its table")

    def block_table(self, seq_id: int) -> list[int]:
        raise NotImplementedError("kata paged_kv_cache: the sequence's physical block ids, in order")

    def seq_len(self, seq_id: int) -> int:
        raise NotImplementedError("kata paged_kv_cache: tokens in the sequence")
