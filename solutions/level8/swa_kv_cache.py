"""Reference · swa_kv_cache: a ring buffer of the last `window` tokens' keys and values."""

import numpy as np

PREDICTIONS = {
    "mistral_cache_mib": 512,
    "slot_of_position_20": 2,
    "oldest_position": 15,
}


class SlidingWindowKVCache:
    """Keys and values of the last `window` tokens, per head, in constant memory."""

    def __init__(self, n_heads: int, head_dim: int, window: int, dtype=np.float32):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.window = window
        self._k = np.zeros((n_heads, window, head_dim), dtype)   # (H, W, d): the ring
        self._v = np.zeros((n_heads, window, head_dim), dtype)
        self._seen = 0                                           # tokens appended so far

    def __len__(self) -> int:
        return min(self._seen, self.window)

    @property
    def tokens_seen(self) -> int:
        return self._seen

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        t, w = k.shape[1], self.window
        if t > w:                                    # only the chunk's last W tokens survive
            k, v = k[:, -w:], v[:, -w:]
            self._seen += t - w
            t = w
        slots = (self._seen + np.arange(t)) % w      # position p lives in slot p mod W
        self._k[:, slots] = k                        # write, overwriting the oldest
        self._v[:, slots] = v
        self._seen += t

    def _ordered(self, ring: np.ndarray) -> np.ndarray:
        if self._seen <= self.window:
            return ring[:, :self._seen]              # not yet wrapped: a view, oldest first
        start = self._seen % self.window             # the slot of the oldest token held
        return np.concatenate([ring[:, start:], ring[:, :start]], axis=1)

    @property
    def keys(self) -> np.ndarray:
        return self._ordered(self._k)

    @property
    def values(self) -> np.ndarray:
        return self._ordered(self._v)
