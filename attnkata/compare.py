"""Comparing outputs and describing inputs, for numpy arrays, torch tensors and scalars.

``compare(got, want)`` returns ``None`` when they agree within the dtype's tolerance,
else a :class:`Mismatch` that says what was expected and what came back: the type,
the shape, the dtype, NaN/inf, or the largest error and where it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# shared with the worker, which must not import this module
from .wire import changed, is_tensor, snapshot  # noqa: F401

# (rtol, atol) per dtype name: fp32 reference, low precision within a few ulps of it.
TOLERANCES = {
    "float64": (1e-6, 1e-9),
    "float32": (1e-4, 1e-5),
    "float16": (1e-2, 2e-3),
    "bfloat16": (3e-2, 2e-2),
}


@dataclass(frozen=True)
class Mismatch:
    summary: str
    details: tuple[str, ...] = ()


def _as_numpy(x: Any) -> np.ndarray:
    if is_tensor(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def shape_str(x: Any) -> str:
    return "[" + ", ".join(str(int(s)) for s in x.shape) + "]"


def _kind(x: Any) -> str:
    from .remote import RemoteObject

    if isinstance(x, RemoteObject):
        return f"an object of your class {x._type()}"
    if is_tensor(x):
        return "torch tensor"
    if isinstance(x, np.ndarray):
        return "numpy array"
    return type(x).__name__


def compare(got: Any, want: Any, tol: tuple[float, float] | None = None, path: str = "") -> Mismatch | None:
    label = f"{path}: " if path else ""
    if isinstance(want, (tuple, list)) and not isinstance(want, np.ndarray):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            n = len(got) if isinstance(got, (tuple, list)) else "a " + _kind(got)
            return Mismatch(f"{label}expected a tuple of {len(want)} values, got {n}")
        for i, (g, w) in enumerate(zip(got, want)):
            problem = compare(g, w, tol, f"{path}[{i}]" if path else f"output [{i}]")
            if problem is not None:
                return problem
        return None
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return Mismatch(f"{label}expected a dict with keys {sorted(want)}, got {got!r:.80}")
        for key in want:
            problem = compare(got[key], want[key], tol, f"{path}[{key!r}]")
            if problem is not None:
                return problem
        return None
    if isinstance(want, np.ndarray) or is_tensor(want):
        return _compare_arrays(got, want, tol, label)
    if isinstance(want, (bool, np.bool_)):
        return None if got is want or (isinstance(got, (bool, np.bool_)) and bool(got) == bool(want)) \
            else Mismatch(f"{label}expected {bool(want)}, got {got!r:.80}")
    if isinstance(want, (int, np.integer)):
        if isinstance(got, (int, np.integer)) and not isinstance(got, bool) and int(got) == int(want):
            return None
        return Mismatch(f"{label}expected the integer {int(want)}, got {got!r:.80}")
    if isinstance(want, (float, np.floating)):
        try:
            g = float(got)
        except (TypeError, ValueError):
            return Mismatch(f"{label}expected a number ({float(want):.6g}), got {got!r:.80}")
        rtol, atol = tol or TOLERANCES["float64"]
        if math.isnan(g) and not math.isnan(float(want)):
            return Mismatch(f"{label}got NaN, expected {float(want):.6g}")
        if g == want or math.isclose(g, float(want), rel_tol=rtol, abs_tol=atol):
            return None
        return Mismatch(f"{label}expected {float(want):.6g}, got {g:.6g}")
    if got == want:
        return None
    return Mismatch(f"{label}expected {want!r:.80}, got {got!r:.80}")


def _compare_arrays(got: Any, want: Any, tol: tuple[float, float] | None, label: str) -> Mismatch | None:
    if _kind(got) != _kind(want):
        return Mismatch(f"{label}expected a {_kind(want)} {shape_str(want)} {dtype_name(want)}, "
                        f"got {_kind(got)} {_short(got)}")
    if tuple(got.shape) != tuple(want.shape):
        return Mismatch(f"{label}shape: expected {shape_str(want)}, got {shape_str(got)}")
    if dtype_name(got) != dtype_name(want):
        advice = {"bool": "return a boolean array (comparisons give one: `j <= i`)"}.get(
            dtype_name(want), "keep the input's float dtype (cast back, or avoid float64 constants)"
            if "float" in dtype_name(want) else f"return {dtype_name(want)} values")
        return Mismatch(f"{label}dtype: expected {dtype_name(want)}, got {dtype_name(got)}", (advice,))
    g, w = _as_numpy(got), _as_numpy(want)
    if w.dtype == bool or not np.issubdtype(w.dtype, np.floating):
        wrong = np.argwhere(g != w)
        if len(wrong) == 0:
            return None
        at = tuple(int(i) for i in wrong[0])
        return Mismatch(f"{label}{len(wrong)} of {w.size} entries differ",
                        (f"first at {list(at)}: expected {w[at]!r}, got {g[at]!r}",))
    bad = ~np.isfinite(g) & np.isfinite(w)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(g[at]) else ("-inf" if g[at] < 0 else "inf")
        advice = {  # what produces each non-finite value
            "NaN": "look for 0/0 (an empty or fully masked row), (-inf) - (-inf), or "
                   "inf · 0",
            "inf": "look for exp() of a large number (subtract the row's max first) or a "
                   "division by 0",
            "-inf": "look for a mask or -inf fill reaching entries that should be finite "
                    "(the wrong side of the diagonal, a fully masked row), or log(0)",
        }[kind]
        return Mismatch(f"{label}got {kind} in {int(bad.sum())} of {w.size} entries where the "
                        f"answer is finite", (f"first at {list(at)}: expected {w[at]:.6g}, "
                                              f"got {kind}", advice))
    rtol, atol = tol or TOLERANCES.get(dtype_name(want), TOLERANCES["float32"])
    with np.errstate(invalid="ignore"):
        close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return None
    # subtract only where the entries differ: -inf vs -inf is close, and inf - inf would warn
    err = np.zeros(w.shape, dtype=np.float64)
    np.subtract(g, w, out=err, where=~close, dtype=np.float64)
    err = np.abs(err)
    err = np.nan_to_num(err, nan=np.inf)
    at = np.unravel_index(int(np.argmax(err)), err.shape)
    at = tuple(int(i) for i in at)
    return Mismatch(
        f"{label}values differ in {int((~close).sum())} of {w.size} entries",
        (f"largest error at {list(at)}: expected {w[at]:.6g}, got {g[at]:.6g}",
         f"tolerance: rtol={rtol:g}, atol={atol:g}"))


def _short(x: Any) -> str:
    from .remote import RemoteObject

    if isinstance(x, RemoteObject):
        return "(not an array, a number or a tuple of them)"
    if isinstance(x, np.ndarray) or is_tensor(x):
        return f"{shape_str(x)} {dtype_name(x)}"
    return repr(x)[:60]


def describe_value(x: Any) -> str:
    if isinstance(x, np.ndarray) or is_tensor(x):
        size = x.size if isinstance(x, np.ndarray) else x.numel()
        if size <= 6 and x.ndim <= 1:
            return np.array2string(_as_numpy(x), precision=4, separator=", ")
        return f"{shape_str(x)} {dtype_name(x)}"
    if isinstance(x, (list, tuple)) and len(x) > 6:
        return f"<{type(x).__name__} of {len(x)}>"
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(name: str, args: tuple, kwargs: dict) -> str:
    """``attention(q=[2, 3, 8] float32, ...)``-style description of a call."""
    parts = [describe_value(a) for a in args]
    parts += [f"{k}={describe_value(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"
