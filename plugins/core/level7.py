"""Level 7 — Ring attention (katas added by its issue)."""

LEVEL = (7, "Ring attention")
KATAS = ()
