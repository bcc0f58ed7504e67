"""The pytest plugin stays out of projects that are not an attnkata course."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnkata import cli
from attnkata.state import find_course, is_course

HEAVY = ("torch", "numpy", "rich", "hypothesis.strategies", "attnkata.manager", "attnkata.session",
         "attnkata.collect", "attnkata_plugins", "attnkata_plugins.claims", "attnkata_plugins.bench")

# A project of someone else's, with its own katas/ folder and its own tests in it.
THEIR_TEST = f'''
import os, sys

def test_their_own_kata_test():
    assert "attnkata.manager" not in sys.modules and "attnkata_plugins.claims" not in sys.modules
    assert "TRITON_INTERPRET" not in os.environ

def test_heavy_modules_not_loaded():
    assert [m for m in {HEAVY!r} if m in sys.modules] == []
'''


@pytest.fixture
def foreign(pytester, monkeypatch):
    """A project with ``katas/`` and a pyproject.toml, but no ``[tool.attnkata]``."""
    monkeypatch.delenv("ATTNKATA_STATE_DIR", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the outer run set it for itself
    monkeypatch.setenv("NO_COLOR", "1")
    pytester.makepyprojecttoml('[project]\nname = "theirs"\n\n[tool.pytest.ini_options]\n'
                               'testpaths = ["katas"]\n')
    (pytester.path / "katas").mkdir()
    (pytester.path / "katas" / "test_theirs.py").write_text(THEIR_TEST)
    return pytester


def test_a_project_that_is_not_a_course_keeps_its_own_tests(foreign):
    result = foreign.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "attnkata: target=" not in out and "attnkata ladder" not in out  # no header, no ladder
    assert not (foreign.path / ".attnkata").exists()


def test_pytest_help_outside_a_course_still_offers_the_switch(foreign):
    result = foreign.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--attnkata *run attnkata here even though*"])


def test_the_switch_turns_it_on_without_the_marker(foreign):
    (foreign.path / "katas" / "test_theirs.py").unlink()
    result = foreign.runpytest_subprocess("-p", "no:randomly", "--attnkata", "-k", "level0",
                                          "--attnkata-ladder")
    result.stdout.fnmatch_lines(["attnkata: target=katas*", "*attnkata ladder*", "*qk_scores*not started*"])
    assert (foreign.path / ".attnkata").is_dir()


def test_the_switch_works_from_addopts(foreign):
    (foreign.path / "katas" / "test_theirs.py").unlink()
    foreign.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["katas"]\n'
                              'addopts = ["--attnkata"]\n')
    result = foreign.runpytest_subprocess("-p", "no:randomly", "-k", "level0", "--attnkata-ladder")
    result.stdout.fnmatch_lines(["*attnkata ladder*"])


def test_a_course_turns_it_on(project):
    result = project.run("-k", "level0", "--attnkata-ladder")
    result.stdout.fnmatch_lines(["attnkata: target=katas*", "*attnkata ladder*"])


def test_importing_the_plugin_is_cheap_and_changes_nothing(monkeypatch):
    """Every pytest run in the environment imports it: no heavy imports, no Triton mode set."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    code = ("import os, sys, attnkata.pytest_plugin\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules], os.environ.get('TRITON_INTERPRET'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] None"


@pytest.mark.parametrize("text, expected", [
    ("[tool.attnkata]\n", True),
    ("[tool.attnkata]\nkatas = 'katas'\n", True),
    ("[tool.pytest.ini_options]\naddopts = '--attnkata'\n", False),
    ("[tool.attnkata\n", False),                 # not TOML
    ("attnkata = 1\n", False),                   # mentions it, no table
    ("[project]\nname = 'x'\n", False),
])
def test_what_counts_as_a_course(tmp_path, text, expected):
    (tmp_path / "pyproject.toml").write_text(text)
    assert is_course(tmp_path) is expected
    (tmp_path / "sub").mkdir()
    assert (find_course(tmp_path / "sub") == tmp_path) is expected


def test_a_pyproject_that_is_not_utf8_is_no_course(tmp_path):
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.attnkata]\n\xff")
    assert not is_course(tmp_path)


@pytest.mark.parametrize("argv", [["hint", "softmax"], ["skip", "softmax"]])
def test_hint_and_skip_outside_a_course_say_so(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.delenv("ATTNKATA_STATE_DIR", raising=False)
    (tmp_path / "katas").mkdir()  # looks like a checkout, but is no course
    code = cli.main(["--root", str(tmp_path), *argv])
    err = " ".join(capsys.readouterr().err.split())
    assert code != 0
    assert "is not an attnkata course" in err and "[tool.attnkata]" in err
    assert not (tmp_path / ".attnkata").exists()


def test_hint_inside_a_course_from_a_subfolder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ATTNKATA_STATE_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.attnkata]\n")
    (tmp_path / "katas" / "level0").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "katas" / "level0")
    assert cli.main(["hint", "softmax"]) == 0
    assert "Hint 1/3" in capsys.readouterr().out
    assert (tmp_path / ".attnkata" / "ledger.json").exists()
