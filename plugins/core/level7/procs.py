"""Running learner code on P real processes: a gloo process group on localhost.

Ring attention is only honest when it runs on separate processes that talk through
``torch.distributed``.  :func:`run_ranks` forks ``world_size`` workers, gives them a
process group, and steps them through a list of cases together: case ``i`` starts on
every rank only when every rank has finished case ``i − 1``, so each case's messages
stay its own and a hang is pinned to one case.

Choices, and why:

- **fork, not spawn.**  The learner's kata is imported from a file path into a
  synthetic package (in its worker, see :mod:`attnkata.worker`), and misconceptions and
  generic fakes are closures or namespaces: none of them pickles by reference into a
  fresh interpreter.  A forked child inherits them, and the inputs, for free; torch is
  already imported, so a rank starts in a few milliseconds.  For learner code the ranks
  are forked from the learner's worker (``ring_ranks.ring_on_ranks``, a worker-side
  probe), never from the judging process: they share the worker's sandbox and process
  group, so the judge's kill of that group on a timeout ends every rank too.  Fork
  exists on Linux and macOS; elsewhere the katas that need it are reported unavailable.
- **A FileStore rendezvous** (``file://`` in a fresh temp dir) instead of a TCP port:
  no port to choose, so no race with other processes or ``pytest -n``.  gloo's own
  connections bind to ephemeral ports.
- **Our own deadlines.**  The framework's per-call timeout (SIGALRM) covers the parent
  only.  Here a case is a *deadlock* once every unfinished rank has sat in a send or
  receive wait for ``stuck_after`` seconds (each rank marks its waits in a shared
  array, through :class:`CommProbe`), and a *timeout* after ``progress_timeout``
  seconds whatever the ranks are doing.  Either way the ranks that never finished are
  named, every worker is terminated (then killed), and the temp dir is removed — also
  when learner code raises, crashes, or the parent is interrupted.
- **Results come back pickled by value** (``pickle.dumps`` over a pipe, not torch's
  shared-memory reductions), so nothing outlives the worker.  A rank's exception comes
  back as text: the learner's frames, formatted in the child.
- **Output of the ranks** (``print`` in learner code, gloo's warnings) goes to one log
  per rank; :attr:`RankError.logs` carries it, so a failure can show it.

:class:`CommProbe` (in ``comm_probe``) instruments one rank from inside.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Sequence

from attnkata.wire import raised

from .comm_probe import SLOT, Refused

#: seconds a case may run before its unfinished ranks are stopped
PROGRESS_TIMEOUT = 8.0
#: seconds every unfinished rank may sit in a send/recv wait before it counts as a deadlock
STUCK_AFTER = 2.0
#: seconds for the workers to start and form their process group
START_TIMEOUT = 60.0


class RankError(Exception):
    """Something went wrong on the ranks.

    ``kind`` is ``not_started`` (NotImplementedError), ``raised`` (learner code raised),
    ``refused`` (a collective where only point-to-point is allowed), ``deadlock`` (every
    unfinished rank stuck in a send or receive), ``timeout`` (no progress in time, not
    all of it waiting on communication), ``crashed`` (a rank died without a word) or
    ``start`` (no process group could be formed: a machine problem).
    """

    def __init__(self, kind: str, ranks: Sequence[int], case: int, message: str,
                 logs: dict[int, str] | None = None):
        super().__init__(message)
        self.kind, self.ranks, self.case, self.message = kind, tuple(ranks), case, message
        self.logs = logs or {}

    def as_data(self) -> dict:
        """Plain data, to cross from a learner's worker to the judging process."""
        return {"kind": str(self.kind), "ranks": tuple(int(r) for r in self.ranks),
                "case": int(self.case), "message": str(self.message),
                "logs": {int(r): str(t) for r, t in self.logs.items()}}

    @classmethod
    def from_data(cls, data: dict) -> "RankError":
        return cls(data["kind"], data["ranks"], data["case"], data["message"], data["logs"])


def fork_available() -> bool:
    return "fork" in mp.get_all_start_methods()


# ---------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------

def run_ranks(world_size: int, job: Callable[[int, int, Any, dict], Any], cases: Sequence[Any], *,
              learner_root: Path | None = None, progress_timeout: float = PROGRESS_TIMEOUT,
              stuck_after: float = STUCK_AFTER, start_timeout: float = START_TIMEOUT,
              backend: str = "gloo") -> list[list[Any]]:
    """Run ``job(rank, world_size, case, state)`` for every case on every rank.

    ``state`` is a dict private to one rank that lives across its cases (for process
    groups made once).  Returns ``results[case][rank]``.  Raises :class:`RankError`:
    a deadlock once every unfinished rank has sat in a communication wait (seen by
    :class:`CommProbe`) for ``stuck_after`` seconds, or when a case makes no progress
    for ``progress_timeout`` seconds.
    """
    ctx = mp.get_context("fork")
    world = _World(tempfile.TemporaryDirectory(prefix="attnkata-ring-"),
                   ctx.Array("d", world_size, lock=False))
    finished = False
    try:
        for rank in range(world_size):
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker, daemon=True, name=f"attnkata-rank{rank}",
                               args=(rank, world_size, world, backend, job, cases, child_end,
                                     learner_root, start_timeout))
            with warnings.catch_warnings():  # Python ≥ 3.12 frowns on fork with threads alive
                warnings.simplefilter("ignore", DeprecationWarning)
                proc.start()
            child_end.close()
            world.procs.append(proc)
            world.conns.append(parent_end)
        world.gather("ready", -1, start_timeout, stuck_after=None)
        results = []
        for i in range(len(cases)):
            world.tell(("run", i))
            results.append(world.gather("ok", i, progress_timeout, stuck_after))
        world.tell(("exit",))
        finished = True
        return results
    finally:
        world.reap(grace=1.0 if finished else 0.0)


@dataclass
class _World:
    """The parent's view of the ranks: processes, pipes, log folder, and who is blocked.

    ``blocked[r]`` is the ``time.monotonic()`` at which rank r entered a communication
    wait, 0 when it is not in one (shared memory, written by the rank's CommProbe).
    """

    tmp: Any
    blocked: Any
    procs: list = field(default_factory=list)
    conns: list = field(default_factory=list)

    def tell(self, msg: tuple) -> None:
        for conn in self.conns:
            try:
                conn.send(msg)
            except OSError:  # that rank is gone; gather() will say how it died
                pass

    def gather(self, want: str, case: int, timeout: float, stuck_after: float | None) -> list[Any]:
        """One message per rank: ``want`` payloads in rank order, or a :class:`RankError`."""
        n = len(self.procs)
        got: dict[int, Any] = {}
        errors: dict[int, tuple[str, str]] = {}
        deadline = time.monotonic() + timeout
        grace = None  # once one rank fails, give the others a moment to report theirs
        stuck: list[int] = []
        while len(got) + len(errors) < n:
            now = time.monotonic()
            limit = min(deadline, grace) if grace else deadline
            if now >= limit:
                break
            pending = [r for r in range(n) if r not in got and r not in errors]
            if stuck_after is not None and not errors and all(
                    0 < self.blocked[r] < now - stuck_after for r in pending):
                stuck = pending
                break
            waiting = {self.conns[r]: r for r in pending}
            sentinels = {self.procs[r].sentinel: r for r in pending}
            for ready in wait(list(waiting) + list(sentinels), timeout=min(limit - now, 0.1)):
                if ready in waiting:
                    self._receive(waiting[ready], want, got, errors)
                else:
                    rank = sentinels[ready]
                    if rank not in got and rank not in errors and not _has_data(self.conns[rank]):
                        errors[rank] = ("crashed", self._death(rank))
            if errors and grace is None:
                grace = time.monotonic() + 0.3
        if errors:
            kind, message = errors[min(errors)]
            raise RankError(kind, sorted(errors), case, message, self.logs())
        if stuck:
            raise RankError("deadlock", stuck, case, f"ranks {stuck} never finished: each sat over "
                            f"{stuck_after:g} s in a send or receive that no rank matched", self.logs())
        if len(got) < n:
            late = [r for r in range(n) if r not in got]
            if case < 0:
                raise RankError("start", late, case, f"ranks {late} did not join the process group "
                                f"within {timeout:g} s", self.logs())
            waiting = [r for r in late if self.blocked[r] > 0]
            running = [r for r in late if r not in waiting]
            raise RankError("timeout", late, case, f"ranks {late} never finished within {timeout:g} s "
                            f"(running: {running}; waiting in a send or receive: {waiting})",
                            self.logs())
        return [got[r] for r in range(n)]

    def _receive(self, rank: int, want: str, got: dict, errors: dict) -> None:
        try:
            msg = self.conns[rank].recv()
        except (EOFError, OSError):  # it died: the pipe closed with nothing in it
            errors[rank] = ("crashed", self._death(rank))
            return
        if msg[0] == want:
            try:
                got[rank] = pickle.loads(msg[1]) if len(msg) > 1 else None
            except Exception as exc:
                errors[rank] = ("raised", f"rank {rank} returned something the test cannot read "
                                          f"back: {type(exc).__name__}: {exc}")
        else:
            errors[rank] = (msg[1], msg[2])

    def _death(self, rank: int) -> str:
        self.procs[rank].join(0.5)
        code = self.procs[rank].exitcode
        if code is not None and code < 0:
            import signal
            try:
                return f"rank {rank} died from signal {signal.Signals(-code).name}"
            except ValueError:
                return f"rank {rank} died from signal {-code}"
        return f"rank {rank} exited (code {code}) without reporting a result"

    def logs(self) -> dict[int, str]:
        out = {}
        for rank in range(len(self.procs)):
            try:
                text = (Path(self.tmp.name) / f"rank{rank}.log").read_text(errors="replace").strip()
            except OSError:
                continue
            if text:
                out[rank] = text[-4000:]
        return out

    def reap(self, grace: float) -> None:
        """Every worker ends: ``grace`` seconds to exit on its own, then terminate, then kill."""
        deadline = time.monotonic() + grace
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.tmp.cleanup()


def _has_data(conn: Any) -> bool:
    """Data or end-of-file waiting on ``conn`` (the pipe branch then reads it)."""
    try:
        return conn.poll(0)
    except (EOFError, OSError):
        return True


# ---------------------------------------------------------------------------
# Child side
# ---------------------------------------------------------------------------

def _worker(rank: int, world_size: int, world: _World, backend: str, job: Callable,
            cases: Sequence[Any], conn: Any, learner_root: Path | None, start_timeout: float) -> None:
    tmp = world.tmp.name
    SLOT[:] = [world.blocked, rank]
    _redirect_output(Path(tmp) / f"rank{rank}.log")
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)
        if sys.platform.startswith("linux"):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group(backend, init_method=f"file://{tmp}/store", rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=start_timeout))
    except BaseException as exc:  # a machine problem, not the learner's
        _send(conn, ("error", "start", f"rank {rank} could not join a {backend} process group: "
                                       f"{type(exc).__name__}: {exc}"))
        os._exit(1)
    _send(conn, ("ready",))
    state: dict = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if msg[0] != "run":
            break
        _send(conn, _run_case(rank, world_size, job, cases[msg[1]], state, learner_root))
    os._exit(0)  # no atexit handlers, no process-group teardown: the parent reaps us


def _run_case(rank: int, world_size: int, job: Callable, case: Any, state: dict,
              learner_root: Path | None) -> tuple:
    try:
        result = job(rank, world_size, case, state)
    except NotImplementedError as exc:
        return ("error", "not_started", str(exc) or "NotImplementedError")
    except Refused as exc:
        return ("error", "refused", f"rank {rank}: {exc}")
    except BaseException as exc:  # untrusted code: every failure is feedback
        return ("error", "raised", f"rank {rank} of {world_size} raised an exception:\n"
                                   f"{_traceback(exc, learner_root)}")
    try:
        return ("ok", pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        return ("error", "raised", f"rank {rank} returned something that cannot be sent back "
                                   f"to the test: {type(exc).__name__}: {exc}")


def _traceback(exc: BaseException, root: Path | None) -> str:
    """The learner's frames (those under ``root``) and the error line, formatted here.

    :func:`attnkata.wire.raised`, not the judging side's formatter: ranks may run inside a
    learner's worker, which refuses to import the judging modules."""
    r = raised(exc, str(root) if root is not None else None)
    text = r.message
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    return (r.traceback + "\n" if r.traceback.strip() else "") + f"{r.type_name}: {text}"


def _send(conn: Any, msg: tuple) -> None:
    try:
        conn.send(msg)
    except (OSError, ValueError):
        os._exit(1)


def _redirect_output(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
