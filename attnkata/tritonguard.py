"""Bounds checks for Triton's interpreter, installed in the worker before learner code.

On the CPU, Triton's interpreter turns ``tl.load``/``tl.store`` into raw reads and
writes at the addresses the kernel computed.  A store past the end of a tensor
corrupts the heap: the process aborts later, somewhere else, or not at all.  Here
every masked-on lane of a load or store is checked against the memory of the
tensors passed to the launch, *before* the access, and an access outside them is
raised as :class:`OutOfBounds` naming the kernel, its line, the lane and the
tensor — the mistake a learner can fix (usually a missing ``mask=``).

While :func:`start_recording` is on (``attnkata show``), every load and store is also
written down as plain data: the launch's grid and tensors, and per access the program
id, the kernel line, which elements of which tensor the active lanes touched, how many
lanes the mask switched off, and where the out-of-bounds lanes pointed.  Out-of-bounds
lanes are then recorded and skipped (switched off) instead of raised, so the picture
shows them and the process's memory stays intact.

This module is imported in the worker: it must not import the judging modules.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_STATE = threading.local()


class OutOfBounds(IndexError):
    """A Triton load or store outside every tensor the kernel was given."""


def install() -> bool:
    """Wrap the interpreter's launch and memory ops; False when Triton is not interpreting."""
    try:
        from triton.runtime import interpreter as itp
    except Exception:
        return False
    if getattr(itp, "_attnkata_guarded", False):
        return True
    builder = type(itp.interpreter_builder)
    executor = itp.GridExecutor
    launch, load, store = executor.__call__, builder.create_masked_load, builder.create_masked_store

    def guarded_launch(self: Any, *args_dev: Any, **kwargs: Any) -> Any:
        original = self._init_args_hst

        def init(args: Any, kw: Any) -> Any:
            args_hst, kwargs_hst = original(args, kw)
            _STATE.spans = _spans(self, args_hst, kwargs_hst)
            _STATE.fn = self.fn
            log = getattr(_STATE, "log", None)
            if log is not None:
                log["launches"].append({
                    "kernel": getattr(self.fn, "__name__", "kernel"), "grid": None,
                    "tensors": _tensors(self, args_hst, kwargs_hst), "accesses": []})
            return args_hst, kwargs_hst

        self._init_args_hst = init
        try:
            return launch(self, *args_dev, **kwargs)
        finally:
            _STATE.spans = None
            del self._init_args_hst
            log = getattr(_STATE, "log", None)
            if log is not None and log["launches"]:
                grid = getattr(itp.interpreter_builder, "grid_dim", None)
                log["launches"][-1]["grid"] = tuple(int(g) for g in grid) if grid else None

    def guarded_load(self: Any, ptrs: Any, mask: Any, other: Any, *rest: Any) -> Any:
        if getattr(_STATE, "log", None) is not None:
            mask = _record(self, ptrs, mask, "load", itp)
        else:
            _check(ptrs, mask, "load", itp)
        return load(self, ptrs, mask, other, *rest)

    def guarded_store(self: Any, ptrs: Any, value: Any, mask: Any, *rest: Any) -> Any:
        if getattr(_STATE, "log", None) is not None:
            mask = _record(self, ptrs, mask, "store", itp)
        else:
            _check(ptrs, mask, "store", itp)
        return store(self, ptrs, value, mask, *rest)

    executor.__call__ = guarded_launch
    builder.create_masked_load = guarded_load
    builder.create_masked_store = guarded_store
    itp._attnkata_guarded = True
    return True


def _spans(executor: Any, args: Any, kwargs: dict) -> list[tuple[int, int, str]]:
    """``(start, end, name)`` of the storage behind every tensor argument."""
    names = list(getattr(executor, "arg_names", ()))
    spans: list[tuple[int, int, str]] = []

    def add(arg: Any, name: str) -> None:
        if isinstance(arg, tuple):
            for i, a in enumerate(arg):
                add(a, f"{name}[{i}]")
        elif hasattr(arg, "untyped_storage"):
            storage = arg.untyped_storage()
            spans.append((int(storage.data_ptr()), int(storage.data_ptr()) + int(storage.nbytes()),
                          name))
        elif hasattr(arg, "base") and hasattr(arg.base, "untyped_storage"):  # a descriptor
            add(arg.base, name)

    for i, arg in enumerate(args):
        add(arg, names[i] if i < len(names) else f"argument {i + 1}")
    for key, arg in kwargs.items():
        add(arg, key)
    return spans


def _check(ptrs: Any, mask: Any, kind: str, itp: Any) -> None:
    spans = getattr(_STATE, "spans", None)
    if not spans:
        return
    import numpy as np

    size = np.dtype(itp._get_np_dtype(ptrs.get_element_ty())).itemsize
    addr = np.asarray(ptrs.data).astype(np.uint64, copy=False)
    on = np.broadcast_to(np.asarray(mask.data, dtype=bool), addr.shape)
    inside = np.zeros(addr.shape, dtype=bool)
    for lo, hi, _ in spans:
        inside |= (addr >= lo) & (addr + size <= hi)
    bad = on & ~inside
    if not bad.any():
        return
    lane = tuple(int(i) for i in np.argwhere(bad)[0])
    a = int(addr[lane])
    raise OutOfBounds(_message(kind, lane, a, size, int(bad.sum()), int(on.sum()), spans))


def _message(kind: str, lane: tuple, addr: int, size: int, n_bad: int, n_on: int,
             spans: list) -> str:
    lo, hi, name = min(spans, key=lambda s: min(abs(addr - s[0]), abs(addr - s[1])))
    if addr >= hi:
        where = f"{(addr + size - hi) // size} element(s) past the end of `{name}`"
    elif addr < lo:
        where = f"{(lo - addr + size - 1) // size} element(s) before the start of `{name}`"
    else:
        where = f"across the end of `{name}`"
    at = _kernel_line()
    lane_text = f"lane {list(lane)}" if len(lane) > 1 else f"lane {lane[0]}"
    return (f"out-of-bounds {kind}{at}: {lane_text} (and {n_bad - 1} more of {n_on} active lanes) "
            f"{'writes' if kind == 'store' else 'reads'} {where}. On a GPU this corrupts memory "
            f"or faults. Guard the {kind} with mask= (lanes past the tensor's length off)"
            + (", and give loads an other= value." if kind == "load" else "."))


def _kernel_line() -> str:
    fn = getattr(_STATE, "fn", None)
    code = getattr(fn, "__code__", None)
    frame = sys._getframe(2)
    while frame is not None:
        if code is not None and frame.f_code is code:
            return f" in {code.co_name}, line {frame.f_lineno} of {code.co_filename}"
        frame = frame.f_back
    return ""


# ---------------------------------------------------------------------------
# Recording (``attnkata show``)
# ---------------------------------------------------------------------------

def start_recording(limit: int = 400_000) -> None:
    """Write down every launch, load and store from now on (at most ``limit`` lanes)."""
    _STATE.log = {"launches": [], "lanes": 0, "limit": int(limit), "truncated": False}


def stop_recording() -> dict:
    """Stop recording; ``{"launches": [...], "truncated": bool}`` as plain data."""
    log = getattr(_STATE, "log", None) or {"launches": [], "truncated": False}
    _STATE.log = None
    return {"launches": log["launches"], "truncated": log["truncated"]}


def _tensors(executor: Any, args: Any, kwargs: dict) -> list[dict]:
    """Name, dtype, shape, strides (elements) and memory of every tensor argument."""
    names = list(getattr(executor, "arg_names", ()))
    found: list[dict] = []

    def add(arg: Any, name: str) -> None:
        if isinstance(arg, tuple):
            for i, a in enumerate(arg):
                add(a, f"{name}[{i}]")
        elif hasattr(arg, "untyped_storage") and hasattr(arg, "data_ptr"):
            storage = arg.untyped_storage()
            found.append({"name": name, "dtype": str(arg.dtype).replace("torch.", ""),
                          "shape": tuple(int(s) for s in arg.shape),
                          "stride": tuple(int(s) for s in arg.stride()),
                          "itemsize": int(arg.element_size()), "ptr": int(arg.data_ptr()),
                          "lo": int(storage.data_ptr()),
                          "hi": int(storage.data_ptr()) + int(storage.nbytes())})

    for i, arg in enumerate(args):
        add(arg, names[i] if i < len(names) else f"argument {i + 1}")
    for key, arg in kwargs.items():
        add(arg, key)
    return found


def _record(builder: Any, ptrs: Any, mask: Any, kind: str, itp: Any) -> Any:
    """Log one load or store; return the mask with out-of-bounds lanes switched off."""
    import numpy as np

    log = _STATE.log
    if not log["launches"]:
        return mask
    launch = log["launches"][-1]
    tensors = launch["tensors"]
    size = np.dtype(itp._get_np_dtype(ptrs.get_element_ty())).itemsize
    addr = np.asarray(ptrs.data).astype(np.int64, copy=False).reshape(-1)
    shape = np.asarray(ptrs.data).shape
    on = np.broadcast_to(np.asarray(mask.data, dtype=bool), shape).reshape(-1)
    owner = np.full(addr.shape, -1, dtype=np.int64)
    for i, t in enumerate(tensors):
        inside = (owner < 0) & (addr >= t["lo"]) & (addr + size <= t["hi"])
        owner[inside] = i
    bad = on & (owner < 0)
    entry: dict = {"kind": kind, "pid": tuple(int(g) for g in builder.grid_idx),
                   "line": _line(), "lanes": int(addr.size), "off": int((~on).sum()),
                   "hits": {}, "oob": []}
    if log["lanes"] + int(on.sum()) > log["limit"]:
        log["truncated"] = True
    else:
        log["lanes"] += int(on.sum())
        for i, t in enumerate(tensors):
            mine = on & (owner == i)
            if mine.any():
                entry["hits"][i] = (addr[mine] - t["ptr"]) // t["itemsize"]
        if bad.any() and tensors:
            for a in addr[bad].tolist():
                i = min(range(len(tensors)), key=lambda j: min(abs(a - tensors[j]["lo"]),
                                                               abs(a - tensors[j]["hi"])))
                entry["oob"].append((i, (a - tensors[i]["ptr"]) // tensors[i]["itemsize"]))
        launch["accesses"].append(entry)
    if not bad.any():
        return mask
    safe = np.ascontiguousarray((on & ~bad).reshape(shape))
    return itp.TensorHandle(safe, mask.dtype)


def _line() -> int | None:
    """The line of the running kernel's source (None when it cannot be found)."""
    fn = getattr(_STATE, "fn", None)
    code = getattr(fn, "__code__", None)
    frame = sys._getframe(2)
    while frame is not None:
        if code is not None and frame.f_code is code:
            return int(frame.f_lineno)
        frame = frame.f_back
    return None
