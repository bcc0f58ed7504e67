"""Hostile kata files: the grader survives them, judges them right, and still reports.

Each case is a reference solution with something hostile added: a hang, a crash, an
exit, a huge allocation or output, or a cheat.  All of them run in ONE pytest
subprocess (as a learner's ``pytest`` would run a folder of katas); each test below
then checks one kata's verdict and message in the exported ladder.  A cheat must end
"failing" (or "not started"), never "ready"; a correct kata next to hostile ones
stays "ready".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
TIMEOUT = 3  # seconds per call into learner code, for this run


def _solution(rel: str) -> str:
    return (SOLUTIONS / rel).read_text()


# path -> (what the file does, the code appended to the reference (or None: a whole new body),
#          expected status, words the kata's messages must contain (any one of each tuple))
CASES: dict[str, tuple[str, str, str, tuple]] = {
    "level0/softmax.py": (
        "loops forever at import", "while True:\n    pass\n", "failing",
        (("did not finish within 3 s",), ("importing",))),
    "level0/qk_scores.py": (
        "calls os._exit(0) at import", "import os\nos._exit(0)\n", "failing",
        (("exited with status 0",),)),
    "level1/causal_mask.py": (
        "monkeypatches pytest's runtest (the six-line cheat)",
        "import attnkata.collect\nattnkata.collect.KataItem.runtest = lambda self: None\n",
        "failing", (("refused",), ("attnkata.collect",))),
    "level1/attention.py": (
        "patches numpy.allclose/isclose and returns zeros",
        "import numpy as np\nnp.allclose = lambda *a, **k: True\n"
        "np.isclose = lambda a, b, *x, **k: np.ones(np.broadcast(a, b).shape, bool)\n"
        "def attention(q, k, v, mask=None):\n"
        "    return np.zeros(q.shape[:-1] + v.shape[-1:], q.dtype)\n",
        "failing", (("values differ", "expected"),)),
    "level1/sliding_window_mask.py": (
        "loads the reference through the framework's own loader",
        "from pathlib import Path as _P\nfrom attnkata.target import load_module\n"
        "_root = _P(__file__).resolve().parents[2] / 'solutions'\n"
        "sliding_window_mask = load_module(_root / 'level1/sliding_window_mask.py', _root)"
        ".sliding_window_mask\n",
        "failing", (("refused",),)),
    "level1/multi_head_attention.py": (
        "reads the reference file", f"_ref = open({str(SOLUTIONS / 'level1/multi_head_attention.py')!r}).read()\n",
        "failing", (("tried to read the reference",),)),
    "level1/rope.py": (
        "overflows the recursion limit it raised",
        "import sys\n_rope = rope\ndef rope(x, positions, base=10000.0):\n"
        "    sys.setrecursionlimit(10**7)\n    def down(n):\n        return down(n + 1) + 1\n"
        "    return down(0)\n",
        "failing", (("RecursionError", "crashed", "did not finish", "MemoryError"),)),
    "level2/kv_cache_bytes.py": (
        "writes into the course's .attnkata/ folder",
        "from pathlib import Path as _P\n"
        "(_P(__file__).resolve().parents[2] / '.attnkata' / 'results.json').write_text('{}')\n",
        "failing", (("refused",), (".attnkata",))),
    "level2/next_token_probs.py": (
        "allocates 20 GB", "import numpy as _np\n_real = next_token_probs\n"
        "def next_token_probs(*a, **k):\n    _np.ones(20 * 2**30 // 8)\n    return _real(*a, **k)\n",
        "failing", (("MemoryError",),)),
    "level2/decode_step.py": (
        "prints 50 MB and answers wrong",
        "_real = decode_step\ndef decode_step(q_t, cache):\n    print('x' * (50 * 2**20))\n"
        "    return _real(q_t, cache) * 2\n",
        "failing", (("values differ", "expected"),)),
    "level3/kv_head_for.py": (
        "starts a non-daemon thread at import (correct otherwise)",
        "import threading, time\nthreading.Thread(target=lambda: time.sleep(10**6)).start()\n",
        "ready", ()),
    "level3/mha_to_gqa.py": (
        "calls sys.exit(3)", "import sys\ndef mha_to_gqa(*a, **k):\n    sys.exit(3)\n",
        "failing", (("SystemExit",),)),
    "level3/gqa_attention.py": (
        "raises KeyboardInterrupt", "def gqa_attention(*a, **k):\n    raise KeyboardInterrupt\n",
        "failing", (("KeyboardInterrupt",),)),
    "level4/online_softmax.py": (
        "ignores SIGALRM, clears the timer and swallows every exception in a loop",
        "import signal\ndef online_softmax(*a, **k):\n"
        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    signal.setitimer(signal.ITIMER_REAL, 0)\n    while True:\n        try:\n"
        "            pass\n        except BaseException:\n            pass\n",
        "failing", (("did not finish within 3 s", "time budget"),)),
    "level4/merge_partials.py": (
        "loops inside C code", "def merge_partials(*a, **k):\n    return sum(range(10**13))\n",
        "failing", (("did not finish within 3 s", "time budget"),)),
    "level5/triton_softmax.py": (
        "stores without a mask (out of bounds)", None, "failing",
        (("out-of-bounds store",), ("line",))),
    "level6/waste.py": (
        "sets np.seterr(all='raise') at import (correct otherwise)",
        "import numpy as _np\n_np.seterr(all='raise')\n", "ready", ()),
    "level4/tiled_attention.py": ("is the reference, untouched", "", "ready", ()),
    "level6/paged_attention_decode.py": (
        "reads the expected answer off the caller's frames and sys.modules",
        "import sys, torch\ndef paged_attention_decode(q, *a, **k):\n"
        "    f = sys._getframe(1)\n    while f is not None:\n"
        "        for name in ('want', 'expected', 'ref'):\n"
        "            if isinstance(f.f_locals.get(name), torch.Tensor):\n"
        "                return f.f_locals[name]\n        f = f.f_back\n"
        "    for m in list(sys.modules.values()):\n"
        "        if 'solutions' in str(getattr(m, '__file__', '')):\n"
        "            return m.paged_attention_decode(q, *a, **k)\n"
        "    return torch.zeros_like(q)\n",
        "failing", (("values differ", "expected"),)),
    "level7/ring_overlap.py": (
        "returns a str where a number is expected",
        "_real = block_flops\ndef block_flops(block_tokens, d):\n"
        "    return str(_real(block_tokens, d))\n",
        "failing", (("expected the integer", "got '"),)),
    "level2/kv_cache.py": (
        "copies PREDICTIONS from the kata's metadata",
        "import attnkata_plugins.core.level2 as _k\n"
        "PREDICTIONS = {p.id: p.answer for k in _k.KATAS for p in k.predictions}\n",
        "failing", (("refused",),)),
}


def _triton_oob() -> str:
    text = _solution("level5/triton_softmax.py")
    broken = text.replace(", mask=in_row)\n", ")\n")
    assert broken != text, "the reference's masked store moved: update this case"
    return broken


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "pyproject.toml").write_text('[tool.attnkata]\n\n[tool.pytest.ini_options]\n'
                                         'testpaths = ["katas"]\n')
    for rel, (_, extra, _, _) in CASES.items():
        path = root / "katas" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        body = _triton_oob() if extra is None else _solution(rel) + "\n" + textwrap.dedent(extra)
        path.write_text(body)
    out = root / "ladder.json"
    env = {**__import__("os").environ, "NO_COLOR": "1", "COLUMNS": "120"}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
         f"--attnkata-timeout={TIMEOUT}", "--attnkata-kata-budget=8",
         "--attnkata-memory-limit=3G", f"--attnkata-json={out}",
         *[f"katas/{rel}" for rel in CASES]],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.exists(), f"no ladder written:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, json.loads(out.read_text())


def _kata(ladder: dict, rel: str) -> dict:
    path = f"level{rel.split('/')[0][5:]}"
    stem = Path(rel).stem
    by_id = {k["id"]: k for k in ladder["katas"]}
    return by_id.get(stem) or next(k for k in ladder["katas"] if k["id"].startswith(stem) and path)


@pytest.mark.parametrize("rel", list(CASES), ids=[Path(r).stem for r in CASES])
def test_hostile_kata_is_judged_and_the_run_goes_on(hostile_run, rel):
    proc, ladder = hostile_run
    what, _, status, words = CASES[rel]
    kata = _kata(ladder, rel)
    assert kata["status"] == status, (
        f"{rel} ({what}): expected {status}, got {kata['status']}: {kata.get('detail')}")
    if status == "failing":
        text = proc.stdout
        section = text[text.find(f"[{kata['id']} ·"):]
        for alternatives in words:
            assert any(w in section[:20_000] for w in alternatives), (
                f"{rel} ({what}): none of {alternatives} in its messages:\n{section[:2000]}")


def test_run_exits_normally_with_a_report(hostile_run):
    proc, ladder = hostile_run
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Fatal Python error" not in proc.stdout + proc.stderr
    assert ladder["katas"], "the ladder export lists the katas"


def test_printed_output_is_bounded(hostile_run):
    proc, _ = hostile_run
    assert "bytes of output cut" in proc.stdout
    assert len(proc.stdout) < 2_000_000, f"{len(proc.stdout):,} characters of output"


def test_no_cheat_is_ready(hostile_run):
    _, ladder = hostile_run
    ready = {k["id"] for k in ladder["katas"] if k["status"] == "ready"}
    honest = {_kata(ladder, rel)["id"] for rel, case in CASES.items() if case[2] == "ready"}
    assert ready == honest


def test_a_crash_never_keeps_an_earlier_ready(project):
    """Ready on one run, then the kata aborts its worker: this run's verdict is saved."""
    from conftest import statuses

    project.solution("level0/qk_scores.py")
    _, ladder = project.ladder("katas/level0/qk_scores.py")
    assert statuses(ladder)["qk_scores"] == "ready"
    project.write("level0/qk_scores.py", _solution("level0/qk_scores.py")
                  + "\n_real = qk_scores\ndef qk_scores(q, k):\n    import os\n    os.abort()\n")
    result, ladder = project.ladder("katas/level0/qk_scores.py")
    assert statuses(ladder)["qk_scores"] == "failing"
    assert "SIGABRT" in result.stdout.str()
    report = project.pytester.run(sys.executable, "-m", "attnkata", "--root", str(project.root),
                                  "report")
    assert "ready (earlier run)" not in report.stdout.str()


def test_killing_the_fork_server_or_the_grader_is_refused_and_the_run_goes_on(project):
    """Signalling another process is refused; a server killed anyway is restarted."""
    from conftest import statuses

    project.write("level0/qk_scores.py", _solution("level0/qk_scores.py")
                  + "\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    project.write("level0/softmax.py", _solution("level0/softmax.py")
                  + "\nimport ctypes, os, signal\n"
                  "ctypes.CDLL(None).kill(os.getppid(), signal.SIGKILL)\n")
    project.solution("level0/scaled_scores.py")
    project.solution("level1/causal_mask.py")
    result, ladder = project.ladder("katas/level0", "katas/level1/causal_mask.py")
    got = statuses(ladder)
    assert got["qk_scores"] == "failing"
    assert "tried to signal process" in result.stdout.str()
    assert got["scaled_scores"] == "failing"   # it imports qk_scores, whose import fails
    assert got["softmax"] == "failing"         # ctypes gets past the audit hook: the server dies,
    assert "no exit status" in result.stdout.str()   # and its worker with it
    assert got["causal_mask"] == "ready"       # the next kata gets a new fork server


def test_a_kata_pays_for_one_timeout_only(hostile_run):
    """After a check times out, the kata's other checks are not run (each would wait too)."""
    proc, _ = hostile_run
    blocks = proc.stdout.split("\n[")
    mine = [b for b in blocks if b.startswith("merge_partials ·")]
    timed_out = [b for b in mine if "did not finish within 3 s" in b]
    assert len(timed_out) == 1, [b[:200] for b in mine]
    assert any("not run: an earlier check of this kata timed out" in b for b in mine)


def test_an_import_error_is_shown_once_per_kata(project):
    project.write("level0/softmax.py", _solution("level0/softmax.py") + "\ndef broken(:\n")
    result = project.run("katas/level0/softmax.py")
    out = result.stdout.str()
    assert out.count("SyntaxError") >= 2            # every check says it failed, and why
    assert out.count("def broken(:") == 1           # but the traceback is shown once
    assert "the traceback is in this kata's first failure above" in out
    assert "importlib" not in out


def test_an_error_inside_a_triton_kernel_ends_at_the_kernel_line(project):
    text = _solution("level5/triton_softmax.py")
    broken = text.replace("    y = e / tl.sum(e, axis=0)\n",
                          "    y = e / tl.sum(e, axis=0) + undefined_thing\n")
    assert broken != text, "the reference's softmax line moved: update this test"
    project.write("level5/triton_softmax.py", broken)
    out = project.run("katas/level5/triton_softmax.py").stdout.str()
    assert "raised NameError: name 'undefined_thing' is not defined" in out
    assert "in softmax_kernel\n    y = e / tl.sum(e, axis=0) + undefined_thing" in out
