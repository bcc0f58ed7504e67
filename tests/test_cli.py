"""The attnkata command: doctor, hint, list, readiness, selfcheck."""

from __future__ import annotations

import json

import pytest

from attnkata import cli
from attnkata.doctor import package_rows


def run(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_list_shows_ladder_order(capsys):
    code, out = run(capsys, "--width", "200", "list")
    assert code == 0
    assert out.index("qk_scores") < out.index("softmax")


def test_hints_are_progressive(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(tmp_path))
    _, first = run(capsys, "hint", "softmax")
    _, second = run(capsys, "hint", "softmax")
    assert "Hint 1/3" in first and "Hint 2/" not in first
    assert "Hint 2/3" in second
    code, _ = run(capsys, "hint", "no_such_kata")
    assert code == 2


def test_hint_and_skip_wrap_at_80_columns(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(tmp_path))
    _, hints = run(capsys, "--width", "80", "hint", "scaled_scores", "--all")
    _, skipped = run(capsys, "--width", "80", "skip", "scaled_scores")
    assert "Hint 3/3" in hints and "attnkata skip --undo scaled_scores" in skipped
    assert max(len(line) for line in (hints + skipped).splitlines()) <= 80


def test_doctor_names_versions_and_levels(capsys):
    code, out = run(capsys, "--width", "200", "doctor")
    assert "numpy" in out and "Triton smoke kernel" in out and "level 0 Scores" in out
    assert code in (0, 1)


def test_doctor_says_what_to_install_for_drift(monkeypatch):
    monkeypatch.setattr("attnkata.doctor.version", lambda dist: "99.0" if dist == "triton" else "1.0")
    rows = {r["name"]: r for r in package_rows()}
    assert not rows["triton"]["ok"]
    assert "pip install 'triton>=3.1,<3.10'" in rows["triton"]["fix"]


def test_selfcheck_one_kata(capsys, tmp_path):
    out_json = tmp_path / "v.json"
    code, out = run(capsys, "--width", "200", "selfcheck", "softmax", "--json", str(out_json))
    assert code == 0, out
    verdicts = json.loads(out_json.read_text())
    subjects = {v["subject"] for v in verdicts}
    assert {"reference", "stub", "fake:zeros", "fake:mutate", "misconception:no_max_subtraction"} <= subjects


def test_readiness_lists_parts(capsys):
    code, out = run(capsys, "--width", "200", "readiness")
    assert "misconceptions" in out and "qk_scores" in out


def test_report_without_saved_results(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNKATA_STATE_DIR", str(tmp_path))
    code, out = run(capsys, "report")
    assert code == 1 and "run `pytest` first" in out


@pytest.mark.parametrize("argv", [["--help"], ["selfcheck", "--help"]])
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0


def test_class_view_reads_ladder_exports(capsys, tmp_path):
    def ladder(statuses, misconception=""):
        katas = [{"id": f"k{i}", "level": i, "status": s, "misconception": misconception if s == "failing" else ""}
                 for i, s in enumerate(statuses)]
        ready = [k["level"] for k in katas if k["status"] == "ready"]
        return {"schema": "attnkata.ladder/1", "levels": {"0": "a", "1": "b", "2": "c"}, "katas": katas,
                "levels_ready": ready, "next": next((k["id"] for k in katas if k["status"] != "ready"), None)}

    (tmp_path / "alice.json").write_text(json.dumps(ladder(["ready", "ready", "failing"], "forgot the 1/√d scaling")))
    (tmp_path / "bob.json").write_text(json.dumps(ladder(["ready", "not started", "ready"])))
    (tmp_path / "junk.json").write_text("{}")
    code, out = run(capsys, "--width", "200", "class", *(str(p) for p in sorted(tmp_path.glob("*.json"))))
    assert code == 1  # junk.json could not be read: the tables print, and the exit says so
    alice = next(line for line in out.splitlines() if "alice" in line)
    bob = next(line for line in out.splitlines() if "bob" in line)
    assert "│ 1 " in alice and "2/3" in alice and "forgot the 1/√d scaling" in alice
    assert "│ 0 " in bob
    assert "Misconceptions the class hits most" in out
