"""The judging side of the worker split: supervise learner code in other processes.

The pytest process never imports a learner's file.  :class:`Supervisor` starts one
fork server per run (:mod:`attnkata.worker`) and, for each kata, a fresh worker
forked from it.  Checks keep their shape: ``ctx.target`` is a :class:`RemoteModule`
whose attributes call into the worker; values come back as plain data (arrays,
tensors, numbers) and anything else stays there as a :class:`RemoteObject`.

The parent keeps the clock: a call past its deadline gets the worker's stack dumped
(``SIGUSR1`` → ``faulthandler``) and then its whole process group killed, whatever
the learner did to signals or in C code.  A worker that dies (an abort, a segfault,
``os._exit``, ``sys.exit``) is reported with the exit status and the learner's last
frame; the next check of the kata gets a fresh worker.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import wire

OUTPUT_HEAD = OUTPUT_TAIL = 20_000      # bytes of learner output shown from each end
DEFAULT_KATA_BUDGET = 180.0             # seconds of learner time per kata, all checks together
MAX_REPLY = 1 << 30                     # bytes: a bigger answer from a worker is refused


# ---------------------------------------------------------------------------
# Outcomes the checks see (harness.Abort subclasses are made in harness.py;
# these are raised here and mapped there)
# ---------------------------------------------------------------------------

class WorkerGone(BaseException):
    """The worker timed out or died; ``message`` says how, for the learner."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


class WorkerUnsupported(Exception):
    """This OS cannot run the worker (no ``fork``): katas are unavailable, not failed."""


class RemoteError(Exception):
    """Learner code raised an exception whose type only exists in the worker."""


import builtins  # noqa: E402

_REBUILT = {name: getattr(builtins, name, None)
            for name in ("ValueError", "TypeError", "KeyError", "IndexError", "RuntimeError",
                         "AssertionError", "ZeroDivisionError", "ArithmeticError", "OverflowError",
                         "FloatingPointError", "NotImplementedError", "AttributeError",
                         "LookupError", "MemoryError", "RecursionError", "StopIteration",
                         "ImportError", "ModuleNotFoundError", "NameError", "UnboundLocalError",
                         "SyntaxError", "IndentationError", "PermissionError", "OSError",
                         "FileNotFoundError", "UnicodeError", "BufferError", "EOFError")}
_REBUILT = {k: v for k, v in _REBUILT.items() if isinstance(v, type)}


def rebuild(r: wire.Raised) -> BaseException:
    """A parent-side stand-in for the learner's exception, carrying its traceback text."""
    if r.not_started:
        exc: BaseException = NotImplementedError(r.message)
    elif r.type_name in ("SystemExit", "KeyboardInterrupt", "GeneratorExit"):
        exc = RemoteError(f"{r.type_name}({r.message})" if r.message else r.type_name)
    else:
        cls = _REBUILT.get(r.type_name) if r.module == "builtins" else None
        if cls is KeyError:
            exc = KeyError(r.message)
        elif cls is not None:
            try:
                exc = cls(r.message)
            except Exception:
                exc = RemoteError(f"{r.type_name}: {r.message}")
        else:
            exc = RemoteError(r.message)
    exc.learner_type = r.type_name            # type: ignore[attr-defined]
    exc.learner_traceback = r.traceback       # type: ignore[attr-defined]
    return exc


# ---------------------------------------------------------------------------
# One worker
# ---------------------------------------------------------------------------

@dataclass
class WorkerConfig:
    """What a worker is allowed, and where its files go."""

    protected: tuple[str, ...] = ()      # folders it may not read (the references)
    state: tuple[str, ...] = ()          # folders it may not open at all (saved progress)
    modules: tuple[str, ...] = ()        # modules it may not import, beyond the judging ones
    writable: tuple[str, ...] = ()       # folders it may write besides its own temp folder
    probes: tuple[str, ...] = ()         # modules of worker-side probes, imported before learner code
    memory: int | None = None            # RLIMIT_AS in bytes
    fsize: int = 256 << 20               # largest file it may write (its output included)
    cpu: int = 900                       # RLIMIT_CPU seconds: a backstop if the parent is gone
    isolate_net: bool = True


class WorkerProcess:
    """A forked worker holding one learner module; every request is supervised."""

    def __init__(self, server: "ForkServer", cfg: WorkerConfig, label: str, root: str):
        self.server = server
        self.label = label
        self.root = root
        self.dir = Path(tempfile.mkdtemp(prefix="w-", dir=server.dir))
        self.output = self.dir / "output.txt"
        self.crash = self.dir / "crash.txt"
        self.stack = self.dir / "stack.txt"
        self.output_seen = 0
        self.gone: WorkerGone | None = None
        self.notices: list[wire.Notice] = []
        self.learner_time = 0.0
        home = self.dir / "home"
        home.mkdir()
        payload = {"tmp": str(home), "output": str(self.output), "crash": str(self.crash),
                   "stack": str(self.stack), "root": root, "memory": cfg.memory,
                   "fsize": cfg.fsize, "cpu": cfg.cpu, "isolate_net": cfg.isolate_net,
                   "probes": tuple(cfg.probes),
                   "policy": {"protected": tuple(cfg.protected), "state": tuple(cfg.state),
                              "modules": tuple(cfg.modules),
                              "writable": tuple(cfg.writable)}}
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = mine
        try:
            self.pid = server.fork(payload, theirs)
        finally:
            theirs.close()
        hello = self._receive(time.monotonic() + 60, "starting the worker")
        self.isolation = hello[2] if isinstance(hello, tuple) and len(hello) > 2 else "unknown"

    # -- requests ---------------------------------------------------------------
    def request(self, req: tuple, deadline: float, what: str, seconds: float = 0.0) -> Any:
        return self.finish(self.send(req, what), deadline, what, seconds)

    def send(self, req: tuple, what: str) -> float:
        """Send one request; returns when it was sent (for :meth:`finish`)."""
        if self.gone is not None:
            raise self.gone
        try:
            payload = _dumps(req)
        except Exception as exc:
            raise TypeError(f"cannot send {what} to the worker: {exc}") from None
        start = time.monotonic()
        try:
            wire.send_frame(self.sock, payload)
        except OSError:
            self._died(what)
        return start

    def finish(self, start: float, deadline: float, what: str, seconds: float = 0.0) -> Any:
        """The reply to the request sent at ``start``: its value, or its exception raised."""
        if self.gone is not None:
            raise self.gone
        try:
            reply = self._receive(deadline, what, seconds)
        finally:
            self.learner_time += time.monotonic() - start
        if len(reply) > 2:
            self.notices.extend(reply[2])
        if reply[0] == "raised":
            raise rebuild(reply[1])
        return reply[1]

    def _receive(self, deadline: float, what: str, seconds: float = 0.0) -> Any:
        buf = bytearray()
        need = wire.HEADER.size
        size = None
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.sock], [], [], max(left, 0.0))
            if not ready:  # nothing waiting: past the deadline, the worker is stopped
                if left <= 0:
                    self._timed_out(what, seconds)
                continue
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self._died(what)
            buf += chunk
            if size is None and len(buf) >= need:
                size = wire.HEADER.unpack(bytes(buf[:need]))[0]
                if size > MAX_REPLY:
                    self.kill()
                    self.gone = WorkerGone(f"{what} returned {size / 2**30:.1f} GiB of data, more "
                                           f"than the grader reads ({MAX_REPLY / 2**30:g} GiB): "
                                           f"return the result, not a huge buffer")
                    raise self.gone
            if size is not None and len(buf) >= need + size:
                try:
                    return wire.loads_safe(bytes(buf[need:need + size]))
                except Exception as exc:
                    self.kill()
                    self.gone = WorkerGone(f"the worker sent back something the grader refuses "
                                           f"to read ({exc}) while running {what}")
                    raise self.gone from None

    # -- endings ------------------------------------------------------------------
    def _timed_out(self, what: str, seconds: float = 0.0) -> None:
        where = self._sample_stack()
        self.kill()
        where = f"\nYour code was here when it was stopped:\n{where}" if where else ""
        within = f"within {seconds:.3g} s" if seconds else "in time"
        self.gone = WorkerGone(f"{what} did not finish {within}: the worker was stopped. An "
                               f"infinite loop, or a size-dependent slowdown (a Python loop "
                               f"over every element?){where}", timed_out=True)
        raise self.gone

    def _sample_stack(self) -> str:
        try:
            os.kill(self.pid, signal.SIGUSR1)
        except OSError:
            return ""
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            time.sleep(0.05)
            text = _read(self.stack)
            if text.strip() and ("File" in text or "Thread" in text):
                time.sleep(0.05)
                return self.learner_frames(_read(self.stack))
        return ""

    def _died(self, what: str) -> None:
        status = self.kill()
        crash = self.learner_frames(_read(self.crash))
        self.gone = WorkerGone(f"your code crashed the worker ({what}): "
                               f"{describe_status(status, crash)}"
                               + (f"\nYour code's last frames:\n{crash}" if crash else ""))
        raise self.gone

    def learner_frames(self, dump: str) -> str:
        """The faulthandler lines that point into the learner's files, innermost last."""
        lines = [ln.strip() for ln in dump.splitlines() if ln.strip().startswith("File ")]
        mine = [ln for ln in lines if self.root and self.root in ln]
        # faulthandler lists the innermost frame first
        chosen = list(reversed(mine or lines[:3]))[-6:]
        return "\n".join("  " + _relative(ln, self.root) for ln in chosen)

    def kill(self) -> Any:
        """SIGKILL the worker's process group; returns its wait status (None if unknown)."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.sock.close()
        return self.server.wait(self.pid)

    def close(self, reap: bool = True) -> None:
        """Kill the worker (and all it started); ``reap=False`` when the server goes too."""
        if self.gone is None:
            self.gone = WorkerGone("the worker was closed")
            if reap:
                self.kill()
            else:
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- output -----------------------------------------------------------------
    def new_output(self) -> str:
        """What the learner's code printed since the last call, bounded."""
        try:
            size = self.output.stat().st_size
        except OSError:
            return ""
        start, self.output_seen = self.output_seen, size
        n = size - start
        if n <= 0:
            return ""
        with open(self.output, "rb") as f:
            f.seek(start)
            if n <= OUTPUT_HEAD + OUTPUT_TAIL:
                return f.read(n).decode("utf-8", "replace")
            head = f.read(OUTPUT_HEAD)
            f.seek(size - OUTPUT_TAIL)
            tail = f.read(OUTPUT_TAIL)
        cut = n - OUTPUT_HEAD - OUTPUT_TAIL
        return (head.decode("utf-8", "replace") + f"\n… [{cut:,} bytes of output cut] …\n"
                + tail.decode("utf-8", "replace"))


def _dumps(obj: Any) -> bytes:
    buf = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            if isinstance(o, RemoteObject):
                return ("h", object.__getattribute__(o, "_hid"))
            return None

        def reducer_override(self, o: Any) -> Any:
            return wire.fast_reduce(o)

    Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-20_000:]
    except OSError:
        return ""


def _relative(line: str, root: str | None) -> str:
    return line.replace(root.rstrip("/") + "/", "") if root else line


SIGNAL_HINTS = {
    "SIGABRT": "an abort (in Triton's interpreter: usually a load or store outside the tensor — "
               "mask it)",
    "SIGSEGV": "a segmentation fault (memory outside what was allocated: an out-of-bounds "
               "pointer or index)",
    "SIGBUS": "a bus error (a misaligned or unmapped memory access)",
    "SIGFPE": "a floating-point or integer arithmetic trap",
    "SIGKILL": "killed (out of memory, or stopped by the grader)",
    "SIGXFSZ": "it wrote more output than the limit (a print inside a loop?)",
    "SIGXCPU": "it used more CPU time than the limit",
}


def describe_status(status: Any, crash: str) -> str:
    if status is None:
        return ("it ended, and no exit status could be read (did it kill its parent, the "
                "fork server? The next kata gets a new one)")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}: {SIGNAL_HINTS.get(name, 'a fatal signal')}"
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return (f"it exited with status {code} (os._exit or sys.exit in your code? A kata's "
                f"code returns values; it never ends the process)")
    return f"wait status {status}"


# ---------------------------------------------------------------------------
# The fork server
# ---------------------------------------------------------------------------

class ForkServer:
    """One per judging process: a clean interpreter that forks workers on request."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="attnkata-workers-"))
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        script = Path(__file__).with_name("worker.py")
        env = dict(os.environ)
        env.pop("PYTHONSTARTUP", None)
        self.log = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=self.log, env=env, start_new_session=True, close_fds=True)
        theirs.close()
        self.preloaded: set[str] = set()
        self.pending = 0

    def _send(self, req: tuple, fds: tuple = ()) -> None:
        data = pickle.dumps(req)
        if fds:
            socket.send_fds(self.ctl, [data], list(fds))
        else:
            self.ctl.send(data)

    def _reply(self) -> Any:
        ready, _, _ = select.select([self.ctl], [], [], 300)
        if not ready:
            raise RuntimeError("the attnkata fork server did not answer in 300 s")
        reply = self.ctl.recv(1 << 16)
        if not reply:
            raise RuntimeError(f"the attnkata fork server died: see {self.dir / 'server.log'}")
        return pickle.loads(reply)  # the server never runs learner code

    def _ask(self, req: tuple, fds: tuple = ()) -> Any:
        while self.pending:  # answers to preloads sent ahead, in order
            self.pending -= 1
            self._reply()
        self._send(req, fds)
        return self._reply()

    def preload(self, modules: tuple[str, ...], wait: bool = True) -> dict:
        """Import ``modules`` in the server (once); ``wait=False`` returns at once, so the
        server imports torch while the judging process does its own work."""
        todo = tuple(m for m in modules if m not in self.preloaded)
        if not todo:
            return {}
        self.preloaded.update(todo)
        if not wait:
            self._send(("preload", todo))
            self.pending += 1
            return {}
        return self._ask(("preload", todo))[1]

    def fork(self, payload: dict, sock: socket.socket) -> int:
        return self._ask(("fork", payload), (sock.fileno(),))[1]

    def wait(self, pid: int) -> Any:
        try:
            return self._ask(("wait", pid))[1]
        except (OSError, RuntimeError):
            return None

    def close(self) -> None:
        """Stop the server at once (it holds nothing worth a polite exit); its workers
        die with it (``PR_SET_PDEATHSIG``)."""
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.ctl.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Proxies: learner objects as the checks see them
# ---------------------------------------------------------------------------

class Channel:
    """A worker plus the clock: every proxy call goes through ``call``."""

    def __init__(self, worker: WorkerProcess, timeout: float, budget: float,
                 spent_before: float = 0.0):
        self.worker = worker
        self.timeout = timeout
        self.budget = budget
        self.spent_before = spent_before     # learner time of this kata's earlier workers
        self.deadline: float | None = None     # set by ``limit`` around a group of calls
        self.what: str | None = None
        self.seconds = timeout

    @contextlib.contextmanager
    def limit(self, seconds: float | None, what: str) -> Iterator[None]:
        outer = (self.deadline, self.what, self.seconds)
        if self.deadline is None:
            self.seconds = seconds or self.timeout
            self.deadline = time.monotonic() + self.seconds
            self.what = what
        try:
            yield
        finally:
            self.deadline, self.what, self.seconds = outer

    def call(self, req: tuple, what: str) -> Any:
        return self.start(req, what).result()

    def start(self, req: tuple, what: str) -> "Pending":
        """Send ``req`` now; the worker computes while the caller does its own work."""
        spent = self.spent_before + self.worker.learner_time
        if spent > self.budget:
            raise WorkerGone(f"this kata's code has used its whole time budget "
                             f"({self.budget:g} s over all checks): the remaining checks are "
                             f"not run", timed_out=True)
        now = time.monotonic()
        seconds = self.seconds if self.deadline is not None else self.timeout
        deadline = self.deadline if self.deadline is not None else now + self.timeout
        deadline = min(deadline, now + max(self.budget - spent, 0.5))
        label = self.what or what
        return Pending(self, self.worker.send(req, label), deadline, label, seconds)

    def adopt(self, value: Any) -> Any:
        """Wire records → parent values: handles become proxies, tensors tensors."""
        t = type(value)
        if t is wire.Handle:
            return RemoteObject(self, value)
        if t is wire.MethodRef:
            return RemoteCallable(self, value.hid, value.name, f"{value.name}")
        if t is wire.TensorData:
            return value.to_tensor()
        if t in (wire.TorchDtype, wire.TorchDevice):
            return value.get()
        if t in (tuple, list):
            return t(self.adopt(v) for v in value)
        if t is dict:
            return {k: self.adopt(v) for k, v in value.items()}
        return value


@dataclass
class Pending:
    """A request in flight: ``result()`` waits for it (within its deadline)."""

    channel: "Channel"
    sent: float
    deadline: float
    what: str
    seconds: float

    def result(self) -> Any:
        ch = self.channel
        return ch.adopt(ch.worker.finish(self.sent, self.deadline, self.what, self.seconds))


class RemoteCallable:
    """A function or method that lives in the worker."""

    def __init__(self, channel: Channel, hid: int | None, name: str | None, label: str):
        self._channel, self._hid, self._name, self.__name__ = channel, hid, name, label

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(("call", self._hid, self._name, args, kwargs),
                                  f"{self.__name__}(...)")

    def __repr__(self) -> str:
        return f"<your {self.__name__}>"


class RemoteObject:
    """A learner object held in the worker; attribute reads and calls are round trips."""

    def __init__(self, channel: Channel, handle: wire.Handle):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_hid", handle.hid)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_methods", {})

    def _op(self, op: str, *args: Any) -> Any:
        ch = object.__getattribute__(self, "_channel")
        hid = object.__getattribute__(self, "_hid")
        return ch.call(("op", hid, op, args), f"{self._type()} {op}")

    def _type(self) -> str:
        return object.__getattribute__(self, "_handle").type_name.rsplit(".", 1)[-1]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        methods = object.__getattribute__(self, "_methods")
        if name in methods:  # a method seen before: calling it is the only round trip
            return methods[name]
        ch = object.__getattribute__(self, "_channel")
        hid = object.__getattribute__(self, "_hid")
        value = ch.call(("getattr", hid, name), f"{self._type()}.{name}")
        if isinstance(value, RemoteCallable) and value._hid == hid:
            methods[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        object.__getattribute__(self, "_methods").pop(name, None)
        self._op("setattr", name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ch = object.__getattribute__(self, "_channel")
        return ch.call(("call", object.__getattribute__(self, "_hid"), None, args, kwargs),
                       f"{self._type()}(...)")

    def __len__(self) -> int:
        return self._op("len")

    def __iter__(self) -> Iterator[Any]:
        return iter(self._op("iter"))

    def __getitem__(self, key: Any) -> Any:
        return self._op("getitem", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._op("setitem", key, value)

    def __delitem__(self, key: Any) -> None:
        self._op("delitem", key)

    def __contains__(self, item: Any) -> bool:
        return self._op("contains", item)

    def __bool__(self) -> bool:
        return self._op("bool")

    def __int__(self) -> int:
        return _plain(self._op("int"), int)

    def __float__(self) -> float:
        return _plain(self._op("float"), float)

    def __index__(self) -> int:
        return _plain(self._op("index"), int)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self._op("eq", other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self._op("ne", other)

    def __lt__(self, other: Any) -> Any:
        return self._op("lt", other)

    def __le__(self, other: Any) -> Any:
        return self._op("le", other)

    def __gt__(self, other: Any) -> Any:
        return self._op("gt", other)

    def __ge__(self, other: Any) -> Any:
        return self._op("ge", other)

    def __hash__(self) -> int:
        return hash(("remote", object.__getattribute__(self, "_hid")))

    def __repr__(self) -> str:
        return object.__getattribute__(self, "_handle").text

    def __reduce__(self) -> Any:
        raise TypeError("a learner object cannot be copied out of its worker")

    def __deepcopy__(self, memo: dict) -> "RemoteObject":
        return self  # it stays in the worker: copying the proxy copies the reference


def _plain(value: Any, kind: type) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) or kind is float and isinstance(value, int):
        return kind(value)
    raise TypeError(f"expected a plain {kind.__name__} from your code, got {type(value).__name__}")


class RemoteModule:
    """The learner's module as the checks see it: ``ctx.target``."""

    def __init__(self, channel: Channel, names: dict[str, str], label: str):
        self._channel = channel
        self._names = names
        self._label = label

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") and name not in self._names:
            raise AttributeError(name)
        kind = self._names.get(name)
        if kind is None:
            raise AttributeError(f"{self._label} defines no `{name}`")
        if kind == "callable":
            return RemoteCallable(self._channel, None, name, name)
        return self._channel.call(("getattr", None, name), f"{self._label}.{name}")

    def has(self, name: str) -> bool:
        return name in self._names

    def __repr__(self) -> str:
        return f"<your {self._label}>"


def probe(target: Any, module: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Run the worker-side function ``module.name(learner_module, *args, **kwargs)``.

    For measurements that must sit next to the learner's code (tracemalloc peaks,
    torch call recording, op counters, process groups).  The function's module is
    imported in the worker before the learner's code (name it in the kata's
    ``probes``); what it returns comes back as data.
    """
    ch = target._channel if isinstance(target, RemoteModule) else None
    if ch is None:  # an in-process target (the references, selfcheck): call directly
        import importlib

        return getattr(importlib.import_module(module), name)(target, *args, **kwargs)
    return ch.call(("probe", module, name, args, kwargs), f"{name}(...)")


# ---------------------------------------------------------------------------
# The supervisor: workers per kata for one run
# ---------------------------------------------------------------------------

@dataclass
class Loaded:
    module: RemoteModule | None
    error: BaseException | None = None


@dataclass
class Supervisor:
    """Starts workers on demand, one per (target root, kata), and reaps them."""

    config: WorkerConfig
    timeout: float = 20.0
    budget: float = DEFAULT_KATA_BUDGET
    keep: int = 2
    server: ForkServer | None = None
    live: dict = field(default_factory=dict)       # key -> (WorkerProcess, Loaded)
    isolation: str = "not started yet"
    spent: dict = field(default_factory=dict)      # key -> learner seconds of closed workers

    def warm(self, requires: set[str], probes: tuple[str, ...]) -> None:
        """Start the fork server now and let it import what the selected katas need."""
        preload = tuple(m for m in ("torch", "triton", "triton.language") if m.split(".")[0] in requires)
        self._server().preload(preload + tuple(probes), wait=False)

    def _server(self) -> ForkServer:
        if not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
            raise WorkerUnsupported("attnkata runs learner code in a forked worker, which this OS "
                                    "cannot do: use Linux or macOS (on Windows, WSL)")
        global _EARLY
        if self.server is None and _EARLY is not None:  # started while pytest was starting
            self.server, _EARLY = _EARLY, None
        if self.server is not None and self.server.proc.poll() is not None:
            self.server.close()  # learner code killed it: start a fresh one
            self.server = None
        if self.server is None:
            self.server = ForkServer()
        return self.server

    def module(self, key: str, path: Path, root: Path, requires: tuple[str, ...],
               timeout: float, probes: tuple[str, ...] = ()) -> RemoteModule:
        """The learner module at ``path`` in a live worker (raising what importing raised)."""
        entry = self.live.get(key)
        if entry is not None and entry[0].gone is None:
            if entry[1].error is not None:
                raise entry[1].error
            entry[1].module._channel.timeout = timeout  # type: ignore[union-attr]
            return entry[1].module  # type: ignore[return-value]
        if entry is not None and entry[1].error is not None and not isinstance(
                entry[1].error, WorkerGone):
            raise entry[1].error  # an import error: the same for every check of the kata
        if entry is not None and isinstance(entry[1].error, WorkerGone) and entry[2]:
            raise entry[1].error  # hung or crashed while importing: never retried this run
        if entry is not None and entry[0].gone is not None and entry[0].gone.timed_out:
            # one timeout per kata: every further check would likely wait as long again
            raise WorkerGone("not run: an earlier check of this kata timed out (its message "
                             "says where the code was); fix that first", timed_out=True)
        self._retire(keep=self.keep - 1, but=key)
        server = self._server()
        preload = tuple(m for m in requires if m in ("torch", "triton", "hypothesis")) + probes
        if "triton" in preload:
            preload += ("triton.language",)
        server.preload(preload)
        cfg = self.config
        if probes:
            cfg = WorkerConfig(**{**cfg.__dict__, "probes": tuple(probes)})
        try:
            worker = WorkerProcess(server, cfg, path.name, str(root) + "/")
        except (RuntimeError, OSError):  # the server died (killed by earlier learner code)
            self.server.close()
            self.server = None
            server = self._server()
            server.preload(preload)
            worker = WorkerProcess(server, cfg, path.name, str(root) + "/")
        self.isolation = worker.isolation
        spent = self.spent.get(key, 0.0)
        if entry is not None:  # the last worker of this kata timed out or crashed
            spent += entry[0].learner_time
            self.spent[key] = spent
            entry[0].close()
        channel = Channel(worker, timeout, self.budget, spent)
        loaded = Loaded(None)
        at_import = False
        try:
            with channel.limit(timeout, f"importing {_shown(path)}"):
                names = channel.call(("load", str(path), str(root)), "import")
            loaded.module = RemoteModule(channel, names, _shown(path))
        except WorkerGone as exc:
            loaded.error, at_import = exc, True
        except BaseException as exc:
            loaded.error = exc
        self.live[key] = (worker, loaded, at_import)
        if loaded.error is not None:
            raise loaded.error
        return loaded.module  # type: ignore[return-value]

    def worker_for(self, key: str) -> WorkerProcess | None:
        entry = self.live.get(key)
        return entry[0] if entry else None

    def _retire(self, keep: int, but: str) -> None:
        """Close the oldest live workers so at most ``keep`` others stay up."""
        others = [k for k in self.live if k != but and self.live[k][0].gone is None]
        for k in others[:max(len(others) - keep, 0)]:
            self.live[k][0].close()

    def close(self) -> None:
        for worker, _, _ in self.live.values():
            worker.close(reap=False)
        self.live.clear()
        if self.server is not None:
            self.server.close()
            self.server = None


_EARLY: ForkServer | None = None


def start_early(preload: tuple[str, ...] = ("attnkata.model",)) -> None:
    """Start the run's fork server now, so its interpreter and imports overlap with
    pytest's own start-up; the first :class:`Supervisor` adopts it."""
    global _EARLY
    if _EARLY is None and hasattr(os, "fork") and hasattr(socket, "send_fds"):
        _EARLY = ForkServer()
        _EARLY.preload(preload, wait=False)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def default_memory_limit() -> int | None:
    """Half of physical memory, or None where an address-space cap would break CUDA."""
    if Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists():
        return None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return max(total // 2, 2 << 30)


def parse_size(text: str) -> int | None:
    """``"8G"``, ``"512M"``, ``"0"`` (no cap) → bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (try 8G or 512M)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    return value or None


def sandbox_rows() -> list[dict[str, Any]]:
    """For ``attnkata doctor``: start a real worker and say what its sandbox does here."""
    import tempfile as _tf

    rows: list[dict[str, Any]] = []
    with _tf.TemporaryDirectory() as tmp:
        secret = Path(tmp) / "secret"
        secret.mkdir()
        (secret / "answer.txt").write_text("42")
        course = Path(tmp) / "course" / "level0"
        course.mkdir(parents=True)
        (course / "probe.py").write_text(
            "def read(path):\n    try:\n        return open(path).read()\n"
            "    except PermissionError:\n        return 'refused'\n")
        memory = default_memory_limit()
        sup = Supervisor(WorkerConfig(protected=(str(secret),), memory=memory), timeout=30)
        try:
            mod = sup.module("doctor", course / "probe.py", course.parent, ("numpy",), 30)
            refused = mod.read(str(secret / "answer.txt")) == "refused"
            rows.append({"name": "Learner-code worker", "found": "runs (a forked, supervised process)",
                         "ok": True, "needed_for": "every kata: learner code never runs in the grader",
                         "fix": ""})
            rows.append({"name": "Reading the references",
                         "found": "blocked (learner code cannot read solutions/)" if refused
                         else "ALLOWED",
                         "ok": refused, "needed_for": "honest grading",
                         "fix": "" if refused else "Python's audit hooks are not working here"})
            net = sup.isolation
            shown = f"isolated{net[2:]}" if net.startswith("on") else net  # "on (no network...)"
            rows.append({"name": "Network for learner code", "found": shown, "ok": True,
                         "needed_for": "grading untrusted code",
                         "fix": "" if net.startswith("on") else
                         "optional: needs unprivileged user namespaces (Linux; "
                         "kernel.unprivileged_userns_clone=1)"})
        except BaseException as exc:  # the doctor reports, never crashes
            rows.append({"name": "Learner-code worker", "found": f"{type(exc).__name__}: {exc}",
                         "ok": False, "needed_for": "every kata",
                         "fix": "report this: the worker process could not start"})
        finally:
            sup.close()
    cap = f"{memory / 2**30:.1f} GiB address space" if memory else "none (an NVIDIA GPU is present)"
    rows.append({"name": "Memory cap for learner code", "found": cap, "ok": True,
                 "needed_for": "containing a runaway allocation (it fails alone)",
                 "fix": "change with --attnkata-memory-limit or the ini key attnkata_memory_limit"})
    return rows
