"""Naming a mistake by its behaviour: probes, predicates, shape relations, localisers.

Exact reproduction (a misconception's modelled implementation giving the learner's
output on the failing input) names only the one way of writing a mistake that was
modelled.  A *probe* names the whole family: a small structured input chosen to tell
one mistake apart from the others, and a predicate on the learner's output there
that is true for every way of making that mistake and false for correct code::

    Probe.of("one fully masked row", "attention", q, k, v, mask_row1_empty,
             holds=rows_equal(1, v.mean(axis=0)), axes=("query", "feature"))

When a check fails, the harness runs the probes of every misconception of the kata on
the learner's code (in its worker, through the same guarded machinery as ``ctx.call``),
evaluates the predicates here, in the judging process, on plain data, and ranks:

1. misconceptions that reproduce the failing output exactly and that none of their
   own probes contradict (the strongest evidence);
2. misconceptions with at least two pieces of agreeing evidence (probes that hold,
   a matching exception, a matching shape relation) and no contradicting probe:
   *named*, more evidence first;
3. otherwise the one with the most evidence is reported as *closest to*, never as
   the name of the mistake;
4. and when no misconception fits at all, the probes say *where* the output is wrong
   in the kata's own terms (rows, tiles, heads, positions), from their ``axes``.

Everything here except :meth:`Probe.run` runs in the judging process on plain data.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

Predicate = Callable[[Any, Any], bool]


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Raised:
    """What a probe's run produced when the learner's code raised instead of returning."""

    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


@dataclass(frozen=True, eq=False)
class Probe:
    """A structured input and a predicate on the learner's output there.

    ``run(ns)`` drives a namespace (the learner's module through its worker, the
    reference, or a misconception) on the input and returns plain data (arrays,
    numbers, tuples of them).  ``holds(got, want)`` is evaluated in the judge with the
    learner's output ``got`` (a :class:`Raised` when it raised) and the reference's
    ``want``: true for the mistake's whole family, false for correct code.
    ``holds=None`` means "the learner's output equals this misconception's modelled
    implementation on this input" (reproduction on a chosen input).
    ``axes`` names the output's trailing axes ("query", "feature") and ``tiles``
    the tile size along some of them ({"key": 16}), so a wrong output can be located
    in the kata's own terms.  ``tol`` is the comparison tolerance (default: dtype's).
    ``entries`` names the kata entries (functions, classes) the probe drives, so a failure
    in one entry is never named after a probe on another (``Probe.of`` fills it in; for
    a hand-written ``run`` give it, or the misconception's ``impls`` stand in).
    """

    what: str
    run: Callable[[Any], Any]
    holds: Predicate | None = None
    axes: tuple[str, ...] = ()
    tiles: Mapping[str, int] = field(default_factory=dict)
    tol: tuple[float, float] | None = None
    entries: tuple[str, ...] = ()

    @classmethod
    def of(cls, what: str, entry: str, *args: Any, holds: Predicate | None = None,
           axes: Sequence[str] = (), tiles: Mapping[str, int] | None = None,
           tol: tuple[float, float] | None = None, **kwargs: Any) -> "Probe":
        """A probe that calls ``entry(*args, **kwargs)`` (on copies of the inputs)."""

        def run(ns: Any) -> Any:
            a, kw = copy.deepcopy((args, kwargs))
            return getattr(ns, entry)(*a, **kw)

        return cls(what, run, holds, tuple(axes), dict(tiles or {}), tol, (entry,))


def probe_entries(probe: Probe, m: Any = None) -> set[str]:
    """The entries ``probe`` drives: its own ``entries``, else those ``m`` replaces."""
    return set(probe.entries) or (set(getattr(m, "impls", {}) or ()) if m is not None else set())


def concerns(m: Any) -> set[str]:
    """Every entry misconception ``m`` is about: those it replaces and those its probes drive."""
    out = set(m.impls or ())
    for p in m.probes:
        out |= set(p.entries)
    return out


def attempt(thunk: Callable[[], Any]) -> Any:
    """``thunk()``, or a :class:`Raised` when it raises: for a probe whose ``run`` calls
    the learner's code on several inputs and needs each outcome (a timeout or a dead
    worker still ends the probe: those are not ``Exception``)."""
    try:
        return thunk()
    except Exception as exc:
        kind = getattr(exc, "learner_type", type(exc).__name__)
        return Raised(str(kind).rsplit(".", 1)[-1], str(exc))


def measure(ns: Any, module: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """From a probe's ``run``: the worker-side function ``module.name(learner_module,
    *args, **kwargs)`` (tracemalloc, call counts: see ``ctx.probe``), run next to the
    learner's code when ``ns`` is the learner's module, called directly otherwise."""
    from .remote import probe

    return probe(ns, module, name, *args, **kwargs)


# Shape relations: (got shape, want shape) -> bool, named so a misconception can say
# ``shapes=("transposed_last_two",)``.

def _transposed_last_two(got: tuple, want: tuple) -> bool:
    return (len(got) == len(want) >= 2 and got[-2:] == (want[-1], want[-2])
            and got[:-2] == want[:-2] and want[-1] != want[-2])


def _dropped_axis(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) - 1 and any(want[:i] + want[i + 1:] == got for i in range(len(want)))


def _extra_axis(got: tuple, want: tuple) -> bool:
    return _dropped_axis(want, got)


def _batch_flattened(got: tuple, want: tuple) -> bool:
    return any(len(got) == len(want) - k + 1 and got[1:] == want[k:]
               and got[0] == math.prod(want[:k]) for k in range(2, len(want)))


def _leading_axes_swapped(got: tuple, want: tuple) -> bool:
    return (len(got) == len(want) >= 3 and got[-1] == want[-1] and got != want
            and sorted(got) == sorted(want) and got[-1:] == want[-1:])


SHAPE_RELATIONS: dict[str, Callable[[tuple, tuple], bool]] = {
    "transposed_last_two": _transposed_last_two,
    "dropped_axis": _dropped_axis,
    "extra_axis": _extra_axis,
    "batch_flattened": _batch_flattened,
    "axes_permuted": _leading_axes_swapped,
}


def shape_relation(got: Any, want: Any) -> tuple[tuple, tuple] | None:
    """The first pair of array shapes that differ between ``got`` and ``want``."""
    if isinstance(want, (tuple, list)) and isinstance(got, (tuple, list)):
        for g, w in zip(got, want):
            pair = shape_relation(g, w)
            if pair:
                return pair
        return None
    gs, ws = getattr(got, "shape", None), getattr(want, "shape", None)
    if gs is None or ws is None:
        return None
    gs, ws = tuple(int(s) for s in gs), tuple(int(s) for s in ws)
    return (gs, ws) if gs != ws else None


def relation_holds(rel: str | Callable[[tuple, tuple], bool], got: tuple, want: tuple) -> bool:
    fn = SHAPE_RELATIONS[rel] if isinstance(rel, str) else rel
    try:
        return bool(fn(got, want))
    except Exception:
        return False


def raise_matches(pattern: tuple[str, str], raised: Raised) -> bool:
    """``(type name, regex)``: the type (or "" for any) and a search in the message."""
    kind, rx = pattern
    return (not kind or kind == raised.type) and re.search(rx, raised.message) is not None


# ---------------------------------------------------------------------------
# Plain-data helpers for predicates
# ---------------------------------------------------------------------------

def as_array(x: Any) -> np.ndarray | None:
    """``x`` as a float64 (or bool) numpy array, or None when it is not array-like data."""
    if isinstance(x, Raised) or x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        x = x.numpy()
    try:
        a = np.asarray(x)
    except Exception:
        return None
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iufc":   # strings, objects: not array data
        return None
    return a.astype(np.float64)


def _tol(got: Any, want: Any, tol: tuple[float, float] | None) -> tuple[float, float]:
    from .compare import TOLERANCES, dtype_name

    if tol:
        return tol
    try:
        return TOLERANCES.get(dtype_name(want), TOLERANCES["float32"])
    except AttributeError:
        return TOLERANCES["float32"]


def wrong(got: Any, want: Any, tol: tuple[float, float] | None = None) -> np.ndarray | None:
    """Boolean mask of the entries where ``got`` is not ``want`` (NaN where the answer is
    finite counts as wrong); None when they are not arrays of one shape."""
    g, w = as_array(got), as_array(want)
    if g is None or w is None or g.shape != w.shape:
        return None
    if w.dtype == bool or g.dtype == bool:
        return g != w
    rtol, atol = _tol(got, want, tol)
    with np.errstate(invalid="ignore"):
        return ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)


def close(got: Any, want: Any, tol: tuple[float, float] | None = None) -> bool:
    """``got`` equals ``want`` within tolerance (arrays of one shape, numbers, or tuples
    and lists of them, element by element)."""
    if isinstance(want, (tuple, list)):
        return (isinstance(got, (tuple, list)) and len(got) == len(want)
                and all(close(g, w, tol) for g, w in zip(got, want)))
    if isinstance(want, dict):
        return (isinstance(got, dict) and set(got) == set(want)
                and all(close(got[k], want[k], tol) for k in want))
    if isinstance(want, (str, bytes)) or want is None:
        return got == want
    mask = wrong(got, want, tol)
    return mask is not None and not mask.any()


# ---------------------------------------------------------------------------
# Predicates: ``holds(got, want) -> bool``, composable
# ---------------------------------------------------------------------------

def _safe(fn: Predicate) -> Predicate:
    def holds(got: Any, want: Any) -> bool:
        try:
            return bool(fn(got, want))
        except Exception:
            return False

    holds.__doc__ = fn.__doc__
    return holds


def pick(index: Any, pred: Predicate) -> Predicate:
    """Apply ``pred`` to ``got[index]`` and ``want[index]`` (one output of a tuple, a slice)."""
    return _safe(lambda g, w: not isinstance(g, Raised) and pred(g[index], w[index]))


def all_of(*preds: Predicate) -> Predicate:
    return _safe(lambda g, w: all(p(g, w) for p in preds))


def any_of(*preds: Predicate) -> Predicate:
    return _safe(lambda g, w: any(p(g, w) for p in preds))


def is_right(tol: tuple[float, float] | None = None) -> Predicate:
    """The output is correct on this input (a mistake that shows only elsewhere)."""
    return _safe(lambda g, w: close(g, w, tol))


def differs(tol: tuple[float, float] | None = None) -> Predicate:
    """The output is wrong on this input (any way)."""
    return _safe(lambda g, w: not close(g, w, tol))


def equals(value: Any, tol: tuple[float, float] | None = None) -> Predicate:
    """The output equals ``value`` (a wrong answer computed by hand for this input)."""
    return _safe(lambda g, w: close(g, value, tol))


def wrong_only_in(region: Callable[[tuple], np.ndarray] | np.ndarray,
                  tol: tuple[float, float] | None = None) -> Predicate:
    """Wrong somewhere, and only inside ``region`` (a boolean mask of the output's
    shape, or a function of the shape returning one)."""

    def holds(g: Any, w: Any) -> bool:
        mask = wrong(g, w, tol)
        if mask is None or not mask.any():
            return False
        r = np.broadcast_to(region(mask.shape) if callable(region) else np.asarray(region, bool),
                            mask.shape)
        return bool(mask.any() and not (mask & ~r).any())

    return _safe(holds)


def wrong_everywhere_in(region: Callable[[tuple], np.ndarray] | np.ndarray,
                        tol: tuple[float, float] | None = None) -> Predicate:
    """Wrong in every entry of ``region`` (and maybe elsewhere)."""

    def holds(g: Any, w: Any) -> bool:
        mask = wrong(g, w, tol)
        if mask is None:
            return False
        r = np.broadcast_to(region(mask.shape) if callable(region) else np.asarray(region, bool),
                            mask.shape)
        return bool(r.any() and mask[r].all())

    return _safe(holds)


def along(axis: int, index: Any) -> Callable[[tuple], np.ndarray]:
    """Region: the entries whose index along ``axis`` is in ``index`` (int, slice, list)."""

    def region(shape: tuple) -> np.ndarray:
        sel = np.zeros(shape[axis], dtype=bool)
        sel[index] = True
        view = [1] * len(shape)
        view[axis] = shape[axis]
        return np.broadcast_to(sel.reshape(view), shape)

    return region


def nan_in(region: Callable[[tuple], np.ndarray] | np.ndarray | None = None) -> Predicate:
    """NaN (or inf) appears in the output, inside ``region`` when given, only where the
    answer is finite."""

    def holds(g: Any, w: Any) -> bool:
        ga, wa = as_array(g), as_array(w)
        if ga is None or wa is None or ga.shape != wa.shape:
            return False
        bad = ~np.isfinite(ga) & np.isfinite(wa)
        if region is not None:
            r = np.broadcast_to(region(bad.shape) if callable(region) else region, bad.shape)
            bad = bad & r
        return bool(bad.any())

    return _safe(holds)


def finite() -> Predicate:
    """No NaN or inf anywhere in the output."""
    return _safe(lambda g, w: as_array(g) is not None and bool(np.isfinite(as_array(g)).all()))


def scaled(tol: float = 1e-3) -> Predicate:
    """The output is the reference times one constant factor c ≠ 1 (a forgotten or
    doubled scale that multiplies the result)."""

    def holds(g: Any, w: Any) -> bool:
        ga, wa = as_array(g), as_array(w)
        if ga is None or wa is None or ga.shape != wa.shape or not np.isfinite(ga).all():
            return False
        big = np.abs(wa) > 1e-6 * max(1.0, float(np.abs(wa).max(initial=0)))
        if not big.any():
            return False
        c = float(np.median(ga[big] / wa[big]))
        return abs(c - 1) > 10 * tol and bool(np.allclose(ga, c * wa, rtol=tol, atol=tol * np.abs(wa).max()))

    return _safe(holds)


def raises(kind: str = "", pattern: str = "") -> Predicate:
    """The learner's code raised (an exception of type name ``kind``, whose message
    contains the regex ``pattern``) on this input."""
    return _safe(lambda g, w: isinstance(g, Raised) and raise_matches((kind, pattern), g))


def shape_is(relation: str | Callable[[tuple, tuple], bool]) -> Predicate:
    """The output's shape stands in ``relation`` to the answer's (``SHAPE_RELATIONS``)."""

    def holds(g: Any, w: Any) -> bool:
        pair = shape_relation(g, w)
        return pair is not None and relation_holds(relation, *pair)

    return _safe(holds)


def check(fn: Callable[[Any, Any], bool]) -> Predicate:
    """Any function ``fn(got, want) -> bool`` as a predicate (exceptions read as False)."""
    return _safe(fn)


# ---------------------------------------------------------------------------
# Localisers: where a wrong output is wrong, in the kata's terms
# ---------------------------------------------------------------------------

def spans(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` → ``"0–2, 5, 7–8"``."""
    idx = sorted(set(int(i) for i in indices))
    out, start = [], None
    for i, x in enumerate(idx):
        if start is None:
            start = x
        if i + 1 == len(idx) or idx[i + 1] != x + 1:
            out.append(str(start) if start == x else f"{start}–{x}")
            start = None
    return ", ".join(out)


def wrong_along(mask: np.ndarray, axis: int) -> list[int]:
    """Indices along ``axis`` holding at least one wrong entry."""
    other = tuple(a for a in range(mask.ndim) if a != axis % mask.ndim)
    return [int(i) for i in np.flatnonzero(mask.any(axis=other) if other else mask)]


def locate(mask: np.ndarray, axes: Sequence[str], tiles: Mapping[str, int] | None = None) -> str:
    """Where ``mask`` (wrong entries) is true, along the named trailing ``axes``:
    ``"query 1, 4–5 of 8; every feature"``; a tiled axis is also given in tiles."""
    tiles = tiles or {}
    parts = []
    named = list(axes)[-mask.ndim:] if mask.ndim else []
    offset = mask.ndim - len(named)
    for j, name in enumerate(named):
        axis = offset + j
        n = mask.shape[axis]
        bad = wrong_along(mask, axis)
        if not bad:
            continue
        if len(bad) == n:
            text = f"every {name} (all {n})" if n > 1 else ""
        else:
            text = f"{name} {spans(bad)} of 0–{n - 1}" if n > 1 else ""
        t = tiles.get(name)
        if t and n > t:
            count = -(-n // t)
            bad_tiles = sorted({b // t for b in bad})
            last = " (the last, partial one)" if bad_tiles == [count - 1] and n % t else ""
            text += (f"; {name} tiles {spans(bad_tiles)} of 0–{count - 1} "
                     f"(tiles of {t}){last}") if len(bad_tiles) < count else f"; every {name} tile"
        if text:
            parts.append(text)
    if not parts or all(p.startswith("every ") for p in parts):
        return "spread over " + (" and ".join(parts) if parts else "every entry")
    return "; ".join(p for p in parts if not p.startswith("every ") or ";" in p) or "every entry"


def where_wrong(probe: Probe, got: Any, want: Any) -> str:
    """One line: what the output does on this probe's input, in the kata's terms."""
    if isinstance(got, Raised):
        return f"on {probe.what}: raised {got.type}: {got.message[:120]}"
    if close(got, want, probe.tol):
        return f"on {probe.what}: right"
    pair = shape_relation(got, want)
    if pair:
        rel = next((n for n in SHAPE_RELATIONS if relation_holds(n, *pair)), None)
        return (f"on {probe.what}: shape {list(pair[0])}, expected {list(pair[1])}"
                + (f" ({rel.replace('_', ' ')})" if rel else ""))
    g, w = _first_wrong(got, want, probe.tol)
    part = ""
    if g is not got and isinstance(want, (tuple, list)):   # say which returned value is wrong
        i = next((i for i, x in enumerate(want) if x is w), None)
        part = f" of returned value {i + 1} (of {len(want)})" if i is not None else ""
    mask = wrong(g, w, probe.tol) if g is not None else None
    if mask is None:
        return f"on {probe.what}: wrong{part.replace(' of ', ' in ', 1)}"
    nan = nan_in()(g, w)
    axes = probe.axes or DEFAULT_AXES[-mask.ndim:] if mask.ndim else ()
    return (f"on {probe.what}: wrong{' (NaN)' if nan else ''} in {int(mask.sum())} of "
            f"{mask.size} entries{part} — {locate(mask, axes, probe.tiles)}")


DEFAULT_AXES = ("batch", "head", "row", "column")   # a probe's ``axes`` name them better


def _first_wrong(got: Any, want: Any, tol: tuple[float, float] | None) -> tuple[Any, Any]:
    """The first pair of outputs that differ, for tuples of outputs; the pair itself
    otherwise."""
    if isinstance(want, (tuple, list)) and isinstance(got, (tuple, list)) and len(got) == len(want):
        for g, w in zip(got, want):
            if not close(g, w, tol):
                return _first_wrong(g, w, tol)
    return got, want


# ---------------------------------------------------------------------------
# Growth: slopes over several sizes
# ---------------------------------------------------------------------------

def loglog_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against log(size): 1 linear growth, 2 quadratic.
    Values below 1 are read as 1 (nothing allocated)."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1.0))
    return float(np.polyfit(x, y, 1)[0])


def growth_order(sizes: Sequence[float], values: Sequence[float]) -> str:
    """``"constant"``, ``"linear"``, ``"n log n or worse"`` or ``"quadratic"`` from the slope."""
    s = loglog_slope(sizes, values)
    if s < 0.5:
        return "constant"
    if s < 1.3:
        return "linear"
    if s < 1.7:
        return "n log n or worse"
    return "quadratic"


def spacing(events: Sequence[int]) -> int | None:
    """The common gap between event positions (e.g. the appends that reallocated), or
    None when the gaps are not all equal (doubling gives growing gaps)."""
    gaps = {b - a for a, b in zip(events, events[1:])}
    return gaps.pop() if len(gaps) == 1 else None


# ---------------------------------------------------------------------------
# Ranking the evidence
# ---------------------------------------------------------------------------

@dataclass
class Evidence:
    """What one misconception's probes and patterns said about the learner's code."""

    misconception: Any
    reproduced: bool = False
    agrees: list[str] = field(default_factory=list)      # the inputs/patterns that fit
    disagrees: list[str] = field(default_factory=list)   # the probes that did not hold

    @property
    def count(self) -> int:
        return len(self.agrees) + (1 if self.reproduced else 0)

    @property
    def named(self) -> bool:
        """Strong enough to name: reproduced, or two agreeing inputs; nothing against."""
        return not self.disagrees and (self.reproduced or len(self.agrees) >= 2)


@dataclass
class Diagnosis:
    named: list[Evidence] = field(default_factory=list)    # best first
    closest: Evidence | None = None
    where: list[str] = field(default_factory=list)         # localisation, when nothing is named
    note: str = ""                                         # why probing stopped, if it did
    elsewhere: list[Evidence] = field(default_factory=list)  # named on other entries, not here

    @property
    def misconceptions(self) -> list[Any]:
        return [e.misconception for e in self.named]


def rank(evidence: list[Evidence]) -> Diagnosis:
    """Named ones first (reproduced, then more agreeing evidence, then declaration
    order); otherwise the one with the most evidence is only "closest"."""
    order = {id(e): i for i, e in enumerate(evidence)}
    named = sorted((e for e in evidence if e.named),
                   key=lambda e: (not (e.reproduced and not e.disagrees), -e.count, order[id(e)]))
    if named:
        return Diagnosis(named=named)
    partial = sorted((e for e in evidence if e.count), key=lambda e: (-e.count, len(e.disagrees),
                                                                     order[id(e)]))
    return Diagnosis(closest=partial[0] if partial else None)


def describe_named(e: Evidence) -> str:
    m = e.misconception
    if e.reproduced and not e.agrees:
        return f"This looks like the misconception \"{m.name}\" [{m.id}]."
    how = "; and ".join(e.agrees[:3])
    return f"This looks like the misconception \"{m.name}\" [{m.id}]: it behaves like this mistake {how}."


def describe_closest(e: Evidence) -> str:
    m = e.misconception
    fits = "; and ".join(e.agrees[:2]) or "on the failing input"
    against = f", but not {e.disagrees[0]}" if e.disagrees else ""
    return (f"Closest to the misconception \"{m.name}\" [{m.id}] (it fits {fits}{against}); "
            f"not named, since the evidence is partial.")


# ---------------------------------------------------------------------------
# Declaring: inline on Misconception(probes=..., raises=..., shapes=...), or attached
# ---------------------------------------------------------------------------

def attach(kata: Any, *, probes: Mapping[str, Sequence[Probe]] | None = None,
           raises: Mapping[str, Sequence[tuple[str, str]]] | None = None,
           shapes: Mapping[str, Sequence[Any]] | None = None,
           add: Sequence[Any] = (), diagnostics: Sequence[Probe] = (),
           variants: Sequence[Any] = ()) -> Any:
    """A copy of ``kata`` whose misconceptions (by id) gain ``probes``, ``raises`` and
    ``shapes``; ``add`` appends misconceptions, ``diagnostics`` and ``variants`` extend
    the kata's.  For declaring behaviour in a block of its own below a kata::

        ATTENTION = attach(ATTENTION, probes={"forgot_scale": (P1, P2)})

    An unknown id raises ``KeyError`` at import, so a typo cannot silently drop probes."""
    from dataclasses import replace

    probes, raises, shapes = dict(probes or {}), dict(raises or {}), dict(shapes or {})
    ms = list(kata.misconceptions) + list(add)
    known = {m.id for m in ms}
    unknown = (set(probes) | set(raises) | set(shapes)) - known
    if unknown:
        raise KeyError(f"kata {kata.id!r} has no misconception(s) {sorted(unknown)}")
    ms = [replace(m, probes=tuple(m.probes) + tuple(probes.get(m.id, ())),
                  raises=tuple(m.raises) + tuple(raises.get(m.id, ())),
                  shapes=tuple(m.shapes) + tuple(shapes.get(m.id, ()))) for m in ms]
    return replace(kata, misconceptions=tuple(ms),
                   diagnostics=tuple(kata.diagnostics) + tuple(diagnostics),
                   variants=tuple(kata.variants) + tuple(variants))
