"""Kata metadata validation and prediction checking."""

from __future__ import annotations

from dataclasses import replace

import pytest

from attnkata import Claim, Prediction
from attnkata.model import MetadataError
from attnkata_plugins.core.level0 import SOFTMAX


@pytest.mark.parametrize("change, says", [
    ({"level": "one"}, "level must be an int"),
    ({"path": "/abs/softmax.py"}, "must be a relative .py path"),
    ({"entries": ()}, "entries is empty"),
    ({"checks": ()}, "checks must be a non-empty tuple"),
    ({"hints": ("",)}, "empty hint"),
    ({"claims": (Claim("c", "t", scope="measured", source="dao-2022"),)}, "records no environment"),
    ({"claims": (Claim("c", "t", scope="vibes", source="dao-2022"),)}, "scope 'vibes'"),
    ({"claims": (Claim("c", "t", scope="exact", source=""),)}, "has no source id"),
    ({"claims": (Claim("c", "t", scope="exact", source="x", evidence=("nope",)),)}, "unknown checks"),
])
def test_malformed_metadata_is_named(change, says):
    with pytest.raises(MetadataError, match=says):
        replace(SOFTMAX, **change).validate()


def test_core_katas_validate():
    SOFTMAX.validate()


@pytest.mark.parametrize("pred, value, right", [
    (Prediction("a", "q", 64, rel_tol=0.1), 60, True),
    (Prediction("a", "q", 64, rel_tol=0.01), 60, False),
    (Prediction("a", "q", (0.5, 0.5)), [0.5, 0.5], True),
    (Prediction("a", "q", (2, 3, 5), kind="exact"), [2, 3, 5], True),
    (Prediction("a", "q", (2, 3, 5), kind="exact"), (2, 5, 3), False),
    (Prediction("a", "q", "inf", kind="choice", choices=("inf", "nan")), " INF ", True),
    (Prediction("a", "q", 1.0), "one", False),
])
def test_prediction_checking(pred, value, right):
    assert pred.is_right(value) is right


# ---------------------------------------------------------------------------
# The package's import graph: no circles (issue 14: hookspecs → ladder → manager → hookspecs)
# ---------------------------------------------------------------------------

def _module_imports(path):
    """The attnkata modules ``path`` imports when it is imported, type-only ones included
    (``if TYPE_CHECKING:``); imports inside functions run later and are left out."""
    import ast

    found = set()

    def walk(body):
        for node in body:
            if isinstance(node, ast.If):
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                for handler in node.handlers:
                    walk(handler.body)
                walk(node.orelse)
                walk(node.finalbody)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    found.update([node.module.split(".")[0]] if node.module
                                 else [a.name for a in node.names])
                elif (node.module or "").startswith("attnkata."):
                    found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names
                             if a.name.startswith("attnkata."))

    walk(ast.parse(path.read_text()).body)
    return found


def test_attnkata_has_no_import_cycles():
    from pathlib import Path

    import attnkata

    pkg = Path(attnkata.__file__).parent
    graph = {p.stem: _module_imports(p) for p in pkg.glob("*.py")}
    graph = {k: {m for m in v if m in graph and m != k} for k, v in graph.items()}
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, " ; ".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["hookspecs", "ladder", "manager", "diagnose", "harness"])
def test_module_imports_alone(module):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import attnkata.{module}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
