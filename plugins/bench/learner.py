"""The target's kernels, as the bench sees them: in the learner's worker, never imported here.

One mechanism for both paths (the GPU's Triton kernels and the CPU's level-4 tiled
attention): :class:`LearnerKernels` opens a :class:`~attnkata.remote.Supervisor` with the
run's sandbox and loads each target kata file in its own worker; a :class:`RemoteKernel`
stages fresh inputs there, calls the entry once (its outputs come back and are judged
*here*, against the truth) and, only if correct, times it there (:mod:`.probe`).

The parent keeps its own clock over the timed request (the worker synchronises before
it answers), less the round trip of an empty request; if the worker's clock and the
parent's disagree by more than :data:`AGREE`, the timing is void (:class:`TimingVoid`)
and the row says so.  A kernel given as a plain module (the references, in the tests)
goes through the same calls, in this process.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .timing import Timing

PROBE = "attnkata_plugins.bench.probe"
PROBES = ("attnkata.probes", PROBE)
AGREE = 0.10             # worker and parent clocks must agree within 10 %
MIN_TOTAL_S = 0.2        # timed requests long enough for the round trip to be noise
MAX_CALLS = 10_000
CALL_TIMEOUT_S = 300.0   # one request (a Triton compile, a slow learner loop)


class TimingVoid(Exception):
    """The worker's clock and the parent's disagreed: the timing is not reported."""


@dataclass(frozen=True)
class Timed:
    """A timing taken in the worker and the parent's check of it."""

    timing: Timing
    n: int
    worker_ms: float      # the worker's clock over the timed request (calls + what ran between)
    parent_ms: float      # the parent's wall clock over the same request, less the round trip
    clock: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.timing.as_dict(), "cross_check": {k: v for k, v in asdict(self).items() if k != "timing"}}


class RemoteKernel:
    """One entry of the target's module: a :class:`~attnkata.remote.RemoteModule` (in its
    worker) or, for references run here, a plain module; the calls are the same."""

    def __init__(self, module: Any, entry: str, label: str):
        self.module, self.entry, self.label = module, entry, label

    def _probe(self, name: str, *args: Any) -> Any:
        from attnkata.remote import probe

        return probe(self.module, PROBE, name, *args)

    def where(self) -> dict:
        """``{"impl": module.qualname, "file": path}`` of the function that runs."""
        return self._probe("where", self.entry)

    def stage(self, *args: Any, **kwargs: Any) -> Any:
        """Send the inputs once; what comes back is a handle to them (or them, in-process)."""
        return self._probe("stage", args, kwargs)

    def call(self, staged: Any) -> Any:
        """The entry's outputs on the staged inputs, here, to be judged."""
        return self._probe("call", staged, self.entry)

    def time(self, staged: Any, *, repeat: int = 5, min_total_s: float = MIN_TOTAL_S,
             flush_bytes: int = 0) -> Timed:
        """Warm up, then time ``n`` calls in the worker and check the worker's clock.

        ``n`` makes the timed request last about ``min_total_s`` (so the round trip is noise);
        a request that ends far shorter (the estimate was off) is made again, longer."""
        per_call = max(float(self._probe("warm", staged, self.entry)), 1e-6)
        trip = min(self._wall("noop")[0] for _ in range(3))
        for _ in range(3):
            n = max(repeat, min(MAX_CALLS, math.ceil(min_total_s / per_call)))
            parent_s, got = self._wall("launches", staged, self.entry, n, flush_bytes)
            parent_s = max(parent_s - trip, 0.0)
            if parent_s >= min_total_s / 2 or n >= MAX_CALLS:
                break
            per_call = max(parent_s / n, 1e-7)
        samples = [float(x) for x in got["samples_ms"]]
        worker_ms = sum(samples) + float(got.get("other_ms", 0.0))
        parent_ms = parent_s * 1e3
        if len(samples) != n or abs(worker_ms - parent_ms) > AGREE * max(parent_ms, 1e-9):
            raise TimingVoid(f"timing void: the worker's clock says {worker_ms:.4g} ms for {len(samples)} "
                             f"calls, the bench's own wall clock {parent_ms:.4g} ms for {n} "
                             f"(more than {AGREE:.0%} apart)")
        return Timed(Timing.from_samples(samples), n, worker_ms, parent_ms, str(got.get("clock", "")))

    def _wall(self, name: str, *args: Any) -> tuple[float, Any]:
        start = time.perf_counter()
        out = self._probe(name, *args)
        return time.perf_counter() - start, out


class LearnerKernels:
    """The target's kata modules, each in a worker of one supervisor for this bench run."""

    def __init__(self, registry: Any, target: Any, learner_root: Path, rootdir: Path, config: Any = None):
        from attnkata.remote import Supervisor

        self.registry, self.target, self.learner_root = registry, target, Path(learner_root)
        self.supervisor = Supervisor(config or worker_config(registry, target, rootdir, self.learner_root),
                                     timeout=CALL_TIMEOUT_S)

    def kernel(self, kata: Any, entry: str) -> RemoteKernel:
        """``kata``'s ``entry`` in the target, loaded in its own worker.

        Raises what loading raised: ``TargetLoadError`` (no file), ``NotImplementedError``
        (a stub raising at import), ``WorkerGone``, or the import's own error."""
        from attnkata.target import TargetLoadError

        path, root = self.target.locate(kata, self.registry.pack_of(kata), self.learner_root)
        if not path.exists():
            raise TargetLoadError(f"no file at {path}")
        module = self.supervisor.module(f"bench:{self.target.slug}:{kata.id}", path.resolve(), root.resolve(),
                                        tuple(kata.requires), CALL_TIMEOUT_S, PROBES)
        if not module.has(entry):
            raise AttributeError(f"{kata.path} defines no `{entry}`")
        return RemoteKernel(module, entry, f"{self.target.name}:{kata.path}:{entry}")

    def close(self) -> None:
        self.supervisor.close()

    def __enter__(self) -> "LearnerKernels":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def worker_config(registry: Any, target: Any, rootdir: Path, katas_dir: Path) -> Any:
    """The sandbox a ``pytest`` run of this target gives learner code (references protected)."""
    from attnkata.session import RunState

    return RunState(None, registry, target, Path(rootdir), Path(katas_dir)).worker_config()


def not_started(exc: BaseException) -> bool:
    """A stub: ``NotImplementedError`` here, or wrapped (inside a Triton kernel, a worker)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NotImplementedError) or "NotImplementedError" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
