"""A plugin that raises in any hook is named and skipped: the rest of attnkata goes on."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest

from attnkata import cli, hookimpl, manager
from attnkata.ladder import build_ladder
from attnkata.state import RESULTS_SCHEMA, results

PLUGIN = "broken_pack"


def boom(*args, **kwargs):
    raise RuntimeError("this plugin is broken on purpose")


def register(monkeypatch, **hooks) -> None:
    """Add a built-in plugin ``broken_pack`` implementing ``hooks`` (name -> function)."""
    module = types.ModuleType(PLUGIN)
    for name, func in hooks.items():
        setattr(module, name, hookimpl(func))
    monkeypatch.setitem(sys.modules, PLUGIN, module)
    monkeypatch.setattr(manager, "BUILTIN_PLUGINS", manager.BUILTIN_PLUGINS + (PLUGIN,))


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course whose last run is saved (every kata not run), so ``attnkata report`` has work."""
    monkeypatch.delenv("ATTNKATA_STATE_DIR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "pyproject.toml").write_text("[tool.attnkata]\n")
    _, registry = manager.load_registry()
    ladder = build_ladder(registry, "katas", {})
    results(tmp_path).update(lambda d: d.update(runs={"katas": ladder.to_json()}, last="katas"))
    return tmp_path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def named(text: str, hook: str) -> bool:
    flat = " ".join(text.split())
    return f"plugin '{PLUGIN}': {hook} failed (RuntimeError: this plugin is broken on purpose)" in flat


# -- the report's hooks -------------------------------------------------------------

@pytest.mark.parametrize("hook", ["attnkata_report_sections", "attnkata_ladder_claims",
                                  "attnkata_report_json"])
def test_report_goes_on_when_a_report_hook_raises(course, capsys, hook):
    register(monkeypatch := pytest.MonkeyPatch(), **{hook: boom})
    try:
        out_json = course / "r.json"
        code, out, _ = run(capsys, "--root", str(course), "--width", "200", "report",
                           "--json", str(out_json))
    finally:
        monkeypatch.undo()
    assert code == 0
    assert "attnkata ladder" in out and "Next: qk_scores" in out
    assert named(out, hook)
    data = json.loads(out_json.read_text())
    assert any(named(p, hook) for p in data["problems"])


def test_a_json_hook_that_raises_halfway_leaves_no_trace(course, capsys, monkeypatch):
    def half(data):
        data["broken_pack"] = "half written"
        data["katas"] = "clobbered"
        raise RuntimeError("this plugin is broken on purpose")

    register(monkeypatch, attnkata_report_json=half)
    out_json = course / "r.json"
    assert run(capsys, "--root", str(course), "report", "--json", str(out_json))[0] == 0
    data = json.loads(out_json.read_text())
    assert "broken_pack" not in data and isinstance(data["katas"], list)
    assert "bench" in data or "counts" in data  # the other plugins' and the ladder's keys stay


@pytest.mark.parametrize("answer", [42, [object()], [None]])
def test_nonsense_answers_are_named_too(course, capsys, monkeypatch, answer):
    register(monkeypatch, attnkata_report_sections=lambda: answer,
             attnkata_ladder_claims=lambda: answer)
    code, out, _ = run(capsys, "--root", str(course), "--width", "200", "report")
    assert code == 0 and "attnkata ladder" in out
    assert "attnkata_report_sections failed" in out and "attnkata_ladder_claims failed" in out


# -- registration, commands, doctor -------------------------------------------------

def test_packs_hook_that_raises_leaves_the_other_packs(capsys, monkeypatch):
    register(monkeypatch, attnkata_packs=boom)
    code, out, _ = run(capsys, "--width", "200", "list")
    assert code == 0 and "qk_scores" in out
    _, registry = manager.load_registry()
    assert any(p.plugin == PLUGIN and "attnkata_packs failed" in p.message for p in registry.problems)


def test_packs_hook_that_exits_is_caught(monkeypatch):
    register(monkeypatch, attnkata_packs=lambda: sys.exit(3))
    _, registry = manager.load_registry()
    assert any(p.plugin == PLUGIN for p in registry.problems) and registry.katas


def test_cli_commands_hook_that_raises_leaves_the_other_commands(capsys, monkeypatch):
    register(monkeypatch, attnkata_cli_commands=boom)
    code, out, err = run(capsys, "--width", "200", "list")
    assert code == 0 and "qk_scores" in out
    assert named(err, "attnkata_cli_commands")
    code, out, _ = run(capsys, "--width", "200", "readiness")  # a plugin command still there
    assert code == 0 and "misconceptions" in out


def test_cli_command_added_then_raised_is_reported_broken(capsys, monkeypatch):
    def half(subparsers):
        subparsers.add_parser("halfway")
        raise RuntimeError("this plugin is broken on purpose")

    register(monkeypatch, attnkata_cli_commands=half)
    code, _, err = run(capsys, "halfway")
    assert code == 1 and "the 'halfway' command is broken" in " ".join(err.split())


def test_plugin_command_that_raises_is_named(capsys, monkeypatch):
    def add(subparsers):
        subparsers.add_parser("explode").set_defaults(func=boom)

    register(monkeypatch, attnkata_cli_commands=add)
    code, _, err = run(capsys, "explode")
    assert code == 1
    assert f"the 'explode' command of plugin '{PLUGIN}' failed: RuntimeError" in " ".join(err.split())


@pytest.mark.parametrize("hook, answer", [
    ("attnkata_doctor_checks", boom),
    ("attnkata_doctor_checks", lambda: [{"no": "name"}]),
    ("attnkata_doctor_checks", lambda: 7),
    ("attnkata_packs", boom),
    ("attnkata_cli_commands", boom),
])
def test_doctor_works_whatever_a_plugin_does(capsys, monkeypatch, hook, answer):
    register(monkeypatch, **{hook: answer})
    code, out, _ = run(capsys, "--width", "80", "doctor")
    assert code == 1  # the plugin row needs attention
    assert "Plugins" in out and PLUGIN in out and "fix or uninstall" in out
    assert "Packages (tested ranges)" in out and "level 0 Scores" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_doctor_rows_of_odd_types_are_shown_as_text(capsys, monkeypatch):
    register(monkeypatch, attnkata_doctor_checks=lambda: [{"name": "odd row", "ok": True,
                                                           "found": 3.5, "fix": None}])
    code, out, _ = run(capsys, "--width", "80", "doctor")
    assert "odd row" in out and "3.5" in out


def test_pytest_run_reports_a_raising_plugin_and_prints_the_ladder(project, monkeypatch):
    """The same through pytest: the plugin is loaded in the run's process."""
    project.write("../extra_plugins/broken_pack.py",
                  "from attnkata import hookimpl\n"
                  "@hookimpl\n"
                  "def attnkata_report_sections():\n"
                  "    raise RuntimeError('this plugin is broken on purpose')\n")
    project.pytester.makeconftest(
        "import attnkata.manager as m\n"
        "m.BUILTIN_PLUGINS = m.BUILTIN_PLUGINS + ('broken_pack',)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(project.root / "extra_plugins"), os.environ.get("PYTHONPATH", "")]))
    project.copy_level("level0")
    result, ladder = project.ladder("-k", "level0", "--attnkata-ladder")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*attnkata ladder*", "*softmax*ready*"])
    assert any(named(p, "attnkata_report_sections") for p in ladder["problems"])
