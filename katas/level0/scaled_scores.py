"""Level 0 · scaled_scores — why attention divides by √d.

Intuition
---------
A dot product adds up d products. If each product is a little noisy, the sum gets
noisier as d grows: with d = 16 a typical raw score is about ±4, with d = 1024 about
±32. Softmax turns score differences into ratios of exponentials, so scores that
large make it pick one key almost exclusively — and a near one-hot softmax passes
almost no gradient back. Dividing by √d undoes the growth, whatever the width.

The math
--------
    S = Q Kᵀ / √d

- Q [N_q, d], K [N_k, d] : queries and keys, as in qk_scores
- d                      : the feature width (q.shape[-1])
- √d                     : the standard deviation of one raw score when the entries
                           of q and k are independent with mean 0 and variance 1

Why √d: Var(q·k) = Σ_c Var(q_c k_c) = d · 1 = d (independent terms add their
variances; each product of two unit-variance, zero-mean numbers has variance 1).
Dividing a number by c divides its variance by c²; work out what dividing by √d
leaves (that is the first prediction below).

Worked example
--------------
d = 4, q = [1, 1, 1, 1], k = [1, 1, 1, -1]:
    raw score  q·k = 1 + 1 + 1 − 1 = 2
    scaled     2 / √4 = 1.0
With d = 16 and random unit-variance vectors, raw scores spread with standard
deviation √16 = 4.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Standard-normal q and k, d = 64. What is the variance of one scaled score
    # q·k / √d? (a number)
    "scaled_variance": ...,
    # With d = 64, every raw score is divided by which number?
    "scale_factor_d64": ...,
}


def scaled_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Scores divided by √d.

    q: [..., N_q, d], k: [..., N_k, d]. Returns [..., N_q, N_k] in q's dtype.
    You may reuse your first kata: ``from .qk_scores import qk_scores``.
    """
    raise NotImplementedError("kata scaled_scores: return qk_scores(q, k) / √d")
