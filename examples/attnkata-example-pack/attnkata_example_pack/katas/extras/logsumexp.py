"""Example pack · logsumexp — the log of a sum of exponentials, without overflow.

Intuition
---------
log Σ exp(x) is a "soft maximum": close to the largest x when one entry dominates,
a little above it when several are close. Attention kernels carry it around as the
lse of each query row. Computed literally it overflows as soon as some x is large.

The math
--------
    lse(x) = log Σ_j e^{x_j} = m + log Σ_j e^{x_j − m},    m = max_j x_j

- x : one row of numbers (along `axis`)
- j : runs over the row
- m : the row maximum; after subtracting it every exponent is ≤ 0

Worked example
--------------
x = [1000, 1000]:  m = 1000,  Σ e^{x−m} = 1 + 1 = 2,  lse = 1000 + log 2 ≈ 1000.693
"""

import numpy as np

PREDICTIONS = {
    # logsumexp([0, 0]) — a number.
    "lse_two_zeros": ...,
}


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable log Σ exp along ``axis`` (the axis is removed); an all -inf row gives -inf."""
    raise NotImplementedError("kata logsumexp: m + log(sum(exp(x - m)))")
