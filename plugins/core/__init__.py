"""The core pack: the ladder of shared/KATAS.md, registered through the same hook as any pack."""

from __future__ import annotations

import importlib
from pathlib import Path

from attnkata import Pack, hookimpl

ROOT = Path(__file__).resolve().parents[2]
LEVEL_MODULES = ("level0", "level1", "level2", "level3", "level4", "level5", "level6", "level7",
                 "level8")


@hookimpl
def attnkata_packs():
    katas, levels = [], {}
    for name in LEVEL_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        number, title = module.LEVEL
        levels[number] = title
        katas.extend(module.KATAS)
    return Pack("core", katas=tuple(katas), katas_dir=ROOT / "katas",
                solutions_dir=ROOT / "solutions", levels=levels)
