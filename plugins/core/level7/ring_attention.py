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


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14).  Each target is launched twice at most: 4 ranks
# through five cases (no mask, no mask again, causal contiguous, causal zigzag, two
# rings of 2), and 2 ranks through one case; every probe reads its evidence from those
# launches (outputs per rank, or what the ranks did: traffic, overlap, a deadlock, a
# refused collective), so a learner's worker forks few processes.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds, close  # noqa: E402

from .ring_ranks import RingCase  # noqa: E402

_N = 2  # tokens per shard (zigzag needs an even number)


def _full(seed, P, same_k=False):
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    q, k, v = (torch.from_numpy(rng.standard_normal((2, P * _N, 4))) for _ in range(3))
    if same_k:
        k = k[..., :_N, :].repeat(1, P, 1)
    return q, k, v


def _case_of(full, P, causal, layout="contiguous"):
    q, k, v = full
    pieces = [T.shard(x, P, layout) for x in (q, k, v, T.full_attention(q, k, v, causal))]
    return RingCase(*(tuple(p) for p in pieces), causal, layout, (), "float64")


def _cases(world):
    import numpy as np

    if world == 2:
        return [_case_of(_full(81, 2), 2, False)]
    return [_case_of(_full(82, 4), 4, False), _case_of(_full(83, 4), 4, False),
            _case_of(_full(84, 4), 4, True), _case_of(_full(85, 4), 4, True, "zigzag"),
            make_case(np.random.default_rng(86), 4, _N, 4, (2,), "float64", 1.0, False,
                      groups=((0, 1), (2, 3)))]


_LAUNCHES: dict = {}


def _launch(ns, world):
    """The ranks' reply for ``ns`` (kept per target: one launch serves every probe)."""
    from attnkata.diagnose import measure

    key = (id(ns), world)
    hit = _LAUNCHES.get(key)
    if hit is None or hit[0] is not ns:
        reply = measure(ns, PROBE_MODULE, "ring_on_ranks", world, [c.inputs() for c in _cases(world)])
        hit = _LAUNCHES[key] = (ns, reply)
        if len(_LAUNCHES) > 64:
            _LAUNCHES.pop(next(iter(_LAUNCHES)))
    return hit[1]


def _outs(world, index):
    """Stacked per-rank outputs of case ``index``, or "error: <kind>"."""
    def run(ns):
        import torch

        reply = _launch(ns, world)
        if "error" in reply:
            return f"error: {reply['error']['kind']}"
        return torch.stack([r["out"].double() for r in reply["results"][index]])
    return run


def _traffic(world):
    """Per rank: (sent elements, overlapped, recv waits, computed), or "error: <kind>"."""
    def run(ns):
        reply = _launch(ns, world)
        if "error" in reply:
            return f"error: {reply['error']['kind']}"
        return [(r["probe"]["sent_elements"], bool(r["probe"]["overlapped"]),
                 r["probe"]["recv_waits"], r["probe"]["compute"]) for r in reply["results"][0]]
    return run


def _tensor(g):
    return not isinstance(g, (str, list, tuple)) and hasattr(g, "shape")


def _model(world, index, model):
    """Holds when the outputs of case ``index`` equal ``model(case)`` per rank, and are wrong."""
    def holds(g, w):
        import torch

        if not _tensor(g) or close(g, w):
            return False
        want = torch.stack([o.double() for o in model(_cases(world)[index])])
        return close(g, want.numpy(), (1e-6, 1e-8))
    return _holds(holds)


def _masked(q, k, v, mask=None):
    import torch

    s = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v.double()


def _own_values(case):
    import torch

    P = len(case.q)
    k = torch.cat(case.k, -2)
    n = case.q[0].shape[-2]
    mask = None
    if case.causal:
        pos = torch.arange(P * n)
        mask = pos[None, :] <= pos[:, None]
    return [_masked(case.q[r], k, case.v[r].repeat(1, P, 1),
                    None if mask is None else mask[r * n:(r + 1) * n]) for r in range(P)]


def _local(case):
    import torch

    P, n = len(case.q), case.q[0].shape[-2]
    i = torch.arange(P * n) % n
    k, v = torch.cat(case.k, -2), torch.cat(case.v, -2)
    return [_masked(case.q[r], k, v, i[None, :] <= i[r * n:(r + 1) * n, None]) for r in range(P)]


def _as_contiguous(case):
    import torch

    q, k, v = (torch.cat(x, -2) for x in (case.q, case.k, case.v))
    return T.shard(T.full_attention(q, k, v, True), len(case.q), "contiguous")


def _whole_world(case):
    import torch

    k, v = torch.cat(case.k, -2), torch.cat(case.v, -2)
    return [_masked(q, k, v) for q in case.q]


def _fixed_weights(index):
    """Each rank's output is a mix of its per-block partials with weights shared by every
    query row (the softmax masses ignored), and wrong."""
    def holds(g, w):
        import numpy as np

        if not _tensor(g) or close(g, w):
            return False
        case = _cases(4)[index]
        for r in range(4):
            parts = np.stack([_masked(case.q[r], case.k[j], case.v[j]).numpy().reshape(-1)
                              for j in range(4)], 1)
            target = np.asarray(g[r], dtype=np.float64).reshape(-1)
            c, *_ = np.linalg.lstsq(parts, target, rcond=None)
            if not np.allclose(parts @ c, target, atol=1e-6):
                return False
        return True
    return _holds(holds)


def _right_wrong(g, w):
    return (_tensor(g[0]) and _tensor(g[1]) and close(g[0], w[0]) and not close(g[1], w[1]))


def _both(a, b):
    return lambda ns: (a(ns), b(ns))


def _error(kind):
    return _holds(lambda g, w: g == f"error: {kind}")


def _no_overlap(g, w):
    return (isinstance(g, list) and any(c and waits for _, over, waits, c in g)
            and not any(over for _, over, _, _ in g))


def _sent_blocks(world, moves):
    block = 2 * 2 * _N * 4   # k and v: [2, n, 4] each
    return _holds(lambda g, w: isinstance(g, list) and all(s == moves * block for s, *_ in g))


RING_ATTENTION = attach(RING_ATTENTION, probes={
    # source: zhuzilin/ring-flash-attention and lucidrains/ring-attention-pytorch send k and
    # v together; the slip is rotating one tensor of the pair
    "v_stays_home": (
        Probe("4 ranks, no mask: each rank's output", _outs(4, 0), _model(4, 0, _own_values),
              axes=("rank", "batch", "query", "feature")),
        Probe("4 ranks, causal contiguous: each rank's output", _outs(4, 2), _model(4, 2, _own_values)),
    ),
    # source: zhuzilin/ring-flash-attention's update_out_and_lse (weights from lse): a plain or
    # running average ignores each block's softmax mass
    "averaged_partials": (
        Probe("4 ranks, no mask: each rank's output against its per-block partials",
              _outs(4, 0), _fixed_weights(0)),
        Probe("4 ranks, no mask, other inputs: each rank's output against its partials",
              _outs(4, 1), _fixed_weights(1)),
    ),
    # source: pytorch/pytorch#141622 and feifeibear/long-context-attention#53 (the mask of a
    # shard depends on where its tokens sit in the whole sequence)
    "local_positions": (
        Probe("4 ranks: no mask, then causal contiguous", _both(_outs(4, 0), _outs(4, 2)),
              _holds(_right_wrong)),
        Probe("4 ranks, causal contiguous: each rank's output", _outs(4, 2), _model(4, 2, _local)),
    ),
    # source: feifeibear/long-context-attention#53 (zigzag data fed to a ring that computes
    # positions as if shards were in order)
    "zigzag_as_contiguous": (
        Probe("4 ranks: causal contiguous, then causal zigzag", _both(_outs(4, 2), _outs(4, 3)),
              _holds(_right_wrong)),
        Probe("4 ranks, causal zigzag: each rank's output", _outs(4, 3),
              _model(4, 3, _as_contiguous)),
    ),
    # source: pytorch/pytorch (P2P ops take global ranks: dist.get_global_rank(group, r))
    # and zhuzilin/ring-flash-attention#39 ("Number of requests do not match number of
    # collectives" with sub-groups)
    "ignored_group": (
        Probe("4 ranks: the whole world, then two rings of 2", _both(_outs(4, 0), _outs(4, 4)),
              _holds(_right_wrong)),
        Probe("two rings of 2 inside a world of 4: each rank's output", _outs(4, 4),
              _model(4, 4, _whole_world)),
    ),
    # source: pytorch/pytorch docs on dist.send/recv (blocking) and
    # zhuzilin/ring-flash-attention's batch_isend_irecv: every rank sending first hangs
    "deadlock_send_first": (
        Probe("4 ranks: what the ranks did", _outs(4, 0), _error("deadlock")),
        Probe("2 ranks: what the ranks did", _outs(2, 0), _error("deadlock")),
    ),
    # source: liu-2023-ring (overlap communication with blockwise compute) and
    # hpcaitech/ColossalAI#5905 (two streams to overlap the correction with the next step)
    "blocking_no_overlap": (
        Probe("4 ranks, no mask: did any compute run while a receive was in flight?",
              _traffic(4), _holds(_no_overlap)),
        Probe("2 ranks, no mask: did any compute run while a receive was in flight?",
              _traffic(2), _holds(_no_overlap)),
    ),
    # source: zhuzilin/ring-flash-attention#39 (ranks posting a different number of
    # send/recv rounds)
    "extra_rotation": (
        Probe("4 ranks, no mask: elements each rank sent", _traffic(4), _sent_blocks(4, 4)),
        Probe("2 ranks, no mask: elements each rank sent", _traffic(2), _sent_blocks(2, 2)),
    ),
    # source: lucidrains/ring-attention-pytorch#20 and the Llama 3 paper's context
    # parallelism (all-gather of K/V, the alternative the ring avoids)
    "all_gather_kv": (
        Probe("4 ranks: what the ranks did", _outs(4, 0), _error("refused")),
        Probe("2 ranks: what the ranks did", _outs(2, 0), _error("refused")),
    ),
}, diagnostics=(
    Probe("4 ranks, causal zigzag (2 tokens per shard): each rank's output", _outs(4, 3),
          axes=("rank", "batch", "query", "feature")),
))
