"""End of a run: build the ladder, save it, render it — and render saved ones again.

Plugins answer one at a time (:func:`~attnkata.manager.call_hook`): one that raises
or answers nonsense is named in the report's problems and the report goes on.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pluggy

from .ladder import FAILING, READY, ClaimRow, Ladder, build_ladder, turned_ready
from .manager import PluginProblem, call_hook, call_one, implementations
from .render import render, report_group, wrap_lines, write_json
from .state import bump_failures, results


def _note(ladder: Ladder, problems: list[PluginProblem]) -> None:
    for problem in map(str, problems):
        if problem not in ladder.problems:
            ladder.problems.append(problem)


def _renderables(answer: Any) -> list[Any]:
    from rich.protocol import is_renderable

    single = is_renderable(answer) and not isinstance(answer, (list, tuple))
    found = [answer] if single else list(answer or [])
    for item in found:
        if not is_renderable(item):
            raise TypeError(f"attnkata_report_sections answered {type(item).__name__}, "
                            f"not something rich can print")
    return found


def _claims(answer: Any) -> list[ClaimRow]:
    found = list(answer or [])
    for claim in found:
        if not isinstance(claim, ClaimRow):
            raise TypeError(f"attnkata_ladder_claims answered {type(claim).__name__}, not ClaimRow")
    return found


def sections(pm: pluggy.PluginManager, ladder: Ladder, rootdir: Path) -> list[Any]:
    problems: list[PluginProblem] = []
    answers = call_hook(pm, "attnkata_report_sections", problems, _renderables,
                        ladder=ladder, rootdir=rootdir)
    _note(ladder, problems)
    return [item for _, found in answers for item in found]


def add_plugin_claims(pm: pluggy.PluginManager, ladder: Ladder, rootdir: Path) -> None:
    """Claims from plugins join the ladder once; a measured one needs its environment."""
    have = {c.id for c in ladder.claims}
    problems: list[PluginProblem] = []
    answers = call_hook(pm, "attnkata_ladder_claims", problems, _claims, ladder=ladder,
                        rootdir=rootdir)
    _note(ladder, problems)
    for _, found in answers:
        for claim in found:
            if claim.id in have:
                continue
            if claim.scope == "measured" and not claim.environment:
                ladder.problems.append(f"claim {claim.id!r} is measured but records no environment: refused")
                continue
            ladder.claims.append(claim)
            have.add(claim.id)


def json_export(pm: pluggy.PluginManager, ladder: Ladder, rootdir: Path) -> dict:
    """The ladder's JSON, amended by each plugin on a copy: a plugin that raises leaves no trace."""
    data = ladder.to_json()
    problems: list[PluginProblem] = []
    for impl in implementations(pm, "attnkata_report_json"):
        trial = copy.deepcopy(data)
        ok, _ = call_one(impl, "attnkata_report_json", problems, ladder=ladder, data=trial,
                         rootdir=rootdir)
        if ok:
            data = trial
    if problems:
        _note(ladder, problems)
        data["problems"] = list(ladder.problems)
    return data


def export(pm: pluggy.PluginManager, ladder: Ladder, rootdir: Path, json_path: str | Path | None,
           html_path: str | Path | None, *, color: bool, width: int, show: bool = True,
           focus: list[str] | None = None) -> str:
    """Render the report (returns the text) and write the JSON / HTML exports asked for.

    :param focus: the katas a run selected: print their feedback and a one-line summary
        instead of the whole ladder (the HTML export keeps the whole ladder).
    """
    extra = sections(pm, ladder, rootdir)  # first: its problems belong in the JSON too
    data = json_export(pm, ladder, rootdir) if json_path else None
    if html_path:
        render(report_group(ladder, extra), color=color, width=width, html=Path(html_path))
    group = report_group(ladder, extra, focus)
    text = render(group, color=color, width=width) if show else ""
    if data is not None:
        write_json(Path(json_path), data)
    return text if show else ""


def finish_run(state: Any, *, color: bool, width: int, show: bool, json_path: str | None,
               html_path: str | None, environment: dict, whole: bool = False) -> str:
    """Save this run's ladder and render it: the whole ladder when every kata ran (or
    ``whole``), else the feedback of the katas that ran and a one-line summary."""
    store = results(state.rootdir)
    saved = store.read().get("runs", {}).get(state.target.slug)
    previous = Ladder.from_json(saved) if saved else None
    entries = state.ledger.read().get("targets", {}).get(state.target.slug, {})
    ladder = build_ladder(state.registry, state.target.name, state.outcomes, previous, entries,
                          state.extra_claims, environment, state.katas_dir)
    add_plugin_claims(state.pm, ladder, state.rootdir)
    if state.target.name == "katas":  # `attnkata solution` compares the learner's katas/
        ladder.turned_ready = turned_ready(ladder, previous)
    ran = [k.id for k in state.registry.katas if k.id in state.outcomes]
    focus = None if whole or len(ran) == len(state.registry.katas) else ran
    for row in ladder.rows:
        if row.status == FAILING and not row.stale:
            bump_failures(state.ledger, state.target.slug, row.id)

    def save(data: dict) -> None:
        data.setdefault("runs", {})[state.target.slug] = ladder.to_json()
        data["last"] = state.target.slug

    store.update(save)
    for problem in store.problems + state.ledger.problems:  # "progress not saved" included
        if problem not in ladder.problems:
            ladder.problems.append(problem)
    return export(state.pm, ladder, state.rootdir, json_path, html_path, color=color, width=width,
                  show=show, focus=focus)


def saved_ladder(rootdir: Path, target: str | None = None) -> tuple[Ladder | None, list[str]]:
    """The ladder saved by the last run (for ``target``'s slug when given)."""
    store = results(rootdir)
    data = store.read()
    slug = target or data.get("last")
    saved = data.get("runs", {}).get(slug) if slug else None
    return (Ladder.from_json(saved) if saved else None), store.problems


def solution_diff(kata: Any, mine: Path, reference: Path, width: int = 80) -> str:
    """The learner's file against the reference as a unified diff of the code, wrapped to
    ``width``: docstrings (the stub's teaching text, which the reference does not repeat) are
    left out of both, so the lines that differ are code and the learner's own comments."""
    import difflib

    ours = _without_docstrings(mine.read_text(encoding="utf-8"))
    theirs = _without_docstrings(reference.read_text(encoding="utf-8"))
    lines = difflib.unified_diff(ours, theirs, f"yours: katas/{kata.path} (docstrings left out)",
                                 f"reference: solutions/{kata.path}", lineterm="")
    out = []
    for line in lines:  # a long line wraps under its own +/- mark, indented
        if len(line) <= width or line.startswith(("---", "+++", "@@")):
            out.append(line)
        else:
            out += [line[:1] + part for part in wrap_lines(line[1:], width - 1).split("\n")]
    return "\n".join(out)


def _without_docstrings(source: str) -> list[str]:
    """``source``'s lines less its module, class and function docstrings (as is when it does
    not parse: a diff of what is there beats none)."""
    import ast

    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return lines
    drop: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = body[0] if body else None
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            drop.update(range(first.lineno - 1, first.end_lineno))
    return [line for i, line in enumerate(lines) if i not in drop]


def solution_refusal(kata: Any, ladder: Ladder | None) -> str:
    """Why the reference stays hidden ("" once ``kata`` is ready in the saved results)."""
    row = next((r for r in ladder.rows if r.id == kata.id), None) if ladder else None
    if row is not None and row.status == READY:
        return ""
    status = f"is {row.status}" if row is not None else "has no saved result"
    return (f"{kata.id} {status} in your saved results, so its reference stays hidden: it "
            f"opens once your own version passes. Run `pytest katas/{kata.path}` first.")
