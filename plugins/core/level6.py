"""Level 6 — Paged KV cache: blocks, block tables, forks that share, and decoding over pages.

The katas live in topic modules; this module names the level and its order.
"""

from .level6_allocator import BLOCK_ALLOCATOR
from .level6_cache import PAGED_KV_CACHE
from .level6_decode import PAGED_ATTENTION_DECODE
from .level6_triton import PAGED_ATTENTION_DECODE_TRITON
from .level6_waste import WASTE

LEVEL = (6, "Paged KV cache")
KATAS = (WASTE, BLOCK_ALLOCATOR, PAGED_KV_CACHE, PAGED_ATTENTION_DECODE, PAGED_ATTENTION_DECODE_TRITON)
