"""Running one kata's checks and predictions against a target — shared by pytest and the CLI."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import (Ctx, KataFailure, LearnerTimeout, NotStarted, Unavailable, WorkerCrashed,
                      gone)
from .remote import WorkerGone
from .model import Check, Kata, Prediction

PASSED, FAILED, NOT_STARTED, LOCKED, UNAVAILABLE = "passed", "failed", "not started", "locked", "unavailable"
UNFILLED = ...  # what a stub's PREDICTIONS hold until the learner answers


@dataclass(frozen=True)
class CheckResult:
    kata: str
    check: str
    outcome: str
    message: str = ""
    misconception: str = ""  # the misconception's name when one matched
    misconception_ids: tuple[str, ...] = ()  # every misconception consistent with the output
    figures: tuple[str, ...] = ()            # what the check measured (ctx.record)


def run_check(kata: Kata, chk: Check, target: Any, reference: Any, *, target_root: Path | None,
              timeout: float | None = None, max_examples: int = 25, seed: int = 0,
              shrink: bool = True) -> CheckResult:
    ctx = Ctx(kata, target, reference, target_root=target_root, check_id=chk.id,
              timeout=timeout, max_examples=max_examples, seed=seed, shrink=shrink)
    try:
        try:
            chk.fn(ctx)
        except WorkerGone as exc:  # learner code reached outside ctx.run: same verdicts
            raise gone(exc) from None
    except NotStarted as exc:
        return CheckResult(kata.id, chk.id, NOT_STARTED, exc.message)
    except Unavailable as exc:
        return CheckResult(kata.id, chk.id, UNAVAILABLE, exc.message)
    except LearnerTimeout as exc:
        return CheckResult(kata.id, chk.id, FAILED, f"timed out: {exc.message}")
    except WorkerCrashed as exc:
        return CheckResult(kata.id, chk.id, FAILED, exc.message)
    except KataFailure as exc:
        m = exc.misconception
        return CheckResult(kata.id, chk.id, FAILED, exc.message, m.name if m else "",
                           tuple(x.id for x in exc.matched))
    except AssertionError as exc:
        return CheckResult(kata.id, chk.id, FAILED, str(exc) or "assertion failed")
    except Exception as exc:
        flaky = _flaky(exc)
        if flaky is None:
            raise
        return CheckResult(kata.id, chk.id, FAILED, flaky)
    return CheckResult(kata.id, chk.id, PASSED, figures=tuple(ctx.figures))


def _flaky(exc: Exception) -> str | None:
    """Hypothesis' verdict when learner code answers the same input differently."""
    if "hypothesis" not in sys.modules:  # no check has drawn: it cannot be hypothesis' verdict
        return None
    from hypothesis.errors import Flaky, FlakyFailure

    if not isinstance(exc, (Flaky, FlakyFailure)):
        return None
    inner = next((e for e in getattr(exc, "exceptions", ()) if isinstance(e, KataFailure)), None)
    detail = f"\nOne of the runs said: {inner.message}" if inner else ""
    return ("the result changed between two runs on the same input: is something random, or is "
            "state kept between calls (a global, a default argument that is mutated)?" + detail)


# ---------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PredictionOutcome:
    prediction: Prediction
    value: Any
    filled: bool
    right: bool


def read_predictions(kata: Kata, module: Any) -> list[PredictionOutcome]:
    given = getattr(module, "PREDICTIONS", None)
    given = given if isinstance(given, dict) else {}
    out = []
    for p in kata.predictions:
        value = given.get(p.id, UNFILLED)
        filled = value is not UNFILLED and value is not None
        out.append(PredictionOutcome(p, value, filled, filled and p.is_right(value)))
    return out


# ---------------------------------------------------------------------------
# What a kata needs from the machine
# ---------------------------------------------------------------------------

def missing_requirement(requires: tuple[str, ...]) -> str | None:
    """A plain-words reason this machine cannot run a kata, or None."""
    for need in requires:
        if need in ("numpy", "torch", "triton", "hypothesis"):
            if importlib.util.find_spec(need) is None:
                return f"{need} is not installed (pip install {need}; `attnkata doctor` says more)"
            if need == "triton":
                problem = _triton_problem()
                if problem:
                    return problem
        elif need == "cuda":
            import torch
            if not torch.cuda.is_available():
                return "needs a CUDA GPU"
        elif need == "gloo":
            import torch.distributed as dist
            if not (dist.is_available() and dist.is_gloo_available()):
                return "torch.distributed with the gloo backend is not available in this torch build"
    return None


def _triton_problem() -> str | None:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as exc:  # a broken Triton install: say so, run the rest
        return f"triton fails to import: {type(exc).__name__}: {exc}"
    return None
