"""History pack · additive_attention — Bahdanau's alignment: a small network scores each pair.

Intuition
---------
Before attention, a translation model squeezed the whole source sentence into ONE
vector and asked the decoder to unpack it. Bahdanau, Cho and Bengio let the decoder
look back instead: at every output word it scores each source word ("how well does
source position j fit what I am about to write?"), turns the scores into weights
that sum to 1, and reads a weighted average of the source annotations — the
*context vector*. The score is a tiny one-hidden-layer network, not a dot product:
project the decoder state and the source annotation to a common width, add them,
squash with tanh, and read one number out with a vector v_a. The weights, drawn as
a [target × source] grid, are the *alignment matrix*: for a French sentence whose
adjective follows its noun, it is a diagonal with a swap.

The math
--------
    e[i, j] = v_aᵀ · tanh(q_i W_q + k_j W_k)        scores     [..., N_q, N_k]
    e[i, j] = −∞   where mask[i, j] is False
    α[i, :] = softmax(e[i, :])                      weights    [..., N_q, N_k]
    c_i     = Σ_j α[i, j] · v_j                     context    [..., N_q, d_v]

- q_i : decoder state i (the query), a row of q [..., N_q, d_q]
- k_j : source annotation j (the key), a row of k [..., N_k, d_k]
- v_j : what is averaged, a row of v [..., N_k, d_v] (in the paper v = k, the annotations)
- W_q [d_q, d_a], W_k [d_k, d_a] : project both sides to the hidden width d_a
- v_a [d_a] : turns the d_a hidden units into one score
- tanh      : applied elementwise to the SUM of the two projections, values in (−1, 1)
- mask      : optional boolean [N_q, N_k] (broadcast over leading dims), True = may attend;
              a query with no visible key gets zero weights and a zero context
- No 1/√d: the score is not a dot product, its size is set by v_a.

Worked example
--------------
q = [1, 0]; k = [[1, 0], [0, 1]]; W_q = W_k = I (2×2); v_a = [1, −1]; v = [[10, 0], [0, 10]]

    key 0: q + k_0 = [2, 0] → tanh → [0.9640, 0.0000] → e = 0.9640 − 0      = 0.9640
    key 1: q + k_1 = [1, 1] → tanh → [0.7616, 0.7616] → e = 0.7616 − 0.7616 = 0
    α = softmax([0.9640, 0]) = [0.7239, 0.2761]
    c = 0.7239·[10, 0] + 0.2761·[0, 10] = [7.239, 2.761]

See it: `python katas/history/additive_attention.py` draws the alignment of a toy
translation with YOUR functions (add `--png alignment.png` for an image).
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # A variant applies tanh to each projection separately:
    # e[i, j] = v_aᵀ·(tanh(q_i W_q) + tanh(k_j W_k)). Do its weights α[i, :] change
    # when the query q_i changes? Choose one: "yes", "no".
    "separate_tanh_depends_on_query": ...,
    # v_a = [3, −4]. What is the largest |e[i, j]| any q, k, W_q, W_k can produce? (a number)
    "largest_score": ...,
}


def additive_scores(q: np.ndarray, k: np.ndarray, w_q: np.ndarray, w_k: np.ndarray,
                    v_a: np.ndarray) -> np.ndarray:
    """e[..., i, j] = v_a · tanh(q[..., i, :] @ w_q + k[..., j, :] @ w_k).

    q [..., N_q, d_q], k [..., N_k, d_k], w_q [d_q, d_a], w_k [d_k, d_a], v_a [d_a].
    Returns [..., N_q, N_k] in q's dtype.
    """
    raise NotImplementedError("kata additive_attention: v_a · tanh(q W_q + k W_k) for every pair")


def additive_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, w_q: np.ndarray,
                       w_k: np.ndarray, v_a: np.ndarray,
                       mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bahdanau attention: ``(context [..., N_q, d_v], weights [..., N_q, N_k])``, both in
    q's dtype. Weights are the softmax of the additive scores over the keys (−∞ where
    mask is False); a query with no visible key gets zero weights and a zero context."""
    raise NotImplementedError("kata additive_attention: softmax of the scores, then weights @ v")


if __name__ == "__main__":
    import sys

    from attnkata_history.show import render_alignment, toy_translation

    source, target, args = toy_translation()
    _, weights = additive_attention(*args)
    png = sys.argv[sys.argv.index("--png") + 1] if "--png" in sys.argv else None
    saved = render_alignment(weights, source, target, png=png)
    if saved:
        print(f"saved {saved}")
