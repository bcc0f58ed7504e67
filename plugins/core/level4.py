"""Level 4 — Online softmax and tiled FlashAttention (NumPy).

The katas live in small modules: ``level4_online``, ``level4_merge``,
``level4_tiled`` (the forward: values, counted tiles, peak memory), ``level4_backward``;
``level4_probe`` holds the instruments (watched arrays, tracemalloc, plain attention).
"""

from .level4_backward import TILED_ATTENTION_BACKWARD
from .level4_merge import MERGE_PARTIALS
from .level4_online import ONLINE_SOFTMAX
from .level4_tiled import TILED_ATTENTION

LEVEL = (4, "Online softmax and tiled FlashAttention")
KATAS = (ONLINE_SOFTMAX, MERGE_PARTIALS, TILED_ATTENTION, TILED_ATTENTION_BACKWARD)
