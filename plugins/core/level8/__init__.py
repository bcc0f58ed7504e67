"""Level 8 — Serving: latency accounting, continuous batching, speculative decoding, KV
compression and caches.

Each kata's checks live in the module of its name; this package names the level and its order.
"""

from .continuous_batching import CONTINUOUS_BATCHING
from .kv_quantize import KV_QUANTIZE
from .prefix_cache import PREFIX_CACHE
from .serve_model import SERVE_MODEL
from .serving_latency import SERVING_LATENCY
from .speculative_decoding import SPECULATIVE_DECODING
from .swa_kv_cache import SWA_KV_CACHE

LEVEL = (8, "Serving")
KATAS = (SERVING_LATENCY, CONTINUOUS_BATCHING, SPECULATIVE_DECODING, KV_QUANTIZE, SWA_KV_CACHE,
         PREFIX_CACHE, SERVE_MODEL)
