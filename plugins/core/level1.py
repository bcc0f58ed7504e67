"""Level 1 — Attention: masks, softmax(QKᵀ/√d)·V, rotary positions and multiple heads.

The katas live in topic modules; this module names the level and its order.
"""

from .level1_attention import ATTENTION
from .level1_masks import CAUSAL_MASK, SLIDING_WINDOW_MASK
from .level1_mha import MULTI_HEAD_ATTENTION
from .level1_rope import ROPE

LEVEL = (1, "Attention")
KATAS = (CAUSAL_MASK, SLIDING_WINDOW_MASK, ATTENTION, ROPE, MULTI_HEAD_ATTENTION)
