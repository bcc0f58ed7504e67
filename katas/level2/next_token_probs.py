"""Level 2 · next_token_probs — shaping the distribution before a token is drawn.

Intuition
---------
The model's last layer gives one score (a *logit*) per vocabulary token. Softmax
turns them into probabilities, but decoders rarely sample from that raw
distribution. Three knobs reshape it, always in this order:

- temperature T divides every logit: T < 1 widens the gaps (sharper, more
  predictable), T > 1 narrows them (flatter, more surprising). It never reorders
  tokens, because every logit is divided by the same positive number.
- top-k keeps only the k highest-scoring tokens — and every token tied with the k-th,
  so the answer never depends on how a sort happens to order equal numbers.
- top-p ("nucleus") keeps the smallest set of most probable tokens whose total
  probability reaches p, measured on the distribution left after top-k. The token
  that takes the running total from below p to p or more is kept.

Whatever is removed gets probability 0, and what remains is renormalised to sum to 1.

The math
--------
    z      = logits / T                                 (temperature)
    keep_k = { i : z_i ≥ z_(k) }                        (top-k, ties kept)
    p      = softmax(z restricted to keep_k)            (the rest get 0)
    sort p descending: p_(1) ≥ p_(2) ≥ … ;  m = the first j with p_(1) + … + p_(j) ≥ top_p
    keep_p = the m most probable tokens                 (top-p, crossing token kept)
    probs  = p on keep_p, 0 elsewhere, divided by its sum

- logits : [V] scores, one per token (V = vocabulary size); float32 or float64
- T      : temperature > 0;  top_p in (0, 1] (None: off)
- k      : top_k, an int ≥ 1; None, or any k ≥ V, means no limit (every token stays)
- −∞     : a logit of −∞ is a banned token: it ends with probability exactly 0
- z_(k)  : the k-th largest entry of z
- softmax: stable — subtract the maximum (logits of ±1000, or T = 0.05, overflow exp)
- probs  : [V], in the logits' dtype, summing to 1

Worked example
--------------
logits = [2, 1, 0, -1], T = 1, top_k = 3, top_p = 0.8:
    top-k keeps tokens 0, 1, 2:   softmax([2, 1, 0]) = [0.665, 0.245, 0.090]
    running totals: 0.665 (< 0.8), 0.910 (≥ 0.8: token 1 crosses, kept) → tokens 0, 1
    renormalise [0.665, 0.245] by 0.910:  probs = [0.731, 0.269, 0, 0]
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # Temperature = 100 and top_k = 1: which tokens can still be drawn? Choose one:
    # "only the argmax", "every token nearly uniformly", "the top half".
    "hot_top1_survivors": ...,
    # logits [2, 5, 5, 1] with top_k = 1: how many tokens keep a non-zero probability?
    "tied_top1_count": ...,
    # probabilities [0.5, 0.3, 0.2] with top_p = 0.6: how many tokens are kept?
    "top_p_count": ...,
}


def next_token_probs(logits: np.ndarray, temperature: float = 1.0, top_k=None,
                     top_p=None) -> np.ndarray:
    """The renormalised next-token distribution after temperature, top-k, then top-p.

    logits: [V]. Returns [V] in logits' dtype; filtered tokens get exactly 0.
    """
    raise NotImplementedError("kata next_token_probs: temperature, top-k (ties), softmax, top-p")
