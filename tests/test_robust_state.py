"""Saved state never takes a run down: damaged files, full disks, read-only folders, leftovers."""

from __future__ import annotations

import errno
import json
import os
import socket
import time

import pytest

from attnkata import cli, state
from attnkata.report import saved_ladder
from attnkata.state import (LEDGER_SCHEMA, RESULTS_SCHEMA, JsonStore, bump_failures, check_ledger,
                            ledger, record_predictions, results)

BAD_UTF8 = b'{"schema": "attnkata.ledger/1", "x": "\xff\xfe"}'


@pytest.fixture
def course(tmp_path, monkeypatch):
    """An empty course folder, the current directory, with its state in ``.attnkata/``."""
    monkeypatch.delenv("ATTNKATA_STATE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.attnkata]\n")
    (tmp_path / ".attnkata").mkdir()
    return tmp_path


def write(path, data) -> None:
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())


# -- unreadable files: moved aside, reported, fresh one started ------------------

@pytest.mark.parametrize("content, why", [
    (BAD_UTF8, "not UTF-8 text"),
    (b"[1, 2]", "a JSON list, not an object"),
    (b'"just a string"', "a JSON str, not an object"),
    (b'{"schema": "attnkata.results/1"}', "expected schema"),
])
def test_unreadable_ledger_is_moved_aside(tmp_path, content, why):
    path = tmp_path / "ledger.json"
    write(path, content)
    store = JsonStore(path, LEDGER_SCHEMA, check_ledger)
    assert bump_failures(store, "katas", "softmax") == 1
    assert len(store.problems) == 1 and why in store.problems[0] and "moved to" in store.problems[0]
    backups = list(tmp_path.glob("ledger.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content
    assert json.loads(path.read_text())["targets"]["katas"]["softmax"]["failed_runs"] == 1


def test_report_survives_non_utf8_results(course, capsys):
    write(course / ".attnkata" / "results.json", b"\x80\x81 not text")
    code = cli.main(["--root", str(course), "report"])
    captured = capsys.readouterr()
    assert code == 1 and "run `pytest` first" in captured.out
    assert "results.json was unreadable (not UTF-8 text)" in captured.err.replace("\n", " ")
    assert cli.main(["--root", str(course), "report"]) == 1  # and again: no crash, nothing new
    assert len(list((course / ".attnkata").glob("results.json.corrupt-*"))) == 1


# -- fields of the wrong type: dropped or reset with a note ----------------------

def test_wrong_field_types_in_the_ledger_are_dropped_with_a_note(tmp_path):
    path = tmp_path / "ledger.json"
    write(path, {"schema": LEDGER_SCHEMA, "hints": {"softmax": "two", "qk_scores": 2},
                 "targets": {"katas": {"softmax": {"failed_runs": "3", "skipped": "yes",
                                                   "predictions": {"p": {"revisions": "x", "first": 2},
                                                                   "q": 7}},
                                       "masks": []},
                             "solutions": "nope"}})
    store = ledger(tmp_path)
    store.path = path
    data = store.read()
    entry = data["targets"]["katas"]["softmax"]
    assert "failed_runs" not in entry and "skipped" not in entry
    assert entry["predictions"] == {"p": {"first": 2}}
    assert data["hints"] == {"qk_scores": 2}
    assert "masks" not in data["targets"]["katas"] and "solutions" not in data["targets"]
    problem = " ".join(store.problems)
    assert "failed_runs was \"3\", not a count" in problem and "(and " in problem
    assert "the original is kept as ledger.json.corrupt-" in problem
    # repaired on disk once: reading again needs no repair and makes no new backup
    again = JsonStore(path, LEDGER_SCHEMA, check_ledger)
    assert again.read() == data and again.problems == []
    assert len(list(tmp_path.glob("ledger.json.corrupt-*"))) == 1
    assert bump_failures(again, "katas", "softmax") == 1


def test_a_hints_counter_that_is_not_a_number_is_reset(course, capsys):
    write(course / ".attnkata" / "ledger.json", {"schema": LEDGER_SCHEMA, "hints": {"softmax": "lots"}})
    assert cli.main(["--root", str(course), "hint", "softmax"]) == 0
    captured = capsys.readouterr()
    assert "Hint 1/3" in captured.out
    assert 'hints.softmax was "lots", not a count: reset' in captured.err.replace("\n    ", " ")


def test_hidden_test_hint_counter_of_wrong_type_is_a_note_not_a_crash(tmp_path):
    path = tmp_path / "ledger.json"
    write(path, {"schema": LEDGER_SCHEMA, "targets": {"katas": {"softmax": {"failed_runs": [1]}}}})
    store = JsonStore(path, LEDGER_SCHEMA, check_ledger)
    runs = store.read()["targets"]["katas"]["softmax"].get("failed_runs", 0)
    assert runs == 0 and store.problems


@pytest.mark.parametrize("run", [
    "not a ladder",
    {"target": "katas", "levels": {"0": "Scores"}, "katas": [{"id": "qk_scores"}]},
    {"target": "katas", "levels": {"zero": "Scores"}, "katas": []},
    {"target": "katas", "levels": {}, "katas": [{"id": "k", "level": 0, "title": "t", "pack": "p",
                                                  "status": "exploded"}]},
    {"target": "katas", "levels": {}, "katas": [], "claims": [{"id": "c"}]},
])
def test_saved_results_of_the_wrong_shape_are_dropped_not_fatal(course, capsys, run):
    write(course / ".attnkata" / "results.json",
          {"schema": RESULTS_SCHEMA, "runs": {"katas": run}, "last": "katas"})
    ladder, problems = saved_ladder(course)
    assert ladder is None
    assert any(p.startswith("results.json: runs.katas") and "dropped" in p for p in problems)
    assert cli.main(["--root", str(course), "report"]) == 1
    assert "run `pytest` first" in capsys.readouterr().out


def test_a_saved_ladder_from_a_newer_version_still_loads(course):
    row = {"id": "qk_scores", "level": 0, "title": "QK", "pack": "core", "status": "ready",
           "added_later": True}
    write(course / ".attnkata" / "results.json",
          {"schema": RESULTS_SCHEMA, "last": "katas",
           "runs": {"katas": {"target": "katas", "levels": {"0": "Scores"}, "katas": [row]}}})
    ladder, problems = saved_ladder(course)
    assert ladder.rows[0].id == "qk_scores" and problems == []


# -- a folder that cannot be written: "progress not saved", the run goes on -------

def test_full_disk_is_progress_not_saved(tmp_path, monkeypatch):
    store = JsonStore(tmp_path / "ledger.json", LEDGER_SCHEMA, check_ledger)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state.os, "fsync", full)
    entry = record_predictions(store, "katas", "softmax", {"p": (1.0, True)})
    assert entry["predictions"]["p"]["first"] == 1.0  # the run still knows
    assert store.problems == [f"progress not saved: the disk is full ({tmp_path}{os.sep})"]
    assert not (tmp_path / "ledger.json").exists() and not list(tmp_path.glob("*.tmp"))
    record_predictions(store, "katas", "softmax", {"q": (2.0, True)})
    assert len(store.problems) == 1  # one line, however many writes failed


def test_read_only_folder_is_progress_not_saved(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(state.tempfile, "mkstemp", refuse)
    store = JsonStore(tmp_path / "results.json", RESULTS_SCHEMA)
    assert store.update(lambda data: data.update(last="katas"))["last"] == "katas"
    assert store.problems == [f"progress not saved: {tmp_path}{os.sep} is read-only"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_really_read_only_folder(tmp_path):
    folder = tmp_path / ".attnkata"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        store = JsonStore(folder / "ledger.json", LEDGER_SCHEMA, check_ledger)
        assert bump_failures(store, "katas", "softmax") == 1
        assert store.problems and store.problems[0].startswith("progress not saved")
    finally:
        folder.chmod(0o755)


def test_skip_says_when_it_could_not_save(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(blocker / "state"))  # cannot be a folder
    assert cli.main(["skip", "softmax"]) == 1
    assert "progress not saved" in capsys.readouterr().err


def test_pytest_run_with_an_unwritable_state_folder_still_prints_the_ladder(project, monkeypatch):
    blocker = project.root / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(blocker / "state"))
    project.copy_level("level0")
    result, ladder = project.ladder("-k", "level0", "--attnkata-ladder")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*attnkata ladder*", "*softmax*ready*", "*progress not saved*"])
    assert sum("progress not saved" in p for p in ladder["problems"]) == 1
    assert "Traceback" not in result.stdout.str()


# -- temporary files left by killed runs -------------------------------------------

def _dead_pid() -> int:
    pid = 2 ** 22 - 7
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


def test_stale_temporary_files_are_swept_but_live_ones_kept(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f"ledger.json.{_dead_pid()}@{host}.abc.tmp"
    live = tmp_path / f"ledger.json.{os.getpid()}@{host}.def.tmp"       # a writer at work
    elsewhere = tmp_path / f"ledger.json.{_dead_pid()}@other-host.ghi.tmp"  # cannot tell: young
    old = tmp_path / "ledger.json.old_format.tmp"
    young = tmp_path / "ledger.json.new_format.tmp"
    other = tmp_path / "results.json.123@x.tmp"
    for path in (dead, live, elsewhere, old, young, other):
        path.write_text("{")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    bump_failures(JsonStore(tmp_path / "ledger.json", LEDGER_SCHEMA), "katas", "k")
    left = {p.name for p in tmp_path.glob("*.tmp")}
    assert left == {live.name, elsewhere.name, young.name, other.name}


def test_a_writers_own_temporary_file_names_it(tmp_path, monkeypatch):
    names = []
    real = state.os.replace

    def spy(src, dst):
        names.append(os.path.basename(src))
        return real(src, dst)

    monkeypatch.setattr(state.os, "replace", spy)
    JsonStore(tmp_path / "ledger.json", LEDGER_SCHEMA).write({"schema": LEDGER_SCHEMA})
    assert names[0].startswith(f"ledger.json.{os.getpid()}@{socket.gethostname()}.")
