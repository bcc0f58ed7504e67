"""Level 2 — Decoding and the KV cache: its size, its growth, one decode step, and sampling.

The katas live in four modules: ``level2_bytes`` (kv_cache_bytes), ``level2_cache`` (KVCache),
``level2_decode`` (decode_step) and ``level2_sampling`` (next_token_probs, sample_next).
"""

from __future__ import annotations

from .level2_bytes import KV_CACHE_BYTES
from .level2_cache import KV_CACHE
from .level2_decode import DECODE_STEP
from .level2_sampling import NEXT_TOKEN_PROBS, SAMPLE_NEXT

LEVEL = (2, "Decoding and the KV cache")
KATAS = (KV_CACHE_BYTES, KV_CACHE, DECODE_STEP, NEXT_TOKEN_PROBS, SAMPLE_NEXT)
