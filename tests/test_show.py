"""attnkata show: a Triton kernel's grid, loads, stores and masked lanes, recorded in the
worker and drawn in the CLI process (terminal and PNG)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnkata import cli
from attnkata.manager import load_registry
from attnkata.session import RunState
from attnkata.show import RECIPES, analyse, oob_offsets, run_recipe
from attnkata.target import TargetSpec

from conftest import REPO, SOLUTIONS

pytest.importorskip("triton")
SOFTMAX = "level5/triton_softmax.py"


@pytest.fixture(autouse=True)
def interpreted(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def record(target: str, kata_id: str = "triton_softmax") -> tuple[dict, BaseException | None]:
    pm, registry = load_registry()
    state = RunState(pm, registry, TargetSpec.parse(target, REPO), REPO, REPO / "katas")
    try:
        return run_recipe(registry.get(kata_id), RECIPES[kata_id], state)
    finally:
        state.close()


def test_show_draws_the_reference_kernel(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    png = tmp_path / ("a-folder-name-" * 4) / "softmax.png"   # a path longer than 80 columns
    code = cli.main(["--root", str(REPO), "show", "triton_softmax", "--target", "solutions",
                     "--png", str(png)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "grid (4, 1, 1) = 4 programs" in out
    assert "Y [4, 6] float32, stored: 24 of 24 elements, each once" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_reference_stores_every_output_element_once():
    rec, error = record("solutions")
    assert error is None
    (view,) = analyse(rec)
    assert view.grid == (4, 1, 1) and sorted(view.programs) == [0, 1, 2, 3]
    y = next(u for u in view.tensors if u.name == "Y")
    x = next(u for u in view.tensors if u.name == "X")
    assert (y.stores == 1).all() and (x.loads == 1).all()
    for row in range(4):  # program r owns row r, in and out
        assert (y.store_owner[row] == row).all() and (x.load_owner[row] == row).all()
    for prog in view.programs.values():  # 6 real lanes of 8: two off per load and per store
        assert (prog.loads, prog.stores, prog.masked, prog.oob) == (6, 6, 4, 0)


def test_a_missing_mask_shows_out_of_bounds_lanes(tmp_path, capsys):
    text = (SOLUTIONS / SOFTMAX).read_text()
    load = 'mask=in_row, other=-float("inf")'
    store = "y.to(Y.dtype.element_ty), mask=in_row)"
    assert load in text and store in text
    path = tmp_path / SOFTMAX
    path.parent.mkdir(parents=True)
    path.write_text(text.replace(", " + load, "").replace(store, "y.to(Y.dtype.element_ty))"))
    rec, error = record(str(tmp_path))
    assert error is None
    (view,) = analyse(rec)
    y = next(u for u in view.tensors if u.name == "Y")
    x = next(u for u in view.tensors if u.name == "X")
    # rows 0..2 spill two lanes into the next row; row 3's two extra lanes leave the tensor
    assert sorted(oob_offsets(x)) == [24, 25] and sorted(oob_offsets(y)) == [24, 25]
    assert int((y.stores == 2).sum()) == 6 and view.programs[3].oob == 4
    assert all(p.masked == 0 for p in view.programs.values())
    code = cli.main(["--root", str(REPO), "--width", "80", "show", "triton_softmax",
                     "--target", str(tmp_path), "--png", str(tmp_path / "bad.png")])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "bad.png").exists()
    assert "2 lane(s) out of bounds" in out and "6 more than once" in out


def test_an_unwritten_kernel_says_not_started(capsys):
    code = cli.main(["--root", str(REPO), "--width", "80", "show", "triton_softmax"])
    out = capsys.readouterr().out
    assert code == 1 and "not started" in out


def test_a_kata_without_a_kernel_is_refused(capsys):
    assert cli.main(["--root", str(REPO), "--width", "80", "show", "softmax"]) == 2
    assert "triton_softmax" in capsys.readouterr().out


@pytest.mark.parametrize("kata_id", sorted(set(RECIPES) - {"triton_softmax"}))
def test_every_recipe_runs_on_the_reference(kata_id):
    rec, error = record("solutions", kata_id)
    assert error is None and rec["launches"]
    for view in analyse(rec):
        stored = [u for u in view.tensors if u.stores.any()]
        assert stored, f"{view.kernel} stored nothing"
        for use in stored:  # an output tile is written by one program, once
            assert use.stores.max() == 1 and not oob_offsets(use)
