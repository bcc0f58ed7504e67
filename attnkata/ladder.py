"""The ladder: what a run (or the saved runs) says about each kata, level by level."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .model import Kata
from .runner import FAILED, LOCKED, NOT_STARTED, UNAVAILABLE
from .state import now

if TYPE_CHECKING:  # annotations only: hookspecs -> ladder -> manager -> hookspecs is no cycle
    from .manager import Registry

READY, FAILING, NOT_RUN = "ready", "failing", "not run"
STATUS_ORDER = (READY, FAILING, LOCKED, NOT_STARTED, UNAVAILABLE, NOT_RUN)
PREDICTIONS_ITEM = "predictions"


@dataclass
class KataRow:
    id: str
    level: int
    title: str
    pack: str
    status: str = NOT_RUN
    detail: str = ""
    misconception: str = ""
    checks: dict[str, str] = field(default_factory=dict)   # check id -> outcome
    figures: dict[str, list] = field(default_factory=dict)  # check id -> measured figures
    stale: bool = False                                    # from an earlier run
    run: str = ""                                          # the pytest arguments for just this kata
    skipped: bool = False                                  # the learner chose to come back later
    init: str = ""                # a pack whose stub is not in katas/ yet: `attnkata init PACK`

    @property
    def done(self) -> bool:
        return self.status == READY


@dataclass
class ClaimRow:
    id: str
    text: str
    scope: str
    source: str
    not_claimed: str = ""
    witnessed: bool = False
    evidence: list[str] = field(default_factory=list)
    environment: dict | None = None
    kata: str = ""


@dataclass
class Ladder:
    target: str
    levels: dict[int, str]
    rows: list[KataRow]
    claims: list[ClaimRow] = field(default_factory=list)
    calibration: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=now)
    extra: dict[str, Any] = field(default_factory=dict)
    turned_ready: set[str] = field(default_factory=set)  # this run's news; not saved

    def by_level(self) -> dict[int, list[KataRow]]:
        out: dict[int, list[KataRow]] = {}
        for row in self.rows:
            out.setdefault(row.level, []).append(row)
        return dict(sorted(out.items()))

    def level_ready(self, level: int) -> bool:
        rows = self.by_level().get(level, [])
        return bool(rows) and all(r.done for r in rows)

    def next_kata(self) -> KataRow | None:
        """The first kata in ladder order that is not ready, can run here, and is not skipped;
        katas whose pack's stubs are not copied yet (``attnkata init PACK``) come after the rest."""
        todo = [r for r in self.rows if r.status not in (READY, UNAVAILABLE) and not r.skipped]
        return next((r for r in todo if not r.init), todo[0] if todo else None)

    def mark_skipped(self, entries: dict) -> None:
        """Apply the ledger's skip marks (``attnkata skip KATA``)."""
        for row in self.rows:
            row.skipped = bool(entries.get(row.id, {}).get("skipped"))

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUS_ORDER}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_json(self) -> dict:
        return {
            "schema": "attnkata.ladder/1", "target": self.target, "created": self.created,
            "levels": {str(k): v for k, v in self.levels.items()},
            "katas": [asdict(r) for r in self.rows], "claims": [asdict(c) for c in self.claims],
            "calibration": self.calibration, "problems": self.problems,
            "environment": self.environment, "counts": self.counts(),
            "next": self.next_kata().id if self.next_kata() else None,
            "levels_ready": [lvl for lvl in self.by_level() if self.level_ready(lvl)],
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Ladder":
        """A saved ladder; ``ValueError`` when ``data`` does not have a ladder's shape."""
        _need(data, dict, "the saved ladder")
        _need(data.get("target"), str, "target")
        levels = _need(data.get("levels"), dict, "levels")
        return cls(target=data["target"], levels={_level(k): str(v) for k, v in levels.items()},
                   rows=[_row(r) for r in _need(data.get("katas"), list, "katas")],
                   claims=[_claim(c) for c in _need(data.get("claims", []), list, "claims")],
                   calibration=_counts(data.get("calibration", {})),
                   problems=[str(p) for p in _need(data.get("problems", []), list, "problems")],
                   environment=_need(data.get("environment", {}), dict, "environment"),
                   created=str(data.get("created", "")))


def _need(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"{what} is {type(value).__name__}, not {kind.__name__}")
    return value


def _level(key: Any) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ValueError(f"level {key!r} is not a number") from None


def _known(cls: type, data: Any, what: str) -> dict:
    """The fields of ``cls`` found in ``data`` (fields a newer version added are left out)."""
    _need(data, dict, what)
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _row(data: Any) -> KataRow:
    row = KataRow(**_known(KataRow, data, "a kata row"))
    _need(row.id, str, "a kata id")
    _need(row.level, int, f"{row.id}'s level")
    if row.status not in STATUS_ORDER:
        raise ValueError(f"{row.id}'s status {row.status!r} is unknown")
    for name in ("title", "pack", "detail", "misconception", "run", "init"):
        _need(getattr(row, name), str, f"{row.id}'s {name}")
    _need(row.checks, dict, f"{row.id}'s checks")
    _need(row.figures, dict, f"{row.id}'s figures")
    row.stale, row.skipped = bool(row.stale), bool(row.skipped)
    return row


def _claim(data: Any) -> ClaimRow:
    claim = ClaimRow(**_known(ClaimRow, data, "a claim"))
    for name in ("id", "text", "scope", "source", "not_claimed", "kata"):
        _need(getattr(claim, name), str, f"a claim's {name}")
    _need(claim.evidence, list, f"claim {claim.id}'s evidence")
    if claim.environment is not None:
        _need(claim.environment, dict, f"claim {claim.id}'s environment")
    claim.witnessed = bool(claim.witnessed)
    return claim


def _counts(data: Any) -> dict[str, int]:
    _need(data, dict, "calibration")
    return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}


def kata_status(kata: Kata, outcomes: dict[str, dict]) -> tuple[str, str, str]:
    """(status, detail, misconception) from the item outcomes of one kata.

    ``outcomes`` maps ``predictions`` and each check id to ``{"outcome", "message",
    "misconception"}``; missing entries were not run (deselected, ``-x``).
    """
    checks = [outcomes.get(c.id) for c in kata.checks]
    ran = [c for c in checks if c is not None]
    if not ran and PREDICTIONS_ITEM not in outcomes:
        return NOT_RUN, "", ""
    for c in ran:
        if c["outcome"] == UNAVAILABLE:
            return UNAVAILABLE, c["message"], ""
    failed = [c for c in ran if c["outcome"] == FAILED]
    if failed:
        named = next((c for c in failed if c.get("misconception")), None)
        first = named or failed[0]
        return FAILING, _first_line(first["message"]), first.get("misconception", "")
    if ran and all(c["outcome"] == NOT_STARTED for c in ran):
        return NOT_STARTED, _first_line(ran[0]["message"]), ""
    preds = outcomes.get(PREDICTIONS_ITEM)
    locked = [c for c in [preds, *ran] if c and c["outcome"] == LOCKED]
    if locked:  # its message names the missing keys: "predict first: fill a, b in PREDICTIONS"
        return LOCKED, _first_line(locked[0]["message"]) or "predict first: fill PREDICTIONS", ""
    if preds and preds["outcome"] == FAILED:
        return FAILING, _first_line(preds["message"]), ""
    pending = [c for c in ran if c["outcome"] == NOT_STARTED]
    if pending:
        return FAILING, f"{len(pending)} check(s) still raise NotImplementedError", ""
    if len(ran) < len(checks) or preds is None:
        return NOT_RUN, "only part of this kata ran (-k / -x / --lf)", ""
    return READY, "", ""


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def turned_ready(ladder: Ladder, previous: Ladder | None) -> set[str]:
    """Katas ready in this run that were not ready in the saved ladder before it."""
    before = {r.id: r.status for r in previous.rows} if previous else {}
    return {r.id for r in ladder.rows if r.done and not r.stale and before.get(r.id) != READY}


def build_ladder(registry: Registry, target: str, outcomes: dict[str, dict[str, dict]],
                 previous: Ladder | None = None, ledger_entries: dict | None = None,
                 extra_claims: Iterable[ClaimRow] = (), environment: dict | None = None,
                 katas_dir: Path | None = None) -> Ladder:
    """Combine this run's outcomes with the previous saved ladder for katas not run now."""
    before = {r.id: r for r in previous.rows} if previous else {}
    rows = []
    for kata in registry.katas:
        mine = outcomes.get(kata.id, {})
        status, detail, misconception = kata_status(kata, mine)
        row = KataRow(kata.id, kata.level, kata.title, kata.pack, status, detail, misconception,
                      {cid: o["outcome"] for cid, o in mine.items()},
                      {cid: o["figures"] for cid, o in mine.items() if o.get("figures")})
        if status == NOT_RUN and kata.id in before and before[kata.id].status != NOT_RUN:
            row = before[kata.id]
            row.stale = True
        own = katas_dir / kata.path if katas_dir else None
        row.run = (f"{katas_dir.name}/{kata.path}" if own is not None and own.exists()
                   else f"-k {kata.id}")
        pack = registry.packs.get(kata.pack)
        row.init = (kata.pack if own is not None and not own.exists() and pack is not None
                    and Path(pack.katas_dir).resolve() != katas_dir.resolve() else "")
        rows.append(row)
    ladder = Ladder(target, dict(sorted(registry.levels.items())), rows,
                    problems=[str(p) for p in registry.problems], environment=environment or {})
    ladder.mark_skipped(ledger_entries or {})
    ladder.claims = kata_claims(registry, ladder) + list(extra_claims)
    ladder.calibration = calibration(registry, ledger_entries or {})
    return ladder


def kata_claims(registry: Registry, ladder: Ladder) -> list[ClaimRow]:
    rows = {r.id: r for r in ladder.rows}
    out = []
    for kata in registry.katas:
        row = rows[kata.id]
        for claim in kata.claims:
            evidence = list(claim.evidence) or [c.id for c in kata.checks]
            # a claim is the kata's: witnessed once the kata is ready, not while it fails
            # (a wrong rope still rotates, so its norm claim's checks pass)
            witnessed = row.status == READY
            figures = [f for e in evidence for f in row.figures.get(e, [])]
            text = claim.text + (f" Measured here: {'; '.join(figures)}." if figures else "")
            out.append(ClaimRow(claim.id, text, claim.scope, claim.source, claim.not_claimed,
                                witnessed, [f"{kata.id}::{e}" for e in evidence],
                                dict(claim.environment) if claim.environment else None, kata.id))
    return out


def calibration(registry: Registry, entries: dict) -> dict[str, int]:
    """How the learner's predictions went: right first time, revised, still wrong."""
    out = {"asked": 0, "answered": 0, "right_first_time": 0, "revised": 0, "wrong_now": 0}
    for kata in registry.katas:
        preds = entries.get(kata.id, {}).get("predictions", {})
        out["asked"] += len(kata.predictions)
        for p in kata.predictions:
            seen = preds.get(p.id)
            if not seen:
                continue
            out["answered"] += 1
            out["right_first_time"] += bool(seen.get("first_right"))
            out["revised"] += seen.get("revisions", 0) > 0
            out["wrong_now"] += not seen.get("latest_right")
    return out
