"""Watching one rank's communication from inside: what it sends, when it waits, what it refuses.

Used by a job running inside a rank of ``procs.run_ranks``.  Every path of
``torch.distributed`` point-to-point traffic (``send``, ``isend``, ``P2POp`` with
``batch_isend_irecv``) ends in a ``ProcessGroup.send`` / ``recv`` call, and every
collective in a ``ProcessGroup`` method; patching those, in the child process only,
sees all of it without touching the learner's code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

#: in a rank: ``[shared blocked array, this rank]``, set by the worker, for waits to mark
SLOT: list = []


class Refused(Exception):
    """Raised inside a rank when learner code calls a collective under :class:`CommProbe`."""

COLLECTIVES = ("allgather", "_allgather_base", "allgather_coalesced", "allgather_into_tensor_coalesced",
               "all_gather_single", "all_gather_single_coalesced", "allreduce", "allreduce_coalesced",
               "broadcast", "alltoall", "alltoall_base", "all_to_all_single", "gather", "scatter",
               "reduce", "reduce_scatter", "_reduce_scatter_base", "reduce_scatter_single",
               "reduce_scatter_tensor_coalesced")
COMPUTE = (("torch", "matmul"), ("torch", "einsum"), ("torch", "bmm"), ("torch", "baddbmm"),
           ("Tensor", "__matmul__"), ("Tensor", "__rmatmul__"), ("Tensor", "matmul"),
           ("Tensor", "bmm"), ("functional", "scaled_dot_product_attention"))


@dataclass
class CommProbe:
    """Counts one rank's point-to-point traffic while active; collectives raise :class:`Refused`.

    ``overlapped`` counts receives that were waited on after some compute (a matmul,
    einsum, bmm or SDPA) had run since they were posted; ``compute`` counts those ops
    (0 means the probe could not see the learner's compute at all).  Inside a rank of
    :func:`run_ranks`, every wait on a send or receive also marks the rank as blocked,
    which is how a deadlock is recognised in about a second.
    """

    sends: int = 0
    sent_elements: int = 0
    recvs: int = 0
    recv_waits: int = 0
    overlapped: int = 0
    compute: int = 0
    _undo: list = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __enter__(self) -> "CommProbe":
        import torch
        import torch.nn.functional as F
        from torch.distributed import ProcessGroup

        probe = self

        def patch(owner: Any, name: str, make: Callable[[Callable], Callable]) -> None:
            original = getattr(owner, name, None)
            if original is None:
                return
            setattr(owner, name, make(original))
            self._undo.append((owner, name, original))

        def sender(original: Callable) -> Callable:
            def send(pg: Any, tensors: Any, *args: Any, **kwargs: Any) -> Any:
                probe.sends += 1
                probe.sent_elements += sum(int(t.numel()) for t in tensors)
                return _Watched(original(pg, tensors, *args, **kwargs), probe, receive=False)
            return send

        def receiver(original: Callable) -> Callable:
            def recv(pg: Any, *args: Any, **kwargs: Any) -> Any:
                probe.recvs += 1
                return _Watched(original(pg, *args, **kwargs), probe, receive=True)
            return recv

        def refuse(name: str) -> Callable[[Callable], Callable]:
            def make(original: Callable) -> Callable:
                def refused(*args: Any, **kwargs: Any) -> Any:
                    raise Refused(f"called the collective `{name}`: here K and V must travel "
                                  f"the ring by point-to-point ops (isend/irecv, batch_isend_irecv)")
                return refused
            return make

        def counted(original: Callable) -> Callable:
            def op(*args: Any, **kwargs: Any) -> Any:
                probe.compute += 1
                return original(*args, **kwargs)
            return op

        patch(ProcessGroup, "send", sender)
        patch(ProcessGroup, "recv", receiver)
        patch(ProcessGroup, "recv_anysource", receiver)
        patch(ProcessGroup, "_end_coalescing", receiver)  # a coalesced batch (NCCL) ends in one work
        for name in COLLECTIVES:
            patch(ProcessGroup, name, refuse(name))
        owners = {"torch": torch, "Tensor": torch.Tensor, "functional": F}
        for owner, name in COMPUTE:
            patch(owners[owner], name, counted)
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


class _Watched:
    """A send's or receive's Work.  While it is waited on, the rank's ``blocked`` slot holds
    the time the wait began; a receive notes, when first waited on, whether compute ran
    since it was posted."""

    def __init__(self, work: Any, probe: CommProbe, receive: bool):
        self._work, self._probe, self._mark = work, probe, probe.compute
        self._pending_receive = receive

    def wait(self, *args: Any, **kwargs: Any) -> Any:
        if self._pending_receive:
            self._pending_receive = False
            self._probe.recv_waits += 1
            self._probe.overlapped += self._probe.compute > self._mark
        if not SLOT:
            return self._work.wait(*args, **kwargs)
        blocked, rank = SLOT
        blocked[rank] = time.monotonic()
        try:
            return self._work.wait(*args, **kwargs)
        finally:
            blocked[rank] = 0.0

    def __bool__(self) -> bool:
        return self._work is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._work, name)
