"""Level 7 · ring_attention_sim — the ring on paper: P devices, one process.

Intuition
---------
A million-token sequence does not fit on one device: its K and V alone outgrow the
memory, and the score matrix is hopeless. So cut the sequence into P shards and give
one to each device. Queries stay where they are; keys and values go on tour. The
devices stand in a ring; at every step each one computes attention of its queries
against the K/V block it holds, then passes that block to its neighbour and takes the
one coming from the other side. After P − 1 passes every device has met every block
once, and never held more than one foreign block at a time.

Each step yields a *partial* answer: a softmax over one block's keys only. Partials
cannot simply be averaged — a block whose scores are large deserves more weight. Each
partial carries its log-sum-exp (lse), the log of its total un-normalised mass, and
two partials merge exactly by weighing each with its share of the combined mass (the
merge you met in level 4, here in torch).

Under a causal mask the order of tokens matters, and a shard knows its tokens only by
their *global* positions: a block from an earlier shard is fully visible, one from a
later shard fully hidden (skip it, for free), and only the device's own block is
triangular. This kata simulates all P devices in one process, so you can print and
check every step before real processes (the `ring_attention` kata) make it hard to see.

The math
--------
    schedule:  at step t = 0 … P − 1, rank r holds block s = (r − t) mod P
    block:     S = Q_r K_sᵀ / √d   (masked entries = −inf)
               lse_{r,s} = log Σ_j e^{S_ij}         o_{r,s} = softmax(S) V_s
    merge:     lse = log(e^{lse_a} + e^{lse_b})
               o   = e^{lse_a − lse} · o_a + e^{lse_b − lse} · o_b

- P : number of devices (ranks), r ∈ {0 … P − 1} a rank, t a step
- n : tokens per shard (every shard has the same n); d : head dimension
- Q_r : rank r's queries [..., n, d] — they never move
- K_s, V_s : the key and value block that started on rank s [..., n, d]
- s = (r − t) mod P : whose block rank r holds at step t (each rank sends to r + 1)
- S : the scores of one block [..., n, n]; i indexes queries, j keys
- lse_{r,s}, o_{r,s} : log-sum-exp [..., n] and normalised output [..., n, d] of one block
- merge : exact (lse is the log of the total weight behind each partial); subtracting
  the merged lse before exponentiating keeps it from overflowing; a block a query
  cannot see at all has lse = −inf and weight 0
- causal, contiguous shards: rank s's tokens are at global positions s·n … s·n + n − 1;
  key j is visible to query i when pos(j) ≤ pos(i). With `layout="zigzag"` (see the
  zigzag_shards kata) rank s holds chunks s and 2P − 1 − s of size n/2 instead.

Worked example
--------------
P = 3, rank r sends to r + 1 (print_schedule(3) draws this):

    step 0:  rank 0 holds 0, rank 1 holds 1, rank 2 holds 2
    step 1:  rank 0 holds 2, rank 1 holds 0, rank 2 holds 1
    step 2:  rank 0 holds 1, rank 1 holds 2, rank 2 holds 0

One query q = 1, d = 1 (so √d = 1). Block A: keys [0, 1], values [10, 20]. Block B:
key [2], value [30].
    A: scores [0, 1];  lse_A = log(1 + 2.7183) = 1.3133;  o_A = (10 + 2.7183·20)/3.7183 = 17.311
    B: score 2;        lse_B = 2;                          o_B = 30
    merge: lse = log(e^1.3133 + e^2) = log(3.7183 + 7.3891) = 2.4076
           o = 0.3348 · 17.311 + 0.6652 · 30 = 25.752
Full softmax over [0, 1, 2] gives (10 + 54.37 + 221.67) / 11.107 = 25.752 — the same.
Averaging the partials would give 23.655: wrong.
"""

import torch

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # P = 4 devices: how many times do the K/V blocks move one step round the ring
    # in one forward pass?
    "rotations_per_pass": ...,
    # P = 4, each rank passes its block to rank r + 1: whose K/V block does rank 0
    # hold at step 2 (step 0 = its own)?
    "holder_step2_rank0": ...,
    # P = 4, causal, contiguous shards: of the 4 × 4 (rank, step) block computations,
    # how many can be skipped because every key in the block lies after every query?
    "causal_blocks_skipped": ...,
}


def rotation_schedule(world_size: int) -> list[list[int]]:
    """``schedule[t][r]``: whose K/V block rank r holds at step t (each rank sends to r + 1).

    ``world_size`` rows (steps 0 … P − 1), each a list of P ints.
    """
    raise NotImplementedError("kata ring_attention_sim: schedule[t][r] = (r - t) mod P")


def print_schedule(world_size: int) -> None:
    """Print your ``rotation_schedule(world_size)`` as a table: one row per step, one column per rank."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"K/V shard held by each rank (P = {world_size})")
    table.add_column("step", justify="right")
    for r in range(world_size):
        table.add_column(f"rank {r}", justify="center")
    for t, row in enumerate(rotation_schedule(world_size)):
        table.add_row(str(t), *(str(s) for s in row))
    Console().print(table)


def ring_attention_sim(q_shards: list[torch.Tensor], k_shards: list[torch.Tensor],
                       v_shards: list[torch.Tensor], causal: bool = False,
                       layout: str = "contiguous") -> list[torch.Tensor]:
    """Simulate ring attention on P = len(q_shards) devices; returns each rank's output.

    Shard r of each list is ``[..., n, d]`` (same n on every rank), rank r's part of the
    sequence. Output r equals the rows of full attention (softmax(QKᵀ/√d)·V over the
    concatenated sequence) that belong to rank r's queries, in the input's dtype.
    ``causal=True`` masks by global position: contiguous shards in rank order by default,
    or ``layout="zigzag"`` for shards made by zigzag_shards (n even). Inputs are not modified.
    """
    raise NotImplementedError("kata ring_attention_sim: rotate K/V blocks, merge partials by lse")
