"""Level 2 · sample_next — drawing one token, reproducibly.

Intuition
---------
With a distribution in hand, sampling is a weighted die roll: token i comes up with
probability p_i. Two habits make it trustworthy. Draw only from the random Generator
you are handed, never from global state, so the same seed replays the same text —
that is how experiments and tests are repeated. And return a plain Python int: numpy
returns its own integer types, which surprise code that checks `type(x) is int` or
serialises to JSON.

The math
--------
Inverse-CDF sampling, one way to roll the die:

    p     = next_token_probs(logits, temperature, top_k, top_p)     [V]
    c_i   = p_0 + p_1 + … + p_i          (the running total; c_{V-1} = 1)
    u     ~ Uniform[0, 1)                (u = rng.random())
    token = the smallest i with c_i > u

- rng   : a numpy Generator (np.random.default_rng(seed)); use only it
- token : an int in 0..V−1; a token with p_i = 0 can never come up, because its
          interval [c_{i−1}, c_i) is empty

`rng.choice(V, p=p)` does the same in one call. np.searchsorted, np.argmax and
array indexing hand back numpy integers (np.int64): wrap the token in int().
Any correct sampler is accepted: the hidden tests compare frequencies over
thousands of seeded draws, not individual draws.

Worked example
--------------
p = [0.5, 0.3, 0.2]  →  c = [0.5, 0.8, 1.0]
    u = 0.42 → token 0;   u = 0.75 → token 1;   u = 0.93 → token 2
Over 5,000 draws token 1 comes up about 1,500 times, give or take
√(5,000 · 0.3 · 0.7) ≈ 32 (one standard deviation of a binomial count).
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Probabilities [0.7, 0.2, 0.1] and 10,000 draws: about how many times is
    # token 2 drawn? (a number)
    "count_of_token_2": ...,
    # As the temperature goes to 0, sampling becomes… Choose one: "greedy",
    # "uniform", "unchanged".
    "cold_limit": ...,
}


def sample_next(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                top_k=None, top_p=None) -> int:
    """One token id drawn from next_token_probs(logits, ...) using only ``rng``.

    You may reuse your previous kata: ``from .next_token_probs import next_token_probs``.
    Returns a Python int.
    """
    raise NotImplementedError("kata sample_next: draw from next_token_probs with rng, return int")
