"""Reference · KVCache: one growing buffer per K and V, doubled when full."""

import numpy as np

PREDICTIONS = {
    "double_t_factor": 2,
    "llama70b_128k_gib": 40,
    "doublings_to_1m": 20,
}

INITIAL_CAPACITY = 16  # tokens


class KVCache:
    """Keys and values of every token so far, per head: [n_heads, T, head_dim] each."""

    def __init__(self, n_heads: int, head_dim: int, dtype=np.float32):
        self.n_heads, self.head_dim, self.dtype = n_heads, head_dim, np.dtype(dtype)
        self._k = np.empty((n_heads, INITIAL_CAPACITY, head_dim), self.dtype)  # (H, cap, d)
        self._v = np.empty((n_heads, INITIAL_CAPACITY, head_dim), self.dtype)
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        t = k.shape[1]  # k, v: (H, t, d)
        end = self._len + t
        if end > self._k.shape[1]:
            self._grow(max(end, 2 * self._k.shape[1]))
        self._k[:, self._len:end] = k
        self._v[:, self._len:end] = v
        self._len = end

    def _grow(self, capacity: int) -> None:
        # Doubling: each token is copied O(1) times on average over the cache's life.
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = np.empty((self.n_heads, capacity, self.head_dim), self.dtype)
            new[:, :self._len] = old[:, :self._len]
            setattr(self, name, new)

    @property
    def keys(self) -> np.ndarray:
        return self._k[:, :self._len]  # a view of the filled part: (H, T, d)

    @property
    def values(self) -> np.ndarray:
        return self._v[:, :self._len]
