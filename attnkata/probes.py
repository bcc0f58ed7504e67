"""Worker-side measurements: functions that run next to the learner's code.

A check asks for one with ``ctx.probe("attnkata.probes", "peak_call", "entry", args)``;
the worker calls ``fn(learner_module, ...)`` and sends back plain data.  Figures
measured here come from the learner's own process, so a determined cheater could
spoof them (docs/AUTHORING.md says which): they back claims and misconception
names; the value comparisons, made in the judging process, decide "ready".

This module is imported in the worker: it must not import the judging modules.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any


def nbytes(out: Any) -> int:
    """Bytes held by the arrays and tensors inside ``out``."""
    if isinstance(out, (tuple, list)):
        return sum(nbytes(o) for o in out)
    if hasattr(out, "nbytes") and not callable(out.nbytes):
        return int(out.nbytes)
    if hasattr(out, "element_size") and hasattr(out, "numel"):
        return int(out.element_size() * out.numel())
    return 0


def peak_call(module: Any, name: str, args: tuple = (), kwargs: dict | None = None,
              keep: bool = False) -> dict:
    """tracemalloc's peak while ``module.name(*args, **kwargs)`` runs, above what was live
    before; also the bytes of what it returned.  ``keep`` sends the result back too."""
    fn = getattr(module, name)
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn(*args, **(kwargs or {}))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return {"peak": int(peak), "out_bytes": nbytes(out), "value": out if keep else None}


def torch_calls(module: Any, name: str, args: tuple = (), kwargs: dict | None = None) -> tuple:
    """``module.name(...)`` under a TorchFunctionMode: its result and, per torch call,
    ``(function name, shapes of the tensors it returned)``."""
    import torch
    from torch.overrides import TorchFunctionMode

    seen: list[tuple[str, tuple]] = []

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            outs = out if isinstance(out, (tuple, list)) else (out,)
            shapes = tuple(tuple(int(s) for s in o.shape) for o in outs
                           if isinstance(o, torch.Tensor))
            seen.append((str(getattr(func, "__name__", repr(func))), shapes))
            return out

    with Recorder():
        result = getattr(module, name)(*args, **(kwargs or {}))
    return result, seen
