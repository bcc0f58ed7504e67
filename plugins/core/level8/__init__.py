"""Level 8 — Serving: latency accounting, continuous batching, speculative decoding, KV
compression and caches.

Each kata's checks live in the module of its name; this package names the level and its order.
"""

from .continuous_batching import CONTINUOUS_BATCHING
from .kv_quantize import KV_QUANTIZE
from .serving_latency import SERVING_LATENCY
from .speculative_decoding import SPECULATIVE_DECODING

LEVEL = (8, "Serving")
KATAS = (SERVING_LATENCY, CONTINUOUS_BATCHING, SPECULATIVE_DECODING)
KATAS += (KV_QUANTIZE,)  # 15b's katas (merged into the tuple once 15a's are in)
