"""Level 2 — Decoding and the KV cache: its size, its growth, one decode step, and sampling.

Each kata's checks live in the module of its name; ``sampling`` holds the softmax and
top-k/top-p math that ``next_token_probs`` and ``sample_next`` share.  This package names
the level and its order.
"""

from __future__ import annotations

from .decode_step import DECODE_STEP
from .kv_cache import KV_CACHE
from .kv_cache_bytes import KV_CACHE_BYTES
from .next_token_probs import NEXT_TOKEN_PROBS
from .sample_next import SAMPLE_NEXT

LEVEL = (2, "Decoding and the KV cache")
KATAS = (KV_CACHE_BYTES, KV_CACHE, DECODE_STEP, NEXT_TOKEN_PROBS, SAMPLE_NEXT)
