"""Reference · paged_kv_cache: block tables over a shared page pool, forks by reference,
copy-on-write of a shared, partly filled last block."""

import torch

from .block_allocator import BlockAllocator

PREDICTIONS = {
    "blocks_after_fork": 63,
    "blocks_after_fork_appends": 64,
    "tokens_copied_on_write": 8,
    "blocks_after_fork_appends_full": 64,
}


class PagedKVCache:
    """Keys and values of many sequences in ``[num_blocks, block_size, n_heads, head_dim]`` pages."""

    def __init__(self, num_blocks: int, block_size: int, n_heads: int, head_dim: int,
                 dtype: torch.dtype = torch.float32):
        self.allocator = BlockAllocator(num_blocks, block_size)
        self.block_size = block_size
        self.k_pages = torch.zeros(num_blocks, block_size, n_heads, head_dim, dtype=dtype)
        self.v_pages = torch.zeros(num_blocks, block_size, n_heads, head_dim, dtype=dtype)
        self._tables: dict[int, list[int]] = {}  # seq id -> physical block of each logical block
        self._lens: dict[int, int] = {}
        self._next_id = 0

    def add_sequence(self) -> int:
        seq_id, self._next_id = self._next_id, self._next_id + 1
        self._tables[seq_id], self._lens[seq_id] = [], 0
        return seq_id

    def append(self, seq_id: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write ``t`` new tokens (``k, v`` ``[t, n_heads, head_dim]``) after the sequence's last."""
        page_shape = tuple(self.k_pages.shape[2:])
        if k.shape != v.shape or k.dim() != 3 or tuple(k.shape[1:]) != page_shape:
            raise ValueError(f"k, v must be [t, {page_shape[0]}, {page_shape[1]}], "
                             f"got {tuple(k.shape)} and {tuple(v.shape)}")
        table, n, t, bs = self._tables[seq_id], self._lens[seq_id], k.shape[0], self.block_size
        if t == 0:
            return
        # check first, act second: an append that cannot finish changes nothing
        shared_tail = n % bs != 0 and self.allocator.refcount(table[-1]) > 1
        needed = -(-(n + t) // bs) - len(table) + int(shared_tail)
        if needed > self.allocator.num_free:
            raise RuntimeError(f"out of KV blocks: appending {t} tokens to sequence {seq_id} needs "
                               f"{needed} new blocks, {self.allocator.num_free} are free")
        if shared_tail:  # copy-on-write: this sequence gets its own copy of the shared block
            old, new, filled = table[-1], self.allocator.allocate(), n % bs
            self.k_pages[new, :filled] = self.k_pages[old, :filled]
            self.v_pages[new, :filled] = self.v_pages[old, :filled]
            self.allocator.free(old)
            table[-1] = new
        while len(table) * bs < n + t:
            table.append(self.allocator.allocate())
        pos = torch.arange(n, n + t)
        blocks = torch.tensor(table)[pos // bs]
        self.k_pages[blocks, pos % bs] = k.to(self.k_pages.dtype)
        self.v_pages[blocks, pos % bs] = v.to(self.v_pages.dtype)
        self._lens[seq_id] = n + t

    def fork(self, seq_id: int) -> int:
        """A new sequence with the same tokens, sharing every block (no copy)."""
        child = self.add_sequence()
        for block in self._tables[seq_id]:
            self.allocator.incref(block)
        self._tables[child] = list(self._tables[seq_id])
        self._lens[child] = self._lens[seq_id]
        return child

    def free_sequence(self, seq_id: int) -> None:
        for block in self._tables.pop(seq_id):
            self.allocator.free(block)
        del self._lens[seq_id]

    def block_table(self, seq_id: int) -> list[int]:
        return list(self._tables[seq_id])

    def seq_len(self, seq_id: int) -> int:
        return self._lens[seq_id]
