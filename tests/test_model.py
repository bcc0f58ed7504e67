"""Kata metadata validation and prediction checking."""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnkata import Claim, Prediction
from attnkata.model import MetadataError
from attnkata_plugins.core.level0 import SOFTMAX


@pytest.mark.parametrize("change, says", [
    ({"level": "one"}, "level must be an int"),
    ({"path": "/abs/softmax.py"}, "must be a relative .py path"),
    ({"entries": ()}, "entries is empty"),
    ({"checks": ()}, "checks must be a non-empty tuple"),
    ({"hints": ("",)}, "empty hint"),
    ({"claims": (Claim("c", "t", scope="measured", source="dao-2022"),)}, "records no environment"),
    ({"claims": (Claim("c", "t", scope="vibes", source="dao-2022"),)}, "scope 'vibes'"),
    ({"claims": (Claim("c", "t", scope="exact", source=""),)}, "has no source id"),
    ({"claims": (Claim("c", "t", scope="exact", source="x", evidence=("nope",)),)}, "unknown checks"),
])
def test_malformed_metadata_is_named(change, says):
    with pytest.raises(MetadataError, match=says):
        replace(SOFTMAX, **change).validate()


def test_core_katas_validate():
    SOFTMAX.validate()


@pytest.mark.parametrize("pred, value, right", [
    (Prediction("a", "q", 64, rel_tol=0.1), 60, True),
    (Prediction("a", "q", 64, rel_tol=0.01), 60, False),
    (Prediction("a", "q", (0.5, 0.5)), [0.5, 0.5], True),
    (Prediction("a", "q", (2, 3, 5), kind="exact"), [2, 3, 5], True),
    (Prediction("a", "q", (2, 3, 5), kind="exact"), (2, 5, 3), False),
    (Prediction("a", "q", "inf", kind="choice", choices=("inf", "nan")), " INF ", True),
    (Prediction("a", "q", 1.0), "one", False),
])
def test_prediction_checking(pred, value, right):
    assert pred.is_right(value) is right
