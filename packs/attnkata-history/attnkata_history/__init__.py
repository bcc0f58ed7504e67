"""attnkata-history: where attention came from, how it was approximated, and MoE routing.

A third-party pack like any other: this module answers the ``attnkata_packs`` hook and
is registered through the ``attnkata`` entry-point group (see ``pyproject.toml``).
Each kata's hidden checks live in ``checks/<kata>.py``; the learner stubs and the
references mirror each other under ``katas/history/`` and ``solutions/history/``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import attnkata
from attnkata import Pack

HERE = Path(__file__).resolve().parent

LEVELS = {
    20: "Before the Transformer",
    21: "Positions without rotation",
    22: "Approximating attention",
    23: "Routing",
}


# Ladder order; the kata object in module ``checks.<name>`` is ``<NAME>`` (upper case).
KATA_MODULES = ("additive_attention", "luong_scores", "sinusoidal_positions", "alibi_bias", "linear_attention", "performer_features", "sparse_patterns", "lsh_buckets", "moe_routing")


def katas() -> tuple:
    """The pack's katas in ladder order, imported when the registry asks for them."""
    return tuple(getattr(importlib.import_module(f"{__name__}.checks.{name}"), name.upper())
                 for name in KATA_MODULES)


@attnkata.hookimpl
def attnkata_packs():
    return Pack("history", katas=katas(), katas_dir=HERE / "katas",
                solutions_dir=HERE / "solutions", levels=dict(LEVELS))
