"""Level 7 · ring_attention: the ring on real processes (torch.distributed, gloo on CPU).

The checks run every case through ``ring_ranks`` (cases, the worker-side probe that forks
the ranks, and the comparison with full attention); this module names what is checked.
"""

from __future__ import annotations

from attnkata import Claim, Kata, Misconception, Prediction, check

from . import rings as T
from .ring_ranks import PROBE_MODULE, expect_ring, make_case, seeded_cases


@check("equals full attention on the whole sequence, no mask: 2 and 4 ranks")
def ring_matches_full(ctx):
    for world_size in (2, 4):
        expect_ring(ctx, world_size, seeded_cases(ctx.rng, world_size, causal=False))


@check("causal, contiguous shards in rank order: 2 and 4 ranks")
def ring_causal_contiguous(ctx):
    for world_size in (2, 4):
        expect_ring(ctx, world_size, seeded_cases(ctx.rng, world_size, causal=True))


@check("causal, zigzag shards (layout='zigzag'): 2 and 4 ranks")
def ring_causal_zigzag(ctx):
    for world_size in (2, 4):
        expect_ring(ctx, world_size, seeded_cases(ctx.rng, world_size, causal=True, layout="zigzag"))


@check("group=: two independent rings of 2 inside a world of 4")
def ring_honours_group(ctx):
    groups = ((0, 1), (2, 3))
    expect_ring(ctx, 4, [make_case(ctx.rng, 4, 3, 4, (2,), "float32", 1.0, causal, groups=groups)
                         for causal in (False, True)])


def _traffic_case(ctx):
    return make_case(ctx.rng, 4, 3, 4, (2,), "float32", 1.0, causal=False)


@check("K/V move by point-to-point ops only: each rank sends exactly P − 1 blocks of K and V")
def ring_point_to_point(ctx):
    case = _traffic_case(ctx)
    world_size = 4
    (per_rank,) = expect_ring(ctx, world_size, [case])
    block = case.k[0].numel() + case.v[0].numel()
    for rank, res in enumerate(per_rank):
        probe = res["probe"]
        if probe["recvs"] == 0:
            ctx.fail(f"{case.describe(world_size)}: rank {rank} received nothing by point-to-point "
                     f"ops; its neighbours' K/V blocks must arrive by irecv (or recv).")
        if probe["sent_elements"] != (world_size - 1) * block:
            extra = probe["sent_elements"] > (world_size - 1) * block
            ctx.fail(f"{case.describe(world_size)}: rank {rank} sent {probe['sent_elements']} "
                     f"elements; P − 1 = {world_size - 1} moves of K and V are "
                     f"{(world_size - 1) * block} ({block} per move)."
                     + (" After the last compute step nothing needs to move." if extra else ""),
                     misconception="extra_rotation" if extra else None)


@check("transfers overlap compute: each rank computes while a receive is in flight")
def ring_overlaps_compute(ctx):
    case = _traffic_case(ctx)
    (per_rank,) = expect_ring(ctx, 4, [case])
    for rank, res in enumerate(per_rank):
        probe = res["probe"]
        if probe["compute"] and probe["recv_waits"] and not probe["overlapped"]:
            ctx.fail(f"{case.describe(4)}: rank {rank} waited for each of its {probe['recv_waits']} "
                     f"incoming blocks before computing anything: the link and the arithmetic "
                     f"take turns. Post the next transfer (isend/irecv or batch_isend_irecv), "
                     f"compute on the block you hold, then wait.", misconception="blocking_no_overlap")


RING_ATTENTION = Kata(
    id="ring_attention",
    level=7,
    title="Ring attention across processes",
    path="level7/ring_attention.py",
    entries=("ring_attention",),
    checks=(ring_matches_full, ring_causal_contiguous, ring_causal_zigzag, ring_honours_group,
            ring_point_to_point, ring_overlaps_compute),
    predictions=(
        Prediction("blocks_received", "P = 8 ranks: how many K/V blocks does one rank receive in "
                   "one forward pass?", 7, kind="exact",
                   why="It starts with its own and needs the other P − 1, one per step."),
        Prediction("elements_sent", "P = 4; each rank's k and v are [1024, 64]: how many elements "
                   "does one rank send in one pass (K and V together)?", 393_216, kind="exact",
                   why="3 moves · 2 tensors · 1024 · 64 = 393 216."),
        Prediction("memory_vs_all_gather", "P = 8: an all-gather leaves all 8 K/V shards on every "
                   "rank; the ring holds the current block and the incoming one. How many times less "
                   "K/V memory per rank does the ring need?", 4, rel_tol=0.01,
                   why="8 shards versus 2: a factor P/2 = 4, and it grows with P."),
    ),
    misconceptions=(
        Misconception("v_stays_home", "sent K round the ring but kept V at home",
                      {"ring_attention": T.ring_v_stays_home},
                      "Scores against k_j weigh v_j of the same tokens: send K and V together."),
        Misconception("averaged_partials", "merged partial outputs by averaging them",
                      {"ring_attention": T.ring_average},
                      "Weigh each partial by e^(lse_i − lse), lse = logaddexp of the partials' lse."),
        Misconception("local_positions", "built the causal mask from positions inside the shard",
                      {"ring_attention": T.ring_local_positions},
                      "Compare global positions: the block that arrives at step t came from rank "
                      "(r − t) mod P, and its tokens sit where that rank's shard sits."),
        Misconception("zigzag_as_contiguous", "ignored layout='zigzag' (positions as if contiguous)",
                      {"ring_attention": T.ring_zigzag_as_contiguous},
                      "A zigzag shard of rank r holds chunks r and 2P − 1 − r: its second half sits "
                      "near the end of the sequence."),
        Misconception("ignored_group", "used the whole world instead of `group`",
                      {"ring_attention": T.ring_ignores_group},
                      "Take rank and size from the group (dist.get_rank(group), "
                      "dist.get_world_size(group)), and turn group ranks into global ones for "
                      "isend/irecv (dist.get_global_rank(group, r))."),
        Misconception("deadlock_send_first", "every rank blocks in send before anyone receives",
                      {"ring_attention": T.ring_send_then_recv},
                      "A blocking send waits for the matching recv; if every rank sends first, "
                      "nobody receives. Post both at once: dist.batch_isend_irecv([...]), then wait."),
        Misconception("blocking_no_overlap", "blocking send/recv: transfers never overlap compute",
                      {"ring_attention": T.ring_blocking},
                      "The ring pays off when the next block travels while this one is computed."),
        Misconception("extra_rotation", "rotated P times (the last move is wasted)",
                      {"ring_attention": T.ring_extra_rotation},
                      "After P − 1 moves every rank has seen every block; a P-th move only brings "
                      "blocks home."),
        Misconception("all_gather_kv", "gathered every K/V shard with a collective",
                      {"ring_attention": T.ring_all_gather},
                      "all_gather needs memory for all P shards on every rank — what the ring "
                      "exists to avoid — and cannot overlap with compute."),
    ),
    claims=(
        Claim("ring-equals-full-attention", "On real processes, each rank's ring attention output "
              "equals its slice of full attention over the concatenated sequence — causal or not, "
              "contiguous or zigzag, in the whole world or a subgroup.", scope="exact",
              source="liu-2023-ring",
              evidence=("ring_matches_full", "ring_causal_contiguous", "ring_causal_zigzag",
                        "ring_honours_group"),
              not_claimed="Exercised with gloo on CPU (2 and 4 processes on one machine); NCCL and "
                          "multi-GPU runs were not exercised here. Forward pass only; no speed or "
                          "memory measured."),
        Claim("ring-p2p-overlapped", "K/V move only by point-to-point ops, P − 1 moves per rank, and "
              "each rank computes while a receive is in flight.", scope="toy",
              source="liu-2023-ring", evidence=("ring_point_to_point", "ring_overlaps_compute"),
              not_claimed="Counted by instrumenting torch.distributed and matmuls, not timed: "
                          "whether the transfer really hides depends on the hardware "
                          "(the ring_overlap kata)."),
    ),
    hints=(
        "Skeleton: world = dist.get_world_size(group), rank = dist.get_rank(group); send to "
        "(rank + 1) % world, receive from (rank − 1) % world; loop world steps, computing on the "
        "block you hold and merging it, as in your ring_attention_sim (you may import it: "
        "`from .ring_attention_sim import ...`).",
        "At each step but the last, first post the transfer: k_next = torch.empty_like(k_cur) "
        "(same for v) and reqs = dist.batch_isend_irecv([dist.P2POp(dist.isend, k_cur, nxt, group), "
        "dist.P2POp(dist.irecv, k_next, prv, group), ...]); then compute; then wait on every request.",
        "Peers are global ranks: nxt = dist.get_global_rank(group, (rank + 1) % world) when group is "
        "not None. The block held at step t came from rank (rank − t) % world: build the causal "
        "mask from that rank's global positions (contiguous or zigzag, as `layout` says).",
    ),
    requires=("torch", "gloo"),
    # the ranks run next to the learner's code: ring_ranks.ring_on_ranks, a worker-side probe;
    # a call covers every case of a check (each case bounded by procs' own deadlines)
    probes=(PROBE_MODULE,),
    timeout=60.0,
)
