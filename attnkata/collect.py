"""Pytest collection nodes: the kata tree as directories, files and check items.

The learner's ``katas/`` folder is collected from the registry, not from the disk:
one ``KataFile`` per registered kata (whether or not its file exists, so a pack's
katas always appear), mirroring the kata paths so ``pytest katas/level0`` and
``pytest katas/level0/softmax.py`` select what they name.  Each kata yields a
``predictions`` item and one item per hidden check, all run against the target.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Iterable

import pytest

from .harness import learner_traceback
from .remote import WorkerGone, WorkerUnsupported
from .ladder import PREDICTIONS_ITEM
from .model import Kata
from .runner import (FAILED, LOCKED, NOT_STARTED, PASSED, UNAVAILABLE, CheckResult,
                     missing_requirement, read_predictions, run_check)
from .session import RunState, SESSION
from .target import TargetLoadError

PROPERTY = "attnkata"


class KataOutcome(Exception):
    """A failing kata item; its message is the learner-facing explanation."""


class VirtualDir(pytest.Directory):
    """A directory of the kata tree: children come from the registry."""

    def setup_subtree(self, katas: list[tuple[tuple[str, ...], Kata]]) -> None:
        self._katas = katas

    def collect(self) -> Iterable[pytest.Collector]:
        subdirs: dict[str, list] = {}
        for parts, kata in self._katas:
            if len(parts) == 1:
                yield KataFile.from_parent(self, path=self.path / parts[0], kata=kata)
            else:
                subdirs.setdefault(parts[0], []).append((parts[1:], kata))
        for name, katas in subdirs.items():
            node = VirtualDir.from_parent(self, path=self.path / name)
            node.setup_subtree(katas)
            yield node


def ladder_dir(parent: pytest.Collector, path: Path, state: RunState) -> VirtualDir:
    node = VirtualDir.from_parent(parent, path=path)
    node.setup_subtree([(tuple(Path(k.path).parts), k) for k in state.registry.katas])
    return node


class KataFile(pytest.File):
    def __init__(self, *, kata: Kata, **kwargs: Any):
        super().__init__(**kwargs)
        self.kata = kata

    def collect(self) -> Iterable[pytest.Item]:
        yield KataItem.from_parent(self, name=PREDICTIONS_ITEM, kata=self.kata, check=None)
        for chk in self.kata.checks:
            yield KataItem.from_parent(self, name=chk.id, kata=self.kata, check=chk)


class KataItem(pytest.Item):
    def __init__(self, *, kata: Kata, check: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.kata = kata
        self.check = check
        self.keywords[kata.id] = True
        self.keywords[f"level{kata.level}"] = True
        self.add_marker(pytest.mark.attnkata(kata.id))

    @property
    def state(self) -> RunState:
        return self.config.stash[SESSION]

    def _record(self, result: CheckResult) -> None:
        self.user_properties.append((PROPERTY, {
            "kata": self.kata.id, "check": self.name, "outcome": result.outcome,
            "message": result.message, "misconception": result.misconception,
            "figures": list(result.figures)}))

    def _finish(self, result: CheckResult) -> None:
        self._record(result)
        if result.outcome == PASSED:
            return
        if result.outcome == FAILED:
            raise KataOutcome(result.message)
        pytest.skip(f"{result.outcome}: {result.message}" if result.message else result.outcome)

    def runtest(self) -> None:
        state, kata = self.state, self.kata
        reason = missing_requirement(kata.requires)
        if reason:
            return self._finish(CheckResult(kata.id, self.name, UNAVAILABLE, reason))
        if self.check is not None:  # trusted, and imported here while the worker starts
            state.reference_module(kata)
        try:
            try:
                module, root = state.target_module(kata)
            finally:
                self._show_output()
        except TargetLoadError as exc:
            return self._finish(CheckResult(kata.id, self.name, NOT_STARTED, str(exc)))
        except WorkerUnsupported as exc:
            return self._finish(CheckResult(kata.id, self.name, UNAVAILABLE, str(exc)))
        except NotImplementedError as exc:
            return self._finish(CheckResult(kata.id, self.name, NOT_STARTED, str(exc)))
        except WorkerGone as exc:
            return self._finish(self._refused() or CheckResult(
                kata.id, self.name, FAILED, f"{shown_path(state, kata)}: {exc.message}"))
        except Exception as exc:
            tb = learner_traceback(exc, root_of(state, kata))
            first = state.first_report(kata, "import")
            detail = f"\n{tb}" if first else " (the traceback is in this kata's first failure above)"
            return self._finish(self._refused() or CheckResult(
                kata.id, self.name, FAILED,
                f"{shown_path(state, kata)} could not be imported: {tb.splitlines()[-1]}{detail}"))
        try:
            predictions = read_predictions(kata, module)
        except WorkerGone as exc:
            return self._finish(CheckResult(kata.id, self.name, FAILED,
                                            f"{kata.path}: reading PREDICTIONS: {exc.message}"))
        unfilled = [p.prediction.id for p in predictions if not p.filled]
        if self.check is None:
            return self._finish(self._refused() or self._predictions_result(predictions, unfilled))
        try:
            result = run_check(kata, self.check, module, state.reference_module(kata),
                               target_root=root, timeout=state.timeout,
                               max_examples=state.max_examples, seed=state.seed)
        finally:
            self._show_output()
        if result.outcome != NOT_STARTED:
            result = self._refused() or result
        if unfilled and result.outcome in (PASSED, FAILED):
            # The hidden tests' verdict stays hidden until the learner commits to predictions.
            result = CheckResult(kata.id, self.name, LOCKED,
                                 f"predict first: fill {', '.join(unfilled)} in PREDICTIONS")
        self._finish(result)  # hints only on request: `attnkata hint KATA`

    def _refused(self) -> CheckResult | None:
        """A failure naming what the worker refused (reading the reference, writing the
        saved state, importing the judge), if learner code tried anything of the kind."""
        notices = self.state.take_notices(self.kata)
        if not notices:
            return None
        seen = list(dict.fromkeys(n.detail for n in notices))
        lines = [f"refused: your code {seen[0]}."]
        lines += [f"  and {d}" for d in seen[1:4]]
        lines.append("A kata is judged on what its own code computes; the sandbox blocks "
                     "everything else, and the attempt fails the check.")
        return CheckResult(self.kata.id, self.name, FAILED, "\n".join(lines), "cheat attempt")

    def _show_output(self) -> None:
        """Pass on what learner code printed (bounded), so pytest shows it with a failure."""
        text = self.state.learner_output(self.kata)
        if text:
            import sys

            sys.stdout.write(text if text.endswith("\n") else text + "\n")

    def _predictions_result(self, predictions: list, unfilled: list[str]) -> CheckResult:
        kata, state = self.kata, self.state
        filled = {p.prediction.id: (p.value, p.right) for p in predictions if p.filled}
        if filled:
            state.record_predictions(kata, filled)
        if unfilled:
            return CheckResult(kata.id, self.name, LOCKED,
                               f"predict first: fill {', '.join(unfilled)} in PREDICTIONS")
        wrong = [p for p in predictions if not p.right]
        if not wrong:
            return CheckResult(kata.id, self.name, PASSED)
        lines = [f"{len(wrong)} of {len(predictions)} predictions are off:"]
        for p in wrong:
            pred = p.prediction
            lines.append(f"- {pred.id}: you predicted {p.value!r}; the answer is {pred.answer!r}.")
            lines.append(f"    {pred.question}")
            if pred.why:
                lines.append(f"    Why: {pred.why}")
        lines.append("Your first answers stay in the ledger; revise these to go on.")
        return CheckResult(kata.id, self.name, FAILED, "\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, KataOutcome):
            return f"[{self.kata.id} · {self.name}] {excinfo.value}"
        tb = "".join(traceback.format_exception(excinfo.value))
        return f"[{self.kata.id} · {self.name}] internal error in the hidden test:\n{tb}"

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.kata.id}::{self.name}"


def shown_path(state: RunState, kata: Kata) -> str:
    """The kata file as the learner would type it: relative to the current folder if inside."""
    try:
        path = state.locate(kata)[0].resolve()
    except Exception:
        return kata.path
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def root_of(state: RunState, kata: Kata) -> Path | None:
    try:
        return state.locate(kata)[1]
    except Exception:
        return None
