"""Reference · speculative_decoding: draft-then-verify with min(1, p/q) acceptance and
residual resampling; the randomness comes in as uniforms."""

import numpy as np

PREDICTIONS = {
    "alpha_example": 0.7,
    "tokens_per_step": 2.952,          # (1 − 0.8⁴) / (1 − 0.8)
    "alpha_one_limit": 5,
    "residual_example": (0.6, 0.4, 0.0),
}


def acceptance_rate(p, q) -> float:
    """α = Σ_x min(p(x), q(x)): the chance one draft token drawn from q is accepted."""
    return float(np.minimum(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)).sum())


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """Tokens one draft-then-verify step emits on average: 1 + α + … + α^γ."""
    if alpha >= 1.0:
        return float(gamma + 1)
    return float((1.0 - alpha ** (gamma + 1)) / (1.0 - alpha))


def _inverse_cdf(probs, u: float) -> int:
    """The smallest token j whose cumulative probability exceeds u (a token with mass)."""
    cdf = np.cumsum(probs)
    j = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    j = min(j, probs.size - 1)
    while probs[j] == 0:      # u rounded onto the total: step back to a token with mass
        j -= 1
    return j


def speculative_step(target_probs, draft_probs, draft_tokens, accept_u, resample_u: float) -> list:
    p = np.asarray(target_probs, dtype=np.float64)      # [γ + 1, V]
    q = np.asarray(draft_probs, dtype=np.float64)       # [γ, V]
    out = []
    for i, x in enumerate(int(t) for t in draft_tokens):
        if accept_u[i] < min(1.0, p[i, x] / q[i, x]):   # q[i, x] > 0: the draft drew x
            out.append(x)
            continue
        residual = np.maximum(p[i] - q[i], 0.0)          # where the target wants more than q gave
        out.append(_inverse_cdf(residual / residual.sum(), resample_u))
        return out
    out.append(_inverse_cdf(p[len(out)], resample_u))    # all accepted: a bonus token from p
    return out
