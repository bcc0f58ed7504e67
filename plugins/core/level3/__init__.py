"""Level 3 — Sharing heads: MQA, GQA, MLA.

Each kata's checks live in the module of its name; ``common`` holds ``peak_bytes`` (the
peak memory of a learner call, measured in its worker).  This package names the level
and its order.
"""

from __future__ import annotations

from .gqa_attention import GQA_ATTENTION
from .kv_head_for import KV_HEAD_FOR
from .mha_to_gqa import MHA_TO_GQA
from .mla_attention import MLA_ATTENTION

LEVEL = (3, "Sharing heads: MQA, GQA, MLA")
KATAS = (KV_HEAD_FOR, GQA_ATTENTION, MHA_TO_GQA, MLA_ATTENTION)
