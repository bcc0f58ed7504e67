"""The history pack (packs/attnkata-history): a second, full-size pack registered through the
`attnkata` entry-point group like any third-party pack. It passes selfcheck on its own, shows
in list, the ladder, readiness and doctor, `attnkata init history` copies its stubs, removing
it leaves the core ladder as it was, and a plain non-editable install ships its stubs and
references (package data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from attnkata import cli, manager
from attnkata.manager import load_registry
from conftest import REPO, statuses

PACK_DIR = REPO / "packs" / "attnkata-history"
KATAS = ("additive_attention", "luong_scores", "sinusoidal_positions", "alibi_bias",
         "linear_attention", "performer_features", "sparse_patterns", "lsh_buckets", "moe_routing")
LEVELS = {20: "Before the Transformer", 21: "Positions without rotation",
          22: "Approximating attention", 23: "Routing"}
ENTRY_POINT = "history = attnkata_history"


@pytest.fixture
def history(tmp_path, monkeypatch):
    """The pack discoverable through its entry point whether or not it is pip-installed here:
    a dist-info naming the same entry point as its pyproject.toml, on sys.path in this
    process and in subprocesses. (CI installs it; the dist-info then shadows the same code.)"""
    site = tmp_path / "history-site"
    info = site / "attnkata_history-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: attnkata-history\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[attnkata]\n{ENTRY_POINT}\n")
    for path in (PACK_DIR, site):
        monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(site), str(PACK_DIR), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("NO_COLOR", "1")
    return site


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    (root / "katas").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.attnkata]\n\n[tool.pytest.ini_options]\ntestpaths = ["katas"]\n')
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["--width", "250", *argv])
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def test_pyproject_declares_the_entry_point_and_package_data():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((PACK_DIR / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["attnkata"] == {"history": "attnkata_history"}
    data = meta["tool"]["setuptools"]["package-data"]["attnkata_history"]
    assert "katas/**/*.py" in data and "solutions/**/*.py" in data
    for kata in KATAS:   # the two trees mirror each other file for file
        assert (PACK_DIR / "attnkata_history" / "katas" / "history" / f"{kata}.py").is_file()
        assert (PACK_DIR / "attnkata_history" / "solutions" / "history" / f"{kata}.py").is_file()


def test_the_pack_registers_through_its_entry_point_with_its_own_levels(history):
    pm, registry = load_registry()
    assert "history" in registry.packs
    assert pm.get_plugin("history") is not None          # the entry point's name, like any pack
    mine = [k for k in registry.katas if k.pack == "history"]
    assert tuple(k.id for k in mine) == KATAS
    assert {k.level for k in mine} == set(LEVELS)
    for level, title in LEVELS.items():
        assert registry.levels[level] == title
    assert not [p for p in registry.problems if "history" in str(p)]
    core_levels = {k.level for k in registry.katas if k.pack == "core"}
    assert not core_levels & set(LEVELS)                 # no clash with the core ladder
    for kata in mine:
        assert len(kata.misconceptions) >= 3 and kata.predictions and kata.claims and kata.hints


def test_removing_the_pack_leaves_the_core_ladder_untouched(history, monkeypatch):
    _, with_pack = load_registry()
    real = manager.entry_points

    def without_history(**kwargs):
        return [ep for ep in real(**kwargs) if ep.value.split(":")[0] != "attnkata_history"]

    monkeypatch.setattr(manager, "entry_points", without_history)
    _, without = load_registry()
    assert "history" in with_pack.packs and "history" not in without.packs

    def others(registry):
        return [(k.id, k.level, k.title, k.path, k.pack) for k in registry.katas if k.pack != "history"]

    assert others(without) == others(with_pack)
    kept_levels = {n: t for n, t in with_pack.levels.items() if n not in LEVELS}
    assert without.levels == kept_levels
    assert [str(p) for p in without.problems] == [str(p) for p in with_pack.problems]


def test_list_readiness_doctor_and_init(history, course, capsys):
    code, out, err = run(capsys, "--root", str(course), "list")
    for kata in KATAS:
        assert kata in out
    assert "attnkata init history" in out + err
    _, out, _ = run(capsys, "--root", str(course), "doctor")
    for level, title in LEVELS.items():
        assert f"level {level} {title}" in out
    _, out, _ = run(capsys, "--root", str(course), "readiness")
    for kata in KATAS:
        assert kata[:11] in out                           # long ids are shortened in its table
    _, out, _ = run(capsys, "--root", str(course), "init", "--list")
    assert "history" in out and "0/9" in out
    code, out, err = run(capsys, "--root", str(course), "init", "history")
    assert code == 0, out + err
    stubs = PACK_DIR / "attnkata_history" / "katas"
    for kata in KATAS:
        rel = Path("history") / f"{kata}.py"
        assert (course / "katas" / rel).read_bytes() == (stubs / rel).read_bytes()
    mine = course / "katas" / "history" / "moe_routing.py"
    mine.write_text(mine.read_text() + "\n# my notes\n")
    code, out, err = run(capsys, "--root", str(course), "init", "history")
    assert code == 0 and "kept yours" in out + err
    assert mine.read_text().endswith("# my notes\n")


def test_selfcheck_passes_on_its_own(history, tmp_path, capsys):
    report = tmp_path / "selfcheck.json"
    _, out, err = run(capsys, "selfcheck", "--examples", "5", "--json", str(report), *KATAS)
    verdicts = json.loads(report.read_text())
    assert {v["kata"] for v in verdicts} == set(KATAS)
    failed = [v for v in verdicts if not v["ok"]]
    assert not failed, failed
    for kata in KATAS:
        subjects = {v["subject"]: v for v in verdicts if v["kata"] == kata}
        assert subjects["reference"]["detail"] == "passes every check"
        assert subjects["stub"]["detail"] == "not started"
        named = [s for s in subjects if s.startswith("misconception:")]
        assert len(named) >= 3
        for s in named:
            assert "named" in subjects[s]["detail"], subjects[s]
        assert sum(s.startswith("fake:") for s in subjects) >= 4
    assert "history" not in err


def test_ladder_runs_its_references_and_stubs(project, history):
    select = " or ".join(KATAS)
    result, ladder = project.ladder("-k", select, "--attnkata-target=solutions", "--attnkata-ladder")
    assert result.ret == 0, result.stdout.str()
    assert {k: s for k, s in statuses(ladder).items() if k in KATAS} == {k: "ready" for k in KATAS}
    result.stdout.fnmatch_lines(["*katas from core*history (9)*", "*20 Before the*", "*23 Routing*"])
    _, ladder = project.ladder("-k", select)
    assert {statuses(ladder)[k] for k in KATAS} == {"not started"}


def _fresh_venv(root: Path) -> Path:
    """A venv that sees this environment's packages (attnkata, numpy, pip, setuptools) after
    its own site-packages, so what is installed into it wins."""
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    lines = [f"import site; site.addsitedir({p!r})" for p in sorted(outer)]
    (Path(purelib) / "zz_outer_env.pth").write_text("\n".join(lines) + "\n")
    return python


def test_a_plain_non_editable_install_ships_stubs_and_references(tmp_path):
    """pip install (not -e) from a copy of the pack's folder into a fresh venv, then run its
    hidden tests against its references there: they pass only if package data shipped."""
    source = tmp_path / "attnkata-history"
    shutil.copytree(PACK_DIR, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    python = _fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["NO_COLOR"] = "1"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", str(source)]
    # Offline when the setuptools here can build a wheel by itself (70.1+); otherwise pip
    # fetches a build backend (a fresh CI venv on Python 3.11 carries setuptools 65).
    probe = subprocess.run([str(python), "-c", "import setuptools, sys; sys.exit(tuple(int(x) for x "
                            "in setuptools.__version__.split('.')[:2]) < (70, 1))"], env=env, capture_output=True)
    if probe.returncode == 0:
        pip.insert(5, "--no-build-isolation")
    done = subprocess.run(pip, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    where = subprocess.run([str(python), "-c", "import attnkata_history; print(attnkata_history.HERE)"],
                           env=env, capture_output=True, text=True, cwd=tmp_path, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to((tmp_path / "venv").resolve()), where
    shutil.rmtree(source)                       # nothing may come from the source folder now

    course = tmp_path / "course"
    (course / "katas").mkdir(parents=True)
    (course / "pyproject.toml").write_text('[tool.attnkata]\n\n[tool.pytest.ini_options]\ntestpaths = ["katas"]\n')
    init = subprocess.run([str(python), "-m", "attnkata", "--width", "120", "init", "history"],
                          env=env, capture_output=True, text=True, cwd=course)
    assert init.returncode == 0, init.stdout + init.stderr
    assert sorted(p.stem for p in (course / "katas" / "history").glob("*.py")) == sorted(KATAS)
    out = tmp_path / "ladder.json"
    result = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             "-k", " or ".join(KATAS), "--attnkata-target=solutions",
                             f"--attnkata-json={out}"], env=env, capture_output=True, text=True, cwd=course)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ladder = json.loads(out.read_text())
    assert {k: s for k, s in statuses(ladder).items() if k in KATAS} == {k: "ready" for k in KATAS}
