"""Readiness views for instructors: is each kata complete, and how far has a class got?

``attnkata readiness`` — per kata: stub, reference, hidden tests, predictions,
misconceptions, claims with sources, hints and (for kernels) a benchmark, each present
or missing, with the next repair named.

``attnkata class A.json B.json …`` — ladder JSON exports (``pytest
--attnkata-target=STUDENT_DIR --attnkata-json=STUDENT.json``) side by side: the
highest level each learner has fully reached, katas ready, and the misconceptions
the class hits most.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from attnkata import hookimpl

PARTS = ("stub", "reference", "hidden tests", "predictions", "misconceptions", "claims", "hints",
         "benchmark")


def kata_parts(kata: Any, registry: Any) -> dict[str, str]:
    """Each part of one kata: "" when present, else the repair to make."""
    pack = registry.pack_of(kata)
    parts = {
        "stub": "" if (pack.katas_dir / kata.path).exists() else f"write {pack.katas_dir / kata.path}",
        "reference": "" if (pack.solutions_dir / kata.path).exists() else f"write {pack.solutions_dir / kata.path}",
        "hidden tests": "" if len(kata.checks) >= 2 else "add at least two checks",
        "predictions": "" if kata.predictions else "add predict-first questions",
        "misconceptions": "" if len(kata.misconceptions) >= 3 else
                          f"add misconceptions ({len(kata.misconceptions)}/3)",
        "claims": "" if kata.claims and all(c.source for c in kata.claims) else "add a claim with a source id",
        "hints": "" if kata.hints else "add progressive hints",
    }
    if kata.bench is not None or "triton" in kata.requires:
        parts["benchmark"] = "" if kata.bench is not None else "declare a benchmark (Kata.bench)"
    return parts


def readiness_table(registry: Any) -> tuple[Table, int]:
    table = Table(title="attnkata readiness — is each kata complete?", title_justify="left")
    table.add_column("kata")
    for part in PARTS:
        table.add_column(part, justify="center")
    table.add_column("next repair", overflow="fold")
    incomplete = 0
    for kata in registry.katas:
        got = kata_parts(kata, registry)
        repairs = [f"{part}: {fix}" for part, fix in got.items() if fix]
        incomplete += bool(repairs)
        cells = [Text("n/a", style="dim") if part not in got else
                 Text("✔", style="green") if not got[part] else Text("✘", style="bold red") for part in PARTS]
        table.add_row(kata.id, *cells, repairs[0] if repairs else "")
    return table, incomplete


def reached(ladder: dict) -> int:
    """The highest level L such that every level up to L is ready (-1: none)."""
    ready = set(ladder.get("levels_ready", []))
    best = -1
    for level in sorted(int(k) for k in ladder.get("levels", {})):
        if level not in ready:
            break
        best = level
    return best


def class_tables(ladders: dict[str, dict]) -> list[Table]:
    people = Table(title="Class readiness", title_justify="left")
    for col in ("learner", "reached level", "katas ready", "failing (misconception)", "next"):
        people.add_column(col, overflow="fold")
    mistakes: Counter[str] = Counter()
    for name, ladder in ladders.items():
        katas = ladder.get("katas", [])
        ready = sum(k["status"] == "ready" for k in katas)
        failing = [f"{k['id']} ({k['misconception']})" if k.get("misconception") else k["id"]
                   for k in katas if k["status"] == "failing"]
        mistakes.update(k["misconception"] for k in katas if k.get("misconception"))
        level = reached(ladder)
        people.add_row(name, "none yet" if level < 0 else str(level), f"{ready}/{len(katas)}",
                       ", ".join(failing) or "—", ladder.get("next") or "done")
    common = Table(title="Misconceptions the class hits most", title_justify="left")
    common.add_column("misconception")
    common.add_column("learners", justify="right")
    for name, count in mistakes.most_common(10):
        common.add_row(name, str(count))
    return [people, common] if mistakes else [people]


def cmd_readiness(args: argparse.Namespace) -> int:
    from attnkata.cli import print_renderable, say_problems
    from attnkata.manager import load_registry

    _, registry = load_registry()
    table, incomplete = readiness_table(registry)
    print_renderable(table, args)
    print(f"{len(registry.katas) - incomplete} of {len(registry.katas)} katas complete"
          + (f"; NOT the whole course: {len(registry.problems)} plugin problem(s), named on stderr."
             if registry.problems else "."))
    say_problems(registry.problems, args)
    print_notes(args)
    return 1 if incomplete or registry.problems else 0


def print_notes(args: argparse.Namespace) -> None:
    """Open notes (``attnkata note``) per kata, from the course's ``.attnkata/notes/``."""
    import textwrap

    from attnkata.cli import print_renderable
    from attnkata.notes import notes_dir, open_notes

    per_kata, per_kind, problems = open_notes(args.root)
    if not per_kata:
        print(f"No open notes in {notes_dir(args.root)}.")
    else:
        table = Table(title=f"Open notes per kata ({notes_dir(args.root)})", title_justify="left")
        for col in ("kata", "open notes", "kinds"):
            table.add_column(col, overflow="fold")
        for kata, count in per_kata.most_common():
            kinds = ", ".join(f"{kind} {n}" for (k, kind), n in sorted(per_kind.items()) if k == kata)
            table.add_row(kata, str(count), kinds)
        print_renderable(table, args)
    for problem in problems:
        print(textwrap.fill(f"attnkata: ⚠ note {problem}", width=80), file=sys.stderr)


def cmd_class(args: argparse.Namespace) -> int:
    from attnkata.cli import print_renderable

    ladders, unreadable = {}, []
    for path in args.results:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("schema") != "attnkata.ladder/1":
                raise ValueError("not an attnkata ladder export")
        except (OSError, ValueError) as exc:
            unreadable.append(f"{path}: {exc}")
            continue
        ladders[Path(path).stem] = data
    if not ladders:
        print("No ladder exports to read. Make one per learner with: "
              "pytest --attnkata-target=THEIR_DIR --attnkata-json=NAME.json")
        return 1
    for table in class_tables(ladders):
        print_renderable(table, args)
    if unreadable:  # said last and loudly: a missing learner must not pass unnoticed
        print(f"\nattnkata class: {len(unreadable)} export(s) could not be read, so those "
              f"learners are NOT in the tables above:", file=sys.stderr)
        for line in unreadable:
            print(f"  ✗ {line}", file=sys.stderr)
        return 1
    return 0


@hookimpl
def attnkata_cli_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("readiness", help="instructors: which parts of each kata exist")
    p.set_defaults(func=cmd_readiness)
    p = subparsers.add_parser("class", help="instructors: learners' ladder exports side by side")
    p.add_argument("results", nargs="+", help="ladder JSON files (pytest --attnkata-json=...)")
    p.set_defaults(func=cmd_class)
