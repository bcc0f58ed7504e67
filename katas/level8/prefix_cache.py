"""Level 8 · prefix_cache — reuse the KV blocks of a shared prompt prefix (automatic prefix caching).

Intuition
---------
Many requests to a served model start the same way: a long system prompt, the same
few-shot examples, the earlier turns of a chat. Their keys and values for that shared
beginning are identical, so computing and storing them once per request wastes both
prefill time and cache memory. With a paged cache (level 6) the fix is natural: a block
that holds the same tokens *after the same prefix* can simply appear in several block
tables, as a fork's blocks already do. vLLM calls this automatic prefix caching; SGLang
keeps the same reuse in a radix tree.

How do we find a block that "holds the same tokens after the same prefix"? Give every
*full* block a key: a hash of its own tokens together with the key of the block before
it. The key of block i then stands for the whole prefix up to the end of block i — the
same tokens at another place in another prompt get another key, as they must, because a
token's keys and values depend on everything before it (and on its position). A new
prompt walks its full blocks from the start and looks each key up; the first miss ends
the shared prefix. A partly filled last block is never shared: its owner is about to
write the next tokens into it.

When a request finishes, its blocks are freed (refcount − 1), but a full block whose
refcount drops to 0 keeps its contents and its key: a later prompt may hit it. It is
only *evictable*. When a new block is needed, take an empty block if there is one; if
not, evict the cached block that was least recently used (LRU) and reuse it. A block
someone still references is never evicted.

The rules
---------
    key(0) = hash((None, tokens of block 0))
    key(i) = hash((key(i − 1), tokens of block i))        for each full block i

allocate(tokens) -> (block_table, cached_tokens):
    1. hits: blocks found for key(0), key(1), … up to the first miss; each gets
       refcount + 1 (a hit on an evictable block takes it out of the LRU order)
    2. the other ⌈n / B⌉ − hits blocks are new: an empty block if any, otherwise evict
       the least recently used evictable block (forget its key); refcount 1; a new full
       block is cached under its key, the partial last block under none
    3. cached_tokens = hits · B. If the new blocks do not fit, raise RuntimeError and
       change nothing (blocks about to be hit do not count as free for this prompt)
free(block_table):
    from the LAST block to the first: refcount − 1; at 0 a cached block becomes the
    most recently used evictable one, an uncached block becomes empty. (Releasing the
    last block first makes a prompt's later blocks older, so they are evicted before
    the blocks they extend.)
num_free = empty blocks + evictable blocks

- n : tokens in the prompt;  B : block_size;  hits : leading full blocks found
- refcount(b) : how many block tables hold block b
- evictable : refcount 0 and cached (has a key); empty : refcount 0, no key

Worked example
--------------
B = 2, 6 blocks. The first prompt [7, 3, 9, 9, 4] has full blocks [7, 3], [9, 9] and a
partial block [4]:
    a = allocate([7, 3, 9, 9, 4])       -> ([0, 1, 2], 0)    nothing cached yet
    b = allocate([7, 3, 9, 9, 8, 1])    -> ([0, 1, 3], 4)    blocks 0, 1 shared: refcount 2
    c = allocate([9, 9, 7, 3])          -> ([4, 5], 0)       [9, 9] after [7, 3] is not
                                                             [9, 9] at the start: a miss
    free(a): block 2 empty, 1 and 0 keep refcount 1 (b holds them)
    free(b): 3 → evictable, then 1, then 0: the LRU order is 3, 1, 0
    allocate([5, 5, 6, 6, 2]) needs 3 blocks: 2 is empty, then evict 3 and 1 (the least
    recently used) -> ([2, 3, 1], 0). Block 0 still caches [7, 3]:
    allocate([7, 3])                    -> ([0], 2)          a hit on an evictable block
(Block ids are whatever your cache hands out; the tests only look at which blocks are
shared, at refcounts, at num_free and at cached_tokens.)
"""

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # A trace: 4 requests, one after another, none freed. Each is the same 12-token
    # system prompt followed by 6 tokens of its own (18 tokens). Block size 4, plenty
    # of blocks. Fraction of all prompt tokens served from the cache
    # (Σ cached_tokens / Σ prompt tokens)? (a number)
    "hit_rate_bs4": ...,
    # The same trace with block size 8? (a number)
    "hit_rate_bs8": ...,
    # Block size 4 again: how many blocks are in use (refcount > 0) after the four
    # requests are allocated? (an int)
    "blocks_in_use": ...,
}


class PrefixCache:
    """A block manager that shares cached full blocks of common prompt prefixes.

    PrefixCache(num_blocks, block_size); allocate(tokens) -> (block_table, cached_tokens)
    with tokens a list of ints (RuntimeError, and no change, when the blocks do not fit);
    free(block_table); refcount(block) -> int; num_free (a property): blocks with
    refcount 0, empty or evictable.
    """

    def __init__(self, num_blocks: int, block_size: int):
        raise NotImplementedError("kata prefix_cache: refcounts, a key -> block map, an empty "
                                  "pool and an LRU order of evictable blocks")

    @property
    def num_free(self) -> int:
        raise NotImplementedError("kata prefix_cache: empty blocks + evictable blocks")

    def refcount(self, block: int) -> int:
        raise NotImplementedError("kata prefix_cache: the block's number of owners")

    def allocate(self, tokens) -> tuple:
        raise NotImplementedError("kata prefix_cache: hit leading full blocks by prefix key, "
                                  "then take empty or least recently used blocks")

    def free(self, block_table) -> None:
        raise NotImplementedError("kata prefix_cache: refcount − 1 from the last block to the "
                                  "first; cached blocks at 0 become evictable")
