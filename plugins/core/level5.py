"""Level 5 — Triton (katas added by its issue)."""

LEVEL = (5, "Triton")
KATAS = ()
