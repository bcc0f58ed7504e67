"""History pack · moe_routing — a router sends each token to a few experts, within a budget.

Intuition
---------
A mixture-of-experts layer holds many feed-forward "experts" but runs only a few per
token, so the model grows without the compute growing with it. A small router scores
the token against every expert; the token goes to its top k experts, and their
outputs are mixed with weights (gates) from a softmax over the chosen scores. On real
hardware each expert processes a fixed-size buffer, its *capacity*: the average load
times a safety margin, the capacity factor. Tokens that arrive at a full expert are
*dropped* — they skip the layer (the residual connection carries them on). A router
that loves one expert drops many tokens, so training adds a load-balancing loss that
is smallest when tokens and probability are spread evenly.

The math
--------
    experts[t] = the k experts with the largest logits[t] (best first; ties: lower index)
    gates[t]   = softmax(logits[t, experts[t]])                 over the k chosen only
    C = ⌈k · T · capacity_factor / E⌉                            expert capacity
    dispatch: for c = 0 … k−1, then t = 0 … T−1: expert e = experts[t, c] gets slot
              slots[t, c] = (tokens e already holds) if that is < C, else −1 (dropped)
    combine:  y[t] = Σ_c gates[t, c] · (x[t] @ w[experts[t, c]])  over kept choices
    loss = E · Σ_e f_e · P_e,   f_e = share of tokens whose FIRST choice is e,
                                P_e = mean over tokens of softmax(logits[t])[e]

- T tokens, E experts, k choices per token; logits [T, E] from the router
- experts int64 [T, k]; gates [T, k] in logits' dtype, each row sums to 1
- slots int64 [T, k]: the position in the expert's buffer, −1 when dropped
- x [T, d]; w [E, d, d_out]: expert e is the linear map x ↦ x @ w[e]
- f_e counts hard assignments (no gradient flows through it), P_e soft probabilities

Worked example
--------------
T = 4, E = 2, k = 1, logits = [[2, 0], [1, 0], [0, 3], [0.5, 0]], capacity_factor = 1

    experts = [[0], [0], [1], [0]];  gates = [[1], [1], [1], [1]]   (softmax of one score)
    C = ⌈1·4·1/2⌉ = 2
    dispatch: expert 0 takes token 0 (slot 0), token 1 (slot 1); token 3 finds it full
              expert 1 takes token 2 (slot 0)          slots = [[0], [1], [0], [−1]]
    softmax rows: [.8808 .1192] [.7311 .2689] [.0474 .9526] [.6225 .3775]
    P = [0.5704, 0.4296],  f = [3/4, 1/4]
    loss = 2·(0.75·0.5704 + 0.25·0.4296) = 1.0704
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # T = 8 tokens, E = 4 experts, k = 1, capacity_factor = 1.0. Six tokens pick expert 0,
    # one picks expert 1, one picks expert 2. How many tokens are dropped? An integer.
    "dropped_cf1": ...,
    # The same tokens with capacity_factor = 2.0: how many are dropped? An integer.
    "dropped_cf2": ...,
    # Every router row is uniform (1/E each) and the first choices spread exactly evenly
    # over the experts. What is the load-balancing loss? A number.
    "uniform_loss": ...,
}


def top_k_gating(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(experts int64 [T, k], gates [T, k]): the top k experts, best first, and the softmax
    of their logits."""
    raise NotImplementedError("kata moe_routing: stable argsort of −logits, softmax over the top k")


def expert_capacity(n_tokens: int, n_experts: int, capacity_factor: float, k: int = 1) -> int:
    """C = ceil(k · n_tokens · capacity_factor / n_experts)."""
    raise NotImplementedError("kata moe_routing: the average load times the capacity factor, rounded up")


def dispatch(experts: np.ndarray, n_experts: int, capacity: int) -> np.ndarray:
    """slots int64 [T, k]: buffer positions, first choices of all tokens before second choices;
    −1 where the expert was full."""
    raise NotImplementedError("kata moe_routing: fill each expert's buffer up to capacity, in order")


def moe_combine(x: np.ndarray, experts: np.ndarray, gates: np.ndarray, slots: np.ndarray,
                w: np.ndarray) -> np.ndarray:
    """y [T, d_out] in x's dtype: Σ over KEPT choices of gate · (x[t] @ w[expert]); dropped
    choices add nothing (a token dropped everywhere gets zeros)."""
    raise NotImplementedError("kata moe_routing: dispatch to buffers, apply each expert, combine")


def load_balancing_loss(logits: np.ndarray, experts: np.ndarray) -> float:
    """E · Σ_e f_e · P_e (Switch Transformer), f from the first choices, P from softmax(logits)."""
    raise NotImplementedError("kata moe_routing: fraction of first choices times mean probability")
