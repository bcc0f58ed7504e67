"""compare() reports mismatches without numpy warnings of its own (QA F5: a RuntimeWarning
from attnkata/compare.py reached the learner's pytest summary)."""

from __future__ import annotations

import warnings

import numpy as np

from attnkata.compare import compare


def test_infinities_in_both_arrays_do_not_warn():
    want = np.array([[0.0, -np.inf], [np.inf, 2.0]], dtype=np.float32)
    got = want.copy()
    got[1, 1] = 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mismatch = compare(got, want)
    assert mismatch is not None and "1 of 4" in mismatch.summary
    assert "expected 2, got 5" in mismatch.details[0]
