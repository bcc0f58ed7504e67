"""Level 4 — Online softmax and tiled FlashAttention (katas added by its issue)."""

LEVEL = (4, "Online softmax and tiled FlashAttention")
KATAS = ()
