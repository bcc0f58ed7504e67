"""End of a run: build the ladder, save it, render it — and render saved ones again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

from .ladder import FAILING, Ladder, build_ladder
from .render import render, report_group, write_json
from .state import bump_failures, results


def sections(pm: pluggy.PluginManager, ladder: Ladder, rootdir: Path) -> list[Any]:
    out: list[Any] = []
    for answer in pm.hook.attnkata_report_sections(ladder=ladder, rootdir=rootdir):
        out.extend(answer or [])
    return out


def add_plugin_claims(pm: pluggy.PluginManager, ladder: Ladder, rootdir: Path) -> None:
    """Claims from plugins join the ladder once; a measured one needs its environment."""
    have = {c.id for c in ladder.claims}
    for answer in pm.hook.attnkata_ladder_claims(ladder=ladder, rootdir=rootdir):
        for claim in answer or []:
            if claim.id in have:
                continue
            if claim.scope == "measured" and not claim.environment:
                ladder.problems.append(f"claim {claim.id!r} is measured but records no environment: refused")
                continue
            ladder.claims.append(claim)
            have.add(claim.id)


def export(pm: pluggy.PluginManager, ladder: Ladder, rootdir: Path, json_path: str | Path | None,
           html_path: str | Path | None, *, color: bool, width: int, show: bool = True) -> str:
    """Render the report (returns the text) and write the JSON / HTML exports asked for."""
    group = report_group(ladder, sections(pm, ladder, rootdir))
    text = render(group, color=color, width=width,
                  html=Path(html_path) if html_path else None) if (show or html_path) else ""
    if json_path:
        data = ladder.to_json()
        pm.hook.attnkata_report_json(ladder=ladder, data=data, rootdir=rootdir)
        write_json(Path(json_path), data)
    return text if show else ""


def finish_run(state: Any, *, color: bool, width: int, show: bool, json_path: str | None,
               html_path: str | None, environment: dict) -> str:
    store = results(state.rootdir)
    saved = store.read().get("runs", {}).get(state.target.slug)
    previous = Ladder.from_json(saved) if saved else None
    entries = state.ledger.read().get("targets", {}).get(state.target.slug, {})
    ladder = build_ladder(state.registry, state.target.name, state.outcomes, previous, entries,
                          state.extra_claims, environment, state.katas_dir)
    add_plugin_claims(state.pm, ladder, state.rootdir)
    for row in ladder.rows:
        if row.status == FAILING and not row.stale:
            bump_failures(state.ledger, state.target.slug, row.id)
    ladder.problems += store.problems + state.ledger.problems

    def save(data: dict) -> None:
        data.setdefault("runs", {})[state.target.slug] = ladder.to_json()
        data["last"] = state.target.slug

    store.update(save)
    return export(state.pm, ladder, state.rootdir, json_path, html_path, color=color, width=width,
                  show=show)


def saved_ladder(rootdir: Path, target: str | None = None) -> tuple[Ladder | None, list[str]]:
    """The ladder saved by the last run (for ``target``'s slug when given)."""
    store = results(rootdir)
    data = store.read()
    slug = target or data.get("last")
    saved = data.get("runs", {}).get(slug) if slug else None
    return (Ladder.from_json(saved) if saved else None), store.problems
