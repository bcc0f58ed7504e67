"""Level 8 · speculative_decoding — guess cheaply, check in one pass, keep the exact distribution.

Intuition
---------
Decoding a large model is slow because each token needs its own forward pass, and
that pass is limited by reading the weights, not by arithmetic. Scoring γ + 1
positions in one pass costs about as much as scoring one. So let a small *draft*
model guess γ tokens, one after another (cheap), and let the large *target* model
score all of them in a single pass. Keep the guesses the target agrees with; at the
first one it rejects, put a corrected token in its place and stop.

"Agrees" cannot mean "the target's favourite token" when we are sampling, not
decoding greedily: we want every emitted token to be distributed exactly as if the
target had sampled it alone. Leviathan et al. (2023) and Chen et al. (2023) found
the rule that does this: accept a guess x with probability min(1, p(x)/q(x)), and
on rejection draw the replacement from what the target wanted but the draft did not
supply, the positive part of p − q, renormalised. Guesses the draft over-proposes
are thinned; the mass it under-proposes comes back through the resample.

The math
--------
    accept x_i     iff  u_i < min(1, p_i(x_i) / q_i(x_i))
    on rejection:  r = max(0, p_i − q_i) / Σ max(0, p_i − q_i),  emit z ~ r, stop
    all accepted:  emit a bonus token z ~ p_γ  (the target scored that position too)

    α = Σ_x min(p(x), q(x))                      chance one guess is accepted
    E[tokens per step] = 1 + α + α² + … + α^γ = (1 − α^(γ+1)) / (1 − α)

- V          : vocabulary size
- γ          : gamma, the number of draft tokens per step
- q_i        : the draft's distribution for position i, [V] (given the tokens before it)
- p_i        : the target's distribution for position i, [V]; p_γ is the position after
               the last draft token
- x_i        : the i-th draft token, drawn from q_i (so q_i(x_i) > 0)
- u_i        : a uniform number in [0, 1), one per draft token
- z          : the replacement or bonus token, drawn by inverse CDF with the one
               uniform `resample_u`: the smallest j with r_0 + … + r_j > resample_u
- α          : the acceptance rate (1 minus the total variation distance of p and q);
               the formula for E assumes every position has the same α

Randomness comes in as arguments (the draft tokens and the uniforms), so the same
inputs always give the same tokens: the hidden tests enumerate every outcome.

Worked example
--------------
V = 3, γ = 2:   q_0 = [0.2, 0.6, 0.2]  p_0 = [0.5, 0.3, 0.2]
                q_1 = [0.3, 0.3, 0.4]  p_1 = [0.1, 0.1, 0.8]   p_2 = [0.2, 0.2, 0.6]

draft [0, 2], accept_u [0.9, 0.35], resample_u 0.5:
    x_0 = 0: p/q = 0.5/0.2 = 2.5 → min 1; 0.9 < 1, accept
    x_1 = 2: p/q = 0.8/0.4 = 2   → min 1; 0.35 < 1, accept
    bonus from p_2: cumulative [0.2, 0.4, 1.0], first > 0.5 is token 2
    → [0, 2, 2]: three tokens for one target pass
draft [1, 2], accept_u [0.9, 0.35], resample_u 0.5:
    x_0 = 1: p/q = 0.3/0.6 = 0.5; 0.9 ≥ 0.5, reject
    r = max(0, p_0 − q_0) = [0.3, 0, 0] → [1, 0, 0]; z = 0
    → [0]: the target wanted token 0 more than the draft offered it
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # p = [0.6, 0.3, 0.1], q = [0.3, 0.3, 0.4]: the acceptance rate α? (a number)
    "alpha_example": ...,
    # α = 0.8 and γ = 3: expected tokens emitted per step? (a number)
    "tokens_per_step": ...,
    # A draft identical to the target, γ = 4: tokens emitted per step? (an int)
    "alpha_one_limit": ...,
    # p = [0.5, 0.4, 0.1], q = [0.2, 0.2, 0.6], the guess was rejected: the
    # distribution the replacement is drawn from? (three numbers, a tuple)
    "residual_example": ...,
}


def acceptance_rate(p, q) -> float:
    """α = Σ_x min(p(x), q(x)) for one position's target ``p`` and draft ``q`` ([V] each)."""
    raise NotImplementedError("kata speculative_decoding: the chance a draft token is accepted")


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """Mean tokens one step emits when each guess is accepted with probability ``alpha``
    (``alpha`` = 1 included)."""
    raise NotImplementedError("kata speculative_decoding: 1 + α + … + α^γ")


def speculative_step(target_probs, draft_probs, draft_tokens, accept_u, resample_u: float) -> list:
    """One draft-then-verify step.

    ``target_probs`` [γ + 1, V], ``draft_probs`` [γ, V] (float arrays, rows sum to 1),
    ``draft_tokens`` [γ] ints drawn from the draft rows, ``accept_u`` [γ] uniforms,
    ``resample_u`` one uniform. Returns the emitted tokens as a list of 1 … γ + 1
    Python ints: the accepted guesses, then the replacement or the bonus token.
    """
    raise NotImplementedError("kata speculative_decoding: accept with min(1, p/q), "
                              "resample from max(0, p − q), or add the bonus token")
