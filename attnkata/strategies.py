"""Shared hypothesis strategies for hidden tests: shapes, dtypes and values.

Arrays are drawn as (shape, dtype, scale, seed) and filled by numpy's generator, so
examples stay fast at realistic sizes while shapes still shrink to the smallest
failing case.  Shapes include 1 and sizes that are not multiples of common blocks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from hypothesis import strategies as st

FLOAT_DTYPES = (np.float32, np.float64)
#: 1.0 is ordinary; 1e-3 makes scores nearly uniform; 40.0 makes exp() overflow
#: unless the maximum is subtracted first.
SCALES = (1.0, 1.0, 0.001, 40.0)


def sizes(lo: int = 1, hi: int = 17) -> st.SearchStrategy[int]:
    """Sizes from ``lo`` to ``hi``, with 1 and odd non-multiples of blocks favoured."""
    return st.one_of(st.sampled_from([v for v in (1, 3, 5, 7, 13) if lo <= v <= hi] or [lo]),
                     st.integers(lo, hi))


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


def filled(shape: Sequence[int], dtype: type, scale: float, seed: int) -> np.ndarray:
    """Standard-normal values times ``scale``, in ``dtype``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(tuple(shape)) * scale).astype(dtype)


@st.composite
def arrays(draw: st.DrawFn, shape: Sequence[int], dtypes: Sequence[type] = FLOAT_DTYPES,
           scales: Sequence[float] = SCALES) -> np.ndarray:
    return filled(shape, draw(st.sampled_from(dtypes)), draw(st.sampled_from(scales)), draw(seeds()))


@st.composite
def batch_dims(draw: st.DrawFn, max_rank: int = 2, max_size: int = 3) -> tuple[int, ...]:
    rank = draw(st.integers(0, max_rank))
    return tuple(draw(st.integers(1, max_size)) for _ in range(rank))


@st.composite
def qkv(draw: st.DrawFn, max_n: int = 17, max_d: int = 16, max_rank: int = 2,
        dtypes: Sequence[type] = FLOAT_DTYPES, scales: Sequence[float] = SCALES,
        same_n: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``q [..., N_q, d]``, ``k, v [..., N_k, d]`` sharing dtype and leading dims."""
    lead = draw(batch_dims(max_rank))
    n_q = draw(sizes(1, max_n))
    n_k = n_q if same_n else draw(sizes(1, max_n))
    d = draw(sizes(1, max_d))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from(scales))
    seed = draw(seeds())
    q = filled((*lead, n_q, d), dtype, scale, seed)
    k = filled((*lead, n_k, d), dtype, scale, seed + 1)
    v = filled((*lead, n_k, d), dtype, 1.0, seed + 2)
    return q, k, v
