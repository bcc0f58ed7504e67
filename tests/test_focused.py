"""Focused output: a run that selects katas prints their feedback and one ladder line;
hints only on request; locked katas name their missing predictions; the reference once ready."""

from __future__ import annotations

import json
import sys

from attnkata.doctor import level_rows, package_rows
from attnkata.manager import load_registry

UNSCALED = "    return qk_scores(q, k) / np.asarray(np.sqrt(d), dtype=q.dtype)"


def unscaled(project) -> None:
    project.copy_level("level0")
    path = project.root / "katas" / "level0" / "scaled_scores.py"
    path.write_text(path.read_text().replace(UNSCALED, "    return qk_scores(q, k)"))


def attnkata(project, *argv):
    return project.pytester.run(sys.executable, "-m", "attnkata", "--root", str(project.root), *argv)


def test_a_failing_one_kata_run_fits_40_lines_of_80_columns(project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    unscaled(project)
    result = project.run("katas/level0/scaled_scores.py")
    assert result.ret == 1
    lines = result.stdout.str().splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    ours = [ln for ln in lines if not ln.startswith("rootdir: ")]  # pytester's long tmp path
    assert all(len(line.rstrip()) <= 80 for line in ours), "\n".join(lines)
    out = result.stdout.str()
    assert "attnkata ladder" not in out and not any(ln.startswith("benchmark: ") for ln in lines)
    result.stdout.fnmatch_lines(["*scaled_scores failing*`attnkata hint scaled_scores` for a hint*",
                                 "0/* ready · level 0 · next: qk_scores · attnkata report for the ladder"])
    assert "Hint 1/" not in out and "<kata>" not in out


def test_hints_come_only_on_request_with_one_counter(project):
    unscaled(project)
    for _ in range(3):
        out = project.run("-k", "scaled_scores").stdout.str()
        assert "Hint " not in out  # nothing escalates by itself
    assert "Hint 1/3" in attnkata(project, "hint", "scaled_scores").stdout.str()
    out = project.run("-k", "scaled_scores").stdout.str()
    assert "Hint " not in out
    second = attnkata(project, "hint", "scaled_scores").stdout.str()
    assert "Hint 2/3" in second


def test_a_locked_kata_names_the_missing_predictions(project):
    project.copy_level("level0")
    path = project.root / "katas" / "level0" / "scaled_scores.py"
    path.write_text(path.read_text().replace('"scaled_variance": 1.0', '"scaled_variance": ...'))
    result, ladder = project.ladder("-k", "scaled_scores")
    row = next(k for k in ladder["katas"] if k["id"] == "scaled_scores")
    assert row["status"] == "locked"
    assert row["detail"] == "predict first: fill scaled_variance in PREDICTIONS"
    result.stdout.fnmatch_lines(["*scaled_scores locked — predict first: fill scaled_variance in PREDICTIONS*"])
    result = project.run("-k", "scaled_scores", "--attnkata-ladder")
    result.stdout.fnmatch_lines(["*scaled_scores*locked*predict first: fill scaled_variance*"])


def test_the_reference_opens_once_the_kata_is_ready(project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    unscaled(project)
    project.run("-k", "scaled_scores")
    refused = attnkata(project, "solution", "scaled_scores")
    assert refused.ret == 1 and "is failing in your saved results" in refused.stdout.str()
    path = project.root / "katas" / "level0" / "scaled_scores.py"
    path.write_text(path.read_text().replace("    return qk_scores(q, k)\n",
                    "    # divide by the square root of the head dimension so the variance stays near one\n"
                    "    return qk_scores(q, k) / np.asarray(np.sqrt(d), dtype=q.dtype)\n"))
    turned = project.run("-k", "scaled_scores").stdout.str()
    assert turned.count("`attnkata solution scaled_scores`") == 1
    again = project.run("-k", "scaled_scores").stdout.str()
    assert "attnkata solution" not in again  # mentioned once, when it turns ready
    shown = attnkata(project, "solution", "scaled_scores")
    assert shown.ret == 0
    out = shown.stdout.str()
    assert "--- yours: katas/level0/scaled_scores.py" in out and "+++ reference:" in out
    assert "-    # divide by the square root" in out
    assert all(len(line) <= 80 for line in out.splitlines()), out


def test_a_whole_course_run_and_report_print_the_ladder(project):
    project.copy_level("level0")
    project.run("-k", "level0")
    result = attnkata(project, "report")
    result.stdout.fnmatch_lines(["*attnkata ladder*", "*softmax*ready*"])


def test_doctor_levels_match_the_katas_requires():
    _, registry = load_registry()
    torch = next(r for r in package_rows(registry) if r["name"] == "torch")
    levels = sorted({k.level for k in registry.katas if "torch" in k.requires and k.pack == "core"})
    assert levels[0] == 5 and levels == list(range(5, levels[-1] + 1))   # today 5-8
    assert torch["needed_for"] == f"levels {levels[0]}-{levels[-1]}"
    needs = {r["name"].split()[1]: r["needed_for"] for r in level_rows(registry)}
    assert needs["4"] == "numpy" and "torch" in needs["5"]


def test_n_auto_picks_serial_for_selected_katas_and_small_machines(pytester, monkeypatch):
    """``-n auto`` in a course asks attnkata: serial unless the whole course runs on ≥ 4 cores."""
    from types import SimpleNamespace

    from attnkata.pytest_plugin import auto_workers

    root = pytester.path
    (root / "katas").mkdir()
    (root / "tests").mkdir()

    def config(*args, **option):
        opts = {"keyword": "", "markexpr": "", "lf": False, "failedfirst": False, **option}
        return SimpleNamespace(option=SimpleNamespace(**opts), rootpath=root,
                               args=[str(root / a) for a in args] or [str(root / "katas")],
                               getini=lambda name: "katas")

    assert auto_workers(config(), cores=2) == 0          # measured: -n 2 is slower on 2 cores
    assert auto_workers(config(), cores=8) == 4
    assert auto_workers(config(), cores=64) == 4
    assert auto_workers(config("katas/level0/softmax.py"), cores=8) == 0
    assert auto_workers(config(keyword="softmax"), cores=8) == 0
    assert auto_workers(config(lf=True), cores=8) == 0
    assert auto_workers(config("tests"), cores=8) is None  # the framework's tests: xdist decides
