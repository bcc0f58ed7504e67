"""Reference · sample_next: inverse-CDF sampling from next_token_probs with the given Generator."""

import numpy as np

from .next_token_probs import next_token_probs

PREDICTIONS = {
    "count_of_token_2": 1000,
    "cold_limit": "greedy",
}


def sample_next(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                top_k=None, top_p=None) -> int:
    p = next_token_probs(logits, temperature, top_k, top_p).astype(np.float64)
    cdf = np.cumsum(p)
    u = rng.random() * cdf[-1]
    token = int(np.searchsorted(cdf, u, side="right"))
    token = min(token, p.size - 1)
    while p[token] == 0:        # u rounded up to the total: step back to a token with mass
        token -= 1
    return token
