"""Level 3 — Sharing heads: MQA, GQA, MLA (katas added by its issue)."""

LEVEL = (3, "Sharing heads: MQA, GQA, MLA")
KATAS = ()
