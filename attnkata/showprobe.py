"""Worker side of ``attnkata show``: run a kata's entry once with Triton's loads and
stores written down (see :mod:`attnkata.tritonguard`), and send the record back as
plain data.  The drawing happens in the CLI process (:mod:`attnkata.show`).

This module is imported in the worker: it must not import the judging modules.
"""

from __future__ import annotations

from typing import Any

from attnkata import tritonguard

_LAST: dict = {"launches": [], "truncated": False}


def record(module: Any, entry: str, args: tuple = (), kwargs: dict | None = None,
           limit: int = 400_000) -> dict:
    """``module.entry(*args, **kwargs)`` with every load and store recorded.

    What the learner's code raises is raised (the caller reports it with the learner's
    traceback); what was recorded up to then is kept for :func:`last`."""
    if not tritonguard.install():
        raise RuntimeError("attnkata show needs Triton's interpreter (TRITON_INTERPRET=1)")
    _LAST.update(launches=[], truncated=False)
    tritonguard.start_recording(limit)
    try:
        getattr(module, entry)(*args, **(kwargs or {}))
    finally:
        _LAST.update(tritonguard.stop_recording())
    return dict(_LAST)


def last(module: Any) -> dict:
    """What the last :func:`record` wrote down, also when the learner's code raised."""
    return dict(_LAST)
