"""History pack · luong_scores — three ways to score a decoder state against the source.

Intuition
---------
A year after Bahdanau, Luong, Pham and Manning compared simpler alignment scores
for the same job: how well does the current decoder state h_t fit each source
state h_s? *dot* just takes their dot product — no parameters at all, but it needs
both sides to live in the same space. *general* first maps h_s through a learned
matrix, so the two sides may use different coordinates. *concat* is Bahdanau's
small network again: stack the two states, one layer, tanh, read out a number.
The scores then go through a softmax over the source positions, exactly as before.
One of these three, rescaled, became the Transformer's score.

The math
--------
    dot:      score[i, j] = h_t[i] · h_s[j]
    general:  score[i, j] = h_t[i] · (W h_s[j])          = (h_t W h_sᵀ)[i, j]
    concat:   score[i, j] = v_a · tanh(W_a [h_t[i]; h_s[j]])

- h_t [..., N_t, d] : decoder (target) states, one row per target position i
- h_s [..., N_s, d] : encoder (source) states, one row per source position j
- W [d, d]          : general's matrix; in row form h_t[i] @ W @ h_s[j]
- [a; b]            : a and b stacked into one vector of length 2d (target first)
- W_a [d_a, 2d]     : concat's layer, applied to the stacked column [h_t; h_s]
- v_a [d_a]         : reads one number out of the d_a tanh units
- Each function returns the scores [..., N_t, N_s] in h_t's dtype; no softmax here.

Worked example
--------------
h_t = [[1, 2]],  h_s = [[3, 0], [1, 1]]

    dot:     [1·3 + 2·0, 1·1 + 2·1] = [3, 3]
    general, W = [[1, 0], [0, −1]]:  h_t W = [1, −2] → [1·3 − 2·0, 1·1 − 2·1] = [3, −1]
    concat,  W_a = [[1, 0, 0, 1]] (d_a = 1), v_a = [2]:
             W_a [h_t; h_s] = h_t[0] + h_s[1] → [1 + 0, 1 + 1] = [1, 2]
             2·tanh([1, 2]) = [1.5232, 1.9281]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Which of the three is the direct ancestor of the Transformer's scaled
    # dot-product score? Choose one: "dot", "general", "concat".
    "sdpa_ancestor": ...,
    # How many learned numbers does the concat score hold for d = 512, d_a = 512
    # (W_a and v_a together)? An integer.
    "concat_parameters": ...,
}


def dot_score(h_t: np.ndarray, h_s: np.ndarray) -> np.ndarray:
    """score[..., i, j] = h_t[..., i, :] · h_s[..., j, :]; [..., N_t, N_s]."""
    raise NotImplementedError("kata luong_scores: h_t @ h_sᵀ")


def general_score(h_t: np.ndarray, h_s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """score[..., i, j] = h_t[..., i, :] @ w @ h_s[..., j, :]; w is [d, d]."""
    raise NotImplementedError("kata luong_scores: h_t @ W @ h_sᵀ")


def concat_score(h_t: np.ndarray, h_s: np.ndarray, w_a: np.ndarray, v_a: np.ndarray) -> np.ndarray:
    """score[..., i, j] = v_a · tanh(w_a @ [h_t[i]; h_s[j]]); w_a [d_a, 2d], v_a [d_a]."""
    raise NotImplementedError("kata luong_scores: v_a · tanh(W_a [h_t; h_s]) for every pair")
