"""Level 2 — Decoding and the KV cache (katas added by its issue)."""

LEVEL = (2, "Decoding and the KV cache")
KATAS = ()
