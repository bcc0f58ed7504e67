"""grade --only counts the graded katas' predictions, not the whole course's (QA F16)."""

from __future__ import annotations

import json

from attnkata.gradebook import graded_predictions


def test_only_the_graded_katas_predictions_are_counted(tmp_path):
    ledger = tmp_path / "state" / "ann" / "ledger.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(json.dumps({"targets": {"sub-ann": {
        "qk_scores": {"predictions": {"shape": {"first_right": True}}},
        "softmax": {"predictions": {"sum": {"first_right": True}}}}}}))
    predictions = {"qk_scores": ["shape", "var"], "softmax": ["sum"], "rope": ["a", "b", "c"]}
    katas = [{"id": "qk_scores"}]
    assert graded_predictions(tmp_path, "ann", {"selection": ["katas/level0"]}, katas,
                              predictions) == (1, 2)
    assert graded_predictions(tmp_path, "ann", {"selection": []}, katas, predictions) is None
    assert graded_predictions(tmp_path, "bob", {"selection": ["x"]}, katas, predictions) == (0, 2)
