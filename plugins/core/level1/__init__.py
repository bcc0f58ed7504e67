"""Level 1 — Attention: masks, softmax(QKᵀ/√d)·V, rotary positions and multiple heads.

Each kata's checks live in the module of its name (``common`` holds the helpers they
share); this package names the level and its order.
"""

from .attention import ATTENTION
from .causal_mask import CAUSAL_MASK
from .multi_head_attention import MULTI_HEAD_ATTENTION
from .rope import ROPE
from .sliding_window_mask import SLIDING_WINDOW_MASK

LEVEL = (1, "Attention")
KATAS = (CAUSAL_MASK, SLIDING_WINDOW_MASK, ATTENTION, ROPE, MULTI_HEAD_ATTENTION)
