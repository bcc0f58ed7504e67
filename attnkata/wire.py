"""What crosses between the judging process and a learner's worker, and how.

Requests go parent → worker as ordinary pickles: the worker trusts its parent.
Replies go worker → parent, and the worker runs untrusted code, so a reply is
never unpickled with :mod:`pickle`'s defaults (a crafted ``__reduce__`` would run
any callable in the judge).  The worker first turns a value into *plain data*:
``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, tuples,
lists, dicts and sets of those, NumPy arrays and scalars of numeric dtypes, and
torch tensors (sent as :class:`TensorData`).  Anything else stays in the worker
and crosses as a :class:`Handle` the parent can call methods on.
:class:`SafeUnpickler` then accepts only the globals that data needs.

This module is imported by the worker: it must not import the judging modules.
"""

from __future__ import annotations

import io
import pickle
import struct
import traceback
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 40          # nesting deeper than this comes back as a handle
MAX_TEXT = 4000         # exception messages and reprs are cut to this many characters


@dataclass(frozen=True)
class Handle:
    """A learner object that stays in the worker: ``hid`` names it there."""

    hid: int
    type_name: str
    text: str           # a short repr, taken in the worker
    is_callable: bool = False


@dataclass(frozen=True)
class MethodRef:
    """``obj.name`` where it is callable: calling it is one round trip."""

    hid: int
    name: str


@dataclass(frozen=True)
class TensorData:
    """A torch tensor as bytes: dtype, shape and the raw values (bf16 travels as int16)."""

    dtype: str
    shape: tuple
    values: Any          # a NumPy array
    requires_grad: bool = False
    device: str = "cpu"

    def to_tensor(self) -> Any:
        import torch

        dt = getattr(torch, self.dtype)
        t = torch.from_numpy(self.values.copy())
        if t.dtype != dt:
            t = t.view(dt)
        t = t.reshape(self.shape)
        if self.device != "cpu":
            try:
                t = t.to(self.device)
            except Exception:  # the parent cannot reach that device: keep the values
                pass
        return t.requires_grad_(self.requires_grad) if dt.is_floating_point else t


@dataclass(frozen=True)
class Raised:
    """An exception raised by learner code, as text: the parent rebuilds a stand-in."""

    type_name: str
    module: str
    message: str
    traceback: str        # the learner's frames, formatted in the worker
    not_started: bool = False


@dataclass(frozen=True)
class Notice:
    """Something the worker refused on the learner's behalf (a read of the reference)."""

    kind: str
    detail: str


# ---------------------------------------------------------------------------
# Worker side: values → plain data
# ---------------------------------------------------------------------------

_SCALARS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))


class Encoder:
    """Turns a learner value into plain data, keeping everything else as a handle."""

    def __init__(self, keep: Any):
        self.keep = keep   # callable: object -> hid (the worker's handle table)

    def __call__(self, value: Any, depth: int = 0) -> Any:
        t = type(value)
        if t in _SCALARS:
            return value
        if depth > MAX_DEPTH:
            return self.handle(value)
        if t in (tuple, list):
            return t(self(v, depth + 1) for v in value)
        if t is dict:
            if all(type(k) in _SCALARS or type(k) is tuple for k in value):
                return {k: self(v, depth + 1) for k, v in value.items()}
            return self.handle(value)
        if t in (set, frozenset):
            if all(type(v) in _SCALARS for v in value):
                return t(value)
            return self.handle(value)
        data = _array_data(value)
        if data is not None:
            return data
        return self.handle(value)

    def handle(self, value: Any) -> Handle:
        text = f"<{type(value).__name__} object from your code>"
        return Handle(self.keep(value), _type_name(value), text, callable(value))


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ not in ("builtins", None) else t.__qualname__


def _array_data(value: Any) -> Any:
    t = type(value)
    mod = t.__module__ or ""
    if mod.startswith("numpy"):
        import numpy as np

        if t is np.ndarray:
            if value.dtype.kind in "biufcSU?" and not value.dtype.fields:
                return np.array(value, copy=True, order="K")
            return None
        if isinstance(value, np.generic) and value.dtype.kind in "biufc?":
            return value
        if t is np.dtype:
            return value
        return None
    if mod.startswith("torch"):
        import torch

        if t in (torch.Tensor, torch.nn.Parameter):
            return tensor_data(value)
        if t is torch.dtype:
            return TorchDtype(str(value).replace("torch.", ""))
        if t is torch.Size:
            return tuple(int(s) for s in value)
        if t is torch.device:
            return TorchDevice(str(value))
    return None


@dataclass(frozen=True)
class TorchDtype:
    name: str

    def get(self) -> Any:
        import torch

        return getattr(torch, self.name)


@dataclass(frozen=True)
class TorchDevice:
    name: str

    def get(self) -> Any:
        import torch

        return torch.device(self.name)


def tensor_data(t: Any) -> TensorData:
    import torch

    x = t.detach()
    device = str(x.device)
    x = x.cpu().contiguous()
    if x.dtype == torch.bfloat16:
        values = x.view(torch.int16).numpy().copy()
    elif x.dtype.is_complex or x.dtype in (torch.float16, torch.float32, torch.float64, torch.bool,
                                            torch.int8, torch.uint8, torch.int16, torch.int32,
                                            torch.int64):
        values = x.numpy().copy()
    else:  # float8 and friends: widen, and say so through the dtype name kept
        values = x.float().numpy().copy()
        return TensorData("float32", tuple(x.shape), values, bool(t.requires_grad), device)
    return TensorData(str(x.dtype).replace("torch.", ""), tuple(x.shape), values,
                      bool(t.requires_grad), device)


def rebuild_tensor(data: TensorData) -> Any:
    """Unpickling hook for tensors sent as :class:`TensorData` (see ``fast_reduce``)."""
    return data.to_tensor()


def fast_reduce(obj: Any) -> Any:
    """A cheaper pickle for contiguous CPU tensors (torch's own costs ~50 µs each way).

    Other tensors take torch's own pickle, which keeps their strides and storage. A
    NumPy view that is neither C- nor Fortran-ordered (every other row, a column slice)
    would arrive as a contiguous copy: it crosses as :func:`array_view_data`, so the
    learner's code meets the strides a check chose."""
    t = type(obj)
    if t.__name__ in ("Tensor", "Parameter") and (t.__module__ or "").startswith("torch"):
        if obj.device.type == "cpu" and obj.is_contiguous() and not obj.is_sparse and (
                obj.grad_fn is None):
            return rebuild_tensor, (tensor_data(obj),)
    elif t.__name__ == "ndarray" and t.__module__ == "numpy" and obj.ndim and not (
            obj.flags.c_contiguous or obj.flags.f_contiguous):
        view = array_view_data(obj)
        if view is not None:
            return rebuild_array_view, view
    return NotImplemented


def array_view_data(a: Any) -> tuple | None:
    """``(span, dtype, shape, strides, offset)`` of a strided NumPy view: ``span`` is a
    copy of the bytes of its buffer from the lowest to the highest byte it reaches, and
    ``offset`` where its first element sits in them. None when the buffer is not a
    contiguous NumPy array (then the view is sent as an ordinary copy)."""
    import numpy as np

    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.base is not None or not (root.flags.c_contiguous or root.flags.f_contiguous) or (
            a.dtype.hasobject or a.size == 0):
        return None
    bounds = getattr(np, "byte_bounds", None) or np.lib.array_utils.byte_bounds
    lo, hi = bounds(a)
    start = root.__array_interface__["data"][0]
    raw = root.reshape(-1, order="A").view(np.uint8)
    span = raw[lo - start:hi - start].copy()
    return (span, a.dtype, tuple(a.shape), tuple(a.strides),
            a.__array_interface__["data"][0] - lo)


def rebuild_array_view(span: Any, dtype: Any, shape: tuple, strides: tuple, offset: int) -> Any:
    """Unpickling hook for :func:`array_view_data`: the same view, over ``span``."""
    import numpy as np

    return np.ndarray(shape, dtype, buffer=span, offset=offset, strides=strides)


def raised(exc: BaseException, root: Any = None, not_started: bool = False) -> Raised:
    """``exc`` as text, with the learner's own frames (those under ``root``) when any."""
    cause = exc.__cause__
    if cause is not None and (type(cause).__name__ == "OutOfBounds" or (
            type(exc).__name__ == "InterpreterError")):
        # Triton's interpreter wraps what the kernel raised: report that, with the kernel's
        # own frames (its traceback runs through the kernel body, line by line)
        outer = last_frames(exc.__traceback__)
        inner = last_frames(cause.__traceback__)
        exc = cause
        frames = traceback.StackSummary.from_list(list(outer) + list(inner))
        return _raised(exc, frames, root, not_started)

    return _raised(exc, last_frames(exc.__traceback__), root, not_started)


def _raised(exc: BaseException, frames: Any, root: Any, not_started: bool) -> Raised:
    frames = [f for f in frames if not str(f.filename).startswith("<frozen importlib")]
    if root is not None:
        mine = [f for f in frames if str(f.filename).startswith(str(root))]
        if mine:
            frames = mine
    frames = traceback.StackSummary.from_list(frames)
    try:
        message = str(exc)
    except Exception:
        message = "<an exception whose message could not be shown>"
    tb = "".join(traceback.format_list(frames[-6:])).rstrip()
    if isinstance(exc, SyntaxError):  # the line and a caret say more than any frame
        tb = "".join(traceback.format_exception_only(type(exc), exc)[:-1]).rstrip()
    return Raised(type(exc).__name__, type(exc).__module__ or "", cut(message), cut(tb),
                  not_started)


def last_frames(tb: Any, keep: int = 40, walk: int = 100_000) -> traceback.StackSummary:
    """The innermost ``keep`` frames of ``tb``, never walking more than ``walk`` links
    (a learner who raised the recursion limit can leave millions)."""
    from collections import deque

    last: deque = deque(maxlen=keep)
    steps = 0
    while tb is not None and steps < walk:
        last.append((tb.tb_frame, tb.tb_lineno))
        tb, steps = tb.tb_next, steps + 1
    if tb is not None:  # too deep: jump to the innermost frames
        while tb is not None:
            last.append((tb.tb_frame, tb.tb_lineno))
            tb = tb.tb_next
    return traceback.StackSummary.extract(iter(last), limit=keep, lookup_lines=True)


def unwritten(exc: BaseException | None) -> bool:
    """A ``NotImplementedError``, or a Triton kernel whose body still raises it.

    The interpreter wraps the raise in its own error; the compiler rejects the
    ``raise`` statement itself.  Either way the learner has not started."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, NotImplementedError):
            return True
        text = str(exc)
        if "NotImplementedError" in text or "unsupported AST node type: Raise" in text:
            return (type(exc).__module__ or "").startswith("triton")
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def cut(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… ({len(text) - limit} characters cut) …\n{text[-half:]}"


# ---------------------------------------------------------------------------
# Parent side: plain data → values, refusing everything else
# ---------------------------------------------------------------------------

_ALLOWED = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "bytearray"), ("builtins", "Ellipsis"),
    ("copyreg", "_reconstructor"), ("builtins", "object"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_OWN = {"Handle", "MethodRef", "TensorData", "Raised", "Notice", "TorchDtype", "TorchDevice"}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and this module's records; refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name in _OWN:
            return globals()[name]
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == "numpy.dtypes" and name.endswith("DType"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused {module}.{name} from the worker")


def loads_safe(data: bytes) -> Any:
    return SafeUnpickler(io.BytesIO(data)).load()


# ---------------------------------------------------------------------------
# Inputs before and after a call (used by the worker and by the judge)
# ---------------------------------------------------------------------------

def is_tensor(x: Any) -> bool:
    return (type(x).__module__ or "").startswith("torch") and hasattr(x, "detach")


def snapshot(obj: Any) -> Any:
    """Copies of every array/tensor inside ``obj`` (tuples, lists, dicts), for ``changed``."""
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.copy()
    if is_tensor(obj):
        return obj.detach().clone()
    if isinstance(obj, (tuple, list)):
        return type(obj)(snapshot(o) for o in obj) if isinstance(obj, tuple) else [snapshot(o) for o in obj]
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    return None


def changed(before: Any, after: Any) -> bool:
    """Whether any array inside ``after`` differs from its ``snapshot`` ``before``."""
    import numpy as np

    if isinstance(after, np.ndarray) and isinstance(before, np.ndarray):
        return not (before.shape == after.shape and np.array_equal(before, after, equal_nan=True))
    if is_tensor(after) and before is not None:
        import torch
        a = after.detach()
        return not (before.shape == a.shape and bool(torch.equal(before.isnan(), a.isnan()))
                    and bool(torch.equal(before.nan_to_num(0.0), a.nan_to_num(0.0))))
    if isinstance(after, (tuple, list)) and isinstance(before, (tuple, list)):
        return any(changed(b, a) for b, a in zip(before, after))
    if isinstance(after, dict) and isinstance(before, dict):
        return any(changed(before.get(k), v) for k, v in after.items())
    return False


def mutated(before: Any, args: tuple, kwargs: dict) -> Any:
    """The position (int) or keyword (str) of the first input a call changed, or None;
    ``before`` is ``snapshot((args, kwargs))`` taken before the call."""
    for i, (b, a) in enumerate(zip(before[0], args)):
        if changed(b, a):
            return i
    for key, value in kwargs.items():
        if changed(before[1].get(key), value):
            return key
    return None


# ---------------------------------------------------------------------------
# Frames on a stream socket: an 8-byte length, then the payload
# ---------------------------------------------------------------------------

HEADER = struct.Struct("!Q")


def send_frame(sock: Any, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_exact(sock: Any, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: Any) -> bytes | None:
    head = recv_exact(sock, HEADER.size)
    if head is None:
        return None
    return recv_exact(sock, HEADER.unpack(head)[0])
