"""The kata model: frozen records that a pack declares and the framework reads.

A *kata* is one concept: the names a learner implements (``entries``), the hidden
``checks`` run against any target folder, the ``predictions`` asked before coding,
the ``misconceptions`` recognised in wrong answers, the ``claims`` its tests make
true, and progressive ``hints``.  A *pack* is a list of katas with the two folders
that mirror each other file for file: learner stubs and reference solutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

SCOPES = ("exact", "toy", "measured")
PREDICTION_KINDS = ("number", "exact", "choice")


class MetadataError(ValueError):
    """A pack declared a kata that breaks the kata contract."""


@dataclass(frozen=True)
class Prediction:
    """A question answered in the stub's ``PREDICTIONS`` dict before coding.

    ``kind`` is ``number`` (compared with ``rel_tol``), ``exact`` (shapes, ints,
    booleans: equality after turning lists into tuples) or ``choice`` (one of
    ``choices``, compared case-insensitively).
    """

    id: str
    question: str
    answer: Any
    kind: str = "number"
    rel_tol: float = 0.02
    choices: tuple[str, ...] = ()
    why: str = ""

    def is_right(self, value: Any) -> bool:
        if self.kind == "number":
            return _close(value, self.answer, self.rel_tol)
        if self.kind == "choice":
            return str(value).strip().lower() == str(self.answer).strip().lower()
        return _normalise(value) == _normalise(self.answer)


def _close(value: Any, answer: Any, rel_tol: float) -> bool:
    if isinstance(answer, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(answer)
                and all(_close(v, a, rel_tol) for v, a in zip(value, answer)))
    try:
        return math.isclose(float(value), float(answer), rel_tol=rel_tol, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_normalise(v) for v in value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


@dataclass(frozen=True)
class Misconception:
    """A known-wrong way to write the kata, recognised by its output.

    ``impls`` maps entry names to wrong implementations with the same signature
    as the learner's; entries not named keep the reference.  Beyond exact
    reproduction, a misconception is recognised by its behaviour (docs/DIAGNOSIS.md):
    ``probes`` (:class:`attnkata.diagnose.Probe`: a structured input and a predicate
    true for the mistake's whole family), ``raises`` (``(exception type name, message
    regex)`` pairs it produces) and ``shapes`` (shape relations of its output to the
    answer's, e.g. ``"transposed_last_two"``; see ``diagnose.SHAPE_RELATIONS``).
    """

    id: str
    name: str
    impls: Mapping[str, Any]
    explanation: str = ""
    probes: tuple[Any, ...] = ()
    raises: tuple[tuple[str, str], ...] = ()
    shapes: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Fake:
    """A generic wrong answer the hidden tests must reject (see ``selfcheck``)."""

    id: str
    impls: Mapping[str, Any]


@dataclass(frozen=True)
class Claim:
    """One sentence the kata's tests make true, within a scope.

    ``evidence`` names the check ids that witness it (empty: every check of the
    kata).  A ``measured`` claim must carry its ``environment``.
    """

    id: str
    text: str
    scope: str
    source: str
    not_claimed: str = ""
    evidence: tuple[str, ...] = ()
    environment: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Check:
    """One hidden test: ``fn(ctx)`` raises ``KataFailure`` when the target is wrong."""

    id: str
    doc: str
    fn: Callable[..., None]


def check(doc: str, *, id: str | None = None) -> Callable[[Callable[..., None]], Check]:
    """Decorator turning ``def name(ctx): ...`` into a :class:`Check`."""

    def wrap(fn: Callable[..., None]) -> Check:
        return Check(id=id or fn.__name__, doc=doc, fn=fn)

    return wrap


@dataclass(frozen=True)
class Kata:
    id: str
    level: int
    title: str
    path: str
    entries: tuple[str, ...]
    checks: tuple[Check, ...]
    predictions: tuple[Prediction, ...] = ()
    misconceptions: tuple[Misconception, ...] = ()
    claims: tuple[Claim, ...] = ()
    hints: tuple[str, ...] = ()
    requires: tuple[str, ...] = ("numpy",)
    timeout: float = 20.0
    fakes: tuple[Fake, ...] = ()
    generic_fakes: tuple[str, ...] = ("zeros", "echo", "constant", "random", "mutate")
    bench: Any = None
    pack: str = ""
    probes: tuple[str, ...] = ()   # modules of worker-side probes (imported before learner code)
    diagnostics: tuple[Any, ...] = ()  # diagnose.Probe inputs that only say where output is wrong
    variants: tuple[Fake, ...] = ()    # correct alternatives: pass every check, fire no probe

    def validate(self) -> None:
        """Raise :class:`MetadataError` naming what breaks the kata contract."""
        problems = []
        if not self.id or not self.id.replace("_", "").isalnum():
            problems.append(f"id {self.id!r} must be a non-empty identifier")
        if not isinstance(self.level, int):
            problems.append(f"level must be an int, got {self.level!r}")
        if not self.path.endswith(".py") or Path(self.path).is_absolute():
            problems.append(f"path {self.path!r} must be a relative .py path")
        if not self.entries:
            problems.append("entries is empty: name what the learner implements")
        if not self.checks or not all(isinstance(c, Check) for c in self.checks):
            problems.append("checks must be a non-empty tuple of Check")
        ids = [c.id for c in self.checks]
        if len(set(ids)) != len(ids):
            problems.append(f"duplicate check ids in {ids}")
        for p in self.predictions:
            if p.kind not in PREDICTION_KINDS:
                problems.append(f"prediction {p.id!r}: kind {p.kind!r} not in {PREDICTION_KINDS}")
            if p.kind == "choice" and str(p.answer).lower() not in [c.lower() for c in p.choices]:
                problems.append(f"prediction {p.id!r}: answer is not one of its choices")
        for m in self.misconceptions:
            unknown = set(m.impls) - set(self.entries)
            if unknown:
                problems.append(f"misconception {m.id!r} replaces unknown entries {sorted(unknown)}")
            problems += _diagnosis_problems(m)
        for v in self.variants:
            unknown = set(v.impls) - set(self.entries)
            if unknown:
                problems.append(f"variant {v.id!r} replaces unknown entries {sorted(unknown)}")
        for c in self.claims:
            if c.scope not in SCOPES:
                problems.append(f"claim {c.id!r}: scope {c.scope!r} not in {SCOPES}")
            if not c.source:
                problems.append(f"claim {c.id!r} has no source id")
            if c.scope == "measured" and not c.environment:
                problems.append(f"claim {c.id!r} is measured but records no environment")
            missing = set(c.evidence) - set(ids)
            if missing:
                problems.append(f"claim {c.id!r} cites unknown checks {sorted(missing)}")
        if any(not h.strip() for h in self.hints):
            problems.append("empty hint")
        if problems:
            raise MetadataError(f"kata {self.id!r}: " + "; ".join(problems))


def _diagnosis_problems(m: Misconception) -> list[str]:
    from .diagnose import SHAPE_RELATIONS, Probe

    out = []
    if any(not isinstance(p, Probe) for p in m.probes):
        out.append(f"misconception {m.id!r}: probes must be attnkata.diagnose.Probe records")
    if any(not (isinstance(r, tuple) and len(r) == 2 and all(isinstance(x, str) for x in r))
           for r in m.raises):
        out.append(f"misconception {m.id!r}: raises holds (exception type name, message regex) pairs")
    bad = [s for s in m.shapes if isinstance(s, str) and s not in SHAPE_RELATIONS]
    if bad:
        out.append(f"misconception {m.id!r}: unknown shape relations {bad} "
                   f"(known: {sorted(SHAPE_RELATIONS)})")
    return out


@dataclass(frozen=True)
class Pack:
    """A list of katas and the two trees (stubs, solutions) they live in."""

    name: str
    katas: tuple[Kata, ...]
    katas_dir: Path
    solutions_dir: Path
    levels: Mapping[int, str] = field(default_factory=dict)
