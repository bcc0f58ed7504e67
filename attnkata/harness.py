"""The hidden-test engine: run untrusted learner code and explain what went wrong.

Every check receives a :class:`Ctx`.  ``ctx.expect(name, *args)`` calls the target's
``name`` and the reference's on copies of the same inputs, and compares; a mismatch
is checked against the kata's misconceptions so the failure can say which mistake it
looks like.  Learner code runs guarded: a per-call timeout, ``NotImplementedError``
read as "not started", other exceptions reported with the learner's own frames, and
inputs compared before and after the call to catch mutation.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import signal
import threading
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .compare import Mismatch, compare, describe
from .diagnose import (Diagnosis, Evidence, Raised, SHAPE_RELATIONS, concerns, describe_closest,
                       describe_named, probe_entries, rank, raise_matches, relation_holds,
                       shape_relation, where_wrong)
from .model import Kata, Misconception
from .remote import RemoteModule, WorkerGone, probe as _probe
from .wire import mutated, snapshot, unwritten


# ---------------------------------------------------------------------------
# Outcomes.  ``Abort`` subclasses BaseException so that hypothesis does not try to
# shrink them: a hang or a missing implementation ends the check at once.
# ---------------------------------------------------------------------------

class Abort(BaseException):
    """Ends a check immediately, bypassing hypothesis' shrinking."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotStarted(Abort):
    """The learner has not implemented this yet (``NotImplementedError``)."""


class Unavailable(Abort):
    """Something this kata needs (Triton, CUDA, a backend) is missing here."""


class LearnerTimeout(Abort):
    """Learner code ran past the kata's time limit."""


class WorkerCrashed(Abort):
    """Learner code crashed its worker process, or ended it (``os._exit``, ``sys.exit``)."""


def gone(exc: WorkerGone) -> Abort:
    """The check-facing outcome of a worker that timed out or died."""
    return LearnerTimeout(exc.message) if exc.timed_out else WorkerCrashed(exc.message)


class KataFailure(Exception):
    """The target is wrong; ``message`` says what was expected and what came back."""

    def __init__(self, message: str, misconception: Misconception | None = None,
                 also: tuple[Misconception, ...] = (), diagnosis: Diagnosis | None = None):
        super().__init__(message)
        self.message = message
        self.misconception = misconception
        self.matched = ((misconception,) if misconception else ()) + tuple(also)
        self.diagnosis = diagnosis   # the evidence behind the names, when probes ran


class LearnerError(KataFailure):
    """Learner code raised; ``message`` carries a traceback of the learner's frames."""


# ---------------------------------------------------------------------------
# Namespaces: the learner's module, the reference, or the reference with overrides.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Namespace:
    """Attribute lookup: ``overrides`` first, then ``base`` (a module)."""

    base: Any
    overrides: dict = field(default_factory=dict)
    label: str = "target"

    def __getattr__(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        return getattr(self.base, name)

    def has(self, name: str) -> bool:
        return name in self.overrides or hasattr(self.base, name)


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`LearnerTimeout` in the main thread after ``seconds``."""
    usable = (seconds and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise LearnerTimeout(
            f"{what} did not finish within {seconds:g} s: an infinite loop, or a "
            f"size-dependent slowdown (a Python loop over every element?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay:
            signal.setitimer(signal.ITIMER_REAL, old_delay)


def learner_traceback(exc: BaseException, root: Path | None) -> str:
    """The traceback frames that belong to files under ``root``, innermost last."""
    remote_tb = getattr(exc, "learner_traceback", None)
    if remote_tb is not None:  # formatted in the worker, where the frames were
        kind = getattr(exc, "learner_type", type(exc).__name__)
        text = str(exc)
        if isinstance(exc, KeyError) and exc.args:
            text = str(exc.args[0])
        return (remote_tb.rstrip() + "\n" if remote_tb.strip() else "") + f"{kind}: {text}"
    frames = traceback.extract_tb(exc.__traceback__)
    if root is not None:
        mine = [f for f in frames if _inside(f.filename, root)]
        if mine:  # the learner's own frames, innermost last; the error line says the rest
            frames = traceback.StackSummary.from_list(mine)
    lines = traceback.format_list(frames[-6:])
    head = f"{type(exc).__name__}: {exc}"
    return "".join(lines).rstrip() + "\n" + head


def _inside(filename: str, root: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(root)
        return True
    except (ValueError, OSError):
        return False


# Probe outcomes per (kata, target): a failing kata's checks share one diagnosis run.
# The target is kept with its outcomes so a recycled id() never serves stale ones.
_PROBE_CACHE: dict[tuple[str, int], tuple[Any, dict]] = {}
_PROBE_CACHE_SIZE = 16
_NO_VALUE = object()


class _Switch:
    probes = True   # selfcheck turns probes off to count what reproduction alone names


DIAGNOSIS = _Switch()


@contextlib.contextmanager
def probes_off() -> Iterator[None]:
    """Name misconceptions by exact reproduction (and checks' own ``ctx.fail``) only."""
    was, DIAGNOSIS.probes = DIAGNOSIS.probes, False
    try:
        yield
    finally:
        DIAGNOSIS.probes = was


def _outcomes_for(kata_id: str, target: Any) -> dict:
    key = (kata_id, id(target))
    held = _PROBE_CACHE.get(key)
    if held is not None and held[0] is target:
        return held[1]
    while len(_PROBE_CACHE) >= _PROBE_CACHE_SIZE:
        _PROBE_CACHE.pop(next(iter(_PROBE_CACHE)))
    _PROBE_CACHE[key] = (target, {})
    return _PROBE_CACHE[key][1]


def stable_seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


class Ctx:
    """What a check sees: the target, the reference, and guarded ways to call them."""

    def __init__(self, kata: Kata, target: Any, reference: Any, *,
                 target_root: Path | None = None, check_id: str = "",
                 timeout: float | None = None, max_examples: int = 25, seed: int = 0,
                 shrink: bool = True):
        self.kata = kata
        self.target = target
        self.ref = reference
        self.target_root = target_root.resolve() if target_root else None
        self.check_id = check_id
        self.timeout = kata.timeout if timeout is None else timeout
        self.max_examples = max_examples
        self.seed = seed
        self.shrink = shrink
        self.figures: list[str] = []
        self.called: list[str] = []   # the entries this check called, first call first
        self.rng = np.random.default_rng(stable_seed(kata.id, check_id, str(seed)))

    # -- calling learner code ----------------------------------------------
    def entry(self, name: str) -> Any:
        """The target's ``name``; the check counts as exercising that entry (a failure
        is then named after misconceptions about the entries a check touched)."""
        self._called(name)
        try:
            return getattr(self.target, name)
        except AttributeError:
            raise KataFailure(f"the target defines no `{name}`: keep the stub's name "
                              f"and signature exactly") from None

    @property
    def remote(self) -> bool:
        """Whether the target lives in a worker process (always, for learner code)."""
        return isinstance(self.target, RemoteModule)

    def _limit(self, what: str) -> Any:
        if self.remote:
            return self.target._channel.limit(self.timeout, what)
        return time_limit(self.timeout, what)

    def _called(self, name: str) -> None:
        if name not in self.called:
            self.called.append(name)

    def run(self, thunk: Callable[[], Any], what: str, *,
            entries: tuple[str, ...] | None = None) -> Any:
        """Run learner code ``thunk`` guarded (timeout, not-started, learner traceback).
        ``entries``: the kata entries ``thunk`` calls, so an exception is named only after
        misconceptions about them (None: any)."""
        try:
            with self._limit(what):
                return thunk()
        except WorkerGone as exc:
            raise gone(exc) from None
        except NotImplementedError as exc:
            raise NotStarted(str(exc) or f"{what} raises NotImplementedError") from None
        except (Abort, KataFailure):
            raise
        except Exception as exc:  # learner code is untrusted: any error is feedback
            if unwritten(exc):
                raise NotStarted(f"{what}: the Triton kernel body is still the stub's "
                                 f"NotImplementedError") from None
            tb = learner_traceback(exc, self.target_root).splitlines()
            frames = "\n".join(tb[:-1])
            message = (f"{what} raised {tb[-1] if tb else type(exc).__name__}"
                       + (f"\n{frames}" if frames else ""))
            diagnosis = self.explain([], raised=_raised(exc), entries=entries)
            lines = _diagnosis_lines(diagnosis)
            named = diagnosis.misconceptions
            raise LearnerError("\n".join([message, *lines]), named[0] if named else None,
                               tuple(named[1:]), diagnosis) from None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the target's ``name`` guarded, and fail if it mutated its inputs."""
        if self.remote:
            return self._finish(name, self._start(name, args, kwargs), describe(name, args, kwargs))
        fn = self.entry(name)
        what = describe(name, args, kwargs)
        before = snapshot((args, kwargs))
        out = self.run(lambda: fn(*args, **kwargs), what, entries=(name,))
        self._refuse_mutation(what, self._param(name, mutated(before, args, kwargs)))
        return out

    @staticmethod
    def _refuse_mutation(what: str, param: str | None) -> None:
        if param:
            raise KataFailure(f"{what} modified its input `{param}` in place. Inputs "
                              f"belong to the caller: compute into new arrays instead "
                              f"(watch for `x -= ...`, `x[...] = ...`, out= arguments).")

    def call_soon(self, name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
        """Start ``ctx.call(name, ...)`` and return a thunk for its result.

        The learner's worker computes while this process does other work (the
        reference, usually): ``got = ctx.call_soon(...); want = ...; got = got()``.
        Copies of the inputs are sent at once, so later changes to them are not seen."""
        if not self.remote:
            a, kw = copy.deepcopy((args, kwargs))
            return lambda: self.call(name, *a, **kw)
        pending = self._start(name, args, kwargs)
        return lambda: self._finish(name, pending, describe(name, args, kwargs))

    def _start(self, name: str, args: tuple, kwargs: dict) -> Any:
        """Send a watched call of the target's ``name`` to the worker (see ``_finish``)."""
        self.entry(name)
        what = describe(name, args, kwargs)
        channel = self.target._channel
        try:
            with self._limit(what):
                return channel.start(("call_watch", None, name, args, kwargs), what)
        except WorkerGone as exc:
            raise gone(exc) from None

    def _finish(self, name: str, pending: Any, what: str) -> Any:
        """The answer to ``_start``'s call, guarded like :meth:`call`."""
        out, where = self.run(pending.result, what, entries=(name,))
        self._refuse_mutation(what, self._param(name, where))
        return out

    def _param(self, name: str, where: Any) -> str | None:
        """The parameter name for the position (int) or keyword (str) of a changed input."""
        if where is None:
            return None
        if isinstance(where, str):
            return where
        try:
            params = list(inspect.signature(getattr(self.ref, name)).parameters)
        except (TypeError, ValueError, AttributeError):
            params = []
        if isinstance(where, int) and 0 <= where < len(params):
            return params[where]
        return f"argument {where + 1}" if isinstance(where, int) else "an argument"

    def probe(self, module: str, name: str, *args: Any, what: str = "", **kwargs: Any) -> Any:
        """Run the worker-side function ``module.name(learner_module, *args, **kwargs)``
        (a measurement next to the learner's code: see :mod:`attnkata.probes`)."""
        return self.run(lambda: _probe(self.target, module, name, *args, **kwargs),
                        what or name)

    def reference(self, name: str, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = copy.deepcopy((args, kwargs))
        with np.errstate(all="ignore"):
            return getattr(self.ref, name)(*args, **kwargs)

    # -- comparing -----------------------------------------------------------
    def expect(self, name: str, *args: Any, tol: tuple[float, float] | None = None,
               **kwargs: Any) -> Any:
        """Target's ``name(*args, **kwargs)`` must match the reference's; returns it."""
        if self.remote:  # the worker computes the learner's answer while the reference runs here
            pending = self._start(name, args, kwargs)
            want = self.reference(name, *args, **kwargs)
            got = self._finish(name, pending, describe(name, args, kwargs))
        else:
            want = self.reference(name, *args, **kwargs)
            got = self.call(name, *copy.deepcopy(args), **copy.deepcopy(kwargs))
        what = describe(name, args, kwargs)

        def rerun(ns: Any) -> Any:
            a, kw = copy.deepcopy((args, kwargs))
            return getattr(ns, name)(*a, **kw)

        self.match(got, want, what, rerun=rerun, tol=tol, entries=(name,))
        return got

    def expect_scenario(self, scenario: Callable[[Any], Any], what: str, *,
                        tol: tuple[float, float] | None = None) -> Any:
        """Run ``scenario(namespace)`` on reference and target; outputs must match.

        For katas whose entries are classes or work together: the scenario builds
        its own inputs, drives the namespace, and returns what to compare.
        """
        with np.errstate(all="ignore"):
            want = scenario(self.ref)
        got = self.run(lambda: scenario(self.target), what)
        self.match(got, want, what, rerun=scenario, tol=tol, entries=None)
        return got

    def match(self, got: Any, want: Any, what: str, *, rerun: Callable[[Any], Any] | None = None,
              tol: tuple[float, float] | None = None, entries: tuple[str, ...] | None = None) -> None:
        """Compare; on a mismatch name the misconceptions that produce ``got``."""
        problem = compare(got, want, tol=tol)
        if problem is None:
            return
        matched = self.diagnose(got, rerun, tol, entries) if rerun else []
        diagnosis = self.explain(matched, got=got, want=want, entries=entries)
        raise self.failure(what, problem, diagnosis.misconceptions, diagnosis)

    def diagnose(self, got: Any, rerun: Callable[[Any], Any], tol: Any,
                 entries: tuple[str, ...] | None) -> list[Misconception]:
        found = []
        for m in self.kata.misconceptions:
            if entries is not None and not set(m.impls) & set(entries):
                continue
            try:
                with time_limit(self.timeout, m.name), np.errstate(all="ignore"):
                    theirs = rerun(Namespace(self.ref, dict(m.impls), m.id))
            except Exception:  # a misconception that cannot run here cannot match
                continue
            if compare(got, theirs, tol=tol) is None:
                found.append(m)
        return found

    def failure(self, what: str, problem: Mismatch, matched: list[Misconception],
                diagnosis: Diagnosis | None = None) -> KataFailure:
        lines = [f"{what}: {problem.summary}"]
        lines += [f"  {d}" for d in problem.details]
        if diagnosis is None:
            diagnosis = Diagnosis(named=[Evidence(m, reproduced=True) for m in matched])
        lines += _diagnosis_lines(diagnosis)
        named = diagnosis.misconceptions
        return KataFailure("\n".join(lines), named[0] if named else None, tuple(named[1:]),
                           diagnosis)

    # -- diagnosis by behaviour (attnkata.diagnose) -------------------------
    def explain(self, reproduced: list[Misconception], *, got: Any = _NO_VALUE,
                want: Any = _NO_VALUE, raised: Raised | None = None,
                entries: tuple[str, ...] | None = None) -> Diagnosis:
        """Rank the kata's misconceptions by every piece of evidence: exact reproduction
        (``reproduced``), the exception ``raised``, the shape relation of ``got`` to
        ``want``, and the probes, run on the target (cached per target).  When none is
        named, ``where`` says on which probe inputs the output is wrong, and where.

        ``entries`` (the kata entries the failing check exercised; None: unknown) keeps the
        names to misconceptions about those entries, judged by the probes that drive
        them; one that probes on other entries name goes to ``elsewhere`` only."""
        rel = None if entries is None else set(entries)

        def about(m: Misconception) -> bool:
            return rel is None or not concerns(m) or bool(concerns(m) & rel)

        def bearing(p: Any, m: Misconception) -> bool:
            return rel is None or not probe_entries(p, m) or bool(probe_entries(p, m) & rel)

        pool = [m for m in self.kata.misconceptions if about(m)]
        diagnosable = any(m.probes or m.raises or m.shapes for m in pool) or self.kata.diagnostics
        if not DIAGNOSIS.probes or not diagnosable:
            return Diagnosis(named=[Evidence(m, reproduced=True) for m in reproduced])
        pair = shape_relation(got, want) if got is not _NO_VALUE else None
        evidence = []
        for m in pool:
            e = Evidence(m, reproduced=m in reproduced)
            if raised is not None and any(raise_matches(p, raised) for p in m.raises):
                e.agrees.append(f"in the exception it raises ({raised.type})")
            if pair is not None:
                shape_rel = next((r for r in m.shapes if relation_holds(r, *pair)), None)
                if shape_rel is not None:
                    e.agrees.append(f"in its output's shape ({_relation_name(shape_rel)})")
            for probe in m.probes:
                if not bearing(probe, m):
                    continue
                verdict = self._probe_holds(probe, m)
                if verdict is None:
                    continue
                (e.agrees if verdict else e.disagrees).append(f"on {probe.what}")
            evidence.append(e)
        diagnosis = rank(evidence)
        if rel is not None:   # mistakes the probes see in other entries: mentioned, not named
            here = {id(e.misconception) for e in diagnosis.named}
            for m in self.kata.misconceptions:
                if id(m) in here or not m.probes:
                    continue
                e = Evidence(m)
                for probe in m.probes:
                    if bearing(probe, m):
                        continue
                    verdict = self._probe_holds(probe, m)
                    if verdict is not None:
                        (e.agrees if verdict else e.disagrees).append(f"on {probe.what}")
                if e.named:
                    diagnosis.elsewhere.append(e)
        if not diagnosis.named:
            diagnosis.where = self._where(pool, bearing)
        stopped = _outcomes_for(self.kata.id, self.target).get("stopped")
        if stopped:
            diagnosis.note = stopped
        return diagnosis

    def _probe_outcome(self, probe: Any) -> Any:
        """The target's output on ``probe`` (a :class:`Raised` if it raised), cached;
        ``_NO_VALUE`` once a probe timed out or ended the worker (probing stops)."""
        cache = _outcomes_for(self.kata.id, self.target)
        if cache.get("stopped"):
            return cache.get(id(probe), _NO_VALUE)
        if id(probe) not in cache:
            try:
                with self._limit(f"diagnosis: {probe.what}"), np.errstate(all="ignore"):
                    cache[id(probe)] = probe.run(self.target)
            except (WorkerGone, Abort) as exc:
                text = getattr(exc, "message", str(exc))
                cache["stopped"] = (f"diagnosis stopped: the code did not finish, or ended its "
                                    f"worker, on {probe.what}: {text}")[:600]
                return _NO_VALUE
            except Exception as exc:  # learner code raising on a probe is evidence too
                cache[id(probe)] = _raised(exc)
        return cache[id(probe)]

    def _probe_reference(self, probe: Any, ns: Any = None) -> Any:
        """The reference's (or a misconception's, ``ns``) output on ``probe``: trusted code."""
        cache = _outcomes_for(self.kata.id, self.ref)
        key = (id(probe), id(ns) if ns is not None else None)
        if key not in cache:
            try:
                with np.errstate(all="ignore"):
                    cache[key] = probe.run(ns if ns is not None else self.ref)
            except Exception as exc:
                cache[key] = _raised(exc)
        return cache[key]

    def _probe_holds(self, probe: Any, m: Misconception) -> bool | None:
        got = self._probe_outcome(probe)
        if got is _NO_VALUE:
            return None
        want = self._probe_reference(probe)
        if probe.holds is None:   # reproduction on a chosen input
            theirs = self._probe_reference(probe, _modelled(self.ref, m))
            return compare(got, theirs, tol=probe.tol) is None
        try:
            return bool(probe.holds(got, want))
        except Exception:
            return False

    def _where(self, pool: list[Misconception], bearing: Callable[[Any, Any], bool]) -> list[str]:
        probes = [p for p in self.kata.diagnostics if bearing(p, None)] + sorted(
            (p for m in pool for p in m.probes if bearing(p, m)), key=lambda p: not p.axes)
        out, right = [], []
        for probe in probes:
            got = self._probe_outcome(probe)
            if got is _NO_VALUE:
                continue
            line = where_wrong(probe, got, self._probe_reference(probe))
            (right if line.endswith(": right") else out).append(line)
        if right and out:
            out.append("right " + "; ".join(r.removesuffix(": right") for r in right[:3]))
        return out[:5]

    def record(self, figure: str) -> None:
        """Keep a measured figure (e.g. peak memory at each N): claims this check
        witnesses are reported with it, so a toy claim carries its own numbers."""
        self.figures.append(figure)

    def fail(self, message: str, misconception: str | None = None, *,
             diagnose: bool = False, entries: tuple[str, ...] | None = None) -> None:
        """Fail the check; ``misconception`` (an id of this kata's) names the mistake.
        ``diagnose=True`` lets the probes name it instead (docs/DIAGNOSIS.md): for checks
        that measure (slopes, counts) where several mistakes fail the same way.
        ``entries``: the entries whose output failed (default: every entry this check
        called through ``ctx.call``/``ctx.expect``; none called: any)."""
        m = next((m for m in self.kata.misconceptions if m.id == misconception), None)
        if m is not None:
            message += f"\nThis looks like the misconception \"{m.name}\" [{m.id}]."
            if m.explanation:
                message += f"\n  {m.explanation}"
        elif diagnose:
            if entries is None and self.called:
                entries = tuple(self.called)
            diagnosis = self.explain([], entries=entries)
            named = diagnosis.misconceptions
            raise KataFailure("\n".join([message, *_diagnosis_lines(diagnosis)]),
                              named[0] if named else None, tuple(named[1:]), diagnosis)
        raise KataFailure(message, m)

    # -- generated inputs ---------------------------------------------------
    def given(self, max_examples: int | None = None, shrink: bool = True,
              **strategies: Any) -> Callable[[Callable[..., None]], Callable[[], None]]:
        """``hypothesis.given`` with settings fit for grading: seeded from the run's seed, no deadline."""
        from hypothesis import HealthCheck, Phase, given, seed, settings

        from .strategies import resolve

        strategies = resolve(strategies)  # built now if the kata module wrote them lazily
        phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink and self.shrink else [])

        def wrap(fn: Callable[..., None]) -> Callable[[], None]:
            return settings(
                max_examples=max_examples or self.max_examples, deadline=None,
                database=None, phases=phases, print_blob=False,
                report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck),
            )(seed(stable_seed(self.kata.id, self.check_id, str(self.seed)))(given(**strategies)(fn)))

        return wrap


_MODELLED: dict[tuple[int, str], Namespace] = {}


def _modelled(ref: Any, m: Misconception) -> Namespace:
    """One namespace per (reference, misconception), so its probe outputs are cached."""
    key = (id(ref), m.id)
    ns = _MODELLED.get(key)
    if ns is None or ns.base is not ref:
        ns = _MODELLED[key] = Namespace(ref, dict(m.impls), m.id)
    return ns


def _raised(exc: BaseException) -> Raised:
    kind = getattr(exc, "learner_type", type(exc).__name__)
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return Raised(str(kind).rsplit(".", 1)[-1], text)


def _relation_name(rel: Any) -> str:
    if isinstance(rel, str):
        return rel.replace("_", " ")
    return getattr(rel, "__doc__", None) or getattr(rel, "__name__", "a known relation")


def _diagnosis_lines(d: Diagnosis) -> list[str]:
    """The failure's closing lines: the names (with explanation), or the closest, or where."""
    lines = []
    if d.named:
        first = d.named[0]
        lines.append(describe_named(first))
        if first.misconception.explanation:
            lines.append(f"  {first.misconception.explanation}")
        for other in d.named[1:]:
            lines.append(f"  (also consistent with \"{other.misconception.name}\" "
                         f"[{other.misconception.id}])")
        return lines + _elsewhere_lines(d) + ([d.note] if d.note else [])
    if d.closest is not None:
        lines.append(describe_closest(d.closest))
    if d.where:
        lines.append("Where it goes wrong, on the diagnosis inputs:")
        lines += [f"  {w}" for w in d.where]
    lines += _elsewhere_lines(d)
    if d.note:
        lines.append(d.note)
    return lines


def _elsewhere_lines(d: Diagnosis) -> list[str]:
    """Mistakes the probes found in entries this failure did not exercise: a pointer only."""
    if not d.elsewhere:
        return []
    seen = "; ".join(f"\"{e.misconception.name}\" [{e.misconception.id}]" for e in d.elsewhere[:3])
    return [f"Also seen elsewhere in this kata, in other functions (not the cause of this "
            f"failure): {seen}."]
