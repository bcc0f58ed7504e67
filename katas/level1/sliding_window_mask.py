"""Level 1 · sliding_window_mask — attending to the recent past only.

Intuition
---------
A causal mask lets the last of N tokens look at all N of them, so the work and the
memory for keys grow with the whole history. A *sliding window* keeps only the most
recent `window` keys for each query: a fixed cost per token, however long the text.

Nothing is lost for good, though. Layers stack: the token at position 10 in layer 2
reads positions 8–10 of layer 1, and each of those already read three positions of
layer 0. Information hops backwards one window per layer, so a deep stack of narrow
windows still reaches far (the Longformer paper, `beltagy-2020`, builds on this).

The math
--------
    pos_i = i + (n_k − n_q)
    allowed[i, j] = ( pos_i − window < j ≤ pos_i )

- n_q, n_k : numbers of queries and keys, aligned to the end as in causal_mask
- pos_i    : the position of query i among the keys
- window   : how many keys a query sees at most, its own position included (≥ 1)
- allowed  : boolean [n_q, n_k], True = may attend

It is the causal mask with the keys older than the window removed: window = 1 sees
only itself; a window at least n_k long is the full causal mask.

Receptive field: with L layers of window w, each layer reaches w − 1 positions further
back, so the last token's output can depend on L·(w − 1) + 1 input tokens.

Worked example
--------------
n_q = n_k = 5, window = 2 (each token sees itself and the one before):

    [[ True, False, False, False, False],
     [ True,  True, False, False, False],
     [False,  True,  True, False, False],
     [False, False,  True,  True, False],
     [False, False, False,  True,  True]]

Two such layers: the last token reads positions 3–4, which read 2–4: 2·(2−1)+1 = 3 tokens.
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # How many entries of sliding_window_mask(8, 8, 3) are True? (an integer)
    "allowed_8x8_w3": ...,
    # Stack 4 layers, each with a window of 3. How many input tokens can influence
    # the last token's output? (an integer)
    "receptive_field_L4_w3": ...,
}


def sliding_window_mask(n_q: int, n_k: int, window: int) -> np.ndarray:
    """Boolean mask [n_q, n_k]: causal (aligned to the end), and only the last
    ``window`` keys up to and including each query's own position."""
    raise NotImplementedError("kata sliding_window_mask: causal, and j > pos_i - window")
