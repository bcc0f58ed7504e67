"""Startup: the judging process imports hypothesis, torch and triton only when a selected
kata needs them (hypothesis: when a check first draws an example)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("hypothesis", "torch", "triton")

# Written into the throwaway course: at the end of the run, the judge's modules to a file.
DUMP = '''
import sys

def pytest_unconfigure(config):
    (config.rootpath / "modules.txt").write_text("\\n".join(sorted(sys.modules)))
'''

# softmax right on every fixed check (1-D and 2-D inputs) and wrong on 3-D inputs, which
# only the check with generated shapes (up to three axes) draws.
WRONG_IN_3D = "    return e / np.where(total == 0, 1, total)"
WRONG_IN_3D_BY = ("    out = e / np.where(total == 0, 1, total)\n"
                  "    return out * 2 if out.ndim == 3 else out")


def loaded(project, *args: str) -> tuple[pytest.RunResult, set[str]]:
    project.write("conftest.py", DUMP, folder=".")
    result = project.run("-p", "no:cacheprovider", *args)
    modules = set((project.root / "modules.txt").read_text().split())
    return result, {m for m in HEAVY if m in modules}


def test_the_stateful_machines_and_strategies_stay_recipes_until_used():
    code = ("import sys, attnkata.manager as m; m.load_registry(); "
            "print(sorted(x for x in ('hypothesis', 'torch', 'triton') if x in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr  # every kata module imported, nothing heavy


def test_a_numpy_kata_without_generated_inputs_imports_none_of_them(project):
    project.solution("level1/causal_mask.py")
    result, heavy = loaded(project, "katas/level1/causal_mask.py")
    result.assert_outcomes(passed=6)
    assert heavy == set()


def test_a_failing_kata_that_draws_nothing_still_does_not_import_hypothesis(project):
    text = (REPO / "solutions" / "level1" / "causal_mask.py").read_text()
    assert "    offset = n_k - n_q " in text
    project.write("level1/causal_mask.py", text.replace("    offset = n_k - n_q ", "    offset = 0 "))
    result, heavy = loaded(project, "katas/level1/causal_mask.py")
    assert result.ret == 1 and "causal_mask failing" in result.stdout.str()
    assert heavy == set()


def test_a_level0_stub_run_imports_neither_torch_nor_triton(project):
    project.write("level0/softmax.py", (REPO / "katas" / "level0" / "softmax.py").read_text())
    result, heavy = loaded(project, "katas/level0/softmax.py")
    assert result.ret == 0 and "not started" in result.stdout.str()
    assert heavy <= {"hypothesis"}  # its first check draws before it learns it is a stub


def test_a_check_with_generated_inputs_still_draws_them(project):
    project.copy_level("level0")
    text = (REPO / "solutions" / "level0" / "softmax.py").read_text()
    assert WRONG_IN_3D in text
    project.write("level0/softmax.py", text.replace(WRONG_IN_3D, WRONG_IN_3D_BY))
    result, heavy = loaded(project, "katas/level0/softmax.py")
    assert heavy == {"hypothesis"}  # imported by the first draw, and only then
    out = result.stdout.str()
    assert result.ret == 1
    result.assert_outcomes(failed=1, passed=6)  # the fixed checks cannot see a 3-D mistake
    assert "FAILED katas/level0/softmax.py::softmax_matches_reference" in out
    assert "got 2" in out  # shrunk to a small 3-D input through the lazy strategy


LAZY_USE = '''
import sys
from attnkata.strategies import RuleBasedStateMachine, resolve, rule, st

small = st.integers(0, 3).map(lambda n: n * 10) | st.just(-1)

@st.composite
def pairs(draw, n):
    return draw(st.lists(small, min_size=n, max_size=n)), draw(st.sampled_from("ab"))

class Counter(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.seen = 0

    @rule(k=st.integers(1, 2))
    def add(self, k):
        self.seen += k
        assert self.seen < 5, "counted to 5"

built = pairs(2)
assert "hypothesis" not in sys.modules, "built eagerly"
from hypothesis import find, given, settings
from hypothesis.stateful import run_state_machine_as_test

print(find(resolve(built), lambda p: p[0][0] == 30 and p[1] == "b"))
seen = []
settings(max_examples=30, database=None)(given(p=resolve(built))(lambda p: seen.append(p)))()
print(len(seen), all(v in (-1, 0, 10, 20, 30) for pr, _ in seen for v in pr))
try:
    run_state_machine_as_test(Counter, settings=settings(max_examples=50, database=None))
except AssertionError as exc:
    print("machine:", exc)
'''


def test_lazy_strategies_and_machines_behave_as_hypothesis_own():
    out = subprocess.run([sys.executable, "-c", LAZY_USE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("([30, ") and lines[0].endswith("'b')")  # find() through a Lazy
    assert lines[1] == "30 True"
    assert lines[-1] == "machine: counted to 5"  # rules ran through super().__init__()
