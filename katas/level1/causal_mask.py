"""Level 1 · causal_mask — no peeking at the future.

Intuition
---------
A language model writes one token at a time, each chosen from what came before. When
we train it, we compute every position in one pass, so we must hide the future from
each position explicitly; otherwise predicting token 5 would be easy: just read
token 5. A *mask* is a table of yes/no answers to "may query i look at key j?".

During generation the queries are often fewer than the keys: the model has cached
the keys of the earlier tokens and now processes only the newest ones. So the queries
are the LAST n_q positions of the sequence. The mask is aligned to the end: the
final query is the final token and sees everything.

The math
--------
    offset = n_k − n_q
    allowed[i, j] = ( j ≤ i + offset )

- n_q    : the number of queries (new tokens), rows of the mask
- n_k    : the number of keys (every token so far, cached ones included), columns
- i      : a query's row, 0 ≤ i < n_q; it is the token at position i + offset
- j      : a key's column, 0 ≤ j < n_k, which is also its position
- offset : how many tokens come before the first query
- allowed: a boolean array [n_q, n_k]; True means "may attend"

A token sees itself (j = i + offset is allowed). When n_q > n_k the offset is negative
and the first rows allow nothing at all: those queries have no key in their past.

Worked example
--------------
n_q = n_k = 3 (training, one query per token), offset 0:

    [[ True, False, False],
     [ True,  True, False],
     [ True,  True,  True]]     → 1 + 2 + 3 = 6 allowed pairs

n_q = 2, n_k = 4 (two new tokens after two cached ones), offset 2:

    [[ True,  True,  True, False],     query 0 is position 2
     [ True,  True,  True,  True]]     query 1 is position 3, the last token
"""

import numpy as np

# --- Predict first ------------------------------------------------------------
# Answer before you implement: replace each ... with your answer. The first value
# the framework sees is kept in your ledger, so a later change shows as revised.
PREDICTIONS = {
    # How many entries of causal_mask(8, 8) are True? (an integer)
    "allowed_8x8": ...,
    # One new token after four cached ones: how many entries of
    # causal_mask(1, 5) are True? (an integer)
    "decode_row": ...,
}


def causal_mask(n_q: int, n_k: int) -> np.ndarray:
    """Boolean mask [n_q, n_k]: True where query i may attend to key j.

    Aligned to the end: query i is the token at position i + n_k − n_q and sees every
    key at or before that position.
    """
    raise NotImplementedError("kata causal_mask: compare key index j with i + n_k - n_q")
