"""Strides survive the trip to a learner's worker.

A check that builds a transposed or sliced view must be able to count on the learner's
code receiving that view, not a contiguous copy: torch's own pickle keeps a tensor's
strides and storage; a NumPy view that is neither C- nor Fortran-ordered crosses as its
buffer's span plus the view's spec (``wire.array_view_data``).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from attnkata import layouts, remote, wire


def _roundtrip(x):
    return pickle.loads(remote._dumps(x))  # what the worker's loader does with a request


NUMPY_VIEWS = {
    "every_other_row": lambda: np.arange(80.0).reshape(10, 8)[::2],
    "column_slice": lambda: np.arange(96.0).reshape(6, 16)[:, 3:11],
    "reversed_and_sliced_3d": lambda: np.arange(120.0).reshape(4, 5, 6)[:, ::-1, 1:4],
    "1d_step": lambda: np.arange(20)[1::3],
    "fortran": lambda: np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "transposed": lambda: np.arange(12.0, dtype=np.float32).reshape(3, 4).T,
    "layouts.sliced": lambda: layouts.sliced(np.arange(24.0, dtype=np.float32).reshape(2, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(NUMPY_VIEWS))
def test_numpy_views_keep_their_strides(name):
    a = NUMPY_VIEWS[name]()
    b = _roundtrip(a)
    assert b.strides == a.strides and b.dtype == a.dtype
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable          # the learner's copy is theirs to write
    b[(0,) * b.ndim] = -1             # and writing it never touches the judge's array
    assert a[(0,) * a.ndim] != -1


def test_only_the_views_span_is_sent():
    big = np.zeros((1000, 64))
    view = big[10:14, :3]
    payload = remote._dumps(view)
    assert len(payload) < 4 * 64 * 8 + 1000     # three rows and a bit, never 1000 rows
    assert _roundtrip(view).strides == view.strides


def test_contiguous_arrays_take_the_ordinary_pickle():
    a = np.arange(6.0).reshape(2, 3)
    assert wire.fast_reduce(a) is NotImplemented
    assert wire.fast_reduce(np.asfortranarray(a)) is NotImplemented


def test_a_view_of_foreign_memory_is_sent_as_a_copy():
    raw = np.frombuffer(bytes(range(64)), dtype=np.uint8).reshape(8, 8)[:, ::2]
    assert wire.array_view_data(raw) is None
    np.testing.assert_array_equal(_roundtrip(raw), raw)


torch = pytest.importorskip("torch")


TORCH_VIEWS = {
    "transposed": lambda: layouts.transposed(torch.arange(24.0).reshape(2, 3, 4)),
    "sliced": lambda: layouts.sliced(torch.arange(24.0).reshape(2, 3, 4)),
    "heads_interleaved": lambda: layouts.heads_interleaved(torch.arange(48.0).reshape(1, 2, 3, 8)),
    "float16_column_slice": lambda: torch.randn(5, 9).half()[:, 2:7],
}


@pytest.mark.parametrize("name", sorted(TORCH_VIEWS))
def test_torch_views_keep_their_strides(name):
    t = TORCH_VIEWS[name]()
    assert not t.is_contiguous()
    u = _roundtrip(t)
    assert u.stride() == t.stride() and u.storage_offset() == t.storage_offset()
    assert torch.equal(u.nan_to_num(0), t.nan_to_num(0))


def test_strides_reach_learner_code_in_a_real_worker(tmp_path):
    """End to end: a learner module in a supervised worker reports the strides it got."""
    course = tmp_path / "course" / "level0"
    course.mkdir(parents=True)
    (course / "strides.py").write_text(
        "def strides(x):\n"
        "    if hasattr(x, 'stride'):\n"
        "        return tuple(x.stride()), int(x.storage_offset())\n"
        "    return tuple(s // x.itemsize for s in x.strides), float(x.sum())\n")
    sup = remote.Supervisor(remote.WorkerConfig(), timeout=60)
    try:
        mod = sup.module("strides", course / "strides.py", course.parent, ("numpy", "torch"), 60)
        a = layouts.sliced(np.arange(12.0).reshape(3, 4))
        assert mod.strides(a) == (layouts.strides_of(a), 66.0)
        assert mod.strides(layouts.transposed(np.ones((3, 4))))[0] == (1, 3)
        t = layouts.sliced(torch.arange(12.0).reshape(3, 4))
        assert mod.strides(t) == (t.stride(), t.storage_offset())
        t = layouts.transposed(torch.ones(2, 3, 4))
        assert mod.strides(t) == (t.stride(), 0)
    finally:
        sup.close()
