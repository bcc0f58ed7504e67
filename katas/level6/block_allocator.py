"""Level 6 · block_allocator — the free list behind a paged KV cache.

Intuition
---------
A serving engine does not know how long each answer will be. Reserving the maximum
length for every request wastes most of the memory (the `waste` kata measures how
much). An operating system solved the same problem for processes decades ago: cut
memory into fixed-size *pages*, hand them out one at a time as a process grows, and
keep a table saying which physical page holds which part of the process.

This kata is the allocator: a pool of `num_blocks` blocks, each able to hold the keys
and values of `block_size` tokens. It only hands out block *ids*; the memory itself
lives in the cache (next kata). The twist over a plain free list is sharing: when a
sequence is forked (several samples of one prompt, beam search) both children point at
the same blocks. So each block carries a *reference count* — how many owners it has —
and goes back to the pool only when the last owner lets go.

The math (bookkeeping, really)
------------------------------
    free(b):     rc[b] ← rc[b] − 1;   if rc[b] = 0: b goes back to the free list
    incref(b):   rc[b] ← rc[b] + 1
    allocate():  take any b with rc[b] = 0;  rc[b] ← 1
    num_free   = |{ b : rc[b] = 0 }|

- b          : a block id, an int in 0 … num_blocks − 1 (it indexes the page pool)
- rc[b]      : the block's reference count, its number of owners (0 = free)
- num_free   : how many blocks allocate() could still hand out
- block_size : tokens per block; the allocator only stores it for its users

Two errors keep the bookkeeping honest. Out of blocks, allocate() raises
`RuntimeError` and changes nothing (a scheduler catches it and preempts a request).
Freeing a block whose refcount is already 0 raises `ValueError`: a double free is a
bug in the caller, and accepting it silently would let one block be handed out twice.

Worked example
--------------
BlockAllocator(num_blocks=3, block_size=16):
    x = allocate()    rc = [1, 0, 0]  num_free = 2   (x = 0; any free id is fine)
    incref(x)         rc = [2, 0, 0]  num_free = 2   (a fork now shares x)
    incref(x)         rc = [3, 0, 0]  num_free = 2   (a second fork shares it too)
    free(x)           rc = [2, 0, 0]  num_free = 2   (two readers are left)
    free(x); free(x)  rc = [0, 0, 0]  num_free = 3   (x is back in the pool)
    free(x)           ValueError: block 0 is free
"""

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # BlockAllocator(4, 16): a = allocate(); b = allocate(); incref(a); free(a).
    # What is num_free now? (an int)
    "num_free_after_shared_free": ...,
    # ...and refcount(a)? (an int)
    "refcount_after_shared_free": ...,
    # free(a) once more, then free(a) again: what happens?
    # Choose one: "ValueError", "RuntimeError", "nothing".
    "double_free_error": ...,
}


class BlockAllocator:
    """Hands out fixed-size blocks by id; a block may have several owners.

    ``BlockAllocator(num_blocks, block_size)``; ``allocate() -> int`` (refcount 1),
    ``incref(block)``, ``free(block)``, ``refcount(block) -> int``, ``num_free`` (a
    property). Out of blocks: ``RuntimeError``, nothing changes. Freeing a free block:
    ``ValueError``.
    """

    def __init__(self, num_blocks: int, block_size: int):
        raise NotImplementedError("kata block_allocator: keep a free list and a refcount per block")

    @property
    def num_free(self) -> int:
        raise NotImplementedError("kata block_allocator: how many blocks have refcount 0")

    def allocate(self) -> int:
        raise NotImplementedError("kata block_allocator: pop a free block, refcount 1 "
                                  "(RuntimeError when none is left)")

    def incref(self, block: int) -> None:
        raise NotImplementedError("kata block_allocator: one more owner")

    def free(self, block: int) -> None:
        raise NotImplementedError("kata block_allocator: one owner fewer; back to the pool at 0 "
                                  "(ValueError if already free)")

    def refcount(self, block: int) -> int:
        raise NotImplementedError("kata block_allocator: the block's number of owners")
