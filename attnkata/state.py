"""Saved state: the predictions ledger and the last results, as versioned JSON files.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) and
serialised across processes with an advisory lock, so ``pytest -n auto`` workers
can record predictions at the same time.  A file that does not parse is moved aside
(``*.corrupt-<time>``), reported, and replaced by a fresh one: never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; atomic replace still holds
    fcntl = None  # type: ignore[assignment]

LEDGER_SCHEMA = "attnkata.ledger/1"
RESULTS_SCHEMA = "attnkata.results/1"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def jsonable(value: Any) -> Any:
    """Predictions and results as plain JSON (tuples become lists, numpy scalars numbers)."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


class JsonStore:
    """One JSON document on disk with a schema tag, read and updated safely."""

    def __init__(self, path: Path, schema: str):
        self.path = Path(path)
        self.schema = schema
        self.problems: list[str] = []

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> dict:
        """The document, or a fresh one (backing up and reporting a corrupt file)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"schema": self.schema}
        except OSError as exc:
            self.problems.append(f"could not read {self.path}: {exc}")
            return {"schema": self.schema}
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("schema") != self.schema:
                raise ValueError(f"expected schema {self.schema!r}")
            return data
        except ValueError as exc:
            backup = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time() * 1000)}")
            with contextlib.suppress(OSError):
                os.replace(self.path, backup)
            self.problems.append(f"{self.path.name} was unreadable ({exc}); it was moved to "
                                 f"{backup.name} and a fresh one started")
            return {"schema": self.schema}

    def write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def update(self, change: Callable[[dict], Any]) -> dict:
        """Read, apply ``change`` in place, write — all under the lock."""
        with self._locked():
            data = self.read()
            change(data)
            data["schema"] = self.schema
            self.write(data)
            return data


def state_dir(rootdir: Path) -> Path:
    return Path(os.environ.get("ATTNKATA_STATE_DIR") or Path(rootdir) / ".attnkata")


def ledger(rootdir: Path) -> JsonStore:
    return JsonStore(state_dir(rootdir) / "ledger.json", LEDGER_SCHEMA)


def results(rootdir: Path) -> JsonStore:
    return JsonStore(state_dir(rootdir) / "results.json", RESULTS_SCHEMA)


def record_predictions(store: JsonStore, target: str, kata: str, answers: dict[str, tuple[Any, bool]]) -> dict:
    """Record filled predictions; the first value seen for each is kept forever.

    :param answers: prediction id -> (value, right).
    :returns: this kata's ledger entry after the update.
    """
    entry: dict = {}

    def change(data: dict) -> None:
        nonlocal entry
        entry = data.setdefault("targets", {}).setdefault(target, {}).setdefault(kata, {})
        preds = entry.setdefault("predictions", {})
        for pid, (value, right) in answers.items():
            value = jsonable(value)
            seen = preds.get(pid)
            if seen is None:
                preds[pid] = {"first": value, "first_right": right, "latest": value,
                              "latest_right": right, "revisions": 0, "first_seen": now()}
            elif seen.get("latest") != value:
                seen.update(latest=value, latest_right=right, revisions=seen.get("revisions", 0) + 1)

    store.update(change)
    return entry


def bump_failures(store: JsonStore, target: str, kata: str) -> int:
    """Count one more failing run of ``kata``; returns the new count (drives hints)."""
    count = 0

    def change(data: dict) -> None:
        nonlocal count
        entry = data.setdefault("targets", {}).setdefault(target, {}).setdefault(kata, {})
        entry["failed_runs"] = count = entry.get("failed_runs", 0) + 1

    store.update(change)
    return count
