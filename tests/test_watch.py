"""attnkata watch: a save reruns the kata; once it turns ready the watcher moves to the Next."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attnkata.watch import signature, wait_for_change

from conftest import REPO, SOLUTIONS

PATIENCE = 240  # seconds to wait for any one step: a busy 2-core machine is slow, never wrong


class Output:
    """The watcher's output, line by line, read on a thread so a wait can give up."""

    def __init__(self, stream):
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, *needles: str) -> str:
        """Read until every needle has shown up in one line (fails on end of output)."""
        while True:
            line = self.lines.get(timeout=PATIENCE)
            assert line is not None, "watcher ended early:\n" + "".join(self.seen)
            self.seen.append(line)
            if all(n in line for n in needles):
                return line

    def rest(self) -> str:
        while (line := self.lines.get(timeout=PATIENCE)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def test_watch_reruns_on_save_and_moves_on_when_ready(project):
    kata = project.root / "katas" / "level0" / "qk_scores.py"
    kata.parent.mkdir(parents=True)
    shutil.copy(REPO / "katas" / "level0" / "qk_scores.py", kata)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnkata", "--root", str(project.root), "watch", "qk_scores",
         "--poll", "0.2"],
        cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = Output(proc.stdout)
        out.until("watching katas/level0/qk_scores.py")  # the stub ran once
        assert "qk_scores not started" in "".join(out.seen)
        saved = kata.with_suffix(".tmp")  # saved the way editors save: whole, by rename
        shutil.copy(SOLUTIONS / "level0" / "qk_scores.py", saved)
        os.replace(saved, kata)
        out.until("qk_scores is ready", "next: scaled_scores")
        out.until("scaled_scores")  # it follows the new Next (whose file is not here yet)
        proc.send_signal(signal.SIGINT)
        text = out.rest()
        assert proc.wait(timeout=PATIENCE) == 0, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert text.count("attnkata watch · qk_scores") == 2, text  # one run per save, no more


@pytest.mark.parametrize("poll", [0.1, None], ids=["polling", "watchfiles"])
def test_wait_for_change_sees_a_save(tmp_path, poll):
    if poll is None:
        pytest.importorskip("watchfiles")
    path = tmp_path / "kata.py"
    path.write_text("x = 1\n")
    since = signature(path)

    def save() -> None:
        time.sleep(0.5)
        path.write_text("x = 22\n")

    threading.Thread(target=save, daemon=True).start()
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (wait_for_change(path, since, poll), done.set()),
                              daemon=True)
    waiter.start()
    assert done.wait(PATIENCE)
    assert signature(path) != since


def test_a_save_during_the_last_run_is_not_missed(tmp_path):
    path = tmp_path / "kata.py"
    path.write_text("x = 1\n")
    since = signature(path)
    path.write_text("x = 22\n")
    wait_for_change(path, since, poll=0.1)  # returns at once: the file already differs


def test_watch_once_unknown_kata(project):
    result = project.pytester.run(sys.executable, "-m", "attnkata", "--root", str(project.root),
                                  "watch", "no_such_kata", "--once")
    assert result.ret == 2
    assert "no kata named 'no_such_kata'" in result.stderr.str()


def test_watch_outside_a_course_says_so(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "attnkata", "--root", str(tmp_path), "watch",
                             "--once"], capture_output=True, text=True, timeout=PATIENCE,
                            env={k: v for k, v in os.environ.items() if k != "ATTNKATA_STATE_DIR"})
    assert result.returncode == 2
    assert "not an attnkata course" in " ".join(result.stderr.split())


def test_watchfiles_sees_a_save_and_a_save_by_rename(tmp_path):
    """The optional ``watch`` extra: watchfiles instead of polling (skipped without it)."""
    pytest.importorskip("watchfiles")
    path = tmp_path / "kata.py"
    path.write_text("a = 1\n")
    for save in ("write", "rename"):
        since = signature(path)

        def later(save=save):
            time.sleep(0.5)
            if save == "write":
                path.write_text("a = 2\n")
            else:  # how many editors save: a new file renamed over the old one
                tmp = tmp_path / "kata.py.tmp"
                tmp.write_text("a = 33\n")
                tmp.replace(path)

        threading.Thread(target=later).start()
        start = time.monotonic()
        wait_for_change(path, since)  # poll=None: watchfiles when installed
        assert signature(path) != since and time.monotonic() - start < PATIENCE
