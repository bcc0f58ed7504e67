"""`attnkata grade` end to end: a generated class of 12 submissions through a real Dask
LocalCluster with 2 workers.  Every student gets a result, the verdicts and flags are
the expected ones, the course's .attnkata/ is untouched, and a rerun is resumed."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parents[1]
STUBS, SOLUTIONS = REPO / "katas", REPO / "solutions"
LEVEL0 = ("qk_scores", "scaled_scores", "softmax")


def predictions(kata: str) -> str:
    """The reference's PREDICTIONS block (right answers; the similarity check skips it)."""
    text = (SOLUTIONS / "level0" / f"{kata}.py").read_text()
    return re.search(r"^PREDICTIONS = \{.*?^\}", text, re.S | re.M).group(0)


def honest(kata: str, body: str, answered: bool = True) -> str:
    """The stub as given, predictions answered, the NotImplementedError replaced."""
    text = (STUBS / "level0" / f"{kata}.py").read_text()
    if answered:
        text = re.sub(r"^PREDICTIONS = \{.*?^\}", predictions(kata), text, flags=re.S | re.M)
    head, sep, _ = text.partition("    raise NotImplementedError")
    assert sep, f"the {kata} stub changed shape: update this test"
    return head + body.strip("\n") + "\n"


QK = "    return np.matmul(q, np.swapaxes(k, -1, -2))\n"
SCALED = ("    from .qk_scores import qk_scores\n"
          "    return qk_scores(q, k) / np.asarray(np.sqrt(q.shape[-1]), dtype=q.dtype)\n")
SOFTMAX = """    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isinf(top), 0, top)
    w = np.exp(x - top)
    s = w.sum(axis=axis, keepdims=True)
    s = np.where(s > 0, s, 1)
    return w / s
"""
SHARED = """    work = np.array(x, copy=True)
    biggest = np.max(work, axis=axis, keepdims=True)
    biggest[~np.isfinite(biggest)] = 0.0
    for _ in range(1):
        work = work - biggest
    powered = np.exp(work)
    denominator = np.sum(powered, axis=axis, keepdims=True)
    denominator[denominator == 0] = 1.0
    result = powered / denominator
    return result.astype(x.dtype, copy=False)
"""


def correct() -> dict[str, str]:
    return {"qk_scores": honest("qk_scores", QK), "scaled_scores": honest("scaled_scores", SCALED),
            "softmax": honest("softmax", SOFTMAX)}


def student_files() -> dict[str, dict[str, str]]:
    ref = {k: (SOLUTIONS / "level0" / f"{k}.py").read_text() for k in LEVEL0}
    stub = {k: (STUBS / "level0" / f"{k}.py").read_text() for k in LEVEL0}
    renamed = SHARED.replace("work", "arr").replace("biggest", "mx").replace("powered", "ex")
    return {
        "alice": correct(),
        "bob": {"qk_scores": honest("qk_scores", QK), "scaled_scores": stub["scaled_scores"],
                "softmax": stub["softmax"]},
        "carol": {**correct(), "qk_scores": honest(
            "qk_scores", "    return k @ np.swapaxes(q, -1, -2)\n")},
        "dave": {**correct(), "softmax": honest("softmax", "    return np.exp(x) /\n")},
        "erin": {**correct(), "softmax": honest("softmax", SOFTMAX) + "\nwhile True:\n    pass\n"},
        "frank": {**correct(), "scaled_scores": honest("scaled_scores", SCALED)
                  + "\nimport os\nos._exit(0)\n"},
        "grace": {**correct(), "softmax": honest("softmax", "    big = np.ones(2**32)\n"
                                                           "    return big[:1] * x\n")},
        "heidi": dict(ref),
        "ivan": {**correct(), "softmax": honest("softmax", SHARED)},
        "judy": {**correct(), "softmax": honest("softmax", renamed)},
        "mallory": {**correct(), "softmax": honest("softmax", SOFTMAX)
                    + f"\n_peek = open({str(SOLUTIONS / 'level0' / 'softmax.py')!r}).read()\n"},
        "niaj": {"qk_scores": honest("qk_scores", QK, answered=False),
                 "scaled_scores": honest("scaled_scores", SCALED, answered=False),
                 "softmax": honest("softmax", SOFTMAX, answered=False)},
    }


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    if folder.exists():
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def write_class(subs: Path) -> None:
    """The fixture class as folders: ``subs/<student>/level0/<kata>.py``."""
    for name, files in student_files().items():
        for kata, text in files.items():
            path = subs / name / "level0" / f"{kata}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    write_class(subs)
    (root / "roster.csv").write_text("folder,name\n" + "".join(
        f"{n},{n.title()} Example\n" for n in student_files()) + "zoe,Zoe Absent\n")
    out = root / "out"
    course = root / "course"  # a course of its own, with saved progress grading must not touch
    shutil.copytree(REPO / "katas", course / "katas")
    (course / "pyproject.toml").write_text('[tool.attnkata]\n\n[tool.pytest.ini_options]\n'
                                           'testpaths = ["katas"]\n')
    (course / ".attnkata").mkdir()
    (course / ".attnkata" / "ledger.json").write_text('{"schema": "mine", "targets": {}}')
    before = tree_digest(course / ".attnkata")
    cmd = [sys.executable, "-m", "attnkata", "--root", str(course), "grade", str(subs),
           "--out", str(out), "--workers", "2", "--only", "katas/level0", "--timeout", "3",
           "--budget", "120", "--roster", str(root / "roster.csv")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    after = tree_digest(course / ".attnkata")
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return first, second, out, rows, before == after


def statuses(out: Path, student: str) -> dict[str, str]:
    data = json.loads((out / "students" / f"{student}.json").read_text())
    return {k["id"]: k["status"] for k in data["ladder"]["katas"] if k["id"] in LEVEL0}


EXPECTED = {
    "alice": ("ready", "ready", "ready"), "bob": ("ready", "not started", "not started"),
    "carol": ("failing", "failing", "ready"), "dave": ("ready", "ready", "failing"),
    "erin": ("ready", "ready", "failing"), "frank": ("ready", "failing", "ready"),
    "grace": ("ready", "ready", "failing"), "heidi": ("ready", "ready", "ready"),
    "ivan": ("ready", "ready", "ready"), "judy": ("ready", "ready", "ready"),
    "mallory": ("ready", "ready", "failing"), "niaj": ("locked", "locked", "locked"),
}


def test_every_student_has_a_result_with_the_expected_verdicts(graded):
    first, _, out, rows, _ = graded
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for student, want in EXPECTED.items():
        got = statuses(out, student)
        assert tuple(got[k] for k in LEVEL0) == want, f"{student}: {got}"
        assert rows[student]["status"] == "graded"


def test_flags_name_copies_cheats_and_crashes(graded):
    _, _, out, rows, _ = graded
    flags = {s: r["flags"] for s, r in rows.items()}
    assert "the reference" in flags["heidi"]
    assert "judy" in flags["ivan"] and "ivan" in flags["judy"]
    assert "tried to read the reference" in flags["mallory"]
    for honest_student in ("alice", "bob", "carol", "niaj"):
        assert flags[honest_student] == "", f"{honest_student}: {flags[honest_student]}"
    assert rows["zoe"]["status"] == "no submission"
    assert rows["alice"]["name"] == "Alice Example"
    assert rows["alice"]["points"] == "3" and rows["bob"]["points"] == "1"
    failures = json.loads((out / "students" / "erin.json").read_text())
    softmax = next(k for k in failures["ladder"]["katas"] if k["id"] == "softmax")
    assert "did not finish within 3 s" in softmax["detail"]


def test_gradebook_files(graded):
    _, _, out, _, _ = graded
    scope = json.loads((out / "gradescope" / "alice" / "results.json").read_text())
    assert scope["score"] == 3 and len(scope["tests"]) >= 3
    html = (out / "class.html").read_text()
    assert "alice" in html and "Misconceptions hit most" in html
    assert "scores transposed" in html   # carol's misconception, named in the class view


def test_course_state_untouched_and_rerun_resumed(graded):
    first, second, out, _, untouched = graded
    assert untouched, "grading wrote into the course's .attnkata/"
    assert "grading 12 submission(s)" in first.stderr
    assert "grading 0 submission(s); 12 unchanged" in second.stderr, second.stderr[-2000:]


def test_class_view_reads_the_exports_and_says_loudly_when_one_is_missing(graded):
    _, _, out, _, _ = graded
    exports = sorted(str(p) for p in (out / "ladders").glob("*.json"))
    assert len(exports) == 12
    ok = subprocess.run([sys.executable, "-m", "attnkata", "--root", str(REPO), "class", *exports],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([sys.executable, "-m", "attnkata", "--root", str(REPO), "class",
                              *exports, str(out / "nobody.json")], capture_output=True, text=True)
    assert missing.returncode == 1
    assert "NOT in the tables" in missing.stderr and "nobody.json" in missing.stderr


NAIVE = '''

def tiled_attention(q, k, v, block_q=64, block_k=64, causal=False):
    s = (q @ np.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
    n_q, n_k = s.shape[-2], s.shape[-1]
    if causal:
        s = np.where(np.tril(np.ones((n_q, n_k), dtype=bool), n_k - n_q), s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.exp(s - m)
    l = p.sum(-1, keepdims=True)
    o = (p / np.where(l == 0, 1, l)) @ v
    return o.astype(q.dtype), (m + np.log(np.where(l == 0, 1, l)))[..., 0].astype(np.float32)
'''


def test_bench_ranks_the_students_kernels_that_pass(tmp_path):
    """--bench times each graded submission's own tiled attention (CPU here), once it is
    right; a wrong one is not timed and says why."""
    ref = (SOLUTIONS / "level4" / "tiled_attention.py").read_text()
    wrong = ref.replace("scale = d ** -0.5", "scale = 1.0")
    assert wrong != ref, "the reference's scale line moved: update this test"
    for name, text in {"ann": ref, "ben": ref + NAIVE, "cat": wrong}.items():
        path = tmp_path / "subs" / name / "level4" / "tiled_attention.py"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "attnkata", "--root", str(REPO), "grade", str(tmp_path / "subs"),
         "--out", str(out), "--serial", "--only", "katas/level4/tiled_attention.py", "--bench",
         "--bench-args", "--cpu-sizes 128,256 --cpu-repeat 3"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert {rows["ann"]["bench_rank"], rows["ben"]["bench_rank"]} == {"1", "2"}
    for name in ("ann", "ben"):
        assert "ms at N=256" in rows[name]["bench_figure"] and rows[name]["bench_vs_reference"]
    assert rows["cat"]["bench_rank"] == "" and "not timed" in rows["cat"]["bench_note"]
    assert "Leaderboard (CPU only" in (out / "class.html").read_text()
    # the timed code is each student's own file, not the reference
    timed = json.loads((out / "bench" / "ben" / "last.json").read_text())
    assert all(str(tmp_path) in r["tiled_file"] for r in timed["cpu"]["rows"])
