"""Level 0 — Scores: QKᵀ, the 1/√d scale, and a softmax that never overflows.

Each kata's checks live in the module of its name; this package names the level and its order.
"""

from .qk_scores import QK_SCORES
from .scaled_scores import SCALED_SCORES
from .softmax import SOFTMAX

LEVEL = (0, "Scores")
KATAS = (QK_SCORES, SCALED_SCORES, SOFTMAX)
