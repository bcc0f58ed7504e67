"""Level 7 · ring_attention — the ring on real processes (torch.distributed).

Intuition
---------
Your ring_attention_sim held every device in one list. Now each device is its own
process with its own memory: rank r has only its shard of q, k and v, and the only
way to see another rank's keys is to be sent them. The algorithm is the same — keep
your queries, pass K/V blocks to rank r + 1, receive from rank r − 1, merge partials
by log-sum-exp — but the passing is now real communication, and that brings two new
ideas.

Overlap. A transfer takes time. Start it before computing with the block you hold:
post the send of your current block and the receive of the next one, compute, then
wait. While the arithmetic runs, the next block is already on its way (the
ring_overlap kata says when it arrives in time).

Deadlock. A blocking `dist.send` returns only when the receiver has taken the data.
If every rank sends first, every rank waits for a receiver that is itself stuck in
send — forever. Post sends and receives together, without waiting in between:
`dist.batch_isend_irecv` takes a list of `dist.P2POp(dist.isend | dist.irecv, tensor,
peer, group)` and returns requests to `.wait()` on.

torch.distributed in five lines
-------------------------------
- A *process group* is the set of processes that talk; the tests create it before
  calling you (gloo on CPU; NCCL on GPUs, same code, tensors on each rank's GPU).
- `dist.get_rank(group)` and `dist.get_world_size(group)`: who you are, how many there
  are (within `group`; None means everyone).
- `isend`, `irecv` and `P2POp` take *global* ranks, even inside a subgroup: translate
  a group rank with `dist.get_global_rank(group, r)` when `group` is not None.
- A receive needs a buffer of the right shape and dtype: `torch.empty_like(k)`.
  Receive into new buffers; never overwrite the caller's k or v.
- Collectives (all_gather, broadcast, …) are refused here: K/V travel the ring by
  point-to-point ops only — an all-gather would hold all P shards on every rank.

Layouts. With `causal=True`, shards are contiguous and in rank order unless the caller
says `layout="zigzag"`: then each rank's shard was made by
`zigzag_shards(x, world_size, dim=-2)` (rank r holds chunks r and 2P − 1 − r). Your
mask must use the positions of whichever layout you were given.

How the tests run you: they fork 2 or 4 processes on this machine, form a gloo group,
and call `ring_attention` on every rank with its own shard. Each rank's output must
equal its rows of full attention over the whole sequence. A rank that raises is shown
with its traceback; ranks all stuck in sends or receives are stopped after a couple
of seconds and reported as a deadlock; a run that simply never ends is stopped too.
Your `print` output is shown when a check fails. (On GPUs with NCCL the caller also
picks each rank's device with torch.cuda.set_device before the first transfer.)

The math
--------
    at step t (t = 0 … P − 1), rank r holds the block of rank s = (r − t) mod P
    if t < P − 1:  post  send(block → r + 1),  recv(next block ← r − 1)
    compute o_{r,s}, lse_{r,s} (skip the block if the causal mask hides all of it)
    merge into (o_r, lse_r);   if t < P − 1: wait for both, make the next block current

- P : world size; r : this rank (within `group`); s : whose block is held at step t
- q, k, v : this rank's shard, [..., n, d], n the same on every rank
- each rank sends P − 1 blocks of K and V, receives P − 1, and holds at most two
  (the current one and the incoming one) at any time
- merge, block attention and positions: exactly as in ring_attention_sim

Worked example
--------------
P = 3, one line per step, what rank 0 does:
    step 0: post send(K0,V0 → 1), recv(← 2);  compute with block 0;  wait
    step 1: post send(K2,V2 → 1), recv(← 2);  compute with block 2;  wait
    step 2: no transfer;                      compute with block 1;  done
Rank 0 received 2 blocks (P − 1) and sent 2 · 2 = 4 tensors. Under a causal mask with
contiguous shards, rank 0 computes only step 0 (blocks 2 and 1 are in its future), yet
it forwards every block all the same: the ring keeps its rhythm, and zigzag shards (not
skipped sends) are how the causal work gets balanced.
"""

import torch
import torch.distributed as dist

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # P = 8 ranks: how many K/V blocks does one rank receive in one forward pass?
    "blocks_received": ...,
    # P = 4; each rank's k and v are [1024, 64]: how many elements does one rank send
    # in one pass (K and V together)?
    "elements_sent": ...,
    # P = 8: an all-gather leaves all 8 K/V shards on every rank; the ring holds the
    # current block and the incoming one. How many times less K/V memory per rank?
    "memory_vs_all_gather": ...,
}


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                   group=None, layout: str = "contiguous") -> torch.Tensor:
    """Attention of this rank's queries over the whole sequence, spread over ``group``.

    Call on every rank of ``group`` (None: the default group) with this rank's shard
    ``q, k, v [..., n, d]``; returns ``o [..., n, d]`` in q's dtype: the rows of
    softmax(QKᵀ/√d)·V over the concatenated sequence that belong to this rank.
    ``causal=True`` masks by global position: shards contiguous in rank order by
    default, or made by ``zigzag_shards(x, P, dim=-2)`` when ``layout="zigzag"``.
    K/V move by point-to-point ops, the next transfer in flight while computing.
    """
    raise NotImplementedError("kata ring_attention: isend/irecv round the ring, compute while they fly")
