"""The pytest plugin end to end: learner projects run in a subprocess, as a learner would."""

from __future__ import annotations

import json
import sys

from conftest import statuses

ANSWERED_SCALED = '''
import numpy as np
PREDICTIONS = {"scaled_variance": 1.0, "scale_factor_d64": 8.0}

def scaled_scores(q, k):
    return BODY
'''


def scaled(body: str) -> str:
    return ANSWERED_SCALED.replace("BODY", body)


def test_untouched_stubs_are_not_started(project):
    import shutil

    from conftest import REPO

    shutil.copytree(REPO / "katas" / "level0", project.root / "katas" / "level0")
    result, ladder = project.ladder("-k", "level0", "--attnkata-ladder")
    assert result.ret == 0
    assert set(statuses(ladder, 0).values()) == {"not started"}
    assert ladder["levels_ready"] == []
    result.stdout.fnmatch_lines(["*attnkata ladder*", "*qk_scores*not started*", "*Next: qk_scores*",
                                 "*pytest katas/level0/qk_scores.py*"])
    assert "Traceback" not in result.stdout.str()


def test_a_course_without_the_stubs_points_to_init(project):
    """katas/ is empty (attnkata installed as a package, not cloned): the ladder says how
    to get the stubs instead of asking the learner to open a file that is not there."""
    result, ladder = project.ladder("-k", "level0", "--attnkata-ladder")
    assert result.ret == 0
    assert set(statuses(ladder, 0).values()) == {"not started"}
    result.stdout.fnmatch_lines(["*qk_scores*attnkata init core*", "*attnkata init core*"])


def test_solutions_target_makes_level_ready(project):
    result, ladder = project.ladder("-k", "level0", "--attnkata-target=solutions",
                                    "--attnkata-ladder")
    assert result.ret == 0, result.stdout.str()
    assert set(statuses(ladder, 0).values()) == {"ready"}
    assert 0 in ladder["levels_ready"]
    result.stdout.fnmatch_lines(["*Claims your code now witnesses*"])


def test_misconception_is_named(project):
    project.write("level0/scaled_scores.py", scaled("q @ np.swapaxes(k, -1, -2)"))
    result, ladder = project.ladder("-k", "scaled_scores")
    assert result.ret == 1
    row = next(k for k in ladder["katas"] if k["id"] == "scaled_scores")
    assert row["status"] == "failing"
    assert row["misconception"] == "forgot the 1/√d scaling"
    result.stdout.fnmatch_lines(["*looks like the misconception \"forgot the 1/√d scaling\"*"])


def test_unfilled_predictions_lock_the_kata(project):
    text = scaled("q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]).astype(q.dtype)")
    project.write("level0/scaled_scores.py", text.replace('"scaled_variance": 1.0', '"scaled_variance": ...'))
    result, ladder = project.ladder("-k", "scaled_scores")
    assert statuses(ladder)["scaled_scores"] == "locked"
    assert result.ret == 0
    assert "forgot" not in result.stdout.str()  # hidden verdicts stay hidden until predictions


def test_wrong_prediction_then_revised_shows_in_ledger(project):
    body = "q @ np.swapaxes(k, -1, -2) / np.asarray(np.sqrt(q.shape[-1]), dtype=q.dtype)"
    project.write("level0/scaled_scores.py", scaled(body).replace("8.0}", "64.0}"))
    result, ladder = project.ladder("-k", "scaled_scores")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*scale_factor_d64: you predicted 64.0; the answer is 8.0*"])
    project.write("level0/scaled_scores.py", scaled(body))
    result, ladder = project.ladder("-k", "scaled_scores")
    assert result.ret == 0
    assert statuses(ladder)["scaled_scores"] == "ready"
    assert ladder["calibration"]["revised"] == 1
    assert ladder["calibration"]["right_first_time"] == 1
    entry = json.loads((project.root / ".attnkata" / "ledger.json").read_text())
    seen = entry["targets"]["katas"]["scaled_scores"]["predictions"]["scale_factor_d64"]
    assert (seen["first"], seen["latest"], seen["revisions"]) == (64.0, 8.0, 1)


def test_learner_exception_shows_learner_frame_only(project):
    project.write("level0/scaled_scores.py", scaled("helper(q)\n\ndef helper(q):\n    return q.nope"))
    result = project.run("-k", "scaled_scores")
    out = result.stdout.str()
    assert result.ret == 1
    assert "AttributeError" in out and "scaled_scores.py" in out and "in helper" in out
    assert "harness.py" not in out and "runner.py" not in out


def test_shape_dtype_nan_messages(project):
    project.write("level0/scaled_scores.py", scaled("(q @ np.swapaxes(k, -1, -2)).astype(np.float64) / 8"))
    project.write("level0/qk_scores.py", '''
import numpy as np
PREDICTIONS = {"scores_shape": (2, 3, 5), "unscaled_variance": 64}
def qk_scores(q, k):
    return np.swapaxes(q @ np.swapaxes(k, -1, -2), -1, -2) if q.shape[-2] != k.shape[-2] else q @ np.swapaxes(k, -1, -2)
''')
    project.write("level0/softmax.py", '''
import numpy as np
PREDICTIONS = {"softmax_1000": (0.5, 0.5), "naive_exp_1000": "inf"}
def softmax(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)
''')
    result = project.run("-k", "level0")
    out = result.stdout.str()
    assert "dtype: expected float32, got float64" in out
    assert "shape: expected" in out
    assert "got NaN" in out and "exponentiated without subtracting the row maximum" in out


def test_mutated_input_is_reported(project):
    project.write("level0/qk_scores.py", '''
import numpy as np
PREDICTIONS = {"scores_shape": (2, 3, 5), "unscaled_variance": 64}
def qk_scores(q, k):
    out = q @ np.swapaxes(k, -1, -2)
    q *= 0
    return out
''')
    result = project.run("-k", "qk_scores")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*modified its input `q` in place*"])


def test_hang_hits_timeout_and_run_goes_on(project):
    project.write("level0/softmax.py", '''
PREDICTIONS = {"softmax_1000": (0.5, 0.5), "naive_exp_1000": "inf"}
def softmax(x, axis=-1):
    while True:
        pass
''')
    result, ladder = project.ladder("-k", "level0", "--attnkata-timeout=0.5")
    out = result.stdout.str()
    assert "did not finish within 0.5 s" in out
    assert statuses(ladder, 0) == {"qk_scores": "not started", "scaled_scores": "not started",
                                   "softmax": "failing"}


def test_xdist_report_once_and_ledger_survives(project):
    project.copy_level("level0")
    result, ladder = project.ladder("-n", "2", "-k", "level0")
    assert result.ret == 0, result.stdout.str()
    assert result.stdout.str().count("attnkata report for the ladder") == 1  # focused, once
    assert set(statuses(ladder, 0).values()) == {"ready"}
    data = json.loads((project.root / ".attnkata" / "ledger.json").read_text())
    assert len(data["targets"]["katas"]) == 3


def test_last_failed_and_exitfirst(project):
    project.copy_level("level0")
    project.write("level0/softmax.py", '''
import numpy as np
PREDICTIONS = {"softmax_1000": (0.5, 0.5), "naive_exp_1000": "inf"}
def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e
''')
    first = project.run("-k", "level0", "-p", "cacheprovider")
    assert first.ret == 1
    again = project.run("--lf", "-k", "level0")
    again.stdout.fnmatch_lines(["*run-last-failure*"])
    assert "qk_scores.py" not in again.stdout.str().split("attnkata ladder")[0]
    stop = project.run("-x", "-k", "level0")
    stop.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_report_command_reprints_saved_results(project):
    project.copy_level("level0")
    project.run("-k", "level0")
    result = project.pytester.run(sys.executable, "-m", "attnkata", "--root", str(project.root), "report",
                                  "--json", str(project.root / "again.json"))
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*attnkata ladder*", "*softmax*ready*"])
    assert json.loads((project.root / "again.json").read_text())["target"] == "katas"


def test_corrupt_state_is_backed_up_not_fatal(project):
    state = project.root / ".attnkata"
    state.mkdir()
    (state / "ledger.json").write_text("{not json")
    (state / "results.json").write_text("[]")
    project.copy_level("level0")
    result, ladder = project.ladder("-k", "level0")
    assert result.ret == 0
    assert any("unreadable" in p for p in ladder["problems"])
    assert list(state.glob("ledger.json.corrupt-*")) and list(state.glob("results.json.corrupt-*"))
    json.loads((state / "ledger.json").read_text())


def test_help_lists_options_and_ini(project):
    result = project.run("--help")
    result.stdout.fnmatch_lines(["*--attnkata-target=katas|solutions|DIR*", "*--attnkata-json*",
                                 "*attnkata_katas_dir*"])


def test_plain_output_when_not_a_terminal(project):
    result = project.run("-k", "level0")
    assert "\x1b[" not in result.stdout.str()


def test_runs_from_a_subfolder(project):
    project.copy_level("level0")
    result = project.pytester.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                                  str(project.root / "katas" / "level0"))
    from attnkata.manager import load_registry

    level0 = [k for k in load_registry()[1].katas if k.level == 0 and k.pack == "core"]
    checks = sum(len(k.checks) + 1 for k in level0)   # + the predictions item of each kata
    result.stdout.fnmatch_lines([f"*{checks} passed*"])


def test_folder_target_checks_any_submission(project):
    project.copy_level("level0", folder="submission")
    result, ladder = project.ladder("-k", "level0", "--attnkata-target=submission")
    assert set(statuses(ladder, 0).values()) == {"ready"}
    assert ladder["target"].endswith("submission")


def test_html_export(project):
    project.copy_level("level0")
    result = project.run("-k", "level0", f"--attnkata-html={project.root / 'r.html'}")
    assert result.ret == 0
    html = (project.root / "r.html").read_text()
    assert "<html" in html.lower() and "qk_scores" in html


def test_skip_moves_next_past_a_kata_and_undo_restores_it(project):
    def attnkata(*argv):
        return project.pytester.run(sys.executable, "-m", "attnkata", "--root", str(project.root), *argv)

    assert attnkata("skip", "qk_scores").ret == 0
    result, ladder = project.ladder("-k", "level0", "--attnkata-ladder")
    assert ladder["next"] == "scaled_scores"
    result.stdout.fnmatch_lines(["*qk_scores*not started (skipped)*"])
    assert attnkata("skip", "--undo", "qk_scores").ret == 0
    assert "Next: qk_scores" in attnkata("report").stdout.str()
    assert attnkata("skip", "nope").ret == 2


def test_a_kata_file_that_does_not_import_fails_that_kata_only(project):
    project.copy_level("level0")
    project.write("level0/softmax.py", "def softmax(x, axis=-1)\n    return x\n")
    result, ladder = project.ladder("-k", "level0")
    assert statuses(ladder, 0) == {"qk_scores": "ready", "scaled_scores": "ready", "softmax": "failing"}
    result.stdout.fnmatch_lines(["*level0/softmax.py could not be imported*", "*SyntaxError*"])
