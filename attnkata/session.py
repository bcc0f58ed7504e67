"""Per-run state shared by the pytest glue: registry, target, module caches, ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import pytest

from .manager import Registry
from .model import Kata
from .state import JsonStore, ledger, record_predictions
from .target import TargetSpec, load_module


@dataclass
class RunState:
    pm: pluggy.PluginManager
    registry: Registry
    target: TargetSpec
    rootdir: Path
    katas_dir: Path
    seed: int = 0
    timeout: float | None = None
    max_examples: int = 25
    is_worker: bool = False
    ledger: JsonStore = field(init=False)
    outcomes: dict[str, dict[str, dict]] = field(default_factory=dict)
    extra_claims: list = field(default_factory=list)
    _modules: dict[Path, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ledger = ledger(self.rootdir)

    # -- modules -------------------------------------------------------------
    def locate(self, kata: Kata) -> tuple[Path, Path]:
        return self.target.locate(kata, self.registry.pack_of(kata), self.katas_dir)

    def _load(self, path: Path, root: Path) -> Any:
        if path not in self._modules:
            try:
                self._modules[path] = load_module(path, root)
            except (Exception, SystemExit) as exc:  # remembered: every item of the kata reports it
                self._modules[path] = exc
        found = self._modules[path]
        if isinstance(found, BaseException):
            raise found
        return found

    def target_module(self, kata: Kata) -> tuple[Any, Path]:
        path, root = self.locate(kata)
        return self._load(path, root), root

    def reference_module(self, kata: Kata) -> Any:
        pack = self.registry.pack_of(kata)
        return self._load(pack.solutions_dir / kata.path, pack.solutions_dir)

    # -- ledger ----------------------------------------------------------------
    def record_predictions(self, kata: Kata, answers: dict) -> None:
        record_predictions(self.ledger, self.target.slug, kata.id, answers)

    def hint_for(self, kata: Kata) -> str:
        """After repeated failing runs, the next hint (progressive)."""
        if not kata.hints:
            return ""
        runs = (self.ledger.read().get("targets", {}).get(self.target.slug, {})
                .get(kata.id, {}).get("failed_runs", 0))
        if runs < 1:
            return f"\n(Stuck? `attnkata hint {kata.id}` shows a hint; one appears here after the next failing run.)"
        n = min(runs, len(kata.hints))
        return f"\nHint {n}/{len(kata.hints)}: {kata.hints[n - 1]}"


SESSION = pytest.StashKey[RunState]()
