"""Level 6 — Paged KV cache (katas added by its issue)."""

LEVEL = (6, "Paged KV cache")
KATAS = ()
