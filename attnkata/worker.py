"""The worker side: where learner code runs, and nothing is judged.

One *fork server* starts per pytest process (``python -m attnkata.worker``, or the
file itself).  It imports NumPy (and torch and Triton the first time a kata needs
them) and never imports a learner's file.  For each kata the judging process asks it
for a *worker*: the server forks, and the child

- starts a new session (its own process group, so one ``killpg`` ends it and
  anything it started), and dies with the server (``PR_SET_PDEATHSIG``);
- writes its output to a file the parent reads back bounded, its fatal-signal
  traceback to another (``faulthandler``), and dumps its stack on ``SIGUSR1`` so a
  timeout can say where the learner's code was;
- caps its memory (``RLIMIT_AS``), output file size, CPU time and core dumps;
- where Linux allows it without root, moves into new user and network namespaces
  (no network; loopback stays, for ring attention's gloo);
- works in a temporary folder with a temporary ``HOME``;
- installs a PEP 578 audit hook, which cannot be removed, that refuses reading the
  references, writing outside its temporary folder, and importing the judging code;
- then imports the learner's module and answers requests until the socket closes.

Requests are pickles from the trusted parent; replies are plain data built by
:mod:`attnkata.wire` and read back by its safe unpickler.

This module must not import any judging module (harness, compare, runner, ...).
"""

from __future__ import annotations

import faulthandler
import importlib
import io
import os
import pickle
import signal
import socket
import sys
import types
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: find the package without its folder on sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))
    from attnkata import wire  # noqa: E402
else:
    from . import wire

PR_SET_PDEATHSIG = 1
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000

# The framework's judging modules: the worker refuses to import them.
JUDGING = ("attnkata.harness", "attnkata.compare", "attnkata.runner", "attnkata.collect",
           "attnkata.session", "attnkata.selfcheck", "attnkata.target", "attnkata.pytest_plugin",
           "attnkata.state", "attnkata.ladder", "attnkata.report", "attnkata.render",
           "attnkata.manager", "attnkata.cli", "attnkata.remote", "attnkata.doctor",
           "attnkata.probes", "attnkata.tritonguard", "attnkata_plugins", "_pytest", "pytest")


# ---------------------------------------------------------------------------
# The fork server
# ---------------------------------------------------------------------------

def serve(ctl: socket.socket) -> None:
    _die_with_parent()
    import numpy  # noqa: F401  (every worker needs it: import once, here)

    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 4)
        except (ConnectionError, OSError):
            return
        if not msg:
            return
        req = pickle.loads(msg)
        kind = req[0]
        if kind == "fork":
            pid = os.fork()
            if pid == 0:
                ctl.close()
                try:
                    child_main(socket.socket(fileno=fds[0]), req[1])
                finally:
                    os._exit(70)
            for fd in fds:
                os.close(fd)
            ctl.send(pickle.dumps(("pid", pid)))
        elif kind == "preload":
            problems = {}
            for name in req[1]:
                try:
                    importlib.import_module(name)
                except BaseException as exc:  # reported, never fatal to the server
                    problems[name] = f"{type(exc).__name__}: {exc}"
            ctl.send(pickle.dumps(("preloaded", problems)))
        elif kind == "wait":
            try:
                _, status = os.waitpid(req[1], 0)
            except ChildProcessError:
                status = None
            ctl.send(pickle.dumps(("status", status)))
        elif kind == "exit":
            return


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # not Linux: the parent's socket closing ends us instead
        pass


# ---------------------------------------------------------------------------
# The child: one kata's learner code
# ---------------------------------------------------------------------------

class Worker:
    """State of one worker child: the learner module and the handle table."""

    def __init__(self, sock: socket.socket, cfg: dict):
        self.sock = sock
        self.cfg = cfg
        self.module: Any = None
        self.handles: dict[int, Any] = {}
        self.next_hid = 1
        self.root = cfg.get("root")
        self.notices: list[wire.Notice] = []
        self.encode = wire.Encoder(self.keep)
        self.probes: dict[str, Any] = {}

    def keep(self, obj: Any) -> int:
        hid = self.next_hid
        self.next_hid += 1
        self.handles[hid] = obj
        return hid

    # -- the loop ------------------------------------------------------------
    def serve(self) -> None:
        while True:
            frame = wire.recv_frame(self.sock)
            if frame is None:
                return
            try:
                req = self._load(frame)
                reply = ("ok", self.dispatch(req))
            except BaseException as exc:  # learner code is untrusted: every exit is an answer
                reply = ("raised", self._raised(exc))
            if self.notices:
                reply = reply + (tuple(self.notices),)
                self.notices.clear()
            wire.send_frame(self.sock, self._dump(reply))

    def _load(self, frame: bytes) -> Any:
        loader = _Loader(io.BytesIO(frame))
        loader.handles = self.handles
        return loader.load()

    def _dump(self, reply: Any) -> bytes:
        try:
            return pickle.dumps(reply, protocol=5)
        except BaseException as exc:  # something odd slipped through: say so, as data
            return pickle.dumps(("raised", wire.Raised(
                "TypeError", "builtins", f"a value could not be sent back to the judge: {exc}",
                "")), protocol=5)

    def _raised(self, exc: BaseException) -> wire.Raised:
        return wire.raised(exc, self.root, not_started=wire.unwritten(exc))

    # -- requests ----------------------------------------------------------------
    def dispatch(self, req: tuple) -> Any:
        kind = req[0]
        if kind == "load":
            return self.load(*req[1:])
        if kind == "getattr":
            _, hid, name = req
            owner = self.module if hid is None else self.handles[hid]
            value = getattr(owner, name)
            if callable(value) and not isinstance(value, type) and hid is not None:
                return wire.MethodRef(hid, name)
            return self.encode(value)
        if kind == "call":
            _, hid, name, args, kwargs = req
            owner = self.module if hid is None else self.handles[hid]
            fn = owner if name is None else getattr(owner, name)
            return self.encode(fn(*args, **kwargs))
        if kind == "call_watch":
            _, hid, name, args, kwargs = req
            owner = self.module if hid is None else self.handles[hid]
            fn = owner if name is None else getattr(owner, name)
            before = wire.snapshot((args, kwargs))
            value = fn(*args, **kwargs)
            return self.encode(value), wire.mutated(before, args, kwargs)
        if kind == "op":
            _, hid, op, args = req
            return self.op(self.handles[hid], op, args)
        if kind == "probe":
            _, module, name, args, kwargs = req
            if module not in self.probes:
                raise LookupError(f"probe module {module} was not loaded before the learner's "
                                  f"code: name it in the kata's probes")
            fn = getattr(self.probes[module], name)
            return self.encode(fn(self.module, *args, **kwargs))
        if kind == "release":
            for hid in req[1]:
                self.handles.pop(hid, None)
            return None
        if kind == "ping":
            return "pong"
        raise ValueError(f"unknown request {kind!r}")

    def op(self, obj: Any, op: str, args: tuple) -> Any:
        if op == "len":
            return len(obj)
        if op == "iter":
            return self.encode(list(obj))
        if op == "getitem":
            return self.encode(obj[args[0]])
        if op == "setitem":
            obj[args[0]] = args[1]
            return None
        if op == "delitem":
            del obj[args[0]]
            return None
        if op == "contains":
            return bool(args[0] in obj)
        if op == "bool":
            return bool(obj)
        if op == "setattr":
            setattr(obj, args[0], args[1])
            return None
        if op in ("eq", "ne", "lt", "le", "gt", "ge"):
            return self.encode(getattr(obj, f"__{op}__")(args[0]))
        if op in ("int", "float", "index", "str", "repr", "hash"):
            conv = {"int": int, "float": float, "index": lambda o: o.__index__(), "str": str,
                    "repr": repr, "hash": hash}[op]
            return conv(obj)
        if op == "getattr":
            return self.encode(getattr(obj, args[0]))
        raise ValueError(f"unknown operation {op!r}")

    def load(self, path: str, root: str) -> dict:
        """Import the learner's file inside a synthetic package rooted at ``root``."""
        import hashlib

        for name in self.cfg.get("probes", ()):
            try:
                module = sys.modules.get(name) or importlib.import_module(name)
            except ImportError:  # reported when a check asks for it
                continue
            # a snapshot of its functions: learner code that patches the module later
            # does not change what the probes run
            self.probes[name] = types.SimpleNamespace(**vars(module))
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") == "1":
            from attnkata import tritonguard

            tritonguard.install()
        _purge_judging()
        arm()
        pkg = "_attnkata_target_" + hashlib.sha1(root.encode()).hexdigest()[:10]
        package = types.ModuleType(pkg)
        package.__path__ = [root]  # type: ignore[attr-defined]
        sys.modules[pkg] = package
        rel = Path(path).relative_to(root).with_suffix("")
        self.module = importlib.import_module(".".join([pkg, *rel.parts]))
        names = {}
        for name in dir(self.module):
            value = getattr(self.module, name)
            names[name] = "callable" if callable(value) else "data"
        return names


class _Loader(pickle.Unpickler):
    """Requests from the parent: handles resolve to the worker's objects."""

    handles: dict = {}

    def persistent_load(self, pid: Any) -> Any:
        return self.handles[pid[1]]

    def find_class(self, module: str, name: str) -> Any:
        if module in _TRUSTED:  # a pack's class, preloaded before learner code
            obj = _TRUSTED[module]
            for part in name.split("."):
                obj = getattr(obj, part)
            return obj
        return super().find_class(module, name)


_TRUSTED: dict[str, Any] = {}


def _purge_judging() -> None:
    """Forget judging modules a preload brought in: a learner's import then refuses.

    They stay reachable to the worker's own request decoding (``_TRUSTED``), so a
    check may still send an object of a pack's class."""
    for name in list(sys.modules):
        if any(name == j or name.startswith(j + ".") for j in JUDGING):
            _TRUSTED[name] = sys.modules.pop(name)


# ---------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------

_POLICY: dict = {}
_ARMED = [False]


def child_main(sock: socket.socket, cfg: dict) -> None:
    os.setsid()
    _die_with_parent()
    tmp = cfg["tmp"]
    _redirect(cfg["output"])
    crash = open(cfg["crash"], "w")
    faulthandler.enable(file=crash, all_threads=True)
    stack = open(cfg["stack"], "w")
    faulthandler.register(signal.SIGUSR1, file=stack, all_threads=True, chain=False)
    _limits(cfg)
    isolation = _isolate_network() if cfg.get("isolate_net", True) else "off (asked)"
    os.environ["HOME"] = tmp
    os.environ["TMPDIR"] = tmp
    import tempfile

    tempfile.tempdir = tmp
    os.chdir(tmp)
    sys.dont_write_bytecode = True
    _POLICY.update(cfg.get("policy", {}))
    _POLICY["writable"] = tuple(_POLICY.get("writable", ())) + (tmp, "/dev/")
    sys.addaudithook(_audit)
    w = Worker(sock, cfg)
    _NOTICES.append(w.notices)
    wire.send_frame(sock, pickle.dumps(("hello", os.getpid(), isolation), protocol=5))
    w.serve()
    os._exit(0)


def _redirect(output: str) -> None:
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)


def _limits(cfg: dict) -> None:
    import resource

    def cap(which: int, value: int | None) -> None:
        if value:
            try:
                soft, hard = resource.getrlimit(which)
                new = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(which, (new, hard))
            except (ValueError, OSError):
                pass

    cap(resource.RLIMIT_AS, cfg.get("memory"))
    cap(resource.RLIMIT_FSIZE, cfg.get("fsize"))
    cap(resource.RLIMIT_CPU, cfg.get("cpu"))
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


def _isolate_network() -> str:
    """New user + network namespaces (no root needed where the kernel allows them)."""
    if not sys.platform.startswith("linux"):
        return "not available on this OS"
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return f"not available (unshare: {os.strerror(ctypes.get_errno())})"
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            try:
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            except OSError:
                pass
        _loopback_up()
        return "on (no network; loopback only)"
    except Exception as exc:  # never fatal: run without it
        return f"not available ({type(exc).__name__})"


def _loopback_up() -> None:
    import fcntl
    import struct

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        iff_up, iff_loopback, iff_running = 0x1, 0x8, 0x40
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", iff_up | iff_loopback | iff_running,
                                           b"\0" * 14))  # SIOCSIFFLAGS
    finally:
        s.close()


_NOTICES: list = []
_IN_HOOK = [False]
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FILE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "os.link",
                "os.symlink"}


def arm() -> None:
    _ARMED[0] = True


def _audit(event: str, args: tuple) -> None:
    if not _ARMED[0] or _IN_HOOK[0]:
        return
    _IN_HOOK[0] = True
    try:
        _check(event, args)
    finally:
        _IN_HOOK[0] = False


def _check(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        if path is None or isinstance(path, int):
            return
        full = _real(path)
        if _under(full, _POLICY.get("state", ())):
            _refuse("state", f"tried to open the course's saved progress ({full})")
        if _under(full, _POLICY.get("protected", ())):
            _refuse("reference", f"tried to read the reference ({full})")
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and not _under(full, _POLICY["writable"]):
            _refuse("write", f"tried to write {full}: a kata's code writes nowhere but its "
                             f"temporary folder")
        if _other_process(full):
            _refuse("process", f"tried to open {full}: another process's memory or files")
    elif event in ("os.listdir", "os.scandir"):
        path = args[0] if args else "."
        if path is not None and not isinstance(path, int) and _under(
                _real(path), _POLICY.get("protected", ())):
            _refuse("reference", f"tried to list the reference folder ({_real(path)})")
    elif event in _FILE_EVENTS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not _under(
                    _real(path), _POLICY["writable"]):
                _refuse("write", f"tried {event} on {_real(path)}")
    elif event in ("os.kill", "os.killpg") and args:
        target = args[0]
        if event == "os.kill" and isinstance(target, int) and target > 0:
            try:
                mine = os.getpgid(target) == os.getpgrp()
            except OSError:
                mine = True  # no such process: the call fails by itself
        else:  # a process group: 0 or -pgid for os.kill, pgid for os.killpg
            mine = isinstance(target, int) and abs(target) in (0, os.getpgrp())
        if not mine:
            _refuse("process", f"tried to signal process {target}, which is not its own")
    elif event == "import":
        name = args[0] if args else ""
        for banned in tuple(JUDGING) + tuple(_POLICY.get("modules", ())):
            if name == banned or name.startswith(banned + "."):
                _refuse("judge", f"tried to import `{name}`, which the grader keeps to itself",
                        ImportError)


def _refuse(kind: str, detail: str, exc: type = PermissionError) -> None:
    for notices in _NOTICES:
        notices.append(wire.Notice(kind, detail))
    raise exc(f"attnkata: {detail}")


def _real(path: Any) -> str:
    return os.path.realpath(os.fsdecode(path))


def _under(path: str, roots: Any) -> bool:
    for root in roots:
        root = str(root)
        if path == root.rstrip("/") or path.startswith(root.rstrip("/") + "/") or (
                root.endswith("/") and path.startswith(root)):
            return True
    return False


def _other_process(path: str) -> bool:
    if not path.startswith("/proc/"):
        return False
    part = path.split("/")[2]
    return part.isdigit() and int(part) != os.getpid()


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
