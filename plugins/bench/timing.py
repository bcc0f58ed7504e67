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

A kernel of microseconds (estimate under ``graph_below_ms``) is not timed call by call:
between two events the GPU may sit idle waiting for the host to launch the next call, so
the figure would be launch overhead (worst with a warm L2, when nothing else keeps the GPU
busy).  Instead ``inner`` calls are captured in one CUDA graph and the graph is replayed
between two events (one sample = one replay / ``inner``); with a cold L2 each captured call
is preceded by the flush, and a second graph of the ``inner`` flushes alone, replayed right
after, is subtracted sample by sample.  A call that cannot be captured (a setup step
between calls, or capture fails) falls back to ``inner`` launches back to back between two
events, labelled so.  Every timing reports p20/p80; :func:`spread_warning` flags a spread
above :data:`SPREAD_WARN`.

A timer is any callable ``timer(fn, setup, info) -> Timing``: ``setup`` runs before
each call outside the timed region (e.g. clearing ``.grad``), ``info`` describes what is
timed (the tests inject a fake timer that reads it; the real one ignores it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

Timer = Callable[[Callable[[], Any], "Callable[[], Any] | None", dict], "Timing"]


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: median and the 20th/80th percentiles of ``n`` samples."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    n: int
    method: dict = field(default_factory=dict, compare=False)  # how it was taken (graph, launches...)

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], method: dict | None = None) -> "Timing":
        if not samples_ms:
            raise ValueError("no timing samples")
        xs = sorted(float(x) for x in samples_ms)
        return cls(_quantile(xs, 0.5), _quantile(xs, 0.2), _quantile(xs, 0.8), len(xs), dict(method or {}))

    @property
    def spread(self) -> float:
        return spread(self.p20_ms, self.p80_ms)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "method"}
        if self.method:
            out["method"] = dict(self.method)
        return out


SPREAD_WARN = 1.05  # p80 / p20 above this: the samples disagree by more than 5 %


def spread(p20_ms: float, p80_ms: float) -> float:
    """``p80 / p20`` of a timing (1.0: every sample alike); inf when p20 is not positive."""
    return p80_ms / p20_ms if p20_ms > 0 else math.inf


def spread_warning(ms: dict | None, limit: float = SPREAD_WARN) -> str | None:
    """A warning when a timing's p80/p20 exceeds ``limit`` (None when it does not, or no timing)."""
    if not ms or "p20_ms" not in ms or "p80_ms" not in ms:
        return None
    ratio = spread(float(ms["p20_ms"]), float(ms["p80_ms"]))
    if ratio <= limit:
        return None
    return (f"noisy timing: p80/p20 = {ratio:.3f} > {limit:g} (p20 {ms['p20_ms']:.4g} ms, p80 "
            f"{ms['p80_ms']:.4g} ms): another process, clock changes or throttling; rerun before "
            f"trusting this figure")


def per_call(total_ms: Sequence[float], flush_ms: Sequence[float] | None, inner: int) -> list[float]:
    """Samples per call from replays of ``inner`` calls, less the flush-only replay paired with
    each (cold L2).  A pair where the flush took longer than the calls with it is noise and
    is dropped; if every pair is, nothing is left (the caller reports that)."""
    if inner < 1:
        raise ValueError("inner must be at least 1")
    if flush_ms is None:
        return [t / inner for t in total_ms]
    if len(flush_ms) != len(total_ms):
        raise ValueError("one flush replay per timed replay")
    return [(t - f) / inner for t, f in zip(total_ms, flush_ms) if t > f]


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

    graph_below_ms: float = 1.0   # calls shorter than this are timed in CUDA graphs
    graph_ms: float = 2.0         # GPU time of one replay (sets ``inner``)
    max_inner: int = 1000

    def describe(self) -> dict[str, Any]:
        return {"timer": "cuda-events", "l2": "cold (flushed before each call)" if self.cold_l2 else "warm",
                "warmup_ms": self.warmup_ms, "rep_ms": self.rep_ms, "min_reps": self.min_reps,
                "max_reps": self.max_reps,
                "short_calls": (f"calls under {self.graph_below_ms:g} ms: inner calls per CUDA graph replayed "
                                f"between two events (about {self.graph_ms:g} ms per replay); with a cold L2 "
                                f"each call is preceded by the flush and a flush-only graph is subtracted")}

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
        if estimate < self.graph_below_ms:
            return self._short(fn, setup, flush, estimate)
        reps = max(self.min_reps, min(self.max_reps, math.ceil(self.rep_ms / estimate)))
        samples = timed(reps)
        return Timing.from_samples(samples, {"how": "per-call events", "estimate_ms": estimate})

    def plan(self, estimate_ms: float) -> tuple[int, int]:
        """``(inner, reps)`` for a call of ``estimate_ms``: inner calls per replay (about
        ``graph_ms``), replays (about ``rep_ms`` in all, at least ``min_reps``)."""
        inner = max(2, min(self.max_inner, math.ceil(self.graph_ms / max(estimate_ms, 1e-4))))
        reps = max(self.min_reps, min(self.max_reps, math.ceil(self.rep_ms / (inner * max(estimate_ms, 1e-4)))))
        return inner, reps

    def _short(self, fn: Callable[[], Any], setup: Callable[[], Any] | None, flush: Any,
               estimate: float) -> Timing:
        """A microsecond call: ``inner`` calls per CUDA graph (or back-to-back launches)."""
        import torch

        inner, reps = self.plan(estimate)
        method: dict[str, Any] = {"estimate_ms": estimate, "inner": inner, "replays": reps,
                                  "l2": "cold: flush before each call, flush-only replay subtracted"
                                        if flush is not None else "warm"}
        body = [fn] if flush is None else [flush.zero_, fn]
        graphs = None
        why = "a setup step runs between calls" if setup is not None else ""
        if setup is None:
            try:
                graphs = (_capture(body, inner), _capture([flush.zero_], inner) if flush is not None else None)
                method["how"] = "cuda-graph"
            except Exception as exc:  # not capturable: launches back to back instead
                torch.cuda.synchronize()
                why = f"capture failed ({type(exc).__name__}: {str(exc).strip()[:120]})"
        if graphs is None:
            method["how"] = "launches between two events"
            method["why"] = why + "; host launch time shows if a call is shorter than its launch"

        def run(steps: list, graph: Any) -> None:
            if graph is not None:
                graph.replay()
                return
            for _ in range(inner):
                if setup is not None:
                    setup()
                for step in steps:
                    step()

        marks = []
        for _ in range(reps):  # one replay of the calls, then one of their flushes alone
            mark = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
            mark[0].record()
            run(body, graphs[0] if graphs else None)
            mark[1].record()
            if flush is not None:
                run([flush.zero_], graphs[1] if graphs else None)
                mark[2].record()
            marks.append(mark)
        torch.cuda.synchronize()
        totals = [m[0].elapsed_time(m[1]) for m in marks]
        flushes = [m[1].elapsed_time(m[2]) for m in marks] if flush is not None else []
        samples = per_call(totals, flushes if flush is not None else None, inner)
        if flush is not None:
            method["flush_ms_per_call"] = sorted(flushes)[len(flushes) // 2] / inner
            method["pairs_dropped"] = reps - len(samples)
        if not samples:
            raise RuntimeError("every replay took no longer than its flush alone: no usable sample")
        return Timing.from_samples(samples, method)


def _capture(steps: list[Callable[[], Any]], inner: int) -> Any:
    """A CUDA graph of ``inner`` rounds of ``steps`` (warmed on a side stream first, as
    torch requires); raises when something in them cannot be captured."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            for step in steps:
                step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            for step in steps:
                step()
    graph.replay()
    torch.cuda.synchronize()
    return graph
