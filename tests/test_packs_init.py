"""Third-party packs in a course: `attnkata init` copies their stubs; level clashes, class
katas, missing references and packs that fail to import are each said in words."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from attnkata import cli
from attnkata.manager import load_registry

PACK = textwrap.dedent('''
    from pathlib import Path

    import numpy as np

    import attnkata
    from attnkata import Kata, Pack, check

    HERE = Path(__file__).resolve().parent


    @check("doubles a small array")
    def doubles(ctx):
        ctx.expect("double", np.arange(1.0, 7.0).reshape(2, 3))


    @check("counts three bumps")
    def counts(ctx):
        ctx.expect_scenario(lambda ns: ns.Counter().bump(3), "Counter().bump(3)")


    DOUBLE = Kata(id="{name}_double", level={level}, title="twice x", path="{name}/double.py",
                  entries=("double",), checks=(doubles,))
    COUNTER = Kata(id="{name}_counter", level={level}, title="a counter", path="{name}/counter.py",
                   entries=("Counter",), checks=(counts,))


    @attnkata.hookimpl
    def attnkata_packs():
        return Pack("{name}", katas=(DOUBLE, COUNTER), katas_dir=HERE / "katas",
                    solutions_dir=HERE / "solutions", levels={{{level}: "{name}'s level"}})
''')

STUBS = {
    "double.py": 'def double(x):\n    raise NotImplementedError("kata double: return 2 * x")\n',
    "counter.py": ('class Counter:\n    def bump(self, n):\n'
                   '        raise NotImplementedError("kata counter: count n bumps")\n'),
}
REFERENCES = {
    "double.py": "def double(x):\n    return 2 * x\n",
    "counter.py": ("class Counter:\n    def __init__(self):\n        self.n = 0\n\n"
                   "    def bump(self, n):\n        for _ in range(n):\n            self.n += 1\n"
                   "        return self.n\n"),
}


def make_pack(site: Path, name: str, level: int = 42, *, references: bool = True,
              source: str | None = None) -> None:
    """Install pack ``name`` into ``site`` as a distribution with an ``attnkata`` entry point."""
    package = site / f"pk_{name}"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source or PACK.format(name=name, level=level))
    trees = [("katas", STUBS)] + ([("solutions", REFERENCES)] if references else [])
    for tree, files in trees:
        for filename, text in files.items():
            (package / tree / name).mkdir(parents=True, exist_ok=True)
            (package / tree / name / filename).write_text(text)
    info = site / f"pk_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pk-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[attnkata]\n{name} = pk_{name}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path (here and in pytest subprocesses) to install fake packs into."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.setenv("NO_COLOR", "1")
    yield folder
    for name in [m for m in sys.modules if m.startswith("pk_")]:  # the next test's packs differ
        del sys.modules[name]


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.attnkata]\n\n[tool.pytest.ini_options]\ntestpaths = ["katas"]\n')
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["--width", "250", *argv])
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


# -- attnkata init ------------------------------------------------------------------

def test_list_points_to_init_and_init_copies_the_stubs(site, course, capsys):
    make_pack(site, "alpha")
    code, out, _ = run(capsys, "--root", str(course), "list")
    assert code == 0
    assert "katas/alpha/double.py (not copied yet: attnkata init alpha)" in out
    assert "`attnkata init alpha` copies them there" in out

    code, out, _ = run(capsys, "--root", str(course), "init", "alpha")
    assert code == 0, out
    assert "copied: katas/alpha/double.py" in out and "copied: katas/alpha/counter.py" in out
    assert (course / "katas/alpha/double.py").read_text() == STUBS["double.py"]

    code, out, _ = run(capsys, "--root", str(course), "list")
    assert code == 0 and "not copied yet" not in out.split("alpha_double")[1].split("\n")[0]


def test_init_never_overwrites_your_file_unless_forced(site, course, capsys):
    make_pack(site, "alpha")
    mine = course / "katas/alpha/double.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("def double(x):\n    return x + x  # my work\n")

    code, out, _ = run(capsys, "--root", str(course), "init", "alpha")
    assert code == 0
    assert "kept yours (differs from the pack's; --force overwrites it): katas/alpha/double.py" in out
    assert "copied: katas/alpha/counter.py" in out
    assert "my work" in mine.read_text()

    code, out, _ = run(capsys, "--root", str(course), "init", "alpha", "--force")
    assert code == 0
    assert "overwrote (your version is gone): katas/alpha/double.py" in out
    assert "counter.py" not in out.split("pack 'alpha'")[0]  # identical files are not named
    assert mine.read_text() == STUBS["double.py"]


def test_init_list_and_unknown_pack(site, course, capsys):
    make_pack(site, "alpha")
    code, out, _ = run(capsys, "--root", str(course), "init", "--list")
    assert code == 0
    row = next(line for line in out.splitlines() if "│ alpha" in line)
    assert "0/2" in row and "42" in row
    code, _, err = run(capsys, "--root", str(course), "init", "no_such_pack")
    assert code == 2 and "no pack named 'no_such_pack'" in err and "alpha" in err


def test_pytest_finds_the_copied_stubs(site, course, capsys, pytester, monkeypatch):
    make_pack(site, "alpha")
    monkeypatch.chdir(course)
    before = pytester.run("pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "katas/alpha/double.py")
    assert before.ret != 0 and "not found" in before.stdout.str() + before.stderr.str()

    assert cli.main(["--root", str(course), "init", "alpha"]) == 0
    after = pytester.run("pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "katas/alpha/double.py")
    text = after.stdout.str()
    assert after.ret == 0, text
    assert "alpha_double" in text and "not started" in text


# -- level clashes --------------------------------------------------------------------

def test_a_second_pack_on_a_taken_level_moves_and_is_named(site):
    make_pack(site, "alpha", level=42)
    make_pack(site, "beta", level=42)
    _, registry = load_registry()
    alpha, beta = registry.get("alpha_double"), registry.get("beta_double")
    assert alpha.level == 42 and beta.level > 42
    assert registry.get("beta_counter").level == beta.level
    assert registry.levels[42] == "alpha's level" and registry.levels[beta.level] == "beta's level"
    [problem] = [str(p) for p in registry.problems if "level" in str(p)]
    assert problem.startswith("plugin 'beta': pack 'beta' claims level 42, which pack 'alpha' already holds")
    assert f"its level 42 is shown as level {beta.level} instead (its katas there: beta_double, beta_counter)" in problem


# -- selfcheck --------------------------------------------------------------------------

def test_selfcheck_says_class_katas_get_no_generic_fakes(site, capsys):
    make_pack(site, "alpha")
    code, out, _ = run(capsys, "selfcheck", "alpha_counter", "alpha_double")
    assert code == 0, out
    counter = out.split("alpha_counter")[1].split("\n")[0]
    assert "0/0" in counter and "no generic fakes apply to class katas: add Kata(fakes=...)" in counter
    double = out.split("alpha_double")[1].split("\n")[0]
    assert "5/5" in double and "no generic fakes" not in double


def test_selfcheck_names_a_pack_whose_references_are_missing(site, capsys):
    make_pack(site, "alpha", references=False)
    code, out, err = run(capsys, "selfcheck", "alpha_double")
    assert code == 1
    assert "TargetLoadError" not in out + err and "Traceback" not in out + err
    assert "pack 'alpha' (plugin 'alpha') lacks files its katas need: reference" in err
    assert str(Path("solutions/alpha/double.py")) in err and "package data" in err


# -- a pack that fails to import ---------------------------------------------------------

BROKEN = "raise ImportError('this pack forgot a dependency')\n"


@pytest.mark.parametrize("argv", [["readiness"], ["list"], ["selfcheck", "alpha_double"]])
def test_a_pack_that_fails_to_import_fails_the_command(site, course, capsys, argv):
    if argv[0] == "selfcheck":
        make_pack(site, "alpha")  # one quick kata to check (readiness: only complete katas)
    make_pack(site, "broken", source=BROKEN)
    code, out, err = run(capsys, "--root", str(course), *argv)
    assert code == 1, out
    assert "plugin problem(s)" in err
    assert "plugin 'broken': failed to import: ImportError: this pack forgot a dependency" in err
    if argv == ["readiness"]:
        assert "NOT the whole course" in out
