"""Level 0 · softmax — turning scores into weights without overflowing.

Intuition
---------
Scores are any real numbers; weights must be non-negative and add up to 1. Softmax
exponentiates (so everything is positive and larger scores win by a ratio) and then
divides by the total. The catch is floating point: e^1000 does not fit in float64
(the largest float64 is about 1.8·10^308), so a softmax written straight from the
formula breaks on scores that large (the prediction below asks how). The fix costs nothing: adding the same constant to every score in a row does not
change the ratios, so subtract the row's maximum first; then the largest exponent
is e^0 = 1 and nothing overflows.

The math
--------
    softmax(x)_i = e^{x_i} / Σ_j e^{x_j} = e^{x_i − m} / Σ_j e^{x_j − m},   m = max_j x_j

- x   : one row of scores (along `axis`)
- i,j : positions along that axis
- m   : the row maximum; any constant works mathematically, the maximum keeps every
        exponent ≤ 0 so nothing overflows
- The denominator is ≥ 1 after the shift (the max contributes e^0 = 1)

A row of all −inf (a query that may attend to nothing) has m = −inf, and
−inf − (−inf) is NaN. We define that row's softmax as all zeros: treat a non-finite
maximum as 0, and divide by 1 where the sum is 0.

Worked example
--------------
x = [1000, 999, 998]:   m = 1000,   x − m = [0, −1, −2]
    e^{x−m} = [1, 0.3679, 0.1353],   sum = 1.5032
    softmax = [0.6652, 0.2447, 0.0900]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # softmax([1000, 1000]) — write the two probabilities as a tuple.
    "softmax_1000": ...,
    # What does np.exp(1000.0) return in float64? Choose one: "inf", "1e434", "nan".
    "naive_exp_1000": ...,
}


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``.

    Same shape and dtype as x. No overflow for logits of ±1000 and beyond; a slice
    that is all -inf returns all zeros, not NaN.
    """
    raise NotImplementedError("kata softmax: exp(x - max) / sum, along axis")
