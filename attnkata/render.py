"""Rich renderables for the ladder report, and text/HTML/JSON output of them."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .ladder import FAILING, NOT_RUN, READY, Ladder
from .runner import LOCKED, NOT_STARTED, UNAVAILABLE

STYLE = {READY: "bold green", FAILING: "bold red", LOCKED: "yellow", NOT_STARTED: "dim",
         UNAVAILABLE: "magenta", NOT_RUN: "dim italic"}
MARK = {READY: "✔", FAILING: "✘", LOCKED: "🔒", NOT_STARTED: "·", UNAVAILABLE: "–", NOT_RUN: " "}


class LadderTable:
    """The ladder as a table sized to the console: narrow terminals drop the level
    titles and fold the feedback rather than crop the statuses."""

    def __init__(self, ladder: Ladder):
        self.ladder = ladder

    def __rich_console__(self, console: Any, options: Any) -> Iterable[Table]:
        yield ladder_table(self.ladder, options.max_width)


def ladder_table(ladder: Ladder, width: int = 120) -> Table:
    longest = max((len(r.id) for r in ladder.rows), default=4)
    narrow = width < 20 + longest + 14 + 30 + 13  # the wide layout's columns plus borders
    table = Table(title=f"attnkata ladder — target: {ladder.target}", title_justify="left",
                  show_lines=False, expand=False, padding=(0, 0 if narrow else 1))
    table.add_column("level", min_width=5, max_width=9 if narrow else 20)
    table.add_column("kata", no_wrap=True, min_width=longest)
    table.add_column("status", no_wrap=True, min_width=14)
    table.add_column("feedback", overflow="fold", ratio=1, min_width=10 if narrow else 30)
    for level, rows in ladder.by_level().items():
        done = sum(r.done for r in rows)
        title = "" if narrow else f" {ladder.levels.get(level, '')}"
        label = Text(f"{level}{title}\n{done}/{len(rows)} ready",
                     style="bold green" if done == len(rows) else "")
        for i, row in enumerate(rows):
            status = Text(f"{MARK[row.status]} {row.status}", style=STYLE[row.status])
            if row.stale:
                status.append(" (earlier run)", style="dim")
            if row.skipped and not row.done:
                status.append(" (skipped)", style="dim")
            feedback = Text()
            if row.misconception:
                feedback.append(f"looks like: {row.misconception}", style="bold")
                if row.detail:
                    feedback.append("\n")
            if row.status == NOT_STARTED and row.run.endswith(".py"):
                feedback.append(row.run, style="dim")  # where to start, not the stub's message
            else:
                feedback.append(row.detail[:160])
            table.add_row(label if i == 0 else "", row.id, status, feedback,
                          end_section=(i == len(rows) - 1))
    return table


def summary(ladder: Ladder) -> Text:
    text = Text()
    nxt = ladder.next_kata()
    if nxt is None:
        text.append("Every kata that can run here is ready. ", style="bold green")
    else:
        text.append("Next: ", style="bold")
        text.append(f"{nxt.id} (level {nxt.level}) — {_advice(nxt.status)}\n")
        text.append(f"      pytest {nxt.run or '-k ' + nxt.id}", style="cyan")
    cal = ladder.calibration
    if cal.get("answered"):
        text.append(f"\nPredictions: {cal['answered']}/{cal['asked']} answered, "
                    f"{cal['right_first_time']} right on the first try, {cal['revised']} revised, "
                    f"{cal['wrong_now']} still wrong.")
    elif cal.get("asked"):
        text.append(f"\nPredictions: none answered yet ({cal['asked']} asked). "
                    "Each kata file opens with a PREDICTIONS block: answer before you code.")
    for problem in ladder.problems:
        text.append(f"\n⚠ {problem}", style="bold yellow")
    return text


def _advice(status: str) -> str:
    return {
        NOT_STARTED: "open its file, answer PREDICTIONS, then replace the NotImplementedError",
        LOCKED: "answer its PREDICTIONS block to unlock the hidden tests",
        FAILING: "read the failure above; `attnkata hint <kata>` gives a hint",
        NOT_RUN: "it did not run this time",
    }.get(status, status)


def report_group(ladder: Ladder, extra_sections: Iterable[Any] = ()) -> Group:
    return Group(LadderTable(ladder), summary(ladder), *extra_sections)


def use_color(stream_isatty: bool) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream_isatty


def render(renderable: Any, *, color: bool, width: int = 100, html: Path | None = None) -> str:
    """Render to a string (ANSI when ``color``), and optionally record it as HTML."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, color_system="auto" if color else None,
                      width=width, record=html is not None, emoji=False, legacy_windows=False)
    console.print(renderable)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(console.export_html(inline_styles=True), encoding="utf-8")
    return buf.getvalue()


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
