"""Model-based checking of the level-6 classes, with the mistake named by replay.

A *driver* applies operations (``("append", handle, t)``…) to a subject — the learner's
class, the reference, or a misconception — and to a plain model of what must be true,
and raises :class:`Discrepancy` at the first difference.  Hypothesis' stateful testing
(``RuleBasedStateMachine``) chooses the operations: random interleavings, shrunk to a
short failing story.  That story is then replayed on every misconception class; those
that go wrong at the same step in the same way are named in the failure.

Learner calls go through ``ctx.run``: ``NotImplementedError`` reads "not started", a
hang times out.  Exceptions are captured as values, because some are expected (out of
blocks, double free); an unexpected one fails with the learner's own frames.
"""

from __future__ import annotations

from typing import Any, Callable

from attnkata.harness import KataFailure, Namespace, learner_traceback

MAX_LINES = 30  # steps shown in a failure before older ones are elided


class Discrepancy(Exception):
    """The subject differs from the model; ``key`` says how, independent of block ids."""

    def __init__(self, key: tuple, message: str, ops: list[tuple]):
        super().__init__(message)
        self.key = key
        self.message = message
        self.ops = ops


def attempt(thunk: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, value)`` or ``(False, exception)``; ``NotImplementedError`` passes through."""
    try:
        return True, thunk()
    except NotImplementedError:  # a RuntimeError subclass: must not read as "out of blocks"
        raise
    except Exception as exc:  # noqa: BLE001 - the driver decides what was expected
        return False, exc


class Caller:
    """How a driver calls its subject: guarded through ``ctx.run`` for learner code."""

    def __init__(self, ctx: Any = None):
        self.ctx = ctx

    def __call__(self, thunk: Callable[[], Any], what: str) -> tuple[bool, Any]:
        if self.ctx is None:
            return attempt(thunk)
        return self.ctx.run(lambda: attempt(thunk), what)

    def explain(self, exc: BaseException) -> str:
        root = self.ctx.target_root if self.ctx is not None else None
        return learner_traceback(exc, root)


class Driver:
    """Applies operations to a subject and a model; subclasses define ``step`` and ``check``."""

    entry = ""

    def __init__(self, ns: Any, caller: Caller):
        self.ns = ns
        self.caller = caller
        self.ops: list[tuple] = []
        self.lines: list[str] = []

    def apply(self, op: tuple) -> None:
        self.ops.append(op)
        self.step(op)
        self.check()

    def step(self, op: tuple) -> None:
        raise NotImplementedError

    def check(self) -> None:
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------
    def call(self, thunk: Callable[[], Any], what: str, *, expect: type | None = None,
             line: str | None = None, show: bool = True, hint: str = "") -> tuple[bool, Any]:
        """Call the subject; fail on an exception other than ``expect``, or on none when one was due.

        ``hint`` is added to such a failure: what the surprise usually means.
        """
        ok, value = self.caller(thunk, what)
        shown = line or what
        hint = f"\n{hint}" if hint else ""
        if ok and expect is not None:
            self.lines.append(f"{shown}  → returned {_short(value)}")
            self.fail(("no error", what.split("(")[0], expect.__name__),
                      f"{what} should raise {expect.__name__}, but it returned {_short(value)}.{hint}")
        if not ok and (expect is None or not isinstance(value, expect)):
            self.lines.append(f"{shown}  → raised {type(value).__name__}")
            wanted = f"{expect.__name__}" if expect else "no exception"
            self.fail(("raised", what.split("(")[0], type(value).__name__),
                      f"{what} raised {type(value).__name__} (expected {wanted}):{hint}\n"
                      f"{self.caller.explain(value)}")
        if ok:
            self.lines.append(shown if value is None or not show else f"{shown}  → {_short(value)}")
        else:
            self.lines.append(f"{shown}  → raised {type(value).__name__}, as it should")
        return ok, value

    def read(self, thunk: Callable[[], Any], what: str) -> Any:
        """Query the subject (not shown as a step); any exception fails."""
        ok, value = self.caller(thunk, what)
        if not ok:
            self.fail(("raised", what.split("(")[0], type(value).__name__),
                      f"{what} raised {type(value).__name__}:\n{self.caller.explain(value)}")
        return value

    def fail(self, key: tuple, problem: str) -> None:
        lines = self.lines
        shown = lines[-MAX_LINES:]
        first = len(lines) - len(shown) + 1
        text = [f"{self.entry}: the hidden model check ran these steps"]
        if first > 1:
            text.append(f"  … ({first - 1} earlier steps)")
        text += [f"  {i}. {line}" for i, line in enumerate(shown, first)]
        text.append(f"and then: {problem}")
        raise Discrepancy((len(self.ops),) + key, "\n".join(text), list(self.ops))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------
# Running a state machine inside a check
# ---------------------------------------------------------------------------

def replay(driver_cls: type[Driver], ns: Any, ops: list[tuple]) -> tuple | None:
    """The key of the first discrepancy when ``ops`` run on ``ns``, or None."""
    driver = driver_cls(ns, Caller())
    try:
        for op in ops:
            driver.apply(op)
    except Discrepancy as d:
        return d.key
    except Exception:  # noqa: BLE001 - a misconception that cannot run here cannot match
        return None
    return None


def run_machine(ctx: Any, machine_cls: type, driver_cls: type[Driver], *,
                max_examples: int | None = None, steps: int = 20) -> None:
    """Run ``machine_cls(driver)`` as a hypothesis state machine; fail naming the mistake."""
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis.stateful import run_state_machine_as_test

    def factory():
        return machine_cls(driver_cls(ctx.target, Caller(ctx)))

    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if ctx.shrink else [])
    try:
        run_state_machine_as_test(factory, settings=settings(
            max_examples=max_examples or ctx.max_examples, stateful_step_count=steps,
            deadline=None, derandomize=True, database=None, phases=phases,
            print_blob=False, report_multiple_bugs=False, verbosity=Verbosity.quiet,
            suppress_health_check=list(HealthCheck)))
    except Discrepancy as d:
        raise _named(ctx, driver_cls, d) from None
    except BaseExceptionGroup as group:  # hypothesis' Flaky wraps a nondeterministic failure
        found = _first_discrepancy(group)
        if found is None:
            raise
        raise _named(ctx, driver_cls, found, flaky=True) from None


def _first_discrepancy(group: BaseExceptionGroup) -> Discrepancy | None:
    for exc in group.exceptions:
        if isinstance(exc, Discrepancy):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_discrepancy(exc)
            if found is not None:
                return found
    return None


def _named(ctx: Any, driver_cls: type[Driver], d: Discrepancy, flaky: bool = False) -> KataFailure:
    matched = [m for m in ctx.kata.misconceptions
               if replay(driver_cls, Namespace(ctx.ref, dict(m.impls), m.id), d.ops) == d.key]
    message = d.message
    if flaky:
        message += "\n(The same steps did not always fail: does your class depend on randomness?)"
    explain = getattr(ctx, "explain", None)
    if explain is not None:  # replay is exact reproduction; probes name the family (issue 14)
        from attnkata.harness import _diagnosis_lines

        diagnosis = explain(matched)
        named = diagnosis.misconceptions
        message = "\n".join([message, *_diagnosis_lines(diagnosis)])
        return KataFailure(message, named[0] if named else None, tuple(named[1:]), diagnosis)
    if matched:
        m = matched[0]
        message += f"\nThis looks like the misconception \"{m.name}\" [{m.id}]."
        if m.explanation:
            message += f"\n  {m.explanation}"
        for other in matched[1:]:
            message += f"\n  (also consistent with \"{other.name}\" [{other.id}])"
    return KataFailure(message, matched[0] if matched else None, tuple(matched[1:]))


def outcome(thunk: Callable[[], Any]) -> Any:
    """For scenarios: the value, or the name of the exception raised (not NotImplementedError)."""
    ok, value = attempt(thunk)
    return value if ok else type(value).__name__


# ---------------------------------------------------------------------------
# Misconception classes: the reference class with one method done wrong
# ---------------------------------------------------------------------------

def wrong_class(file: str, entry: str, mixin: type,
                level: str = "level6") -> Callable[..., Any]:
    """A constructor for ``mixin`` over the core reference ``solutions/<level>/<file>``'s
    ``entry`` (built on first use): the reference class with one method done wrong.

    The reference is imported lazily, so declaring misconceptions imports no torch.
    """
    built: list[type] = []

    def construct(*args: Any, **kwargs: Any) -> Any:
        if not built:
            from attnkata.target import load_module

            from .. import ROOT
            base = getattr(load_module(ROOT / "solutions" / level / file, ROOT / "solutions"), entry)
            built.append(type(mixin.__name__.lstrip("_"), (mixin, base), {}))
        return built[0](*args, **kwargs)

    construct.__name__ = mixin.__name__.lstrip("_")
    construct.__doc__ = mixin.__doc__
    return construct
