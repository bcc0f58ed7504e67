"""attnkata ask: a grounded prompt per object kind, from a real failing run, within budget."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from attnkata import ask, cli
from attnkata.manager import load_registry

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "katas" / "level1" / "attention.py"
FORGOT_SCALE = '''    s = q @ np.swapaxes(k, -1, -2)          # no 1/sqrt(d): on purpose
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    t = e.sum(axis=-1, keepdims=True)
    return ((e / np.where(t == 0, 1, t)) @ v).astype(q.dtype)
'''


def learner_file(first_answer: str) -> str:
    """The real stub, predictions filled, its body the forgot-the-scale misconception."""
    text = STUB.read_text()
    text = text.replace('"identical_keys_output": ...', f'"identical_keys_output": {first_answer}')
    text = text.replace('"first_causal_output": ...', '"first_causal_output": "v[0]"')
    start = text.index('    raise NotImplementedError("kata attention')
    return text[:start] + FORGOT_SCALE


def pytest_run(root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ATTNKATA_STATE_DIR"}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                    "-p", "no:xdist", "-k", "attention and not multi_head and not tiled and not gqa "
                    "and not mla and not flash and not paged and not ring"],
                   cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A learner tree whose `attention` fails as "forgot the 1/√d scaling", one prediction revised."""
    root = tmp_path_factory.mktemp("course")
    (root / "pyproject.toml").write_text('[tool.attnkata]\n\n[tool.pytest.ini_options]\n'
                                         'testpaths = ["katas"]\n')
    kata = root / "katas" / "level1" / "attention.py"
    kata.parent.mkdir(parents=True)
    kata.write_text(learner_file("(1.0, 2.0)"))   # wrong first answer
    pytest_run(root)
    kata.write_text(learner_file("(3.0, 4.0)"))   # revised
    pytest_run(root)
    assert (root / ".attnkata" / "results.json").exists()
    return root


def ask_out(capsys, root: Path, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--root", str(root), "ask", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("obj, kind", [("attention", "kata"), ("attention-causal", "claim"),
                                       ("forgot_scale", "misconception"),
                                       ("identical_keys_output", "prediction")])
def test_ask_each_kind_is_grounded_in_the_failing_run(capsys, course, obj, kind):
    code, out, _ = ask_out(capsys, course, obj)
    assert code == 0
    assert f"{kind} `{obj}`" in out or (kind == "kata" and "kata `attention`" in out)
    assert "status: failing" in out
    row = ask.State.load(course).row("attention")
    assert row["detail"] and "values differ" in row["detail"]
    flat = " ".join(out.split())
    assert f"- last failure message: {row['detail']}" in flat   # the last failure message
    assert "- named misconception: \"forgot the 1/√d scaling\" [forgot_scale]" in flat
    assert "forgot the 1/√d scaling" in out                # the named misconception
    assert "[exact]" in out and "not claimed:" in out      # claim scopes and boundaries
    assert "vaswani-2017" in out                           # the sources
    assert "revised 1 time(s), first answer [1.0, 2.0]" in " ".join(out.split())
    assert "exactly one next action" in out and "katas/level1/attention.py" in out
    assert "goal: debug" in out                            # failing: debug by default
    assert len(out.rstrip("\n")) <= ask.BUDGET
    assert max(map(len, out.splitlines())) <= ask.WIDTH


def test_teaching_text_is_the_stub_s_own(capsys, course):
    _, out, _ = ask_out(capsys, course, "attention", "--goal", "understand", "--style", "code")
    flat = " ".join(out.split())
    assert "Attention does the same thing softly: it scores the query against EVERY key" in flat
    assert "S = Q Kᵀ / √d" in out and "- d : the query/key width" in " ".join(out.replace("  ", " ").split())
    assert "def attention(q: np.ndarray" in out            # --style code: the entry point
    assert "goal: understand; style: code" in out
    assert "(3.0, 4.0)" not in flat.split("## My current state")[0]


def test_no_object_asks_about_the_reports_next_kata(capsys, course):
    from attnkata.ask import State

    want = State.load(course).next_kata()
    code, out, _ = ask_out(capsys, course)
    assert code == 0 and want and f"kata `{want}`" in out


def test_ambiguous_or_unknown_objects_are_refused(capsys, tmp_path):
    code, _, err = ask_out(capsys, tmp_path, "forgot_scale")   # no run: 7 katas share the id
    assert code == 2 and "attention:forgot_scale" in err and "KATA:ID" not in err.split("pick one")[0]
    code, out, _ = ask_out(capsys, tmp_path, "attention:forgot_scale")
    assert code == 0 and "no saved results yet" in out
    code, _, err = ask_out(capsys, tmp_path, "no_such_thing")
    assert code == 2 and "nothing called" in err


@pytest.mark.parametrize("style", ask.STYLES)
def test_every_kata_fits_the_budget_and_the_width(tmp_path, style):
    _, registry = load_registry()
    state = ask.State(None, {}, {}, [])
    for kata in registry.katas:
        obj = ask.Obj("kata", kata.id, kata, kata)
        text = ask.build_prompt(registry, obj, state, tmp_path, style=style)
        assert len(text) <= ask.BUDGET, kata.id
        assert max(map(len, text.splitlines())) <= ask.WIDTH, kata.id
        assert "## Intuition (from the stub)" in text, kata.id


def test_a_small_budget_cuts_and_says_where_the_rest_is(tmp_path):
    _, registry = load_registry()
    kata = registry.get("attention")
    text = ask.build_prompt(registry, ask.Obj("kata", kata.id, kata, kata), ask.State(None, {}, {}, []),
                            tmp_path, budget=3000)
    assert len(text) <= 3000 and "cut to fit; the rest is in katas/level1/attention.py" in text
    assert "check with `pytest -k attention`" in " ".join(text.split())
    assert "## Instructions for you" in text               # the instruction is never cut


def test_ask_makes_no_network_calls(capsys, course, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("attnkata ask opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    code, out, _ = ask_out(capsys, course, "attention")
    assert code == 0 and "## My question" in out


def test_copy_uses_a_clipboard_tool_or_says_there_is_none(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert ask.copy("hello").startswith("not copied: no clipboard tool")
    tools = tmp_path / "tools"
    tools.mkdir()
    sink = tmp_path / "clipboard.txt"
    fake = tools / "xclip"
    fake.write_text(f"#!/bin/sh\ncat > {sink}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}/bin{os.pathsep}/usr/bin")
    assert ask.copy("hello clipboard") == "copied to the clipboard (xclip)"
    assert sink.read_text() == "hello clipboard"
