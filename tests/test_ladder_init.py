"""A pack whose stubs are not copied into katas/ yet: the ladder tells the learner to run
`attnkata init PACK` (not the stub's recipe text), and Next prefers katas they can open."""

from __future__ import annotations

import io

from rich.console import Console

from attnkata.ladder import build_ladder
from attnkata.manager import load_registry
from attnkata.render import report_group
from attnkata.runner import NOT_STARTED
from test_packs_init import course, make_pack, site  # noqa: F401  (fixtures)


def _text(renderable, width: int = 200) -> str:
    out = io.StringIO()
    Console(file=out, width=width, no_color=True, force_terminal=False).print(renderable)
    return out.getvalue()


def _not_started(kata) -> dict:
    return {c.id: {"outcome": NOT_STARTED, "message": "kata double: return 2 * x"}
            for c in kata.checks}


def test_uncopied_pack_katas_say_init_and_come_last_in_next(site, course):  # noqa: F811
    make_pack(site, "alpha")
    _, registry = load_registry()
    alpha = [k for k in registry.katas if k.pack == "alpha"]
    outcomes = {k.id: _not_started(k) for k in alpha}
    ladder = build_ladder(registry, "katas", outcomes, katas_dir=course / "katas")
    rows = {r.id: r for r in ladder.rows}
    assert rows["alpha_double"].init == "alpha"
    text = _text(report_group(ladder))
    assert "attnkata init alpha" in text
    assert "return 2 * x" not in text           # the recipe stays in the stub
    assert all(len(line) <= 80 for line in _text(report_group(ladder), 80).splitlines())
    for row in ladder.rows:  # core's stubs live in the repo, not in this tmp course
        if row.pack != "alpha":
            row.init = ""
    nxt = ladder.next_kata()
    assert nxt is not None and nxt.pack != "alpha"  # a kata the learner can open comes first

    (course / "katas/alpha").mkdir(parents=True)
    (course / "katas/alpha/double.py").write_text("def double(x):\n    raise NotImplementedError\n")
    ladder = build_ladder(registry, "katas", outcomes, katas_dir=course / "katas")
    assert {r.id: r for r in ladder.rows}["alpha_double"].init == ""
    assert "katas/alpha/double.py" in _text(report_group(ladder))


def test_only_uncopied_katas_left_next_says_init(site, course):  # noqa: F811
    make_pack(site, "alpha")
    _, registry = load_registry()
    ladder = build_ladder(registry, "katas", {}, katas_dir=course / "katas")
    for row in ladder.rows:  # every kata the learner can open is ready
        if row.pack != "alpha":
            row.status, row.init = "ready", ""
    nxt = ladder.next_kata()
    assert nxt is not None and nxt.init == "alpha"
    assert "attnkata init alpha" in _text(report_group(ladder)).split("Next:")[1]
