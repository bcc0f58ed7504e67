"""Reference · prefix_cache: full blocks found by the hash of their whole prefix, shared by
refcount, unreferenced cached blocks evicted least recently used first."""

from collections import OrderedDict, deque

PREDICTIONS = {
    "hit_rate_bs4": 0.5,
    "hit_rate_bs8": 1 / 3,
    "blocks_in_use": 11,
}


class PrefixCache:
    """Block tables for prompts, reusing every cached full block of a shared prefix."""

    def __init__(self, num_blocks: int, block_size: int):
        if num_blocks < 0 or block_size < 1:
            raise ValueError(f"need num_blocks >= 0 and block_size >= 1, got {num_blocks}, {block_size}")
        self.num_blocks, self.block_size = num_blocks, block_size
        self._refcount = [0] * num_blocks
        self._hash = [None] * num_blocks       # block -> hash of the prefix it ends, or None
        self._cached = {}                      # hash -> block holding that prefix's last block
        self._empty = deque(range(num_blocks))  # refcount 0, nothing cached
        self._lru = OrderedDict()              # refcount 0, cached: least recently used first

    @property
    def num_free(self) -> int:
        return len(self._empty) + len(self._lru)

    def refcount(self, block: int) -> int:
        return self._refcount[block]

    def _hashes(self, tokens: list) -> list:
        """One hash per full block, each covering the whole prefix up to the block's end."""
        bs, h, out = self.block_size, None, []
        for i in range(len(tokens) // bs):
            h = hash((h, tuple(tokens[i * bs:(i + 1) * bs])))   # parent hash + this block
            out.append(h)
        return out

    def allocate(self, tokens) -> tuple:
        tokens = [int(t) for t in tokens]
        hashes = self._hashes(tokens)
        hits = []
        for h in hashes:                       # the longest cached run of leading full blocks
            block = self._cached.get(h)
            if block is None:
                break
            hits.append(block)
        n_blocks = -(-len(tokens) // self.block_size)
        revived = sum(1 for b in hits if self._refcount[b] == 0)
        if n_blocks - len(hits) > self.num_free - revived:
            raise RuntimeError(f"out of KV blocks: {n_blocks - len(hits)} needed, "
                               f"{self.num_free - revived} free")
        for b in hits:
            if self._refcount[b] == 0:
                del self._lru[b]               # in use again: no longer evictable
            self._refcount[b] += 1
        table = list(hits)
        for i in range(len(hits), n_blocks):
            b = self._take()
            self._refcount[b] = 1
            if i < len(hashes):                # a full block: cache it under its prefix hash
                self._hash[b] = hashes[i]
                self._cached[hashes[i]] = b
            table.append(b)
        return table, len(hits) * self.block_size

    def _take(self) -> int:
        if self._empty:
            return self._empty.popleft()
        b, _ = self._lru.popitem(last=False)   # evict the least recently used cached block
        h, self._hash[b] = self._hash[b], None
        if self._cached.get(h) == b:
            del self._cached[h]
        return b

    def free(self, block_table) -> None:
        for b in reversed(list(block_table)):  # last block first: it becomes the older one
            self._refcount[b] -= 1
            if self._refcount[b] == 0:
                if self._hash[b] is None:
                    self._empty.append(b)
                else:
                    self._lru[b] = None        # still cached, now the most recently used
