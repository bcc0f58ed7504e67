"""Shared hypothesis strategies for hidden tests: shapes, dtypes and values.

Arrays are drawn as (shape, dtype, scale, seed) and filled by numpy's generator, so
examples stay fast at realistic sizes while shapes still shrink to the smallest
failing case.  Shapes include 1 and sizes that are not multiples of common blocks.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Sequence

import numpy as np

# -- hypothesis, imported when a check first draws --------------------------------
# Every core kata module builds its strategies (and state machines) when it is imported,
# and the judge imports every kata module at startup.  Importing hypothesis costs about
# half a second or more, which a run of NumPy-only katas without generated inputs need
# not pay.  So kata modules take ``st`` (and the stateful names) from here: while
# hypothesis is not imported, a strategy built with them is a recipe (:class:`Lazy`) that
# becomes the real strategy the first time a check hands it to hypothesis (``ctx.given``,
# a ``draw``, a ``@rule``); once hypothesis is imported, ``st.X(...)`` is hypothesis'
# own.  Strategies, examples, seeds and settings are exactly hypothesis' own.


def _loaded() -> bool:
    return "hypothesis.strategies" in sys.modules


def _hst() -> Any:
    from hypothesis import strategies

    return strategies


def resolve(obj: Any) -> Any:
    """``obj`` with every :class:`Lazy` in it (in lists, tuples, dicts) made real."""
    if isinstance(obj, Lazy):
        return obj.real()
    if isinstance(obj, (list, tuple)):
        items = [resolve(o) for o in obj]
        return type(obj)(items) if type(obj) in (list, tuple) else obj
    if isinstance(obj, dict):
        return {k: resolve(v) for k, v in obj.items()}
    return obj


class Lazy:
    """A strategy not built yet: ``make(*args, **kwargs)``, built once on first use."""

    __slots__ = ("_make", "_args", "_kwargs", "_real")

    def __init__(self, make: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._make, self._args, self._kwargs, self._real = make, args, kwargs, None

    def real(self) -> Any:
        if self._real is None:
            self._real = self._make(*resolve(self._args), **resolve(self._kwargs))
        return self._real

    def _method(self, name: str) -> Callable[..., Lazy]:
        return lambda *a, **kw: Lazy(lambda *a, **kw: getattr(self.real(), name)(*a, **kw), a, kw)

    def map(self, *a: Any, **kw: Any) -> Lazy:
        return self._method("map")(*a, **kw)

    def filter(self, *a: Any, **kw: Any) -> Lazy:
        return self._method("filter")(*a, **kw)

    def flatmap(self, *a: Any, **kw: Any) -> Lazy:
        return self._method("flatmap")(*a, **kw)

    def __or__(self, other: Any) -> Lazy:
        return Lazy(lambda a, b: a | b, (self, other), {})

    def __ror__(self, other: Any) -> Lazy:
        return Lazy(lambda a, b: a | b, (other, self), {})

    def __repr__(self) -> str:
        return f"<lazy strategy {getattr(self._make, '__name__', self._make)!r}>"


class _Annotation:
    """Stands in for ``st.DrawFn`` / ``st.SearchStrategy[...]`` in evaluated annotations."""

    def __class_getitem__(cls, item: Any) -> type:
        return cls


def _composite(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``st.composite``: the real one is built on first call; ``draw`` accepts a Lazy."""
    built: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def with_draw(draw: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(lambda s, label=None: draw(resolve(s), label), *args, **kwargs)

    def real(*args: Any, **kwargs: Any) -> Any:
        if not built:
            built.append(_hst().composite(with_draw))
        return built[0](*args, **kwargs)

    @functools.wraps(fn)
    def strategy(*args: Any, **kwargs: Any) -> Any:
        if _loaded():
            return real(*resolve(args), **resolve(kwargs))
        return Lazy(real, args, kwargs)

    return strategy


class _Strategies:
    """``hypothesis.strategies`` for kata modules, imported on first draw (see above)."""

    composite = staticmethod(_composite)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in ("DrawFn", "SearchStrategy", "DataObject"):
            return getattr(_hst(), name) if _loaded() else _Annotation

        def make(*args: Any, **kwargs: Any) -> Any:
            if _loaded():
                return getattr(_hst(), name)(*resolve(args), **resolve(kwargs))
            return Lazy(make, args, kwargs)  # by the time it is made, hypothesis is loaded

        make.__name__ = name
        return make


st: Any = _Strategies()


# -- hypothesis.stateful, likewise ---------------------------------------------------
class _Pending:
    """A state-machine method with its ``@rule``/``@precondition``/... not applied yet."""

    def __init__(self, fn: Any, decorators: list[tuple[str, tuple, dict]]) -> None:
        self.fn, self.decorators = fn, decorators

    def apply(self) -> Any:
        from hypothesis import stateful

        fn = self.fn
        for name, args, kwargs in self.decorators:
            fn = getattr(stateful, name)(*resolve(args), **resolve(kwargs))(fn)
        return fn


def _stateful_decorator(name: str) -> Callable[..., Callable[[Any], _Pending]]:
    def decorator(*args: Any, **kwargs: Any) -> Callable[[Any], _Pending]:
        def accept(fn: Any) -> _Pending:
            if isinstance(fn, _Pending):
                return _Pending(fn.fn, [*fn.decorators, (name, args, kwargs)])
            return _Pending(fn, [(name, args, kwargs)])
        return accept

    decorator.__name__ = name
    return decorator


rule = _stateful_decorator("rule")
initialize = _stateful_decorator("initialize")
precondition = _stateful_decorator("precondition")
invariant = _stateful_decorator("invariant")


class _MachineMeta(type):
    """A subclass of :class:`RuleBasedStateMachine` is a recipe: the first instance builds
    the real hypothesis state machine from the class body (``super()`` included)."""

    def __new__(mcls, name: str, bases: tuple, ns: dict) -> _MachineMeta:
        cls = super().__new__(mcls, name, bases, dict(ns))
        cls._body = dict(ns)  # type: ignore[attr-defined]
        return cls

    def real(cls) -> type:
        found = cls.__dict__.get("_real")
        if found is None:
            from hypothesis import stateful

            body = {k: (v.apply() if isinstance(v, _Pending) else v)
                    for k, v in cls._body.items()  # type: ignore[attr-defined]
                    if k != "__classcell__"}
            found = type(stateful.RuleBasedStateMachine)(
                cls.__name__, (stateful.RuleBasedStateMachine,), body)
            cell = cls._body.get("__classcell__")  # type: ignore[attr-defined]
            if cell is not None:  # zero-argument super() in the body means the real class
                cell.cell_contents = found
            type.__setattr__(cls, "_real", found)
        return found

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)


class RuleBasedStateMachine(metaclass=_MachineMeta):
    """``hypothesis.stateful.RuleBasedStateMachine``, built when first instantiated."""


def real_machine(cls: Any) -> Any:
    """The hypothesis class for a machine defined on :class:`RuleBasedStateMachine`."""
    return cls.real() if isinstance(cls, _MachineMeta) else cls


# -- strategies shared by the hidden tests ------------------------------------------

FLOAT_DTYPES = (np.float32, np.float64)
#: 1.0 is ordinary; 1e-3 makes scores nearly uniform; 40.0 makes exp() overflow
#: unless the maximum is subtracted first.
SCALES = (1.0, 1.0, 0.001, 40.0)


def sizes(lo: int = 1, hi: int = 17) -> st.SearchStrategy[int]:
    """Sizes from ``lo`` to ``hi``, with 1 and odd non-multiples of blocks favoured."""
    return st.one_of(st.sampled_from([v for v in (1, 3, 5, 7, 13) if lo <= v <= hi] or [lo]),
                     st.integers(lo, hi))


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


def filled(shape: Sequence[int], dtype: type, scale: float, seed: int) -> np.ndarray:
    """Standard-normal values times ``scale``, in ``dtype``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(tuple(shape)) * scale).astype(dtype)


@st.composite
def arrays(draw: st.DrawFn, shape: Sequence[int], dtypes: Sequence[type] = FLOAT_DTYPES,
           scales: Sequence[float] = SCALES) -> np.ndarray:
    return filled(shape, draw(st.sampled_from(dtypes)), draw(st.sampled_from(scales)), draw(seeds()))


@st.composite
def batch_dims(draw: st.DrawFn, max_rank: int = 2, max_size: int = 3) -> tuple[int, ...]:
    rank = draw(st.integers(0, max_rank))
    return tuple(draw(st.integers(1, max_size)) for _ in range(rank))


@st.composite
def qkv(draw: st.DrawFn, max_n: int = 17, max_d: int = 16, max_rank: int = 2,
        dtypes: Sequence[type] = FLOAT_DTYPES, scales: Sequence[float] = SCALES,
        same_n: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``q [..., N_q, d]``, ``k, v [..., N_k, d]`` sharing dtype and leading dims."""
    lead = draw(batch_dims(max_rank))
    n_q = draw(sizes(1, max_n))
    n_k = n_q if same_n else draw(sizes(1, max_n))
    d = draw(sizes(1, max_d))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from(scales))
    seed = draw(seeds())
    q = filled((*lead, n_q, d), dtype, scale, seed)
    k = filled((*lead, n_k, d), dtype, scale, seed + 1)
    v = filled((*lead, n_k, d), dtype, 1.0, seed + 2)
    return q, k, v
