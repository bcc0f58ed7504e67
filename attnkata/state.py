"""Saved state: the predictions ledger and the last results, as versioned JSON files.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) and
serialised across processes with an advisory lock, so ``pytest -n auto`` workers
can record predictions at the same time.  Nothing in a saved file is fatal:

- a file that is not UTF-8, not JSON, or not an object of the right schema is moved
  aside (``*.corrupt-<time>``), reported, and replaced by a fresh one;
- a field of the wrong type is dropped or reset with a note (the original file is
  kept as ``*.corrupt-<hash>``);
- a full disk or a read-only state folder leaves the run going: "progress not saved";
- temporary files left by killed runs are swept away once their writer is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
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
STALE_TMP_AFTER = 3600.0  # seconds: a temporary file this old is left over, whoever wrote it
MAX_NOTES = 3             # field repairs listed one by one; the rest are counted

_HELD: dict[str, int] = {}  # lock depth per file in this process (flock is per open file)


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


# -- courses -----------------------------------------------------------------

def is_course(folder: Path) -> bool:
    """Whether ``folder`` is an attnkata course: its pyproject.toml has ``[tool.attnkata]``."""
    try:
        text = (Path(folder) / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return False
    if "attnkata" not in text:  # cheap: most projects never mention us
        return False
    try:
        import tomllib
    except ImportError:  # Python 3.10: pytest depends on tomli there
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        tool = tomllib.loads(text).get("tool", {})
    except (tomllib.TOMLDecodeError, AttributeError):
        return False
    return isinstance(tool, dict) and isinstance(tool.get("attnkata"), dict)


def find_course(start: Path) -> Path | None:
    """The nearest folder, ``start`` or above, that is an attnkata course."""
    here = Path(start).resolve()
    return next((f for f in (here, *here.parents) if is_course(f)), None)


# -- field checks ------------------------------------------------------------

class Notes:
    """Repairs made while checking a document's fields, as plain-words notes."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, value: Any, wanted: str, action: str = "dropped") -> None:
        self.items.append(f"{where} was {_brief(value)}, not {wanted}: {action}")


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 24 else text[:21] + "..."


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _mapping(data: dict, key: str, where: str, notes: Notes) -> dict:
    """``data[key]`` as a dict: reset (with a note) when it is something else."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        notes.add(f"{where}{key}", value, "an object", "reset")
        value = data[key] = {}
    return value


def _typed(data: dict, key: str, ok: Callable[[Any], bool], wanted: str, where: str,
           notes: Notes) -> None:
    if key in data and not ok(data[key]):
        notes.add(f"{where}{key}", data.pop(key), wanted)


def _entries(data: dict, where: str, notes: Notes) -> dict:
    """Keep only the values of ``data`` that are objects (dropping the rest with a note)."""
    for key in [k for k, v in data.items() if not isinstance(v, dict)]:
        notes.add(f"{where}{key}", data.pop(key), "an object")
    return data


def check_ledger(data: dict, notes: Notes) -> None:
    """``targets → target → kata → {predictions, failed_runs, skipped}`` and ``hints``."""
    targets = _entries(_mapping(data, "targets", "", notes), "targets.", notes)
    for tname, katas in targets.items():
        for kid, entry in _entries(katas, f"targets.{tname}.", notes).items():
            where = f"targets.{tname}.{kid}."
            _typed(entry, "failed_runs", _count, "a count", where, notes)
            _typed(entry, "skipped", lambda v: isinstance(v, bool), "true/false", where, notes)
            preds = _entries(_mapping(entry, "predictions", where, notes), where + "predictions.",
                             notes)
            for pid, seen in preds.items():
                _check_prediction(seen, f"{where}predictions.{pid}.", notes)
    hints = _mapping(data, "hints", "", notes)
    for kid in [k for k, v in hints.items() if not _count(v)]:
        notes.add(f"hints.{kid}", hints.pop(kid), "a count", "reset")


def _check_prediction(seen: dict, where: str, notes: Notes) -> None:
    for key in ("first_right", "latest_right"):
        _typed(seen, key, lambda v: isinstance(v, bool), "true/false", where, notes)
    _typed(seen, "revisions", _count, "a count", where, notes)
    _typed(seen, "first_seen", lambda v: isinstance(v, str), "a date", where, notes)


def check_results(data: dict, notes: Notes) -> None:
    """``runs → target slug → saved ladder`` and ``last``; a ladder that does not load is dropped."""
    from .ladder import Ladder  # ladder imports this module

    runs = _entries(_mapping(data, "runs", "", notes), "runs.", notes)
    for slug in list(runs):
        try:
            Ladder.from_json(runs[slug])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            runs.pop(slug)
            notes.items.append(f"runs.{slug} is not a saved ladder ({_why(exc)}): dropped")
    _typed(data, "last", lambda v: isinstance(v, str), "a target name", "", notes)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 40 else text[:37] + "..."


# -- writing -----------------------------------------------------------------

def not_saved_reason(exc: OSError, folder: Path) -> str:
    """One line for a person: why the state folder could not be written."""
    where = _short(folder)
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"progress not saved: the disk is full ({where})"
    if exc.errno == errno.EROFS or (exc.errno in (errno.EACCES, errno.EPERM)):
        return f"progress not saved: {where} is read-only"
    return f"progress not saved: cannot write {where} ({exc.strerror or exc})"


def _short(folder: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(folder).resolve().relative_to(Path.cwd().resolve())) + os.sep
    return str(folder) + os.sep


def _tmp_prefix(name: str) -> str:
    """``ledger.json.<pid>@<host>.``: whose temporary file it is, so a sweep can tell."""
    return f"{name}.{os.getpid()}@{socket.gethostname()}."


def _writer_gone(tmp: Path, name: str) -> bool:
    who = tmp.name[len(name) + 1:].split(".", 1)[0]
    pid, _, host = who.partition("@")
    if not pid.isdigit() or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def sweep_stale_tmp(folder: Path, name: str) -> list[Path]:
    """Remove ``name``'s temporary files whose writer is gone (this host) or that are old."""
    removed = []
    for tmp in Path(folder).glob(f"{name}.*.tmp"):
        try:
            old = time.time() - tmp.stat().st_mtime > STALE_TMP_AFTER
            if old or _writer_gone(tmp, name):
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


class JsonStore:
    """One JSON document on disk with a schema tag, read and updated safely.

    :param check: repairs the fields of a document that has the right schema, in place,
        adding a note per repair (see :func:`check_ledger`).
    """

    def __init__(self, path: Path, schema: str, check: Callable[[dict, Notes], None] | None = None):
        self.path = Path(path)
        self.schema = schema
        self.check = check
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    # -- locking ---------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        key = str(self.path.resolve())
        if _HELD.get(key):  # this process holds it already (read inside update)
            _HELD[key] += 1
            try:
                yield
            finally:
                _HELD[key] -= 1
            return
        lock = self._acquire()
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            if lock is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(lock, fcntl.LOCK_UN)
                lock.close()

    def _acquire(self) -> Any:
        """The lock file, locked; None where locks are unavailable (read-only folder, Windows)."""
        if fcntl is None:
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.with_name(self.path.name + ".lock"), "a")
        except OSError:
            return None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:
            lock.close()
            return None
        return lock

    # -- reading ---------------------------------------------------------------
    def read(self) -> dict:
        """The document, or a fresh one (backing up and reporting a damaged file)."""
        raw = self._raw()
        if raw is None:
            return {"schema": self.schema}
        data, trouble, notes = self._parse(raw)
        if trouble is None and not notes:
            return data
        with self._locked():  # repair once, with other writers kept out
            raw = self._raw()
            if raw is None:
                return {"schema": self.schema}
            data, trouble, notes = self._parse(raw)
            if trouble is not None:
                return self._move_aside(trouble)
            if notes:
                self._repair(raw, data, notes)
            return data

    def _raw(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.problem(f"could not read {self.path}: {exc.strerror or exc}")
            return None

    def _parse(self, raw: bytes) -> tuple[dict, str | None, list[str]]:
        """(document, why it is unreadable or None, field repairs)."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return {}, "not UTF-8 text", []
        except ValueError as exc:
            return {}, f"not JSON: {_why(exc)}", []
        if not isinstance(data, dict):
            return {}, f"a JSON {type(data).__name__}, not an object", []
        if data.get("schema") != self.schema:
            return {}, f"expected schema {self.schema!r}, found {_brief(data.get('schema'))}", []
        notes = Notes()
        if self.check is not None:
            self.check(data, notes)
        return data, None, notes.items

    def _move_aside(self, why: str) -> dict:
        backup = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time() * 1000)}")
        try:
            os.replace(self.path, backup)
            kept = f"it was moved to {backup.name} and a fresh one started"
        except OSError:
            kept = "it could not be moved aside; a fresh one is used for now"
        self.problem(f"{self.path.name} was unreadable ({why}); {kept}")
        return {"schema": self.schema}

    def _repair(self, raw: bytes, data: dict, notes: list[str]) -> None:
        backup = self.path.with_name(f"{self.path.name}.corrupt-{hashlib.sha1(raw).hexdigest()[:8]}")
        more = f" (and {len(notes) - MAX_NOTES} more)" if len(notes) > MAX_NOTES else ""
        try:
            if not backup.exists():
                backup.write_bytes(raw)
            self.write(data)
            kept = f"the original is kept as {backup.name}"
        except OSError:
            kept = "the file itself could not be repaired"
        self.problem(f"{self.path.name}: {'; '.join(notes[:MAX_NOTES])}{more}; {kept}")

    # -- writing ---------------------------------------------------------------
    def write(self, data: dict) -> None:
        """Write atomically; raises ``OSError`` when the folder cannot take it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_tmp(self.path.parent, self.path.name)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(self.path.name), suffix=".tmp",
                                   dir=self.path.parent)
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

    def save(self, data: dict) -> bool:
        """Write, or note "progress not saved" (full disk, read-only folder): never raises."""
        try:
            self.write(data)
            return True
        except OSError as exc:
            self.problem(not_saved_reason(exc, self.path.parent))
            return False

    def update(self, change: Callable[[dict], Any]) -> dict:
        """Read, apply ``change`` in place, save — all under the lock.

        When the folder cannot be written the change still applies to the returned
        document and ``problems`` says the progress was not saved.
        """
        with self._locked():
            data = self.read()
            change(data)
            data["schema"] = self.schema
            self.save(data)
            return data


def state_dir(rootdir: Path) -> Path:
    return Path(os.environ.get("ATTNKATA_STATE_DIR") or Path(rootdir) / ".attnkata")


def ledger(rootdir: Path) -> JsonStore:
    return JsonStore(state_dir(rootdir) / "ledger.json", LEDGER_SCHEMA, check_ledger)


def results(rootdir: Path) -> JsonStore:
    return JsonStore(state_dir(rootdir) / "results.json", RESULTS_SCHEMA, check_results)


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
