"""Paged KV cache demo command (`attnkata paged-demo`): written with level 6."""
