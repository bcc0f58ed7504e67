"""The gradebook: ``grades.csv``, Gradescope ``results.json`` and ``class.html``,
built from the per-student result files ``attnkata grade`` writes.

Points come from a weights table (TOML, ``[weights]`` with ``default`` and one entry
per kata id; every kata is worth 1 otherwise): a kata earns its weight when it is
ready.  Flags are what an instructor should look at: copying (between students, or of
the references), a cheat attempt refused by the worker's sandbox, a submission that
timed out or could not be graded, and katas ready without their predictions answered.
"""

from __future__ import annotations

import csv
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grade import load_result, write_atomic


@dataclass
class Weights:
    default: float = 1.0
    per_kata: dict[str, float] = field(default_factory=dict)

    def of(self, kata: str) -> float:
        return float(self.per_kata.get(kata, self.default))

    @classmethod
    def read(cls, path: Path | None) -> "Weights":
        if path is None:
            return cls()
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        table = data.get("weights", data)
        if not isinstance(table, dict):
            raise ValueError(f"{path}: expected a [weights] table")
        default = float(table.get("default", 1.0))
        return cls(default, {k: float(v) for k, v in table.items() if k != "default"})


@dataclass
class Row:
    student: str
    status: str
    level: str
    ready: int
    total: int
    points: float
    max_points: float
    answered: int
    asked: int
    flags: list[str]
    seconds: float
    extra: dict[str, str] = field(default_factory=dict)
    katas: dict[str, str] = field(default_factory=dict)          # id -> status
    misconceptions: list[str] = field(default_factory=list)


def kata_rows(result: dict) -> list[dict]:
    """The katas this grading covered: all of them, or those under ``--only`` paths."""
    rows = list((result.get("ladder") or {}).get("katas", []))
    chosen = [str(p).rstrip("/") for p in result.get("selection") or ()]
    if not chosen:
        return rows
    return [k for k in rows if any(str(k.get("run", "")) == c or str(k.get("run", "")).startswith(c + "/")
                                   for c in chosen)]


def level_reached(result: dict) -> str:
    """The highest level whose katas, and every level's below it, are all ready."""
    katas = kata_rows(result)
    levels = sorted({k["level"] for k in katas})
    reached = None
    for level in levels:
        if all(k["status"] == "ready" for k in katas if k["level"] == level):
            reached = level
        else:
            break
    return "-" if reached is None else str(reached)


def flags_of(result: dict, copied: dict[str, list[str]]) -> list[str]:
    flags = []
    if result.get("status") != "graded":
        flags.append(f"{result.get('status')}: {result.get('reason', '')}".strip())
    for k in kata_rows(result):
        detail = str(k.get("detail") or "")
        if detail.startswith("refused:"):
            flags.append(f"{k['id']}: {detail.splitlines()[0]}")
        if k.get("status") == "ready" and k.get("checks", {}).get("predictions") not in (
                None, "passed"):
            flags.append(f"{k['id']}: ready without its predictions answered")
    flags += copied.get(result.get("student", ""), [])
    return flags


def graded_predictions(out: Path, name: str, result: dict, katas: list[dict],
                       predictions: dict[str, list[str]]) -> tuple[int, int] | None:
    """(answered, asked) over the graded katas only (``--only``), from the student's ledger;
    None when the grading covered the whole course (the ladder's own count holds)."""
    if not result.get("selection"):
        return None
    path = Path(out) / "state" / name / "ledger.json"
    try:
        targets = json.loads(path.read_text(encoding="utf-8")).get("targets", {})
    except (OSError, ValueError, AttributeError):
        targets = {}
    seen: dict[str, dict] = {}
    for entries in (targets.values() if isinstance(targets, dict) else ()):
        for kata_id, entry in (entries.items() if isinstance(entries, dict) else ()):
            if isinstance(entry, dict) and isinstance(entry.get("predictions"), dict):
                seen.setdefault(kata_id, {}).update(entry["predictions"])
    ids = [k["id"] for k in katas]
    asked = sum(len(predictions.get(i, ())) for i in ids)
    answered = sum(bool(seen.get(i, {}).get(p)) for i in ids for p in predictions.get(i, ()))
    return answered, asked


def build(out: Path, names: list[str], weights: Weights, copied: dict[str, list[str]],
          roster: dict[str, dict] | None = None, board: list | None = None,
          predictions: dict[str, list[str]] | None = None) -> list[Row]:
    notes = {e.student: e.note for e in board or [] if e.note.startswith("timing void")}
    copied = {k: list(v) for k, v in copied.items()}
    for student, note in notes.items():  # a voided timing is worth a look
        copied.setdefault(student, []).append(note)
    rows = []
    for name in names:
        result = load_result(out, name)
        extra = dict((roster or {}).get(name, {}))
        if result is None:
            rows.append(Row(name, "no result", "-", 0, 0, 0.0, 0.0, 0, 0,
                            ["no result file: the grader did not finish this submission"],
                            0.0, extra))
            continue
        katas = kata_rows(result)
        ladder = result.get("ladder") or {}
        cal = ladder.get("calibration", {})
        only = graded_predictions(out, name, result, katas, predictions) if predictions else None
        if only is not None:  # --only: count the graded katas' predictions, not the course's
            cal = {**cal, "answered": only[0], "asked": only[1]}
        rows.append(Row(
            student=name, status=result["status"], level=level_reached(result),
            ready=sum(k["status"] == "ready" for k in katas), total=len(katas),
            points=sum(weights.of(k["id"]) for k in katas if k["status"] == "ready"),
            max_points=sum(weights.of(k["id"]) for k in katas),
            answered=int(cal.get("answered", 0)), asked=int(cal.get("asked", 0)),
            flags=flags_of(result, copied), seconds=float(result.get("seconds", 0.0)),
            extra=extra, katas={k["id"]: k["status"] for k in katas},
            misconceptions=[k["misconception"] for k in katas if k.get("misconception")]))
    for name, info in (roster or {}).items():
        if name not in names:
            rows.append(Row(name, "no submission", "-", 0, 0, 0.0, 0.0, 0, 0,
                            ["on the roster, but no submission folder"], 0.0, dict(info)))
    return rows


def write_csv(path: Path, rows: list[Row], board: list | None = None) -> None:
    extra_cols = sorted({k for r in rows for k in r.extra} - {"folder"})
    ranks = _board(board)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", *extra_cols, "status", "level_reached", "katas_ready",
                    "katas_total", "points", "max_points", "predictions_answered",
                    "predictions_asked", "flags", "seconds"]
                   + (["bench_rank", "bench_figure", "bench_pct_peak", "bench_vs_reference",
                       "bench_p20_p80", "bench_note"] if board is not None else []))
        for r in rows:
            line = [r.student, *[r.extra.get(c, "") for c in extra_cols], r.status, r.level,
                    r.ready, r.total, f"{r.points:g}", f"{r.max_points:g}", r.answered,
                    r.asked, " | ".join(r.flags), f"{r.seconds:.1f}"]
            if board is not None:
                rank, e = ranks.get(r.student, (None, None))
                line += _board_cells(rank, e)
            w.writerow(line)


def _board(board: list | None) -> dict:
    from .leaderboard import ranked

    return {e.student: (rank, e) for rank, e in ranked(board or [])}


def _board_cells(rank: Any, e: Any) -> list[str]:
    if e is None:
        return ["", "", "", "", "", "not benched (not graded cleanly)"]
    figure = f"{e.metric:.3g} {e.unit}" if e.timed else ""
    return [str(rank or ""), figure, f"{e.pct_peak:.0f}%" if e.pct_peak else "",
            f"{e.vs_reference:.2f}×" if e.vs_reference else "", e.p20_p80, e.note]


def gradescope(result: dict | None, weights: Weights) -> dict:
    """One submission in Gradescope's autograder ``results.json`` format."""
    if result is None:
        return {"score": 0, "output": "attnkata could not grade this submission", "tests": []}
    tests = []
    for k in kata_rows(result):
        w = weights.of(k["id"])
        tests.append({"name": f"level {k['level']} · {k['id']}", "max_score": w,
                      "score": w if k["status"] == "ready" else 0,
                      "status": "passed" if k["status"] == "ready" else "failed",
                      "output": f"{k['status']}: {k.get('detail') or ''}".strip()[:4000]})
    score = sum(t["score"] for t in tests)
    output = result.get("reason") or f"{sum(t['status'] == 'passed' for t in tests)} katas ready"
    return {"score": score, "output": output, "tests": tests,
            "visibility": "visible", "stdout_visibility": "hidden"}


_CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}.ready{background:#b7e4b0}.failing{background:#f4b6b0}
.locked{background:#f6e3a1}.ns{background:#eee}.flag{color:#a00}h2{margin-top:1.5em}"""


def write_html(path: Path, rows: list[Row], copies: list[str], board: list | None = None) -> None:
    katas = list(dict.fromkeys(k for r in rows for k in r.katas))
    levels = Counter(r.level for r in rows)
    mis = Counter(m for r in rows for m in r.misconceptions)
    e = html.escape
    parts = [f"<!doctype html><meta charset=utf-8><title>attnkata class</title><style>{_CSS}</style>",
             f"<h1>Class: {len(rows)} students</h1>", "<h2>Level reached</h2><table><tr>"
             + "".join(f"<th>{e(k)}</th>" for k in sorted(levels)) + "</tr><tr>"
             + "".join(f"<td>{levels[k]}</td>" for k in sorted(levels)) + "</tr></table>",
             "<h2>Misconceptions hit most</h2><table><tr><th>misconception</th><th>students</th></tr>"
             + "".join(f"<tr><td>{e(m)}</td><td>{n}</td></tr>" for m, n in mis.most_common(15))
             + "</table>", "<h2>Katas</h2><table><tr><th>student</th><th>points</th>"
             + "".join(f"<th>{e(k)}</th>" for k in katas) + "<th>flags</th></tr>"]
    for r in rows:
        cells = "".join(f"<td class='{_cls(r.katas.get(k, ''))}' title='{e(r.katas.get(k, ''))}'>"
                        f"{'✔' if r.katas.get(k) == 'ready' else ''}</td>" for k in katas)
        parts.append(f"<tr><td>{e(r.student)}</td><td>{r.points:g}/{r.max_points:g}</td>{cells}"
                     f"<td class=flag>{e(' | '.join(r.flags))}</td></tr>")
    parts.append("</table>")
    if board:
        mode = "GPU: flash forward, TFLOP/s" if any(b.mode == "gpu" for b in board) else (
            "CPU only: level-4 tiled attention in NumPy, a toy figure, not a GPU kernel")
        parts.append(f"<h2>Leaderboard ({e(mode)})</h2><table><tr><th>rank</th><th>student</th>"
                     "<th>figure</th><th>% of peak</th><th>vs reference</th><th>p20/p80</th>"
                     "<th>note</th></tr>")
        for rank, b in _board(board).values():
            cells = _board_cells(rank, b)
            parts.append("<tr><td>" + "</td><td>".join(e(c) for c in [cells[0], b.student, *cells[1:]])
                         + "</td></tr>")
        parts.append("</table>")
    if copies:
        parts.append("<h2>Similar code</h2><ul>" + "".join(f"<li>{e(c)}</li>" for c in copies)
                     + "</ul>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _cls(status: str) -> str:
    return {"ready": "ready", "failing": "failing", "locked": "locked"}.get(status, "ns")


def write_all(out: Path, rows: list[Row], weights: Weights, copies: list[str],
              board: list | None = None) -> None:
    write_csv(out / "grades.csv", rows, board)
    results = {r.student: gradescope(load_result(out, r.student), weights) for r in rows}
    for name, data in results.items():
        write_atomic(out / "gradescope" / name / "results.json", data)
    if len(results) == 1:  # Gradescope grades one submission per run: its results file
        write_atomic(out / "results.json", next(iter(results.values())))
    write_html(out / "class.html", rows, copies, board)


def exports_for_class(out: Path, names: list[str]) -> list[Path]:
    """The ladder exports ``attnkata class`` reads, one per graded student."""
    paths = []
    for name in names:
        result = load_result(out, name)
        if result and result.get("ladder"):
            p = out / "ladders" / f"{name}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(result["ladder"]), encoding="utf-8")
            paths.append(p)
    return paths


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
