"""Every table and message fits the terminal: wrapped at spaces (or stacked), never cropped,
never a word cut in two; COLUMNS and --width decide the width."""

from __future__ import annotations

import sys

import pytest
from rich.table import Table

from attnkata import cli
from attnkata.doctor import package_rows
from attnkata.manager import load_registry
from attnkata.render import Fitted, render

from conftest import REPO

WIDTHS = (80, 60)


def fits(out: str, width: int, words: list[str]) -> None:
    long = [line for line in out.splitlines() if len(line.rstrip()) > width]
    assert not long, f"{len(long)} line(s) over {width} columns:\n" + "\n".join(long)
    cut = [w for w in words if w not in out]
    assert not cut, f"cut or lost at {width} columns: {cut}\n{out}"


def kata_words() -> list[str]:
    _, registry = load_registry()
    return [k.id for k in registry.katas] + [f"katas/{k.path}" for k in registry.katas]


@pytest.mark.parametrize("width", WIDTHS)
def test_list_fits_the_terminal(width, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(width))
    cli.main(["list"])
    out = capsys.readouterr()
    fits(out.out, width, kata_words())
    fits(out.err, width, [])


@pytest.mark.parametrize("width", WIDTHS)
def test_doctor_fits_the_terminal(width, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(width))
    cli.main(["doctor"])
    out = capsys.readouterr().out
    torch = next(r for r in package_rows(load_registry()[1]) if r["name"] == "torch")
    fits(out, width, ["python", "numpy", "torch", "triton", torch["needed_for"]])


def test_width_flag_wins_over_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    cli.main(["--width", "60", "list"])
    fits(capsys.readouterr().out, 60, kata_words())


def test_a_table_that_fits_is_drawn_as_a_table():
    table = Table(title="t")
    for col in ("a", "b"):
        table.add_column(col)
    table.add_row("one", "katas/level7/ring_overlap.py")
    out = render(Fitted(table), color=False, width=60)
    assert "┃ a" in out and "katas/level7/ring_overlap.py" in out


def test_a_table_that_would_cut_a_word_is_stacked():
    table = Table(title="t")
    for col in ("level", "kata", "file", "title"):
        table.add_column(col, overflow="fold")
    table.add_row("7", "ring_overlap", "katas/level7/ring_overlap.py",
                  "Ring attention that hides its sends behind the compute of each step")
    out = render(Fitted(table, group=0, keys=(1,)), color=False, width=40)
    fits(out, 40, ["katas/level7/ring_overlap.py", "ring_overlap", "level 7"])
    assert "┃" not in out


@pytest.mark.parametrize("width", WIDTHS)
def test_pytest_ladder_and_report_fit(project, monkeypatch, width):
    """A not-started course: the ladder's feedback is each kata's file path, which the
    80-column table used to break mid-word (``katas/level7/ring_overl`` / ``ap.py``)."""
    monkeypatch.setenv("COLUMNS", str(width))
    for name in ("ring_overlap.py", "zigzag_shards.py"):  # the learner's copies of the stubs
        project.write(f"level7/{name}", (REPO / "katas" / "level7" / name).read_text())
    result = project.run("-k", "ring_overlap or zigzag_shards", "--attnkata-ladder")
    lines = result.stdout.str().splitlines()
    start = next(i for i, line in enumerate(lines) if "attnkata ladder" in line)
    ladder = "\n".join(lines[start:])
    fits(ladder, width, ids() + ["katas/level7/ring_overlap.py", "katas/level7/zigzag_shards.py"])
    report = project.pytester.run(sys.executable, "-m", "attnkata", "--root", str(project.root),
                                  "report")
    fits(report.stdout.str(), width, ids() + ["katas/level7/ring_overlap.py"])


def ids() -> list[str]:
    _, registry = load_registry()
    return [k.id for k in registry.katas]
