"""Reference · block_allocator: a free list of block ids and one reference count per block."""

from collections import deque

PREDICTIONS = {
    "num_free_after_shared_free": 2,
    "refcount_after_shared_free": 1,
    "double_free_error": "ValueError",
}


class BlockAllocator:
    """Hands out fixed-size blocks of KV memory by id; a block may have several owners."""

    def __init__(self, num_blocks: int, block_size: int):
        if num_blocks < 0 or block_size < 1:
            raise ValueError(f"need num_blocks >= 0 and block_size >= 1, got {num_blocks}, {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._refcounts = [0] * num_blocks
        self._free = deque(range(num_blocks))

    @property
    def num_free(self) -> int:
        return len(self._free)

    def allocate(self) -> int:
        """A free block, now with one owner. Out of blocks: RuntimeError, nothing changes."""
        if not self._free:
            raise RuntimeError(f"out of KV blocks: all {self.num_blocks} are in use")
        block = self._free.popleft()
        self._refcounts[block] = 1
        return block

    def incref(self, block: int) -> None:
        """One more owner of an allocated block (a fork sharing it)."""
        self._check_owned(block, "incref")
        self._refcounts[block] += 1

    def free(self, block: int) -> None:
        """One owner fewer; the last owner's free returns the block to the pool."""
        self._check_owned(block, "free")
        self._refcounts[block] -= 1
        if self._refcounts[block] == 0:
            self._free.append(block)

    def refcount(self, block: int) -> int:
        return self._refcounts[block]

    def _check_owned(self, block: int, what: str) -> None:
        if not 0 <= block < self.num_blocks:
            raise ValueError(f"{what}({block}): no such block (there are {self.num_blocks})")
        if self._refcounts[block] == 0:
            raise ValueError(f"{what}({block}): block {block} is free (a double free?)")
