"""Level 1 — Attention (katas added by its issue)."""

LEVEL = (1, "Attention")
KATAS = ()
