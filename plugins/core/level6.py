"""Level 6 — Paged KV cache: blocks, block tables, forks that share, and decoding over pages.

The katas live in topic modules; this module names the level and its order.
"""

from .level6_allocator import BLOCK_ALLOCATOR

LEVEL = (6, "Paged KV cache")
KATAS = (BLOCK_ALLOCATOR,)
