"""Reference · merge_partials: weight each normalised part by its share exp(lse − lse_max)."""

import numpy as np

PREDICTIONS = {
    "merged_o": 2.0,
    "merged_lse": 1.3863,
    "empty_weight": 0.0,
}


def merge_partials(o_a: np.ndarray, lse_a: np.ndarray, o_b: np.ndarray,
                   lse_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.maximum(lse_a, lse_b)
    m = np.where(np.isfinite(m), m, 0)  # both parts empty: weights become 0, not NaN
    w_a = np.exp(lse_a - m)             # each part's share of the total mass, up to exp(m)
    w_b = np.exp(lse_b - m)
    total = w_a + w_b
    o = (w_a[..., None] * o_a + w_b[..., None] * o_b) / np.where(total == 0, 1, total)[..., None]
    with np.errstate(divide="ignore"):
        lse = m + np.log(total)         # log 0 = -inf: no keys on either side
    return o, lse
