"""Saved state: atomic, safe across processes, corruption backed up and reported."""

from __future__ import annotations

import json
import multiprocessing as mp

from attnkata.state import LEDGER_SCHEMA, JsonStore, bump_failures, record_predictions


def _hammer(path: str, worker: int) -> None:
    store = JsonStore(path, LEDGER_SCHEMA)
    for i in range(25):
        record_predictions(store, "katas", f"kata{worker}", {f"p{i}": (i, True)})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "ledger.json"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    data = json.loads(path.read_text())
    assert all(len(data["targets"]["katas"][f"kata{w}"]["predictions"]) == 25 for w in range(4))
    assert not list(tmp_path.glob("*.tmp"))


def test_first_value_is_kept_and_revisions_counted(tmp_path):
    store = JsonStore(tmp_path / "l.json", LEDGER_SCHEMA)
    record_predictions(store, "katas", "k", {"p": ((2, 3), False)})
    record_predictions(store, "katas", "k", {"p": ((2, 3), False)})
    entry = record_predictions(store, "katas", "k", {"p": ((2, 5), True)})
    seen = entry["predictions"]["p"]
    assert seen["first"] == [2, 3] and seen["latest"] == [2, 5] and seen["revisions"] == 1
    assert seen["first_right"] is False and seen["latest_right"] is True


def test_corrupt_file_is_backed_up_and_reported(tmp_path):
    path = tmp_path / "l.json"
    path.write_text('{"schema": "attnkata.ledger/1", "targets": ')
    store = JsonStore(path, LEDGER_SCHEMA)
    assert bump_failures(store, "katas", "softmax") == 1
    assert store.problems and "moved to" in store.problems[0]
    assert len(list(tmp_path.glob("l.json.corrupt-*"))) == 1
    assert json.loads(path.read_text())["targets"]["katas"]["softmax"]["failed_runs"] == 1


def test_wrong_schema_counts_as_corrupt(tmp_path):
    path = tmp_path / "l.json"
    path.write_text(json.dumps({"schema": "something-else"}))
    store = JsonStore(path, LEDGER_SCHEMA)
    assert store.read() == {"schema": LEDGER_SCHEMA}
    assert store.problems
