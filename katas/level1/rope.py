"""Level 1 · rope — rotary position embedding: position as a rotation.

Intuition
---------
Attention on its own cannot tell order: shuffle the tokens and every token gets the
same answer as before, just in the shuffled place. Something must tell it where each
token is. RoPE (`su-2021-rope`) does it by turning vectors. Cut each query and key
into pairs of numbers, read each pair as an arrow in a plane, and turn the arrow by
an angle proportional to the token's position. A dot product of two arrows depends
only on their lengths and the angle BETWEEN them, so after turning, the score of
query m with key n depends on how far apart they are (m − n), not on where they
sit. Turning never changes a length, so no vector grows or shrinks.

Different pairs turn at different speeds: the first pair spins fast (one radian per
position), later pairs ever more slowly, so that together they can tell apart both
neighbouring tokens and tokens thousands of positions apart, like the hands of a clock.

The math
--------
For a vector x of even width d at position p, pair i = (x[2i], x[2i+1]),
0 ≤ i < d/2, turns by

    θ_i = p · base^(−2i/d)

    x'[2i]   = x[2i] · cos θ_i − x[2i+1] · sin θ_i
    x'[2i+1] = x[2i] · sin θ_i + x[2i+1] · cos θ_i

- x [..., N, d]   : queries or keys, one row per token; leading dims (heads) broadcast
- d               : the feature width, even
- positions [N]   : the integer position of each row (not necessarily 0, 1, 2, …: a
                    chunk processed after a cache starts later)
- p               : one row's position
- i               : the pair index; features 2i and 2i+1 are adjacent ("interleaved")
- base            : sets the slowest speed (10000 by default); pair i turns base^(−2i/d)
                    radians per position
- θ_i             : the angle for pair i; positive angles turn counter-clockwise

Why only the offset matters: turning by a then by b is turning by a + b, and the dot
product of x turned by a with y turned by b equals x · (y turned by b − a). So
rope(q, m) · rope(k, n) = q · rope(k, n − m): shift m and n together and nothing changes.

Worked example
--------------
d = 4, base = 100, x = [1, 0, 1, 0] at position 2:
    pair 0 turns by θ_0 = 2 · 100^0    = 2.0 rad → (cos 2.0, sin 2.0) = (−0.4161, 0.9093)
    pair 1 turns by θ_1 = 2 · 100^(−½) = 0.2 rad → (cos 0.2, sin 0.2) = ( 0.9801, 0.1987)
    rope(x, [2], base=100) = [−0.4161, 0.9093, 0.9801, 0.1987]   (length still √2)
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # d = 8, base = 10000, position 3. By what angle (radians) does pair i = 1
    # (features 2 and 3) turn? (a number)
    "pair1_angle": ...,
    # Does the score rope(q, m) · rope(k, n) change when m and n both grow by 5?
    # Choose one: "yes", "no".
    "shift_changes_score": ...,
}


def rope(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Rotate each interleaved pair (2i, 2i+1) of x by positions · base^(−2i/d).

    x: [..., N, d] float32 or float64 (d even); positions: [N] integers.
    Returns a new array with x's shape and dtype. Compute the angles in float64,
    then cast cos and sin to x's dtype.
    """
    raise NotImplementedError("kata rope: turn pairs (x[2i], x[2i+1]) by p · base^(-2i/d)")
