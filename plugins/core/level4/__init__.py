"""Level 4 — Online softmax and tiled FlashAttention (NumPy).

Each kata's checks live in the module of its name (``tiled_attention``: the forward's
values, counted tiles and peak memory); ``probe`` holds the instruments (watched arrays,
tracemalloc, plain attention).  This package names the level and its order.
"""

from .merge_partials import MERGE_PARTIALS
from .online_softmax import ONLINE_SOFTMAX
from .tiled_attention import TILED_ATTENTION
from .tiled_attention_backward import TILED_ATTENTION_BACKWARD

LEVEL = (4, "Online softmax and tiled FlashAttention")
KATAS = (ONLINE_SOFTMAX, MERGE_PARTIALS, TILED_ATTENTION, TILED_ATTENTION_BACKWARD)
