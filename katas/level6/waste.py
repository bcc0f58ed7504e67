"""Level 6 · waste — why serving systems page their KV cache.

Intuition
---------
A server decoding many requests at once does not know how long each answer will be.
The simple way to give each request a contiguous KV cache is to reserve room for the
longest answer allowed, `max_len` tokens, the moment the request arrives. Most answers
are far shorter, so most of that reservation is never written — and memory reserved
for one request cannot hold another's tokens. Fewer requests fit, and the GPU idles.

Paging reserves memory one block at a time, as a sequence grows. The only slots left
unused are at the end of each sequence's last block: less than one block per sequence,
however long the sequences get. The PagedAttention paper (kwon-2023-paged) reports
the first kind of system wasting most of its KV memory and paging under 4 %. Here you
compute both numbers yourself.

The math
--------
    used      = Σ_s n_s
    reserved  = S · max_len                      (contiguous, reserve max_len each)
    paged     = Σ_s ⌈n_s / B⌉ · B                (whole blocks)
    waste     = 1 − used / reserved   (or 1 − used / paged)

- n_s     : tokens actually stored by sequence s; S sequences in the batch
- max_len : the length reserved per sequence by a contiguous cache (n_s ≤ max_len)
- B       : block size in tokens
- ⌈x⌉     : ceiling; in integers ⌈n / B⌉ = (n + B − 1) // B = -(-n // B)
- waste   : a fraction of the memory set aside, in [0, 1]; 0.0 when nothing is set aside

Worked example
--------------
Three requests of 10, 40 and 70 tokens, max_len = 128, block size 32:
    used = 120;  reserved = 3 · 128 = 384  →  waste = 1 − 120/384 = 0.6875
    blocks = 1 + 2 + 3 = 6, paged = 192    →  waste = 1 − 120/192 = 0.375
(tiny sequences, big blocks: paging's waste is at most 31 slots per sequence here,
 and it stays that small however long the sequences grow.)
"""

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Block size 16: how many blocks does a sequence of 1000 tokens need? (an int)
    "blocks_for_1000_tokens": ...,
    # Block size 16: the most token slots paging can waste on one sequence? (an int)
    "worst_waste_per_sequence": ...,
    # Four requests of 100, 300, 500 and 1000 tokens, each reserved max_len = 2048 slots:
    # the fraction of reserved memory wasted? (a number in [0, 1])
    "reserved_waste_example": ...,
    # The same four requests in blocks of 16: the fraction wasted? (a number)
    "paged_waste_example": ...,
}


def reserved_waste(seq_lens, max_len: int) -> float:
    """Fraction of a contiguous cache wasted when every sequence reserves ``max_len`` slots.

    ``seq_lens``: the tokens each sequence stored (a list or 1-D array of ints).
    """
    raise NotImplementedError("kata waste: 1 − used / (S · max_len)")


def paged_waste(seq_lens, block_size: int) -> float:
    """Fraction of a paged cache wasted: slots reserved in whole blocks but never written."""
    raise NotImplementedError("kata waste: 1 − used / (Σ ⌈n / B⌉ · B)")
