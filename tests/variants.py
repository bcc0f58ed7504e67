"""Shared by the variant tests (tests/test_variants_level*.py): run a kata's checks on its
reference with some entries replaced by a learner-style implementation written in the
test, and read what the failures name."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np

from attnkata.harness import Namespace
from attnkata.runner import FAILED, PASSED, run_check
from attnkata.target import load_module

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
_KATAS: dict = {}


def kata_and_ref(level: int, name: str):
    """The core kata ``name`` of ``level`` and its reference module (loaded once)."""
    if name not in _KATAS:
        mod = importlib.import_module(f"attnkata_plugins.core.level{level}.{name}")
        _KATAS[name] = (getattr(mod, name.upper()),
                        load_module(SOLUTIONS / f"level{level}/{name}.py", SOLUTIONS))
    return _KATAS[name]


def verdicts(kata, ref, impls: dict, checks: tuple = (), max_examples: int = 8):
    """The checks ``checks`` (all when empty) of ``kata`` run on the reference with
    ``impls`` replaced, as a learner's module is judged (message and ids named)."""
    chosen = [c for c in kata.checks if not checks or c.id in checks]
    assert chosen, f"no check {checks} in {kata.id}"
    sub = dataclasses.replace(kata, checks=tuple(chosen))
    target = Namespace(ref, impls, "variant")
    with np.errstate(all="ignore"):
        return [run_check(sub, c, target, ref, target_root=None, max_examples=max_examples,
                          shrink=False) for c in sub.checks]


def assert_named(results, expected: str) -> None:
    """Caught; named ``expected`` by some check; no check names another one first."""
    failed = [r for r in results if r.outcome == FAILED]
    assert failed, "the variant passed every check"
    named = {i for r in failed for i in r.misconception_ids}
    assert expected in named, [r.message for r in failed][:2]
    firsts = {r.misconception_ids[0] for r in failed if r.misconception_ids}
    assert firsts <= {expected}, f"wrongly named {firsts - {expected}}: " + next(
        r.message for r in failed if r.misconception_ids and r.misconception_ids[0] != expected)


def assert_silent(results) -> None:
    """A correct variant: every check passes, nothing is named."""
    bad = [r for r in results if r.outcome != PASSED or r.misconception_ids]
    assert not bad, bad[0].message
