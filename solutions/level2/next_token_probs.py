"""Reference · next_token_probs: temperature, then top-k (ties kept), then top-p."""

import numpy as np

PREDICTIONS = {
    "hot_top1_survivors": "only the argmax",
    "tied_top1_count": 2,
    "top_p_count": 2,
}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z))
    return e / e.sum()


def next_token_probs(logits: np.ndarray, temperature: float = 1.0, top_k=None,
                     top_p=None) -> np.ndarray:
    z = logits / np.asarray(temperature, dtype=logits.dtype)      # (V,)
    if top_k is not None and top_k < z.size:
        kth = np.sort(z)[-top_k]                                  # the k-th largest logit
        z = np.where(z >= kth, z, -np.inf)                        # ties with it stay in
    p = _softmax(z)
    if top_p is not None:
        order = np.argsort(-p, kind="stable")                    # most probable first
        mass = np.cumsum(p[order])
        last = min(int(np.searchsorted(mass, top_p, side="left")), p.size - 1)
        keep = np.zeros(p.size, dtype=bool)
        keep[order[:last + 1]] = True                             # the crossing token is kept
        p = np.where(keep, p, 0)
        p = p / p.sum()
    return p.astype(logits.dtype, copy=False)
