"""The same values in other memory layouts: transposed, sliced and head-interleaved views.

Learners' code usually meets arrays that were just allocated, C-contiguous. Real callers
pass views: ``x.view(B, N, H, d).transpose(1, 2)`` straight out of a projection, every
other row of a buffer, a column slice of a wider one. NumPy and torch code built from
whole-array operations reads any of them correctly; code that walks raw memory (a Triton
kernel's pointer arithmetic, ``np.frombuffer``, ``torch.as_strided``, a ``.view()`` that
needs contiguity) must honour ``.stride()`` or call ``.contiguous()`` first.

:func:`layout_check` builds a check that sends such views of a kata's inputs and compares
the learner's answer with the reference's on the *contiguous* originals (so a reference
that ignored strides could not make itself right). The padding around a sliced view is
NaN, so a kernel that steps over it shows up as NaN or as values from the wrong rows.

:data:`COVERAGE` records which checks exercise non-contiguous inputs and which exercise
large positions, so ``tests/test_coverage_inputs.py`` can hold every kata to it.

torch is imported only when a tensor is seen: NumPy-only katas never load it.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import numpy as np

from .model import Check, check

#: kind → the checks of that kind ("noncontiguous", "large_positions")
COVERAGE: dict[str, set[Check]] = {"noncontiguous": set(), "large_positions": set()}


def covers(kind: str) -> Callable[[Check], Check]:
    """Mark a hand-written check as exercising ``kind`` (see :data:`COVERAGE`); put it
    above ``@check(...)``."""

    def mark(c: Check) -> Check:
        COVERAGE[kind].add(c)
        return c

    return mark


def _is_tensor(x: Any) -> bool:
    return (type(x).__module__ or "").startswith("torch") and hasattr(x, "stride")


def _pad_value(x: Any) -> Any:
    """What fills the memory a view skips: NaN for floats, a huge number for integers."""
    if _is_tensor(x):
        return float("nan") if x.dtype.is_floating_point else (True if str(x.dtype) == "torch.bool"
                                                               else 10**6)
    return np.nan if x.dtype.kind in "fc" else (True if x.dtype.kind == "b" else 10**6)


def transposed(x: Any) -> Any:
    """``x``'s values, stored with its last two axes swapped (strides like ``xᵀ.T``)."""
    if _is_tensor(x):
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)), -1, -2)


def fortran(x: Any) -> Any:
    """``x``'s values in Fortran (column-major) order: every stride reversed."""
    if _is_tensor(x):
        return x.permute(*reversed(range(x.ndim))).contiguous().permute(*reversed(range(x.ndim)))
    return np.asfortranarray(x)


def sliced(x: Any) -> Any:
    """``x``'s values as every other row of a taller buffer and a column slice of a wider
    one (both strides differ from ``x``'s, and the view does not start at its buffer's
    first element). Skipped memory holds NaN (floats) or 10⁶ (integers)."""
    shape = tuple(x.shape)
    if len(shape) == 0:
        return x
    if len(shape) == 1:
        big = (2 * shape[0] + 1,)
        index: tuple = (slice(1, None, 2),)
    else:
        big = (*shape[:-2], 2 * shape[-2], shape[-1] + 3)
        index = (..., slice(None, None, 2), slice(1, 1 + shape[-1]))
    if _is_tensor(x):
        import torch

        buf = torch.full(big, _pad_value(x), dtype=x.dtype, device=x.device)
    else:
        buf = np.full(big, _pad_value(x), dtype=x.dtype)
    buf[index] = x
    return buf[index]


def heads_interleaved(x: Any) -> Any:
    """A ``[B, H, N, d]`` tensor stored as ``[B, N, H, d]`` (what ``proj(x).view(B, N, H,
    d).transpose(1, 2)`` gives): same values, heads interleaved along the sequence."""
    if x.ndim < 4:
        return x
    if _is_tensor(x):
        return x.transpose(-3, -2).contiguous().transpose(-3, -2)
    return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -3, -2)), -3, -2)


#: the layouts a layout check tries, by name
LAYOUTS: dict[str, Callable[[Any], Any]] = {
    "transposed": transposed,
    "sliced": sliced,
    "heads_interleaved": heads_interleaved,
    "fortran": fortran,
}


def strides_of(x: Any) -> tuple:
    """Element strides of an array or tensor."""
    if _is_tensor(x):
        return tuple(int(s) for s in x.stride())
    return tuple(int(s) // x.itemsize for s in x.strides)


def contiguous_strides(shape: tuple) -> tuple:
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(out))


def as_if_contiguous(x: Any) -> Any:
    """Read ``x``'s memory as though it were C-contiguous from its first element: what a
    kernel computes when it ignores the strides it is given (row ``r`` at ``r * d``).

    Stays inside ``x``'s buffer for the layouts above (a transposed view has as many
    elements as its buffer; a sliced view's buffer is larger)."""
    if _is_tensor(x):
        import torch

        return torch.as_strided(x, tuple(x.shape), contiguous_strides(tuple(x.shape)),
                                x.storage_offset())
    shape = tuple(x.shape)
    return np.lib.stride_tricks.as_strided(
        x, shape, tuple(s * x.itemsize for s in contiguous_strides(shape))).copy()


def row_stride_ignored(x: Any) -> Any:
    """What a kernel reads when it honours the strides of the leading axes but assumes
    the last two are packed: row ``r``, column ``c`` at ``r * x.shape[-1] + c`` (the row
    stride taken as the row length, the column stride as 1). A torch tensor; it stays
    inside the storage for every layout above (``torch.as_strided`` checks)."""
    import torch

    if x.ndim < 2:
        return torch.as_strided(x, tuple(x.shape), (1,) * x.ndim, x.storage_offset())
    strides = (*x.stride()[:-2], x.shape[-1], 1)
    return torch.as_strided(x, tuple(x.shape), strides, x.storage_offset())


def _eligible(x: Any, layout: str) -> bool:
    if not (_is_tensor(x) or isinstance(x, np.ndarray)):
        return False
    if _is_tensor(x):
        floating = x.dtype.is_floating_point
    else:
        floating = x.dtype.kind in "fc"
    if not floating or x.ndim == 0:
        return False
    if layout in ("transposed", "fortran"):
        return x.ndim >= 2
    if layout == "heads_interleaved":
        return x.ndim >= 4
    return True


def relayout(value: Any, layout: str, which: Iterable[Any] | None = None, key: Any = None) -> Any:
    """``value`` with its floating arrays (those at positions/keys in ``which``, or all)
    replaced by ``LAYOUTS[layout]`` views; tuples and lists are walked."""
    if which is not None and key is not None and key not in which:
        return value
    if isinstance(value, (tuple, list)):   # shards, pairs: every element, same layout
        return type(value)(relayout(v, layout) for v in value)
    if _eligible(value, layout):
        return LAYOUTS[layout](value)
    return value


def _leaves(values: Iterable[Any]) -> list:
    out: list = []
    for v in values:
        out.extend(_leaves(v) if isinstance(v, (tuple, list)) else [v])
    return out


def layout_check(entry: str, inputs: Callable[[Any], Iterable[tuple[tuple, dict]]], doc: str, *,
                 id: str, layouts: tuple[str, ...] = ("transposed", "sliced"),
                 which: tuple | None = None, tol: Any = None,
                 decorator: Callable[..., Any] = check, against: str = "reference") -> Check:
    """A check: ``entry`` on views of each case of ``inputs(ctx)`` — ``(args, kwargs)``
    pairs — must equal the reference's answer on the contiguous originals
    (``against="self"``: the learner's own answer on them, for katas with more than
    one right answer, such as a sampler's draws).

    ``which`` names the argument positions (ints) and keywords (strs) to re-lay out
    (default: every floating array); ``tol`` is ``(rtol, atol)`` or a function of the
    case's ``(args, kwargs)`` giving one; ``decorator`` is ``check`` or a kata family's
    own (``kernel_check``). Misconceptions are rerun on the same views, so one that
    reads memory as if contiguous (:func:`as_if_contiguous`) is named."""
    from .compare import compare, describe
    from .harness import KataFailure

    def contiguous_right(ctx: Any, args: tuple, kwargs: dict, want: Any, case_tol: Any) -> bool:
        """Whether the learner's answer on the contiguous originals is right (a layout
        note helps only then)."""
        if against == "self":
            return True   # ``want`` is the learner's own answer on them
        try:
            got = ctx.call(entry, *copy.deepcopy(args), **copy.deepcopy(kwargs))
        except KataFailure:
            return False
        return compare(got, want, tol=case_tol) is None

    def run(ctx: Any) -> None:
        for args, kwargs in inputs(ctx):
            case_tol = tol(args, kwargs) if callable(tol) else tol
            want = (ctx.call(entry, *copy.deepcopy(args), **copy.deepcopy(kwargs))
                    if against == "self" else ctx.reference(entry, *args, **kwargs))
            for layout in layouts:
                a = tuple(relayout(v, layout, which, i) for i, v in enumerate(args))
                kw = {k: relayout(v, layout, which, k) for k, v in kwargs.items()}
                pairs = zip(_leaves((*args, *kwargs.values())), _leaves((*a, *kw.values())))
                views = [f"{describe(entry, (v,), {})[len(entry) + 1:-1]} strides "
                         f"{strides_of(v)}" for old, v in pairs if v is not old][:4]
                if not views:
                    continue
                what = describe(entry, a, kw) + f" with {layout} views"
                try:
                    got = ctx.call(entry, *a, **kw)

                    def rerun(ns: Any, a: tuple = a, kw: dict = kw) -> Any:
                        a2, kw2 = copy.deepcopy((a, kw))
                        return getattr(ns, entry)(*a2, **kw2)

                    ctx.match(got, want, what, rerun=rerun, tol=case_tol, entries=(entry,))
                except KataFailure as exc:
                    if contiguous_right(ctx, args, kwargs, want, case_tol):
                        note = (f"The inputs held the usual values in another memory layout "
                                f"({layout}: {'; '.join(views)}), and the same call on the "
                                f"contiguous originals is right. Address memory through the "
                                f"strides (x.stride() in torch, x.strides in NumPy), or make a "
                                f"contiguous copy first (.contiguous(), np.ascontiguousarray).")
                    elif exc.misconception is not None:
                        raise   # named already, and not a layout mistake: nothing to add
                    else:
                        note = ("The same call on ordinary contiguous inputs is wrong too, so "
                                "this mistake is not about memory layout: fix it there first.")
                    raise type(exc)(f"{exc.message}\n{note}", exc.misconception,
                                    tuple(exc.matched[1:]), exc.diagnosis) from None

    run.__name__ = id
    made = decorator(doc)(run)
    COVERAGE["noncontiguous"].add(made)
    return made
