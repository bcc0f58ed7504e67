"""Worker-side half of timing a target's kernel: runs next to the learner's code.

The bench never imports a learner's file.  :mod:`.learner` asks the learner's worker,
through ``ctx.probe``'s mechanism (:func:`attnkata.remote.probe`), to

1. :func:`stage` the inputs once (they stay in the worker; the parent holds a handle),
2. :func:`call` the entry once on them (the outputs come back and are judged in the
   parent against the truth),
3. :func:`warm` it (compilation, caches) and estimate one call,
4. :func:`launches`: ``n`` calls back to back, each bracketed by the device's clock
   (CUDA events on a GPU, ``time.perf_counter`` on a CPU), one synchronisation at the end.

The parent times step 4 with its own wall clock and compares; a worker that lies about
its samples disagrees with the parent and its timing is void.  :func:`noop` measures
the round trip the parent subtracts.

This module is imported in the worker before the learner's code: it must not import the
judging modules.
"""

from __future__ import annotations

import time
from typing import Any


class Staged:
    """Inputs kept in the worker between requests (the parent holds a handle to them)."""

    def __init__(self, args: tuple, kwargs: dict):
        self.args, self.kwargs = args, kwargs


def stage(module: Any, args: tuple, kwargs: dict | None = None) -> Staged:
    return Staged(tuple(args), dict(kwargs or {}))


def noop(module: Any) -> None:
    return None


def call(module: Any, staged: Staged, entry: str) -> Any:
    """``entry(*inputs)`` once, synchronised; its outputs go back to be judged."""
    out = getattr(module, entry)(*staged.args, **staged.kwargs)
    _sync(staged)
    return out


def where(module: Any, entry: str) -> dict:
    """Which function the entry is: its module and file (what the bench says it timed)."""
    fn = getattr(module, entry)
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "fn", None), "__code__", None)
    return {"impl": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', entry)}",
            "file": getattr(code, "co_filename", "")}


def warm(module: Any, staged: Staged, entry: str, calls: int = 3) -> float:
    """Run the entry ``calls`` times (compiles, fills caches); the fastest call's seconds,
    host clock (it sets how many calls the timed request makes)."""
    fn = getattr(module, entry)
    best = float("inf")
    for _ in range(max(1, calls)):
        start = time.perf_counter()
        fn(*staged.args, **staged.kwargs)
        _sync(staged)
        best = min(best, time.perf_counter() - start)
    return best


def launches(module: Any, staged: Staged, entry: str, n: int, flush_bytes: int = 0) -> dict:
    """``n`` calls back to back, each bracketed by the device's clock; one sync at the end.

    ``samples_ms`` are the calls, ``other_ms`` what ran between them (the L2 flush on a
    GPU), measured by the same clock, so that their sum is the whole request's work."""
    fn = getattr(module, entry)
    args, kwargs = staged.args, staged.kwargs
    device = _cuda_device(staged)
    if device is None:
        samples = []
        for _ in range(max(1, n)):
            start = time.perf_counter()
            fn(*args, **kwargs)
            samples.append((time.perf_counter() - start) * 1e3)
        return {"samples_ms": samples, "other_ms": 0.0, "clock": "time.perf_counter"}
    import torch

    flush = torch.empty(flush_bytes, dtype=torch.int8, device=device) if flush_bytes else None
    marks = [torch.cuda.Event(enable_timing=True) for _ in range(3 * max(1, n))]
    for i in range(max(1, n)):
        marks[3 * i].record()
        if flush is not None:
            flush.zero_()
        marks[3 * i + 1].record()
        fn(*args, **kwargs)
        marks[3 * i + 2].record()
    torch.cuda.synchronize(device)
    samples = [marks[3 * i + 1].elapsed_time(marks[3 * i + 2]) for i in range(max(1, n))]
    other = sum(marks[3 * i].elapsed_time(marks[3 * i + 1]) for i in range(max(1, n)))
    other += sum(marks[3 * i + 2].elapsed_time(marks[3 * i + 3]) for i in range(max(1, n) - 1))
    return {"samples_ms": samples, "other_ms": other, "clock": "cuda-events"}


def _tensors(staged: Staged) -> list:
    return [a for a in (*staged.args, *staged.kwargs.values()) if hasattr(a, "is_cuda")]


def _cuda_device(staged: Staged) -> Any:
    for t in _tensors(staged):
        if t.is_cuda:
            return t.device
    return None


def _sync(staged: Staged) -> None:
    device = _cuda_device(staged)
    if device is not None:
        import torch

        torch.cuda.synchronize(device)
