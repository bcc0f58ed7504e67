"""Third-party packs: the example pack shows in the ladder; broken packs are named, never fatal."""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap

import pytest

from attnkata.manager import build_registry, get_plugin_manager, load_registry
from conftest import statuses

BROKEN = {
    "broken_import": "raise ImportError('this pack forgot a dependency')\n",
    "dup_pack": textwrap.dedent('''
        from pathlib import Path
        import attnkata
        from attnkata_plugins.core.level0 import SOFTMAX

        @attnkata.hookimpl
        def attnkata_packs():
            return attnkata.Pack("dup", katas=(SOFTMAX,), katas_dir=Path("."), solutions_dir=Path("."))
    '''),
    "malformed_pack": textwrap.dedent('''
        from dataclasses import replace
        from pathlib import Path
        import attnkata
        from attnkata_plugins.core.level0 import SOFTMAX

        @attnkata.hookimpl
        def attnkata_packs():
            bad = replace(SOFTMAX, id="bad_level", level="one", hints=("",))
            return attnkata.Pack("malformed", katas=(bad,), katas_dir=Path("."), solutions_dir=Path("."))
    '''),
    "misspelt_hook": textwrap.dedent('''
        import attnkata

        @attnkata.hookimpl
        def attnkata_pack():
            return []
    '''),
}


def install_fake_dists(root, names):
    site = root / "site"
    for name in names:
        (site / f"{name}.py").parent.mkdir(parents=True, exist_ok=True)
        (site / f"{name}.py").write_text(BROKEN[name])
        info = site / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[attnkata]\n{name} = {name}\n")
    return site


def test_broken_packs_are_named_and_the_rest_runs(project, monkeypatch):
    site = install_fake_dists(project.root, BROKEN)
    monkeypatch.setenv("PYTHONPATH", str(site))
    result, ladder = project.ladder("-k", "level0", "--attnkata-target=solutions")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert "plugin 'broken_import': failed to import: ImportError: this pack forgot a dependency" in out
    assert "plugin 'dup_pack': duplicate kata id 'softmax'" in out
    assert "plugin 'malformed_pack': malformed kata metadata" in out and "level must be an int" in out
    assert "plugin 'misspelt_hook': rejected by the plugin manager" in out
    assert set(statuses(ladder, 0).values()) == {"ready"}
    assert len(ladder["problems"]) == 4


def test_example_pack_kata_shows_in_the_ladder(project):
    if importlib.util.find_spec("attnkata_example_pack") is None:
        message = "the example pack is not installed (pip install -e examples/attnkata-example-pack)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: its absence is a broken install step
        pytest.skip(message)
    result, ladder = project.ladder("-k", "logsumexp", "--attnkata-ladder")
    assert statuses(ladder)["logsumexp"] == "not started"
    result.stdout.fnmatch_lines(["*50 Extras*logsumexp*not started*"])
    result, ladder = project.ladder("-k", "logsumexp", "--attnkata-target=solutions")
    assert statuses(ladder)["logsumexp"] == "ready"


def test_core_pack_registers_through_the_same_hook():
    pm, registry = load_registry(entrypoints=False)
    impls = {i.plugin_name for i in pm.hook.attnkata_packs.get_hookimpls()}
    assert "attnkata_plugins.core" in impls
    assert registry.packs["core"].katas and not registry.problems
    levels = [k.level for k in registry.katas]
    assert levels == sorted(levels)


def test_registry_order_is_ladder_order():
    pm, problems = get_plugin_manager(entrypoints=False)
    registry = build_registry(pm, problems)
    assert [k.id for k in registry.katas][:3] == ["qk_scores", "scaled_scores", "softmax"]
    assert sys.modules["attnkata_plugins.core"]


def test_broken_triton_makes_triton_katas_unavailable_and_the_rest_runs(project, monkeypatch):
    fake = project.root / "broken-site" / "triton"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libtriton.so: cannot open shared object file')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    result, ladder = project.ladder("-k", "level0 or triton_softmax", "--attnkata-target=solutions")
    assert result.ret == 0, result.stdout.str()
    states = statuses(ladder)
    assert states["triton_softmax"] == "unavailable"
    assert {states[k] for k in ("qk_scores", "scaled_scores", "softmax")} == {"ready"}
    assert "libtriton.so" in next(k["detail"] for k in ladder["katas"] if k["id"] == "triton_softmax")
