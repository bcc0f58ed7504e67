"""Helpers shared by level 8's cache katas: misconception classes over a level-8 reference."""

from __future__ import annotations

from typing import Any, Callable


def wrong_class(file: str, entry: str, mixin: type) -> Callable[..., Any]:
    """A constructor for ``mixin`` over the reference ``solutions/level8/<file>``'s ``entry``.

    The reference is loaded on first use (declaring misconceptions loads nothing); the
    mixin overrides the one method that is done wrong and inherits the rest.
    """
    built: list[type] = []

    def construct(*args: Any, **kwargs: Any) -> Any:
        if not built:
            from attnkata.target import load_module

            from .. import ROOT
            base = getattr(load_module(ROOT / "solutions" / "level8" / file, ROOT / "solutions"), entry)
            built.append(type(mixin.__name__.lstrip("_"), (mixin, base), {}))
        return built[0](*args, **kwargs)

    construct.__name__ = mixin.__name__.lstrip("_")
    construct.__doc__ = mixin.__doc__
    return construct
