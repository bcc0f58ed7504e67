"""Helpers shared by the level-3 spec modules (not katas themselves)."""

from __future__ import annotations


def peak_bytes(ctx, name, args, kwargs, what):
    """Peak bytes allocated while the target's ``name(*args, **kwargs)`` runs, measured by
    tracemalloc in the learner's own process (the worker), beyond what was live before."""
    ctx.entry(name)
    return ctx.probe("attnkata.probes", "peak_call", name, args, kwargs, what=what)["peak"]
