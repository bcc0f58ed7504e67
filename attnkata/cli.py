"""The ``attnkata`` command: report, selfcheck, doctor, hint, list, init — and plugin commands.

Every subcommand builds the same plugin manager and registry as the pytest plugin.
Plugins add subcommands through the ``attnkata_cli_commands`` hook.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from rich.table import Table
from rich.text import Text

from .hardware import ensure_triton_mode

ensure_triton_mode()  # before any kata or plugin imports triton


def find_root(start: Path | None = None) -> Path:
    """The checkout a learner works in: the nearest course (``[tool.attnkata]`` in its
    pyproject.toml), else the nearest folder with a ``katas/`` or ``.attnkata/``."""
    from .state import find_course

    here = (start or Path.cwd()).resolve()
    course = find_course(here)
    if course is not None:
        return course
    for folder in (here, *here.parents):
        if (folder / "katas").is_dir() or (folder / ".attnkata").is_dir():
            return folder
    return here


def warn(text: str, width: int = 80) -> None:
    """One warning on stderr, wrapped to ``width`` columns."""
    print(textwrap.fill(f"attnkata: ⚠ {text}", width=width, subsequent_indent="    ",
                        break_long_words=False, break_on_hyphens=False), file=sys.stderr)


def outside_course(args) -> bool:
    """Say so (and return True) when saving state here would litter a non-course folder."""
    from .state import is_course

    if is_course(args.root) or os.environ.get("ATTNKATA_STATE_DIR"):
        return False
    print(textwrap.fill(
        f"attnkata: {args.root} is not an attnkata course (its pyproject.toml has no "
        f"[tool.attnkata] table), so there is nowhere to keep your progress. Run this in "
        f"your course folder, or pass --root COURSE.", width=min(args.width, 80)), file=sys.stderr)
    return True


def not_saved(store, args) -> None:
    for problem in store.problems:
        warn(problem, min(args.width, 80))


def say_problems(problems: Sequence, args) -> bool:
    """Name every plugin problem on stderr (a pack that did not load hides its katas).

    :returns: whether a plugin did not load at all, so a listing can exit non-zero.
    """
    if not problems:
        return False
    print(textwrap.fill(f"attnkata: {len(problems)} plugin problem(s): the katas of a pack that "
                        f"failed are missing or changed here.", width=min(args.width, 100),
                        break_long_words=False, break_on_hyphens=False), file=sys.stderr)
    for problem in problems:
        print(textwrap.fill(f"  ✘ {problem}", width=min(args.width, 100), subsequent_indent="    ",
                            break_long_words=False, break_on_hyphens=False), file=sys.stderr)
    return any(getattr(p, "not_loaded", True) for p in problems)


def print_renderable(renderable, args) -> None:
    """Print a rich renderable to stdout: colour only on a terminal without NO_COLOR.

    A bare table is drawn whole when every word fits the width, else row by row
    (render.Fitted): never a word cut in two."""
    from .render import Fitted, render, use_color

    if isinstance(renderable, Table):
        renderable = Fitted(renderable)
    sys.stdout.write(render(renderable, color=use_color(sys.stdout.isatty()), width=args.width))


def cmd_report(args, pm, registry) -> int:
    from .report import add_plugin_claims, export, saved_ladder

    ladder, problems = saved_ladder(args.root, args.target)
    for p in problems:
        print(f"attnkata: {p}", file=sys.stderr)
    if ladder is None:
        print("No saved results yet: run `pytest` first (results are saved at the end of every run).")
        return 1
    from .render import use_color

    from .state import ledger

    store = ledger(args.root)
    ladder.mark_skipped(store.read().get("targets", {}).get(args.target or "katas", {}))
    ladder.problems += [p for p in store.problems if p not in ladder.problems]
    add_plugin_claims(pm, ladder, args.root)
    text = export(pm, ladder, args.root, args.json, args.html, color=use_color(sys.stdout.isatty()),
                  width=args.width)
    sys.stdout.write(text)
    return 0


def cmd_selfcheck(args, pm, registry) -> int:
    from .selfcheck import NOTE, check_kata, missing_files, summary

    katas = [k for k in registry.katas if (not args.katas or k.id in args.katas)
             and (args.level is None or k.level == args.level)]
    unknown = set(args.katas) - {k.id for k in registry.katas}
    if unknown:
        print(f"unknown kata(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        say_problems(registry.problems, args)
        return 2
    table = Table(title="attnkata selfcheck — can every kata's tests fail?", title_justify="left")
    for col in ("kata", "reference", "stub", "fakes rejected", "misconceptions named",
                "caught, by repro, by probes", "details" if args.verbose else "problems"):
        table.add_column(col, overflow="fold")
    verdicts = []
    for kata in katas:
        mine = check_kata(kata, registry, max_examples=args.examples)
        verdicts += mine

        def tally(prefix: str) -> Text:
            group = [v for v in mine if v.subject.startswith(prefix)]
            good = sum(v.ok for v in group)
            return Text(f"{good}/{len(group)}", style="green" if good == len(group) else "bold red")

        problems = [v.detail if v.subject == NOTE else f"{v.subject}: {v.detail}" for v in mine
                    if not v.ok or v.subject == NOTE or args.verbose]
        row = summary(mine).get(kata.id)
        table.add_row(kata.id, tally("reference"), tally("stub"), tally("fake:"),
                      tally("misconception:"),
                      f"{row['caught']}, {row['reproduction']}, {row['probes']}" if row else "-",
                      "\n".join(problems))
    counted = [v for v in verdicts if v.subject != NOTE]
    bad = [v for v in counted if not v.ok]
    print_renderable(table, args)
    missing = missing_files(registry, katas)
    for pack, files in missing.items():
        print(textwrap.fill(
            f"attnkata: ✘ pack {pack!r} (plugin {registry.plugins.get(pack, pack)!r}) lacks files its "
            f"katas need: {'; '.join(files)}. Installed without its package data? A pack ships its "
            f"katas/ and solutions/ folders as package data: see 'Shipping a pack' in "
            f"docs/AUTHORING.md.", width=min(args.width, 100), subsequent_indent="    "), file=sys.stderr)
    say_problems(registry.problems, args)
    total = summary(verdicts)["ladder"]
    if total["misconceptions"]:
        print(textwrap.fill(
            f"misconceptions: {total['misconceptions']}, caught {total['caught']}, named "
            f"{total['named']} ({100 * total['named'] / total['misconceptions']:.0f}%): "
            f"{total['reproduction']} by the checks (reproduction), {total['probes']} by "
            f"their probes", width=min(args.width, 100), subsequent_indent="    "))
    print(textwrap.fill(
        f"{len(counted) - len(bad)} passed, {len(bad)} failed (selfcheck of {len(katas)} "
        f"kata{'' if len(katas) == 1 else 's'}: reference, stub, fakes, misconceptions)",
        width=min(args.width, 100), subsequent_indent="    "))
    if args.json:
        Path(args.json).write_text(json.dumps([v.__dict__ for v in verdicts], indent=1))
    return 1 if bad or registry.problems else 0


def cmd_doctor(args, pm, registry) -> int:
    from .doctor import doctor_report, plugin_rows
    from .render import Fitted
    from .manager import call_hook

    problems = list(registry.problems)
    answers = call_hook(pm, "attnkata_doctor_checks", problems, plugin_rows)
    extra = [row for _, rows in answers for row in rows]
    sections, healthy = doctor_report(registry, extra, problems)
    for title, rows in sections:
        table = Table(title=title, title_justify="left")
        for col in ("", "what", "found", "needed for", "what to do"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(Text("✔" if r["ok"] else "✘", style="green" if r["ok"] else "bold red"),
                          r["name"], str(r["found"]), r["needed_for"], r["fix"])
        print_renderable(Fitted(table, keys=(0, 1)), args)
    print("All good." if healthy else "Some rows need attention: see 'what to do'.")
    return 0 if healthy else 1


def _wrap(text: str, args, keep: tuple[str, ...] = ()) -> str:
    """One paragraph wrapped to the output width, never a word, or a phrase in ``keep``
    (a command to type), cut in two."""
    for phrase in keep:
        text = text.replace(phrase, phrase.replace(" ", "\xa0"))
    return textwrap.fill(text, width=args.width, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False).replace("\xa0", " ")


def cmd_hint(args, pm, registry) -> int:
    from .state import ledger

    try:
        kata = registry.get(args.kata)
    except StopIteration:
        print(f"no kata named {args.kata!r}; `attnkata list` shows them", file=sys.stderr)
        return 2
    if not kata.hints:
        print(f"{kata.id} has no hints.")
        return 0
    if outside_course(args):
        return 2
    store, shown = ledger(args.root), 0

    def change(data: dict) -> None:
        nonlocal shown
        entry = data.setdefault("hints", {})
        shown = entry[kata.id] = min(entry.get(kata.id, 0) + 1, len(kata.hints))

    store.update(change)
    not_saved(store, args)
    upto = len(kata.hints) if args.all else shown
    for i, hint in enumerate(kata.hints[:upto], 1):
        print(_wrap(f"Hint {i}/{len(kata.hints)} for {kata.id}: {hint}", args))
    if upto < len(kata.hints):
        print(f"(run `attnkata hint {kata.id}` again for the next one)")
    return 0


def cmd_solution(args, pm, registry) -> int:
    """The reference beside the learner's code, once the kata is ready in the saved results."""
    import shutil

    from .report import saved_ladder, solution_diff, solution_refusal

    try:
        kata = registry.get(args.kata)
    except StopIteration:
        print(f"no kata named {args.kata!r}; `attnkata list` shows them", file=sys.stderr)
        return 2
    width = min(args.width, shutil.get_terminal_size().columns)
    ladder, _ = saved_ladder(args.root, "katas")
    refusal = solution_refusal(kata, ladder)
    if refusal:
        print(textwrap.fill(refusal, width=width))
        return 1
    mine = args.root / "katas" / kata.path
    reference = registry.pack_of(kata).solutions_dir / kata.path
    diff = solution_diff(kata, mine, reference, width) if mine.exists() else ""
    print(diff or f"{kata.id}: your katas/{kata.path} is the reference, line for line.")
    return 0


def cmd_skip(args, pm, registry) -> int:
    from .state import ledger

    unknown = [k for k in args.katas if k not in {kata.id for kata in registry.katas}]
    if unknown:
        print(f"no kata named {', '.join(unknown)}; `attnkata list` shows them", file=sys.stderr)
        return 2
    if outside_course(args):
        return 2

    def change(data: dict) -> None:
        entries = data.setdefault("targets", {}).setdefault("katas", {})
        for kata in args.katas:
            entries.setdefault(kata, {})["skipped"] = not args.undo

    store = ledger(args.root)
    store.update(change)
    not_saved(store, args)
    if store.problems and any(p.startswith("progress not saved") for p in store.problems):
        return 1
    verb = "back on the ladder" if args.undo else "skipped: the report's Next moves past it"
    for kata in args.katas:
        undo = f"attnkata skip --undo {kata}"
        print(_wrap(f"{kata}: {verb}" + ("" if args.undo else f" (undo: {undo})"), args, (undo,)))
    return 0


def cmd_list(args, pm, registry) -> int:
    from .manager import not_copied
    from .render import Fitted

    waiting = not_copied(registry, args.root / "katas")
    uncopied = {k.id for katas in waiting.values() for k in katas}
    table = Table(title="attnkata katas", title_justify="left")
    for col in ("level", "kata", "pack", "file", "title"):
        table.add_column(col, overflow="fold")
    for kata in registry.katas:
        where = f"katas/{kata.path}"
        if kata.id in uncopied:
            where += f" (not copied yet: attnkata init {kata.pack})"
        table.add_row(str(kata.level), kata.id, kata.pack, where, kata.title)
    print_renderable(Fitted(table, group=0, keys=(1,)), args)
    for pack, katas in waiting.items():
        print(textwrap.fill(f"{len(katas)} kata(s) of pack {pack!r} have no stub in katas/ yet: "
                            f"`attnkata init {pack}` copies them there.", width=args.width,
                            break_long_words=False, break_on_hyphens=False))
    return 1 if say_problems(registry.problems, args) else 0


def cmd_init(args, pm, registry) -> int:
    from .manager import copy_stubs, pack_files

    katas_dir = args.root / "katas"
    if args.list or not args.pack:
        table = Table(title="attnkata packs — `attnkata init PACK` copies a pack's stubs into katas/",
                      title_justify="left")
        for col in ("pack", "plugin", "katas", "levels", "stubs in katas/"):
            table.add_column(col, overflow="fold")
        for name, pack in registry.packs.items():
            mine = [k for k in registry.katas if k.pack == name]
            here = sum((katas_dir / k.path).exists() for k in mine)
            table.add_row(name, registry.plugins.get(name, ""), str(len(mine)),
                          ", ".join(str(n) for n in sorted({k.level for k in mine})), f"{here}/{len(mine)}")
        print_renderable(table, args)
        return 1 if say_problems(registry.problems, args) else 0
    pack = registry.packs.get(args.pack)
    if pack is None:
        print(f"no pack named {args.pack!r}; packs: {', '.join(registry.packs)} "
              f"(`attnkata init --list`)", file=sys.stderr)
        say_problems(registry.problems, args)
        return 2
    if outside_course(args):
        return 2
    if Path(pack.katas_dir).resolve() == katas_dir.resolve():
        print(f"pack {pack.name!r} keeps its stubs in {katas_dir} already: nothing to copy.")
        return 0
    files = pack_files(pack)
    missing = [k.path for k in registry.katas
               if k.pack == pack.name and not (Path(pack.katas_dir) / k.path).exists()]
    copied, replaced, kept, same = copy_stubs(pack, files, katas_dir, force=args.force)
    for verb, group in (("copied", copied), ("overwrote (your version is gone)", replaced),
                        ("kept yours (differs from the pack's; --force overwrites it)", kept)):
        for rel in group:
            print(f"{verb}: katas/{rel.as_posix()}")
    if files:
        print(f"pack {pack.name!r}: {len(copied)} copied, {len(replaced)} overwritten, {len(kept)} kept, "
              f"{len(same)} already identical. Run them with `pytest katas/<path>` or `pytest -k KATA`.")
    if missing:
        print(f"attnkata: ✘ pack {pack.name!r} ships no stub for: {', '.join(missing)} (looked in "
              f"{pack.katas_dir}); installed without its package data?", file=sys.stderr)
        return 1
    return 0


def plugin_commands(pm, sub, problems: list) -> None:
    """Let each plugin add its subcommands; each new command remembers its plugin."""
    from .manager import call_one, implementations

    for impl in implementations(pm, "attnkata_cli_commands"):
        before = set(sub.choices)
        call_one(impl, "attnkata_cli_commands", problems, subparsers=sub)
        for name in set(sub.choices) - before:
            sub.choices[name].set_defaults(plugin=impl.plugin_name)


def build_parser(pm, problems: list | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnkata", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="the learner's checkout (default: nearest folder with katas/)")
    parser.add_argument("--width", type=int, default=None,
                        help="output width in columns (default: the terminal's; COLUMNS wins)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("report", help="print the ladder report again from saved results")
    p.add_argument("--target", default=None, help="which target's results (default: the last run's)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--html", metavar="PATH", help="also write the report as HTML")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("selfcheck", help="prove every kata's hidden tests reject fakes and misconceptions")
    p.add_argument("katas", nargs="*", help="kata ids (default: all)")
    p.add_argument("--level", type=int, default=None)
    p.add_argument("--examples", type=int, default=15, help="generated examples per property check")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("-v", "--verbose", action="store_true", help="list passing verdicts too")
    p.set_defaults(func=cmd_selfcheck)

    p = sub.add_parser("doctor", help="check versions against the tested ranges; what each level needs")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("hint", help="show the next hint for a kata")
    p.add_argument("kata")
    p.add_argument("--all", action="store_true", help="show every hint")
    p.set_defaults(func=cmd_hint)

    p = sub.add_parser("solution", help="once a kata is ready: your code against the reference "
                                        "(a diff, docstrings left out)")
    p.add_argument("kata")
    p.set_defaults(func=cmd_solution)

    p = sub.add_parser("skip", help="come back to a kata later: the report's Next moves past it")
    p.add_argument("katas", nargs="+")
    p.add_argument("--undo", action="store_true", help="put the katas back on the ladder")
    p.set_defaults(func=cmd_skip)

    p = sub.add_parser("list", help="list the katas in ladder order")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("init", help="copy a pack's stubs into katas/ (never over your files)")
    p.add_argument("pack", nargs="?", help="the pack's name (see --list)")
    p.add_argument("--list", action="store_true", help="list the packs and how many stubs you have")
    p.add_argument("--force", action="store_true", help="overwrite your files that differ (each is named)")
    p.set_defaults(func=cmd_init)

    from .grade import add_parser as add_grade

    add_grade(sub)

    from .ask import add_parser as add_ask
    from .notes import add_parser as add_note

    add_ask(sub)
    add_note(sub)

    from .watch import add_parser as add_watch

    add_watch(sub)

    from .show import add_parser as add_show

    add_show(sub)

    plugin_commands(pm, sub, problems if problems is not None else [])
    return parser


def run_plugin_command(args) -> int:
    """A plugin's command: its failure is named and ends the command, not the program."""
    plugin, func = args.plugin, getattr(args, "func", None)
    if func is None:
        warn(f"the {args.command!r} command is broken: plugin {plugin!r} failed while adding it")
        return 1
    try:
        return int(func(args) or 0)
    except (Exception, SystemExit) as exc:
        if isinstance(exc, SystemExit) and isinstance(exc.code, (int, type(None))):
            return int(exc.code or 0)
        warn(f"the {args.command!r} command of plugin {plugin!r} failed: "
             f"{type(exc).__name__}: {exc}", min(args.width, 80))
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    from .manager import load_registry

    pm, registry = load_registry()
    problems: list = []
    parser = build_parser(pm, problems)
    for problem in problems:
        warn(str(problem))
    registry.problems += problems
    args = parser.parse_args(argv)
    args.root = find_root(args.root)
    if args.width is None:  # COLUMNS, else the real terminal, else 80 (piped output)
        args.width = max(shutil.get_terminal_size((80, 24)).columns, 30)
    try:
        if getattr(args, "plugin", None) is not None:
            return run_plugin_command(args)
        return int(args.func(args, pm, registry) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
