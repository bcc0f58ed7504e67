"""Level 7 — Ring attention: a sequence too long for one device, split over P of them.

Katas, in ladder order: the ring simulated in one process (``ring_attention_sim``),
the zigzag split that balances causal work (``zigzag_shards``), a toy model of when
communication hides under compute (``ring_overlap``), and the ring on real processes
(``ring_attention``, torch.distributed).  Each kata's checks live in the module of its
name; the pieces they share: ``procs`` (the process harness), ``comm_probe`` (one rank's
traffic, watched from inside), ``rings`` (truth and wrong rings) and ``ring_ranks``
(ring_attention's cases and its worker-side probe).
"""

from __future__ import annotations

from .ring_attention import RING_ATTENTION
from .ring_attention_sim import RING_ATTENTION_SIM
from .ring_overlap import RING_OVERLAP
from .zigzag_shards import ZIGZAG_SHARDS

LEVEL = (7, "Ring attention")
KATAS = (RING_ATTENTION_SIM, ZIGZAG_SHARDS, RING_OVERLAP, RING_ATTENTION)
