"""Fixtures for the framework's own tests: throwaway learner projects driven by pytester."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


class Project:
    """A learner checkout in a temp dir: an empty ``katas/`` unless files are added."""

    def __init__(self, pytester: pytest.Pytester):
        self.pytester = pytester
        self.root = pytester.path
        (self.root / "katas").mkdir()
        pytester.makepyprojecttoml('[tool.attnkata]\n\n[tool.pytest.ini_options]\ntestpaths = ["katas"]\n')

    def solution(self, relpath: str, folder: str = "katas", **replace: str) -> Path:
        """Copy a reference into the learner folder, optionally rewriting parts of it."""
        text = (SOLUTIONS / relpath).read_text()
        for old, new in replace.items():
            key = old if old in text else old.replace("_", " ")
            assert key in text, f"{old!r} not in {relpath}"
            text = text.replace(key, new)
        return self.write(relpath, text, folder)

    def write(self, relpath: str, text: str, folder: str = "katas") -> Path:
        path = self.root / folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def copy_level(self, level: str, folder: str = "katas") -> None:
        shutil.copytree(SOLUTIONS / level, self.root / folder / level, dirs_exist_ok=True)

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:randomly", *args)

    def ladder(self, *args: str) -> tuple[pytest.RunResult, dict]:
        out = self.root / "ladder.json"
        result = self.run(f"--attnkata-json={out}", *args)
        return result, json.loads(out.read_text())


def statuses(ladder: dict, level: int | None = None) -> dict[str, str]:
    return {k["id"]: k["status"] for k in ladder["katas"] if level is None or k["level"] == level}


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.delenv("ATTNKATA_STATE_DIR", raising=False)
    monkeypatch.delenv("CI", raising=False)  # a learner's terminal: pytest truncates its summary
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    return Project(pytester)
