"""Level 6 — Paged KV cache: blocks, block tables, forks that share, and decoding over pages.

Each kata's checks live in the module of its name; ``stateful`` (the scenario driver) and
``cache_model`` (the paged cache's model) are the helpers they share.  This package names
the level and its order.
"""

from .block_allocator import BLOCK_ALLOCATOR
from .paged_attention_decode import PAGED_ATTENTION_DECODE
from .paged_attention_decode_triton import PAGED_ATTENTION_DECODE_TRITON
from .paged_kv_cache import PAGED_KV_CACHE
from .waste import WASTE

LEVEL = (6, "Paged KV cache")
KATAS = (WASTE, BLOCK_ALLOCATOR, PAGED_KV_CACHE, PAGED_ATTENTION_DECODE, PAGED_ATTENTION_DECODE_TRITON)
