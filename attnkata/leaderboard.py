"""Students' kernels timed: ``attnkata grade --bench`` and the leaderboard it feeds.

After a submission is graded, ``attnkata bench --target SUBMISSION`` runs for it (its
own state folder; the bench checks each kernel on fresh inputs before timing it, runs
the student's code only in its sandboxed worker, and voids a timing its own clock
disagrees with by more than 10%).  The references are benched once the same way, so
each student's figure has a ratio to the reference kernel on the same machine.

On a GPU the leaderboard ranks the flash forward kernels by TFLOP/s (geometric mean
over the sweep), with % of the device's peak, the ratio to the reference kernel and
p20/p80 at the largest shape.  Without a GPU it ranks the level-4 tiled attention
(NumPy) by its median time at the largest N — labelled CPU, and only a toy figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

GPU_KIND = "flash_fwd"


def bench_one(name: str, folder: str, course: str, out: str, budget: float,
              extra: tuple[str, ...] = ()) -> str:
    """Run the bench for one target; returns the path of its JSON ("" when none)."""
    where = Path(out) / "bench" / name
    where.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "attnkata", "--root", course, "--width", "100", "bench",
           "--target", folder, "--out", str(where), "--no-plot", "--quick", *extra]
    env = {**os.environ, "ATTNKATA_STATE_DIR": str(Path(out) / "state" / f"bench-{name}"),
           "NO_COLOR": "1"}
    try:
        proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True,
                              timeout=budget)
        (where / "log.txt").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    except subprocess.TimeoutExpired:
        (where / "log.txt").write_text(f"the bench took longer than {budget:g} s and was stopped")
        return ""
    last = where / "last.json"
    return str(last) if last.exists() else ""


@dataclass
class Entry:
    student: str
    mode: str                 # "gpu" or "cpu"
    metric: float | None      # TFLOP/s (gpu) or ms (cpu); None: not timed
    unit: str
    pct_peak: float | None
    vs_reference: float | None
    p20_p80: str
    note: str                 # why not timed, or a void timing

    @property
    def timed(self) -> bool:
        return self.metric is not None


def read(path: str | Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def entry(student: str, data: dict | None, reference: dict | None) -> Entry:
    if data is None:
        return Entry(student, "-", None, "", None, None, "", "the bench wrote no results")
    if data.get("mode") == "cpu" or not any(r.get("kind") == GPU_KIND for r in data.get("rows", [])):
        return _cpu(student, data, reference)
    return _gpu(student, data, reference)


def _cpu(student: str, data: dict, reference: dict | None) -> Entry:
    rows = (data.get("cpu") or {}).get("rows") or data.get("rows") or []
    bad = [r for r in rows if r.get("status") != "ok"]
    if not rows or bad:
        why = (bad[0].get("message") or bad[0].get("status")) if bad else "no CPU rows"
        return Entry(student, "cpu", None, "ms", None, None, "", f"not timed: {why}")
    big = max(rows, key=lambda r: r["n"])
    ms = big["tiled_median_s"] * 1e3
    ref = _cpu_ref(reference, big["n"])
    return Entry(student, "cpu", ms, f"ms at N={big['n']}", None,
                 (ms / ref) if ref else None,
                 f"{big['tiled_p20_s'] * 1e3:.2f}/{big['tiled_p80_s'] * 1e3:.2f} ms", "")


def _cpu_ref(reference: dict | None, n: int) -> float | None:
    if not reference:
        return None
    rows = (reference.get("cpu") or {}).get("rows") or reference.get("rows") or []
    hit = [r for r in rows if r.get("n") == n and r.get("status") == "ok"]
    return hit[0]["tiled_median_s"] * 1e3 if hit else None


def _gpu(student: str, data: dict, reference: dict | None) -> Entry:
    rows = [r for r in data.get("rows", []) if r.get("kind") == GPU_KIND
            and r.get("candidate") == "target"]
    ok = [r for r in rows if r.get("status") == "ok" and r.get("tflops")]
    if not ok:
        why = next((r.get("message") or r.get("status") for r in rows), "no target rows")
        return Entry(student, "gpu", None, "TFLOP/s", None, None, "", f"not timed: {why}")
    from math import exp, log

    tflops = exp(sum(log(r["tflops"]) for r in ok) / len(ok))
    pcts = [r["pct_peak"] for r in ok if r.get("pct_peak")]
    ref_rows = [r for r in data.get("rows", []) if r.get("kind") == GPU_KIND
                and r.get("candidate") == "reference" and r.get("status") == "ok" and r.get("tflops")]
    ref = exp(sum(log(r["tflops"]) for r in ref_rows) / len(ref_rows)) if ref_rows else None
    big = max(ok, key=lambda r: r.get("shape", {}).get("N", 0))
    ms = big.get("ms", {})
    spread = f"{ms.get('p20_ms', 0):.3f}/{ms.get('p80_ms', 0):.3f} ms" if ms else ""
    return Entry(student, "gpu", tflops, "TFLOP/s", sum(pcts) / len(pcts) if pcts else None,
                 (tflops / ref) if ref else None, spread, "")


def ranked(entries: list[Entry]) -> list[tuple[int | None, Entry]]:
    """Timed entries ranked (fastest first), then the untimed ones without a rank."""
    timed = [e for e in entries if e.timed]
    timed.sort(key=lambda e: -e.metric if e.mode == "gpu" else e.metric)  # type: ignore[operator]
    return [(i + 1, e) for i, e in enumerate(timed)] + [(None, e) for e in entries if not e.timed]


def voids(data: dict | None) -> list[str]:
    """Timings the bench voided (its clock and the worker's disagreed)."""
    if not data:
        return []
    rows = list(data.get("rows", [])) + list((data.get("cpu") or {}).get("rows", []))
    return [str(r.get("message") or "a timing was void") for r in rows if r.get("status") == "void"]
