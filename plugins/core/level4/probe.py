"""Level 4 instruments: watching which values a kata reads, which score tiles it
computes, and how much memory it holds at its peak — sizes, never time.

- :class:`Watched` — an ndarray subclass handed to the learner in place of ``q``, ``k``
  (or ``x``).  Slices and views keep a tag (``"q"``, ``"k"``, ``"x"``); every matmul-like
  call (``@``, ``np.matmul``, ``np.dot``, ``np.einsum``, ``np.tensordot``, ``np.inner``)
  whose two operands derive from ``q`` alone and ``k`` alone is one *score tile*, and its
  shape is logged.  What the learner must do to be counted: compute each score tile with
  ``@`` (or ``np.matmul``/``einsum``) on slices of ``q`` and ``k``, and not strip the
  arrays with ``np.asarray`` / ``np.array`` (``np.asanyarray`` is fine).
- :func:`watched_call` — the worker-side probe that hands the learner watched arrays and
  sends back what their Log saw; :func:`call_watched` is the check's side of it.
- :func:`peak_bytes` — tracemalloc's peak during one call, beyond what existed before
  (for in-process measurements of reference code; checks measure learner code with
  ``attnkata.probes.peak_call``, in the worker).
- :func:`plain_attention` — softmax(QKᵀ/√d)·V with the end-aligned causal mask, written
  independently of any kata's reference, and returning ``(o, lse)``.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

MATMUL_FUNCS = ("matmul", "dot", "einsum", "tensordot", "inner", "vdot")


@dataclass
class Log:
    """What a :class:`Watched` family saw: score tiles (shapes) and the widest read."""

    propagate: bool = True          # tags flow through arithmetic (tiles) or only views (reads)
    active: bool = True             # off while the harness itself inspects the arrays
    tiles: list = field(default_factory=list)
    widest_read: int = 0

    @property
    def count(self) -> int:
        return len(self.tiles)

    def largest_tile(self) -> tuple[int, int]:
        return max(self.tiles, key=lambda s: s[0] * s[1]) if self.tiles else (0, 0)


class Watched(np.ndarray):
    """An ndarray that remembers it came from ``q``, ``k`` or ``x`` and reports to a Log."""

    _tags: frozenset = frozenset()
    _log: Log | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self._tags = getattr(obj, "_tags", frozenset())
        self._log = getattr(obj, "_log", None)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        log, tags = _family(inputs)
        if log is not None and log.active:
            for x in inputs:
                if isinstance(x, Watched) and x._tags:
                    log.widest_read = max(log.widest_read, int(x.size))
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*(_plain(x) for x in inputs), **kwargs)
        if ufunc is np.matmul and method == "__call__" and log is not None and log.active:
            _note_tile(log, inputs[:2], result)
        return _rewrap(result, tags, log)

    def __array_function__(self, func: Callable, types: Any, args: tuple, kwargs: dict) -> Any:
        log, tags = _family(args)
        if log is not None and not log.propagate:
            # reads: let the implementation run on the watched arrays, so that the
            # ufuncs inside (maximum.reduce, exp...) see them and log their widths.
            return super().__array_function__(func, types, args, kwargs)
        result = func(*_plain_tree(args), **_plain_tree(kwargs))
        if log is not None and log.active and func.__name__ in MATMUL_FUNCS:
            operands = [a for a in args if isinstance(a, np.ndarray)]
            if len(operands) == 2:
                _note_tile(log, operands, result)
        return _rewrap(result, tags, log)


def watch(array: np.ndarray, tag: str, log: Log) -> Watched:
    out = np.array(array, copy=True).view(Watched)
    out._tags, out._log = frozenset({tag}), log
    return out


def _family(items: Any) -> tuple[Log | None, frozenset]:
    log, tags = None, frozenset()
    for x in _flatten(items):
        if isinstance(x, Watched):
            log = log or x._log
            tags |= x._tags
    return log, tags


def _flatten(items: Any):
    for x in items:
        if isinstance(x, (list, tuple)):
            yield from _flatten(x)
        else:
            yield x


def _plain(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, Watched) else x


def _plain_tree(x: Any) -> Any:
    if isinstance(x, Watched):
        return x.view(np.ndarray)
    if isinstance(x, tuple):
        return tuple(_plain_tree(i) for i in x)
    if isinstance(x, list):
        return [_plain_tree(i) for i in x]
    if isinstance(x, dict):
        return {key: _plain_tree(val) for key, val in x.items()}
    return x


def _rewrap(result: Any, tags: frozenset, log: Log | None) -> Any:
    if isinstance(result, tuple):
        return tuple(_rewrap(r, tags, log) for r in result)
    if log is None or not log.propagate or not isinstance(result, np.ndarray) or result.ndim == 0:
        return result
    out = result.view(Watched)
    out._tags, out._log = tags, log
    return out


def _note_tile(log: Log, operands: Any, result: Any) -> None:
    a, b = (getattr(x, "_tags", frozenset()) for x in operands)
    if {a, b} == {frozenset({"q"}), frozenset({"k"})} and np.ndim(result) >= 2:
        shape = np.shape(result)
        log.tiles.append((int(shape[-2]), int(shape[-1])))


def unwatch(out: Any) -> Any:
    """The learner's output with every Watched array turned back into a plain one."""
    if isinstance(out, (tuple, list)):
        return type(out)(unwatch(o) for o in out) if isinstance(out, tuple) else [unwatch(o) for o in out]
    return np.array(out.view(np.ndarray)) if isinstance(out, Watched) else out


# ---------------------------------------------------------------------------
# Tiles, attention and tolerances
# ---------------------------------------------------------------------------

def live_tiles(n_q: int, n_k: int, block_q: int, block_k: int, causal: bool) -> int:
    """Score tiles with at least one allowed (query, key) pair: query i sees j ≤ i + n_k − n_q."""
    offset = n_k - n_q
    count = 0
    for q0 in range(0, n_q, block_q):
        last_query = min(q0 + block_q, n_q) - 1
        for k0 in range(0, n_k, block_k):
            count += (not causal) or k0 <= last_query + offset
    return count


def causal_allowed(n_q: int, n_k: int) -> np.ndarray:
    return np.arange(n_k)[None, :] <= np.arange(n_q)[:, None] + (n_k - n_q)


def plain_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False):
    """``(o, lse)`` of softmax(q·kᵀ/√d)·v in float64, then cast to q's dtype."""
    d = q.shape[-1]
    s = (q.astype(np.float64) @ np.swapaxes(k.astype(np.float64), -1, -2)) / math.sqrt(d)
    if causal:
        s = np.where(causal_allowed(q.shape[-2], k.shape[-2]), s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    o = (e / np.where(total == 0, 1, total)) @ v.astype(np.float64)
    with np.errstate(divide="ignore"):
        lse = (m + np.log(total))[..., 0]
    return o.astype(q.dtype), lse.astype(q.dtype)


def score_max(q: np.ndarray, k: np.ndarray) -> float:
    """The largest |q·k|/√d over all pairs (float64)."""
    if q.size == 0 or k.size == 0:
        return 0.0
    s = q.astype(np.float64) @ np.swapaxes(k.astype(np.float64), -1, -2)
    return float(np.abs(s).max()) / math.sqrt(q.shape[-1])


def attention_tol(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[float, float] | None:
    """float64: the default.  float32: a score of size |s| carries a rounding error near
    |s|·ε, which moves the softmax weights, and so o, by about that much relatively."""
    if q.dtype != np.float32:
        return None
    v_max = max(1.0, float(np.abs(v).max()) if v.size else 1.0)
    eps = float(np.finfo(np.float32).eps)
    return 1e-4, max(1e-5, 16 * eps * (1.0 + score_max(q, k)) * v_max)


# ---------------------------------------------------------------------------
# Peak memory
# ---------------------------------------------------------------------------

def nbytes(out: Any) -> int:
    if isinstance(out, (tuple, list)):
        return sum(nbytes(o) for o in out)
    return int(out.nbytes) if isinstance(out, np.ndarray) else 0


def peak_bytes(thunk: Callable[[], Any]) -> tuple[int, Any]:
    """``(peak, result)``: tracemalloc's peak while ``thunk`` ran, beyond what was traced before."""
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = thunk()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return max(0, peak - before), result


def loglog_slope(ns: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(N): 1 is linear growth, 2 quadratic."""
    x = np.log(np.asarray(ns, dtype=np.float64))
    y = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1.0))
    return float(np.polyfit(x, y, 1)[0])


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


# ---------------------------------------------------------------------------
# Calling learner code with watched inputs
# ---------------------------------------------------------------------------

def watched_call(module: Any, name: str, args: tuple, kwargs: dict, tags: dict,
                 propagate: bool = True) -> tuple[Any, dict]:
    """Probe (runs next to the learner's code, in its worker): ``module.name`` called
    with the positional arguments at the indices of ``tags`` watched under those tags.

    Returns ``(output with plain arrays, {"tiles": [(rows, cols)...], "widest_read": n})``.
    The watched arrays and their Log must live where the learner's code runs: sent
    across, an ndarray subclass arrives as a copy whose Log the judge never sees."""
    log = Log(propagate=propagate, active=False)
    args = tuple(watch(a, tags[i], log) if i in tags else a for i, a in enumerate(args))
    fn = getattr(module, name)
    log.active = True
    try:
        out = fn(*args, **kwargs)
    finally:
        log.active = False
    return unwatch(out), {"tiles": [tuple(t) for t in log.tiles], "widest_read": log.widest_read}


def call_watched(ctx: Any, name: str, args: tuple, kwargs: dict, tags: dict, what: str,
                 propagate: bool = True) -> tuple[Any, Log]:
    """Guarded call of the target's ``name`` with the arguments at the indices of ``tags``
    watched (see :func:`watched_call`): ``(output, Log of what it saw)``."""
    ctx.entry(name)
    out, seen = ctx.probe(__name__, "watched_call", name, args, kwargs, tags, propagate, what=what)
    log = Log(propagate=propagate, active=False, widest_read=int(seen["widest_read"]))
    log.tiles = [(int(r), int(c)) for r, c in seen["tiles"]]
    return out, log


def as_arrays(out: Any) -> Any:
    """A tuple of outputs with numpy scalars turned into 0-d arrays (same dtype)."""
    if isinstance(out, (tuple, list)):
        return tuple(np.asarray(o) if isinstance(o, (np.ndarray, np.generic)) else o for o in out)
    return out
