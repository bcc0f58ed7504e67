"""Reference · additive_attention: v_a·tanh(q W_q + k W_k), softmax over keys, weighted average."""

import numpy as np

PREDICTIONS = {
    "separate_tanh_depends_on_query": "no",
    "largest_score": 7.0,
}


def additive_scores(q: np.ndarray, k: np.ndarray, w_q: np.ndarray, w_k: np.ndarray,
                    v_a: np.ndarray) -> np.ndarray:
    hq = q @ w_q                                          # [..., N_q, d_a]
    hk = k @ w_k                                          # [..., N_k, d_a]
    hidden = np.tanh(hq[..., :, None, :] + hk[..., None, :, :])   # [..., N_q, N_k, d_a]
    return (hidden @ v_a).astype(q.dtype, copy=False)     # [..., N_q, N_k]


def additive_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, w_q: np.ndarray,
                       w_k: np.ndarray, v_a: np.ndarray,
                       mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    e = additive_scores(q, k, w_q, w_k, v_a)
    if mask is not None:
        e = np.where(mask, e, -np.inf)
    m = np.max(e, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)                    # a row with no visible key
    x = np.exp(e - m)
    total = x.sum(axis=-1, keepdims=True)
    alpha = (x / np.where(total == 0, 1, total)).astype(q.dtype, copy=False)
    return (alpha @ v).astype(q.dtype, copy=False), alpha


if __name__ == "__main__":
    import sys

    from attnkata_history.show import render_alignment, toy_translation

    source, target, args = toy_translation()
    _, weights = additive_attention(*args)
    png = sys.argv[sys.argv.index("--png") + 1] if "--png" in sys.argv else None
    saved = render_alignment(weights, source, target, png=png)
    if saved:
        print(f"saved {saved}")
