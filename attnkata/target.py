"""Targets: the folder whose code the hidden tests check.

A target folder has the layout of ``katas/``.  ``katas`` means the learner's folder,
``solutions`` each pack's references, anything else a path (a student's submission).
Each kata file is imported fresh from its path, inside a synthetic package per target
root so that relative imports between katas (``from .qk_scores import qk_scores``)
work in any target folder.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from .model import Kata, Pack

NAMED_TARGETS = ("katas", "solutions")


@dataclass(frozen=True)
class TargetSpec:
    """What ``--attnkata-target`` named: a keyword or a folder."""

    name: str
    root: Path | None  # None for the keywords: each pack supplies its own folder

    @classmethod
    def parse(cls, value: str, rootdir: Path) -> "TargetSpec":
        if value in NAMED_TARGETS:
            return cls(value, None)
        path = Path(value)
        if not path.is_absolute():
            path = (Path.cwd() / path) if (Path.cwd() / path).exists() else rootdir / path
        return cls(str(path), path.resolve())

    @property
    def slug(self) -> str:
        if self.root is None:
            return self.name
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:8]
        return f"{self.root.name}-{digest}"

    def locate(self, kata: Kata, pack: Pack, learner_root: Path) -> tuple[Path, Path]:
        """``(file, tree root)`` where this target keeps ``kata``."""
        if self.name == "solutions":
            return pack.solutions_dir / kata.path, pack.solutions_dir
        root = self.root if self.root is not None else learner_root
        if (root / kata.path).exists() or self.root is not None:
            return root / kata.path, root
        # A third-party pack's stub the learner has not copied yet: use the pack's own.
        return pack.katas_dir / kata.path, pack.katas_dir


class TargetLoadError(Exception):
    """The target's kata file is missing or does not import."""


def load_module(path: Path, root: Path) -> types.ModuleType:
    """Import the kata file at ``path`` inside tree ``root`` (cached per process)."""
    path, root = path.resolve(), root.resolve()
    if not path.exists():
        raise TargetLoadError(f"no file at {path}")
    pkg = "_attnkata_target_" + hashlib.sha1(str(root).encode()).hexdigest()[:10]
    if pkg not in sys.modules:
        package = types.ModuleType(pkg)
        package.__path__ = [str(root)]  # type: ignore[attr-defined]
        sys.modules[pkg] = package
    name = ".".join([pkg, *path.relative_to(root).with_suffix("").parts])
    if name in sys.modules:
        return sys.modules[name]
    return importlib.import_module(name)
