"""KV memory lab command (`attnkata kv`): written with levels 2 and 3."""
