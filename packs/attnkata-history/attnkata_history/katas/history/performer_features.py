"""History pack · performer_features — random features whose dot product is exp(q·k) on average.

Intuition
---------
Linear attention needs the similarity of q and k to be a dot product of features,
φ(q)·φ(k). The softmax similarity exp(q·k) is not one, exactly — but it is one on
average. Draw a random direction w from a standard normal; the number
exp(w·x − |x|²/2) is large when x points along w. Multiply this number for x and
for y, and average over many random directions: the average is exactly exp(x·y).
So a vector of m such numbers, one per direction, is a feature map whose dot product
is an unbiased estimate of the softmax kernel. Every entry is positive, so the
estimated attention weights are positive too. Performer (FAVOR+) plugs these
features into linear attention: softmax attention, approximately, in O(N·m·d).

The math
--------
    φ(x) = exp(x Wᵀ − |x|²/2) / √m                  [..., N, m]
    E_W[ φ(x)·φ(y) ] = exp(x·y)        when the rows of W are drawn from N(0, I_d)
    softmax attention's kernel: exp(q·k/√d) = exp(q'·k'),  q' = q / d^{1/4}, k' = k / d^{1/4}
    o_i = φ(q'_i)ᵀ (φ(K')ᵀ V) / φ(q'_i)ᵀ Σ_j φ(k'_j)       (linear attention with these features)

- x [..., N, d] : rows to featurise (queries or keys)
- W [m, d]      : m random directions w_r, one per row (passed in, so results are reproducible)
- |x|²          : Σ_d x_d², per row; exp(−|x|²/2) is what makes the average come out right
- m             : number of features; 1/√m makes φ(x)·φ(y) an average over the m directions
- d^{1/4}       : splits softmax's 1/√d between the query and the key
- Outputs keep x's (q's) dtype; inputs are assumed of moderate size (exp is not stabilised).

Worked example
--------------
d = 1, m = 2, W = [[1], [−1]];  x = [1], y = [0.5]

    φ(x) = exp([1, −1] − 0.5) / √2     = [1.6487, 0.2231] / 1.4142 = [1.1658, 0.1578]
    φ(y) = exp([0.5, −0.5] − 0.125) / √2 = [1.4550, 0.5353] / 1.4142 = [1.0288, 0.3785]
    φ(x)·φ(y) = 1.1994 + 0.0597 = 1.2592,   while exp(x·y) = exp(0.5) = 1.6487
    Two directions are a poor estimate; the average over many W is 1.6487.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Earlier random features for kernels used [cos(xWᵀ), sin(xWᵀ)] ("trig" features).
    # Which can give a NEGATIVE estimate of exp(x·y)? Choose one: "trig", "positive",
    # "both", "neither".
    "trig_can_be_negative": ...,
    # With m = 64 features a toy's kernel estimate is off by 20% on average. About how
    # far off with m = 1024 (same toy, a fraction like 0.2)?
    "error_at_1024": ...,
}


def positive_features(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """φ(x) = exp(x @ w.T − |x|²/2) / √m, [..., N, m] in x's dtype; w is [m, d]."""
    raise NotImplementedError("kata performer_features: exp(x Wᵀ − |x|²/2) / √m")


def performer_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Approximate softmax(q kᵀ/√d) v with positive features of q/d^¼ and k/d^¼, in linear time."""
    raise NotImplementedError("kata performer_features: linear attention with φ(q/d^¼), φ(k/d^¼)")
