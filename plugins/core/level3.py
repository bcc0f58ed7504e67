"""Level 3 — Sharing heads: MQA, GQA, MLA.

The katas live in two modules: ``level3_gqa`` (kv_head_for, gqa_attention) and
``level3_mla`` (mha_to_gqa, mla_attention).
"""

from __future__ import annotations

from .level3_gqa import GQA_ATTENTION, KV_HEAD_FOR
from .level3_mla import MHA_TO_GQA, MLA_ATTENTION

LEVEL = (3, "Sharing heads: MQA, GQA, MLA")
KATAS = (KV_HEAD_FOR, GQA_ATTENTION, MHA_TO_GQA, MLA_ATTENTION)
