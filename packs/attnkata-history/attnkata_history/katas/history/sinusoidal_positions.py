"""History pack · sinusoidal_positions — the Transformer's absolute position code.

Intuition
---------
Attention by itself cannot tell word order: shuffle the tokens and each one sees the
same set. The original Transformer adds a fixed vector to each token's embedding
that says where it sits. The vector is a bank of clocks: pair i of its features is
a hand turning at its own speed, slow for large i and fast for small i, and the
pair holds the sine and cosine of the hand's angle. Position p reads every hand at
time p. Because each pair is a point on a circle, moving k steps later turns every
hand by a fixed amount that does not depend on where you started — a linear map
that only knows the offset k. The authors hoped this would let the model attend by
relative position.

The math
--------
    ω_i = base^(−2i/d)                      speed of pair i, i = 0 … d/2 − 1
    PE[p, 2i]     = sin(p · ω_i)
    PE[p, 2i + 1] = cos(p · ω_i)
    PE[p + k] = PE[p] @ M(k),   M(k) block-diagonal, block i = [[ cos kω_i, −sin kω_i],
                                                                [ sin kω_i,  cos kω_i]]

- n     : number of positions, p = 0 … n − 1 (the first position is 0)
- d     : width of the code (even); pairs are features (2i, 2i + 1), interleaved
- base  : sets the slowest speed; 10000 in the paper
- ω_i   : angle per position of pair i, in radians
- k     : an offset (an integer, negative allowed)
- M(k) [d, d] : acts on a ROW vector from the right; zero outside the 2×2 blocks
- Returns are float64.

Worked example
--------------
d = 4, base = 10000: ω_0 = 1, ω_1 = 10000^(−2/4) = 0.01

    PE[1] = [sin 1, cos 1, sin 0.01, cos 0.01] = [0.8415,  0.5403, 0.0100, 0.99995]
    PE[2] = [sin 2, cos 2, sin 0.02, cos 0.02] = [0.9093, −0.4161, 0.0200, 0.99980]
    M(1), block 0 = [[cos 1, −sin 1], [sin 1, cos 1]] = [[0.5403, −0.8415], [0.8415, 0.5403]]
    [0.8415, 0.5403] @ block 0 = [0.8415·0.5403 + 0.5403·0.8415, −0.8415² + 0.5403²]
                               = [0.9093, −0.4161]  = the first pair of PE[2]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # d = 4, base = 10000: PE[p] · PE[p] (a number; is it the same for every p?)
    "self_dot": ...,
    # d = 8: the sum of the entries of PE[0] (a number).
    "pe0_sum": ...,
}


def sinusoidal_positions(n: int, d: int, base: float = 10000.0) -> np.ndarray:
    """PE [n, d] float64: PE[p, 2i] = sin(p·base^(−2i/d)), PE[p, 2i+1] = cos(same angle)."""
    raise NotImplementedError("kata sinusoidal_positions: sin and cos of p · base^(−2i/d), interleaved")


def position_shift(offset: int, d: int, base: float = 10000.0) -> np.ndarray:
    """M [d, d] float64 with PE[p + offset] = PE[p] @ M for every p (2×2 rotation blocks)."""
    raise NotImplementedError("kata sinusoidal_positions: block-diagonal rotation by offset · ω_i")
