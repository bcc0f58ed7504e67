"""Timing GPU kernels with CUDA events: warm-up, cold L2, adaptive repetitions.

The same recipe as ``triton.testing.do_bench``, written out so that the run reports how
many samples it took and can keep L2 warm on request:

1. one call first, untimed: it compiles (and autotunes) the kernel;
2. five timed calls estimate the cost of one, which sets the warm-up count (about
   ``warmup_ms`` of work) and the repetitions (about ``rep_ms``, at least ``min_reps``);
3. before every call, a buffer twice the size of L2 (256 MiB at least) is zeroed, so each
   call reads its inputs from HBM as it would inside a model (cold L2; ``cold_l2=False``
   keeps it warm); zeroing also keeps the GPU busy while the host launches the call;
4. each call sits between two CUDA events on the stream; the host waits once, at the end.

A timer is any callable ``timer(fn, setup, info) -> Timing``: ``setup`` runs before
each call outside the timed region (e.g. clearing ``.grad``), ``info`` describes what is
timed (the tests inject a fake timer that reads it; the real one ignores it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

Timer = Callable[[Callable[[], Any], "Callable[[], Any] | None", dict], "Timing"]


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: median and the 20th/80th percentiles of ``n`` samples."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    n: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "Timing":
        if not samples_ms:
            raise ValueError("no timing samples")
        xs = sorted(float(x) for x in samples_ms)
        return cls(_quantile(xs, 0.5), _quantile(xs, 0.2), _quantile(xs, 0.8), len(xs))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _quantile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = (len(sorted_xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class CudaEventTimer:
    """The real timer (see the module docstring); needs CUDA."""

    cold_l2: bool = True
    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    min_reps: int = 10
    max_reps: int = 1000
    l2_bytes: int = 0
    min_flush_bytes: int = 256 * 2**20
    device: str = "cuda"

    def describe(self) -> dict[str, Any]:
        return {"timer": "cuda-events", "l2": "cold (flushed before each call)" if self.cold_l2 else "warm",
                "warmup_ms": self.warmup_ms, "rep_ms": self.rep_ms, "min_reps": self.min_reps,
                "max_reps": self.max_reps}

    def __call__(self, fn: Callable[[], Any], setup: Callable[[], Any] | None = None,
                 info: dict | None = None) -> Timing:
        import torch

        flush = None
        if self.cold_l2:
            size = max(2 * self.l2_bytes, self.min_flush_bytes)
            flush = torch.empty(size, dtype=torch.int8, device=self.device)

        def prepare() -> None:
            if setup is not None:
                setup()
            if flush is not None:
                flush.zero_()

        def timed(n: int) -> list[float]:
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            for start, end in zip(starts, ends):
                prepare()
                start.record()
                fn()
                end.record()
            torch.cuda.synchronize()
            return [s.elapsed_time(e) for s, e in zip(starts, ends)]

        prepare()
        fn()  # compiles / autotunes
        torch.cuda.synchronize()
        estimate = max(Timing.from_samples(timed(5)).median_ms, 1e-3)
        for _ in range(max(1, min(200, math.ceil(self.warmup_ms / estimate)))):
            prepare()
            fn()
        reps = max(self.min_reps, min(self.max_reps, math.ceil(self.rep_ms / estimate)))
        samples = timed(reps)
        return Timing.from_samples(samples)
