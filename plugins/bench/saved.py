"""The last saved bench in the ladder report: its measured claims, and where its files are.

``attnkata bench`` runs outside pytest, so its figures reach the claims report through
the saved JSON (``<state dir>/bench/last.json`` of the learner's checkout, from the hooks' rootdir).
Claims about the target's kernel join only a ladder of the same target (and exist only
when that code was timed and passed); claims about the reference kernels join any.  A measured claim without its environment is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text


def bench_dir(rootdir: Path) -> Path:
    """``<state dir>/bench`` of the learner's checkout."""
    from attnkata.state import state_dir

    return state_dir(rootdir) / "bench"


def ladder_claims(ladder: Any, folder: Path) -> list[Any]:
    """Measured claims of the last saved bench that apply to this ladder's target."""
    from .results import claims_from, load_last

    data = load_last(folder)
    if data is None:
        return []
    claims, _ = claims_from(data)
    bench_target = data.get("environment", {}).get("target")
    return [c for c in claims if applies(c, bench_target, ladder.target)]


def applies(claim: Any, bench_target: Any, ladder_target: str) -> bool:
    """A claim about the target's code (``-target-``) joins only a ladder of the target that was
    timed; one naming a kata without being about the target (a bench before the target's code
    was timed) joins none; the reference kernels' join any."""
    if "-target-" in claim.id:
        return bench_target == ladder_target
    return not claim.kata


def report_sections(ladder: Any, folder: Path) -> list[Any]:
    from .results import claims_from, load_last

    data = load_last(folder)
    if data is None:
        return []
    _, problems = claims_from(data)
    added = sum(c.scope == "measured" for c in ladder.claims)
    env = data.get("environment", {})
    where = env.get("gpu") if env.get("gpu") not in (None, "none") else env.get("cpu", "this CPU")
    what = data.get("message") or f"{len(data.get('rows', []))} rows"
    text = Text(f"Benchmark: last run {str(data.get('created', '?'))[:16]} on {where} "
                f"({data.get('mode')}; {what}) — {folder / 'last.json'}", style="dim")
    if added:
        text.append(f"; {added} measured claim(s) below", style="dim")
    targets = data.get("targets") or []
    if targets:
        verdicts = ", ".join(f"{t.get('title', t.get('id'))} {t.get('verdict')}" for t in targets)
        text.append(f"\nTargets of the reference kernels: {verdicts}", style="dim")
    for problem in problems:
        text.append(f"\n⚠ {problem}", style="bold yellow")
    return [text]


def report_json(ladder: Any, data: dict, folder: Path) -> None:
    from .results import load_last

    saved = load_last(folder)
    if saved is not None:
        data["bench"] = {"path": str(folder / "last.json"), "created": saved.get("created"),
                         "mode": saved.get("mode"), "summary": saved.get("summary", [])}
