"""Per-run state shared by the pytest glue: registry, target, module caches, ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import pytest

from .manager import Registry
from .model import Kata
from .remote import DEFAULT_KATA_BUDGET, Supervisor, WorkerConfig, default_memory_limit
from .state import JsonStore, ledger, record_predictions
from .target import TargetLoadError, TargetSpec, load_module


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
    kata_budget: float = DEFAULT_KATA_BUDGET
    memory_limit: int | None = field(default_factory=default_memory_limit)
    isolate_net: bool = True
    ledger: JsonStore = field(init=False)
    outcomes: dict[str, dict[str, dict]] = field(default_factory=dict)
    extra_claims: list = field(default_factory=list)
    _modules: dict[Path, Any] = field(default_factory=dict)
    _supervisor: Supervisor | None = None
    _refusals: dict = field(default_factory=dict)
    _reported: set = field(default_factory=set)

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
        """The target's module for ``kata``, living in a supervised worker process.

        Raises :class:`TargetLoadError` (no file), ``NotImplementedError`` (a stub that
        raises at import), :class:`WorkerGone` (import hung or crashed the worker), or a
        stand-in for whatever importing raised (with the learner's traceback)."""
        path, root = self.locate(kata)
        if not path.exists():
            raise TargetLoadError(f"no file at {path}")
        timeout = self.timeout or kata.timeout
        probes = self.probes_of(kata)
        module = self.supervisor().module(f"{self.target.slug}:{kata.id}", path.resolve(),
                                          root.resolve(), kata.requires, timeout, probes)
        return module, root

    @staticmethod
    def probes_of(kata: Kata) -> tuple[str, ...]:
        """Modules the worker loads before learner code: probes and the kata's checks."""
        checks = tuple(getattr(c.fn, "__module__", "") for c in kata.checks)
        return tuple(m for m in dict.fromkeys(("attnkata.probes",) + tuple(kata.probes) + checks)
                     if m and m != "__main__")

    def warm(self, katas: list[Kata]) -> None:
        """Before the first check: start the fork server importing what these katas need."""
        requires = {r for k in katas for r in k.requires}
        probes = tuple(dict.fromkeys(m for k in katas for m in self.probes_of(k)))
        self.supervisor().warm(requires, probes)

    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            self._supervisor = Supervisor(self.worker_config(), timeout=self.timeout or 20.0,
                                          budget=self.kata_budget)
        return self._supervisor

    def worker_config(self) -> WorkerConfig:
        """What learner code may touch: never the references (unless they are the target),
        the saved state, or anything outside its own temporary folder."""
        import os

        protected: list[str] = []
        modules: list[str] = []
        if self.target.name != "solutions":
            protected += [str(p.solutions_dir) for p in self.registry.packs.values()
                          if getattr(p, "solutions_dir", None)]
            kernels = _package_dir("attnkata_kernels")
            if kernels:
                protected.append(kernels)
            modules.append("attnkata_kernels")
        writable = [os.environ["TRITON_CACHE_DIR"]] if os.environ.get("TRITON_CACHE_DIR") else []
        if os.environ.get("TRITON_INTERPRET") != "1":
            writable.append(str(Path.home() / ".triton"))
        state_dir = str(getattr(self.ledger, "path", self.rootdir / ".attnkata" / "x").parent)
        return WorkerConfig(protected=tuple(protected), state=(state_dir,), modules=tuple(modules),
                            writable=tuple(writable), memory=self.memory_limit,
                            isolate_net=self.isolate_net)

    def first_report(self, kata: Kata, what: str) -> bool:
        """True the first time this run reports ``what`` for ``kata`` (then False)."""
        key = (kata.id, what)
        if key in self._reported:
            return False
        self._reported.add(key)
        return True

    def take_notices(self, kata: Kata) -> list:
        """What the worker refused on the learner's behalf in this run, for this kata
        (kept: once code tried to cheat, every later check of the kata says so)."""
        sup = self._supervisor
        worker = sup.worker_for(f"{self.target.slug}:{kata.id}") if sup else None
        seen = self._refusals.setdefault(kata.id, [])
        if worker is not None and worker.notices:
            seen.extend(worker.notices)
            worker.notices = []
        return list(seen)

    def learner_output(self, kata: Kata) -> str:
        sup = self._supervisor
        worker = sup.worker_for(f"{self.target.slug}:{kata.id}") if sup else None
        return worker.new_output() if worker is not None else ""

    def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.close()
            self._supervisor = None

    def reference_module(self, kata: Kata) -> Any:
        pack = self.registry.pack_of(kata)
        return self._load(pack.solutions_dir / kata.path, pack.solutions_dir)

    # -- ledger ----------------------------------------------------------------
    def record_predictions(self, kata: Kata, answers: dict) -> None:
        record_predictions(self.ledger, self.target.slug, kata.id, answers)


def _package_dir(name: str) -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(list(spec.submodule_search_locations)[0]).resolve())


SESSION = pytest.StashKey[RunState]()
