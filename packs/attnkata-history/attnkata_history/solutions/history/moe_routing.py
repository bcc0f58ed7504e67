"""Reference · moe_routing: top-k gating, capacity, dispatch by choice rank, combine, and the
Switch load-balancing loss."""

import math

import numpy as np

PREDICTIONS = {
    "dropped_cf1": 4,
    "dropped_cf2": 2,
    "uniform_loss": 1.0,
}


def top_k_gating(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    experts = np.argsort(-logits, axis=-1, kind="stable")[:, :k]   # best first; ties: lower index
    top = np.take_along_axis(logits, experts, axis=-1)             # [T, k]
    e = np.exp(top - top[:, :1])                                   # the first is the max
    gates = (e / e.sum(axis=-1, keepdims=True)).astype(logits.dtype, copy=False)
    return experts.astype(np.int64), gates


def expert_capacity(n_tokens: int, n_experts: int, capacity_factor: float, k: int = 1) -> int:
    return math.ceil(k * n_tokens * capacity_factor / n_experts)


def dispatch(experts: np.ndarray, n_experts: int, capacity: int) -> np.ndarray:
    n_tokens, k = experts.shape
    slots = np.full((n_tokens, k), -1, dtype=np.int64)
    filled = np.zeros(n_experts, dtype=np.int64)
    for c in range(k):                      # every token's first choice before any second choice
        for t in range(n_tokens):
            e = experts[t, c]
            if filled[e] < capacity:
                slots[t, c] = filled[e]
                filled[e] += 1
    return slots


def moe_combine(x: np.ndarray, experts: np.ndarray, gates: np.ndarray, slots: np.ndarray,
                w: np.ndarray) -> np.ndarray:
    n_experts, _, d_out = w.shape
    capacity = int(slots.max(initial=-1)) + 1
    buffers = np.zeros((n_experts, capacity, x.shape[-1]), dtype=x.dtype)   # dispatch
    kept = slots >= 0
    t_idx, c_idx = np.nonzero(kept)
    buffers[experts[t_idx, c_idx], slots[t_idx, c_idx]] = x[t_idx]
    outputs = buffers @ w                                                    # [E, C, d_out]
    y = np.zeros((x.shape[0], d_out), dtype=x.dtype)                         # combine
    np.add.at(y, t_idx, gates[t_idx, c_idx, None] * outputs[experts[t_idx, c_idx], slots[t_idx, c_idx]])
    return y


def load_balancing_loss(logits: np.ndarray, experts: np.ndarray) -> float:
    n_tokens, n_experts = logits.shape
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)                   # router probabilities
    f = np.bincount(experts[:, 0], minlength=n_experts) / n_tokens   # share of first choices
    p = probs.mean(axis=0)                                      # mean probability per expert
    return float(n_experts * np.sum(f * p))
