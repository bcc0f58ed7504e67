"""attnkata note: one Markdown note per kind with its evidence; issue forms; readiness counts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from attnkata import cli, notes
from attnkata.ladder import build_ladder
from attnkata.manager import load_registry
from attnkata.runner import FAILED, PASSED
from attnkata.state import ledger, results

REPO = Path(__file__).resolve().parents[1]
FORMS = REPO / ".github" / "ISSUE_TEMPLATE"
MESSAGE = "attention(...): values differ in 3 of 3 entries"


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    """A course whose saved run has `attention` failing as "forgot the 1/√d scaling"."""
    monkeypatch.delenv("ATTNKATA_STATE_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.attnkata]\n")
    learner = tmp_path / "katas" / "level1" / "attention.py"
    learner.parent.mkdir(parents=True)
    learner.write_text((REPO / "katas" / "level1" / "attention.py").read_text() + "\n# mine\n")
    _, registry = load_registry()
    kata = registry.get("attention")
    outcomes = {c.id: {"outcome": PASSED, "message": ""} for c in kata.checks}
    outcomes[kata.checks[0].id] = {"outcome": FAILED, "message": MESSAGE,
                                   "misconception": "forgot the 1/√d scaling"}
    outcomes["predictions"] = {"outcome": PASSED, "message": ""}
    ladder = build_ladder(registry, "katas", {"attention": outcomes}, katas_dir=tmp_path / "katas")
    results(tmp_path).update(lambda d: d.update(runs={"katas": ladder.to_json()}, last="katas"))
    ledger(tmp_path).update(lambda d: None)
    return tmp_path


def note(capsys, root: Path, obj: str, kind: str, *more: str) -> tuple[int, str]:
    code = cli.main(["--root", str(root), "note", obj, "--kind", kind, *more])
    return code, capsys.readouterr().out


def test_a_note_per_kind_with_object_environment_evidence_and_resolution(capsys, course):
    learner = course / "katas" / "level1" / "attention.py"
    digest = hashlib.sha256(learner.read_bytes()).hexdigest()
    for kind, (title, _, resolution) in notes.KINDS.items():
        code, out = note(capsys, course, "forgot_scale", kind, "--text", f"noticed for {kind}")
        assert code == 0, out
        assert f"ISSUE_TEMPLATE/{kind}.yml" in out
    written = sorted((course / ".attnkata" / "notes").glob("*.md"))
    assert len(written) == len(notes.KINDS)
    assert not list((course / ".attnkata" / "notes").glob("*.tmp"))     # atomic: no leftovers
    for path in written:
        text = path.read_text()
        meta = notes.front_matter(text)
        kind = meta["kind"]
        assert meta["object"] == "attention:forgot_scale" and meta["object_kind"] == "misconception"
        assert meta["kata"] == "attention" and meta["status"] == "open"
        flat = " ".join(text.split())
        assert f"noticed for {kind}" in flat
        assert "## Environment" in text and "- numpy: " in text and "- python: " in text
        assert f"sha256: {digest}" in flat
        assert "failing" in flat and MESSAGE in flat and "forgot the 1/√d scaling" in flat
        assert " ".join(notes.KINDS[kind][2].split()) in flat             # expected resolution
        assert max(map(len, text.splitlines())) <= 80


def test_note_refuses_unknown_objects_and_kinds(capsys, course):
    assert note(capsys, course, "no_such_thing", "proposed-task")[0] == 2
    with pytest.raises(SystemExit):
        note(capsys, course, "attention", "not-a-kind")
    assert not (course / ".attnkata" / "notes").exists()


def test_readiness_counts_open_notes_per_kata(capsys, course):
    note(capsys, course, "attention", "confusing-jump")
    note(capsys, course, "attention-causal", "source-scope")
    note(capsys, course, "softmax", "missing-prerequisite")
    per_kata, per_kind, problems = notes.open_notes(course)
    assert per_kata == {"attention": 2, "softmax": 1} and not problems
    assert per_kind[("attention", "source-scope")] == 1
    closed = next((course / ".attnkata" / "notes").glob("*softmax*.md"))
    closed.write_text(closed.read_text().replace("status: open", "status: closed"))
    (course / ".attnkata" / "notes" / "stray.md").write_text("no front matter\n")
    per_kata, _, problems = notes.open_notes(course)
    assert per_kata == {"attention": 2} and any("stray.md" in p for p in problems)
    cli.main(["--root", str(course), "--width", "200", "readiness"])
    out = capsys.readouterr().out
    assert "Open notes per kata" in out and "confusing-jump 1, source-scope 1" in out


def _forms() -> dict[str, dict]:
    try:
        import yaml
    except ImportError:  # PyYAML is not a dependency: check the structure by hand
        yaml = None
    out = {}
    for kind in notes.KINDS:
        text = (FORMS / f"{kind}.yml").read_text()
        assert text == notes.issue_form(kind), f"{kind}.yml is stale: regenerate with notes.issue_form"
        if yaml is not None:
            out[kind] = yaml.safe_load(text)
        else:
            assert text.startswith("name: ") and "\nbody:\n" in text and "id: object" in text
    return out


def test_issue_forms_one_per_kind_with_a_required_object_id():
    assert sorted(p.stem for p in FORMS.glob("*.yml")) == sorted(notes.KINDS)
    for kind, form in _forms().items():
        assert {"name", "description", "body"} <= set(form), kind
        assert form["name"] == notes.KINDS[kind][0] and kind in form["labels"]
        body = form["body"]
        assert all(item["type"] in ("markdown", "input", "textarea", "dropdown", "checkboxes")
                   for item in body)
        ids = [item["id"] for item in body if "id" in item]
        assert len(ids) == len(set(ids)), kind
        assert all(item["attributes"].get("label") for item in body if item["type"] != "markdown")
        assert all(item["attributes"].get("value") for item in body if item["type"] == "markdown")
        obj = next(item for item in body if item.get("id") == "object")
        assert obj["type"] == "input" and obj["validations"]["required"] is True
        assert next(i for i in body if i.get("id") == "expected")["attributes"]["value"] == notes.KINDS[kind][2]
