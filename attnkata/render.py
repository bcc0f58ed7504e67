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


def solution_pointer(kata_id: str) -> str:
    return f"`attnkata solution {kata_id}` shows the reference beside yours"


def hint_pointer(kata_id: str) -> str:
    return f"`attnkata hint {kata_id}` for a hint"


class LadderTable:
    """The ladder as a table sized to the console: narrow terminals drop the level
    titles; where even then a word would be cut, each kata is stacked on its own lines."""

    def __init__(self, ladder: Ladder):
        self.ladder = ladder

    def __rich_console__(self, console: Any, options: Any) -> Iterable[Any]:
        yield Fitted(ladder_table(self.ladder, options.max_width), group=0, keys=(1, 2))


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


class Fitted:
    """A table as it is when it fits the console whole; else its rows stacked.

    "Fits" means every word of every cell (and of the headers) comes out in one piece
    and no line is cropped.  Otherwise each row is drawn as a block: the ``group``
    column as a heading when it changes, the ``keys`` columns on one line, every other
    non-empty column as ``header  value`` wrapped at spaces to the width."""

    def __init__(self, table: Table, group: int | None = None, keys: tuple[int, ...] = (0,)):
        self.table, self.group, self.keys = table, group, keys

    def __rich_console__(self, console: Any, options: Any) -> Iterable[Any]:
        width = options.max_width
        if self.fits(width):
            yield self.table
        else:
            yield from self.stacked(width)

    def fits(self, width: int) -> bool:
        buf = io.StringIO()
        Console(file=buf, width=width, no_color=True, color_system=None, emoji=False,
                legacy_windows=False).print(self.table)
        out = buf.getvalue()
        words = [w for col in self.table.columns for cell in (col.header, *col._cells)
                 for w in _plain(cell).split()]
        return all(w in out for w in words)

    def stacked(self, width: int) -> Iterable[Any]:
        table, cols = self.table, self.table.columns
        if table.title:
            yield table.title if isinstance(table.title, Text) else Text(str(table.title))
        last_group = None
        for r in range(table.row_count):
            cells = [col._cells[r] if r < len(col._cells) else "" for col in cols]
            if self.group is not None:
                head = _plain(cells[self.group]).strip()
                if head and head != last_group:
                    label = _plain(cols[self.group].header).strip()
                    heading = " · ".join(line.strip() for line in head.split("\n"))
                    if label and head.split()[0].isdigit():
                        heading = f"{label} {heading}"
                    heading = Text(heading, style="bold")
                    yield heading
                    last_group = head
            key = Text("  ")
            for i in self.keys:
                if _plain(cells[i]).strip():
                    key.append_text(cells[i] if isinstance(cells[i], Text) else Text(str(cells[i])))
                    key.append("  ")
            key.rstrip()
            yield key
            fields = Table.grid(padding=(0, 1))
            fields.add_column(no_wrap=True, style="dim")
            fields.add_column(overflow="fold")
            for i, col in enumerate(cols):
                if i in self.keys or i == self.group or not _plain(cells[i]).strip():
                    continue
                fields.add_row("   " + _plain(col.header).strip(), cells[i])
            if fields.row_count:
                yield fields


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
            if row.status in (NOT_STARTED, NOT_RUN) and row.init:
                feedback.append(init_pointer(row.init), style="dim")  # no file to open yet
            elif row.status == NOT_STARTED and row.run.endswith(".py"):
                feedback.append(row.run, style="dim")  # where to start, not the stub's message
            elif row.id in ladder.turned_ready:
                feedback.append(solution_pointer(row.id), style="cyan")
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
        if nxt.init and nxt.status in (NOT_STARTED, NOT_RUN):
            text.append(f"{nxt.id} (level {nxt.level}) — {init_pointer(nxt.init)}\n")
            text.append(f"      attnkata init {nxt.init}", style="cyan")
        else:
            text.append(f"{nxt.id} (level {nxt.level}) — {_advice(nxt.status, nxt.id)}\n")
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


def init_pointer(pack: str) -> str:
    """What a kata whose stub is not in katas/ yet asks of the learner."""
    return f"run `attnkata init {pack}` to copy its stub into katas/"


def _advice(status: str, kata_id: str) -> str:
    return {
        NOT_STARTED: "open its file, answer PREDICTIONS, then replace the NotImplementedError",
        LOCKED: "answer its PREDICTIONS block to unlock the hidden tests",
        FAILING: f"read its failure; {hint_pointer(kata_id)}",
        NOT_RUN: "it did not run this time",
    }.get(status, status)


def report_group(ladder: Ladder, extra_sections: Iterable[Any] = (),
                 focus: Iterable[str] | None = None) -> Group:
    """The whole ladder, or (``focus``: the katas a run selected) their feedback and one line."""
    if focus is not None:
        return Group(focused(ladder, focus), ladder_line(ladder), *_problems(ladder))
    return Group(LadderTable(ladder), summary(ladder),
                 *(Fitted(s) if isinstance(s, Table) else s for s in extra_sections))


def focused(ladder: Ladder, focus: Iterable[str]) -> Table:
    """One entry per selected kata: its status and what to do about it, wrapped, not cut."""
    chosen = set(focus)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for row in (r for r in ladder.rows if r.id in chosen):
        body = Text(row.id, style="bold")
        body.append(f" {row.status}", style=STYLE[row.status])
        said = _row_feedback(row, ladder)
        if said:
            body.append(f" — {said}")
        grid.add_row(Text(MARK[row.status], style=STYLE[row.status]), body)
    return grid


def _row_feedback(row: Any, ladder: Ladder) -> str:
    if row.status == FAILING:  # what went wrong is in its failures, just above
        return f"see above; {hint_pointer(row.id)}"
    if row.status == READY:
        return solution_pointer(row.id) if row.id in ladder.turned_ready else ""
    if row.status in (NOT_STARTED, NOT_RUN) and row.init:
        return init_pointer(row.init)
    if row.status == NOT_STARTED and row.run.endswith(".py"):
        return f"start in {row.run}"
    return row.detail


def ladder_line(ladder: Ladder) -> Text:
    """``12/33 ready · level 2 · next: decode_step · attnkata report for the ladder``."""
    ready = sum(r.done for r in ladder.rows)
    nxt = ladder.next_kata()
    parts = [f"{ready}/{len(ladder.rows)} ready"]
    parts += [f"level {nxt.level}", f"next: {nxt.id}"] if nxt else ["every kata that runs here is ready"]
    parts.append("attnkata report for the ladder")
    return Text(" · ".join(parts), style="bold")


def _problems(ladder: Ladder) -> list[Text]:
    return [Text(f"⚠ {p}", style="bold yellow") for p in ladder.problems]


NAMED = 'This looks like the misconception "'


def fold_repeat(text: str, seen: set[str]) -> str:
    """A misconception named and explained once in a run is only pointed at after that.

    A later failure of the same kata with the same misconception keeps every line before
    the name (which check, which call, its expected and actual values), says ``Same
    misconception as above: "name" [id].`` and keeps what follows the explanation (notes
    particular to that check); the explanation and the "also consistent with" lines are
    in the first failure.
    ``seen`` holds the ``kata [id]`` keys already explained (updated here)."""
    lines = text.split("\n")
    kata = lines[0][1:].split(" ·", 1)[0] if lines and lines[0].startswith("[") else ""
    for i, line in enumerate(lines):
        end = line.find("]", len(NAMED)) if line.startswith(NAMED) else -1
        if end < 0:
            continue
        key = f"{kata} {line[line.rfind('[', 0, end):end + 1]}"
        if key not in seen:
            seen.add(key)
            return text
        j = i + 1
        while j < len(lines) and lines[j].startswith("  "):  # explanation, "(also ...)" lines
            j += 1
        named = line[len(NAMED) - 1:end + 1]
        head = lines[:i]
        return "\n".join(head + [f"Same misconception as above: {named}."] + lines[j:])
    return text


def wrap_path(label: str, path: str, width: int) -> str:
    """``label path`` on one line when it fits; else the path on lines of its own, broken
    only after a ``/`` (never inside a name), continuation lines indented by two."""
    if len(label) + 1 + len(path) <= width:
        return f"{label} {path}"
    parts = path.split("/")
    lines, line = [label], ""
    for i, part in enumerate(parts):
        piece = part + ("/" if i < len(parts) - 1 else "")
        if line.strip() and len(line) + len(piece) > width:
            lines.append(line)
            line = "  " + piece
        else:
            line += piece
    lines.append(line)
    return "\n".join(lines)


def wrap_lines(text: str, width: int) -> str:
    """Wrap each line longer than ``width`` at spaces, keeping its indent; a traceback's
    ``File`` line and a source line with a caret under it are left whole."""
    import textwrap

    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        below = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if len(line) <= width or below[:1] in ("^", "~") or line.lstrip().startswith('File "'):
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, width=width, subsequent_indent=indent + "  ",
                             break_long_words=False, break_on_hyphens=False) or [line]
    return "\n".join(out)


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
