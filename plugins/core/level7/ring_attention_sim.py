"""Level 7 · ring_attention_sim: the ring on P simulated devices, in one process."""

from __future__ import annotations

import copy

from attnkata.strategies import st

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.compare import changed, compare, describe_value
from attnkata.harness import Abort, KataFailure
from attnkata.strategies import batch_dims, seeds, sizes

from . import rings as T

#: float32 rings merge P partials in a different order than one softmax: a little slack
TOL = {"float32": (3e-4, 3e-5)}


@st.composite
def sim_inputs(draw: st.DrawFn, zigzag: bool = False, scales: tuple = (1.0, 1.0, 0.01, 10.0)) -> dict:
    return {"world_size": draw(st.integers(1, 5)), "n_local": draw(sizes(1, 5)) * (2 if zigzag else 1),
            "d": draw(sizes(1, 8)), "lead": draw(batch_dims(2, 3)),
            "dtype": draw(st.sampled_from(("float32", "float64"))),
            "scale": draw(st.sampled_from(scales)), "seed": draw(seeds())}


def full_qkv(world_size: int, n_local: int, d: int, lead: tuple, dtype: str, scale: float,
             seed: int) -> tuple:
    """q, k, v for the whole sequence ``[*lead, P·n_local, d]`` (q, k scaled, v unit)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    shape = (*lead, world_size * n_local, d)
    q, k, v = (rng.standard_normal(shape) * s for s in (scale, scale, 1.0))
    return tuple(torch.from_numpy(x).to(getattr(torch, dtype)) for x in (q, k, v))


def expect_sim(ctx, case: dict, causal: bool, layout: str = "contiguous") -> None:
    """The learner's simulated ring must equal full attention, shard by shard."""
    P = case["world_size"]
    q, k, v = full_qkv(**case)
    qs, ks, vs = (T.shard(x, P, layout) for x in (q, k, v))
    want = T.shard(T.full_attention(q, k, v, causal), P, layout)
    kwargs = {"causal": causal} if layout == "contiguous" else {"causal": causal, "layout": layout}
    what = f"ring_attention_sim(<{P} shards of {describe_value(qs[0])}>, causal={causal}" + \
           (f", layout={layout!r})" if layout != "contiguous" else ")")
    fn = ctx.entry("ring_attention_sim")
    args = copy.deepcopy((qs, ks, vs))
    got = ctx.run(lambda: fn(*args, **kwargs), what)
    if changed((qs, ks, vs), args):
        raise KataFailure(f"{what} modified its input shards in place: pass blocks round by "
                          f"reference, and compute into new tensors.")

    def rerun(ns):
        return ns.ring_attention_sim(*copy.deepcopy((qs, ks, vs)), **kwargs)

    try:
        ctx.match(got, want, what, rerun=rerun, tol=TOL.get(case["dtype"]),
                  entries=("ring_attention_sim",))
    except KataFailure as exc:
        raise KataFailure(f"{exc.message}\nWho holds which K/V block (rank r passes its block to "
                          f"r + 1):\n{T.schedule_table(P)}{_schedule_note(ctx, P)}",
                          exc.misconception, exc.matched[1:]) from None


def _schedule_note(ctx, world_size: int) -> str:
    """A pointer to the schedule when the learner's own one disagrees with the table."""
    right = [[(r - t) % world_size for r in range(world_size)] for t in range(world_size)]
    try:
        theirs = ctx.run(lambda: ctx.target.rotation_schedule(world_size), "rotation_schedule")
    except (Exception, Abort):
        return ""
    if compare(theirs, right) is None:
        return ""
    return (f"\nYour rotation_schedule({world_size}) gives {theirs}, not this table: fix it "
            f"first (check schedule_matches).")


@check("rotation_schedule(P): rank r holds rank (r − t) mod P's block at step t, for P = 1..6")
def schedule_matches(ctx):
    for world_size in range(1, 7):
        ctx.expect("rotation_schedule", world_size)


@check("equals full attention on the concatenated sequence (no mask), P = 1..5")
def sim_matches_full(ctx):
    @ctx.given(case=sim_inputs())
    def prop(case):
        expect_sim(ctx, case, causal=False)

    prop()


@check("causal, contiguous shards: equals causal attention on the whole sequence")
def sim_causal_contiguous(ctx):
    @ctx.given(case=sim_inputs())
    def prop(case):
        expect_sim(ctx, case, causal=True)

    prop()


@check("causal, zigzag shards (layout='zigzag'): equals causal attention on the whole sequence")
def sim_causal_zigzag(ctx):
    @ctx.given(case=sim_inputs(zigzag=True))
    def prop(case):
        expect_sim(ctx, case, causal=True, layout="zigzag")

    prop()


@check("scores in the hundreds (exp overflows unless the merge subtracts a maximum)")
def sim_large_scores(ctx):
    for dtype, scale in (("float32", 10.0), ("float64", 30.0)):
        for causal in (False, True):
            expect_sim(ctx, {"world_size": 3, "n_local": 4, "d": 4, "lead": (2,), "dtype": dtype,
                             "scale": scale, "seed": 7}, causal=causal)


def _mutating_sim(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
    out = T.sim_ring(q_shards, k_shards, v_shards, causal, layout)
    k_shards[-1].mul_(2)
    return out



def _sim_layout_cases(ctx):
    case = {"world_size": 3, "n_local": 4, "d": 8, "lead": (2,), "dtype": "float64",
            "scale": 1.0, "seed": 5}
    P = case["world_size"]
    q, k, v = full_qkv(**case)
    shards = tuple(T.shard(x, P, "contiguous") for x in (q, k, v))
    for causal in (False, True):
        yield shards, {"causal": causal}


sim_strided_inputs = layout_check(
    "ring_attention_sim", _sim_layout_cases,
    "every shard as a transposed or sliced view", id="sim_strided_inputs",
    layouts=("transposed", "sliced"))


RING_ATTENTION_SIM = Kata(
    id="ring_attention_sim",
    level=7,
    title="The ring on paper: P devices in one process",
    path="level7/ring_attention_sim.py",
    entries=("ring_attention_sim", "rotation_schedule"),
    checks=(schedule_matches, sim_matches_full, sim_causal_contiguous, sim_causal_zigzag,
            sim_large_scores,
            sim_strided_inputs),
    predictions=(
        Prediction("rotations_per_pass", "P = 4 devices: how many times do the K/V blocks move "
                   "one step round the ring in one forward pass?", 3, kind="exact",
                   why="Each rank already holds its own block; it needs the other P − 1, one per move."),
        Prediction("holder_step2_rank0", "P = 4, each rank passes its block to rank r + 1: whose "
                   "K/V block does rank 0 hold at step 2 (step 0 = its own)?", 2, kind="exact",
                   why="At step t rank r holds block (r − t) mod P: (0 − 2) mod 4 = 2."),
        Prediction("causal_blocks_skipped", "P = 4, causal, contiguous shards: of the 4 × 4 (rank, "
                   "step) block computations, how many can be skipped because every key in the "
                   "block lies after every query?", 6, kind="exact",
                   why="Rank r needs blocks 0..r only: it skips P − 1 − r of them; 3 + 2 + 1 + 0 = 6."),
    ),
    misconceptions=(
        Misconception("v_stays_home", "rotated K but not V",
                      {"ring_attention_sim": T.sim_v_stays_home},
                      "Each score q·k_j weighs the value v_j of the same token j: K and V travel "
                      "together, as one block."),
        Misconception("averaged_partials", "merged partial outputs by averaging them",
                      {"ring_attention_sim": T.sim_average},
                      "Partials are softmaxes over different key sets; weigh each by its share of "
                      "the total mass, e^(lse_i − lse): o = Σ_i e^(lse_i − lse)·o_i with "
                      "lse = log Σ_i e^(lse_i)."),
        Misconception("local_positions", "built the causal mask from positions inside the shard",
                      {"ring_attention_sim": T.sim_local_positions},
                      "Token j of shard s is at global position s·n + j (contiguous); compare "
                      "global positions: a block from an earlier shard is fully visible, a later "
                      "one fully hidden, only the diagonal block is triangular."),
        Misconception("one_hop_short", "stopped one rotation early (missed a block)",
                      {"ring_attention_sim": T.sim_one_hop_short},
                      "P blocks need P compute steps and P − 1 moves: own block, then P − 1 "
                      "arrivals."),
        Misconception("unshifted_merge", "merged with e^lse directly (overflows for large scores)",
                      {"ring_attention_sim": T.sim_unshifted_merge},
                      "e^lse overflows once scores pass ~88 (float32) or ~709 (float64). Subtract "
                      "the merged lse first: weights e^(lse_a − lse) and e^(lse_b − lse)."),
        Misconception("schedule_backwards", "rotated the other way (rank r receives from r + 1)",
                      {"rotation_schedule": T.schedule_backwards},
                      "The convention here: rank r sends to r + 1 and receives from r − 1, so at "
                      "step t it holds block (r − t) mod P."),
    ),
    claims=(
        Claim("ring-sim-equals-full", "Passing K/V blocks round P simulated devices and merging the "
              "partials by log-sum-exp gives exactly full attention on the concatenated sequence, "
              "causal or not, contiguous or zigzag.", scope="exact", source="liu-2023-ring",
              evidence=("sim_matches_full", "sim_causal_contiguous", "sim_causal_zigzag",
                        "sim_large_scores"),
              not_claimed="One process, no communication: the real ring is the ring_attention kata."),
    ),
    hints=(
        "Start from the schedule: at step t rank r holds block (r − t) mod P. For each rank keep a "
        "running (o, lse); step 0 uses its own block, each later step one more block. "
        "print_schedule(4) shows the rotation.",
        "One block: s = q·kᵀ/√d (masked to -inf where not allowed), lse = logsumexp(s, -1), "
        "o = exp(s − lse)·v. Merge: lse = logaddexp(lse_a, lse_b), o = e^(lse_a − lse)·o_a + "
        "e^(lse_b − lse)·o_b (guard lse = -inf).",
        "Causal: compare global positions, not local ones. Contiguous: rank r's tokens are "
        "r·n … r·n + n − 1. Zigzag with c = n/2: r·c … r·c + c − 1 then (2P − 1 − r)·c … "
        "(2P − r)·c − 1. mask = k_pos[None, :] <= q_pos[:, None]; skip a block whose mask is empty.",
    ),
    requires=("torch",),
    fakes=(Fake("mutate_shards", {"ring_attention_sim": _mutating_sim}),),
    generic_fakes=("zeros", "echo", "constant", "random"),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): small rings (P = 3 or 4, float64) whose outputs,
# shard by shard, are known in closed form under each mistake's family: values from the
# rank's own block only; the plain mean of per-block partials; a mask of local positions;
# every block but one; exp overflowing at large scores.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, attempt, check as _holds, close, finite  # noqa: E402


def _case(P, n=4, d=4, seed=71, scale=1.0, dtype="float64", same_k=False, same_v=False):
    q, k, v = full_qkv(P, n, d, (2,), dtype, scale, seed)
    if same_k:   # every shard's K block is shard 0's
        k = k[..., :n, :].repeat(1, P, 1)
    if same_v:   # every token has the same value vector
        v = v[..., :1, :].expand_as(v).clone()
    return q, k, v


def _shards(x, P):
    return T.shard(x, P, "contiguous")


def _run_sim(P, causal=False, **kw):
    def run(ns):
        import torch

        q, k, v = _case(P, **kw)
        out = ns.ring_attention_sim(_shards(q, P), _shards(k, P), _shards(v, P), causal=causal)
        return torch.stack([o.double() for o in out])   # [P, 2, n, d]
    return run


def _pair(a, b):
    return lambda ns: (attempt(lambda: a(ns)), attempt(lambda: b(ns)))


def _right_wrong(g, w):
    return close(g[0], w[0]) and not close(g[1], w[1])


def _masked(q, k, v, mask=None):
    import torch

    s = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v.double()


def _is_model(P, model, **kw):
    """Holds when the stacked outputs equal ``model(q, k, v, P)`` (and are wrong)."""
    def holds(g, w):
        import torch

        q, k, v = _case(P, **kw)
        want = torch.stack(model(q, k, v, P))
        return not close(g, w) and close(g, want.numpy(), (1e-6, 1e-8))
    return _holds(holds)


def _own_values(q, k, v, P):
    """Full softmax weights over every key, applied to the rank's own V block repeated."""
    qs, vs = _shards(q, P), _shards(v, P)
    return [_masked(qs[r], k, vs[r].repeat(1, P, 1)) for r in range(P)]


def _own_block(q, k, v, P):
    qs, ks, vs = (_shards(x, P) for x in (q, k, v))
    return [_masked(qs[r], ks[r], vs[r]) for r in range(P)]


def _fixed_weights(P, **kw):
    """Each rank's output is Σ_j c_j·o_j over its per-block partials o_j, with weights c_j
    shared by every query row (they ignore each block's softmax mass), and wrong."""
    def holds(g, w):
        import numpy as np

        q, k, v = _case(P, **kw)
        qs, ks, vs = (_shards(x, P) for x in (q, k, v))
        if close(g, w):
            return False
        for r in range(P):
            parts = np.stack([_masked(qs[r], ks[j], vs[j]).numpy().reshape(-1) for j in range(P)], 1)
            target = np.asarray(g[r], dtype=np.float64).reshape(-1)
            c, *_ = np.linalg.lstsq(parts, target, rcond=None)
            if not np.allclose(parts @ c, target, atol=1e-6):
                return False
        return True
    return _holds(holds)


def _local_mask(q, k, v, P):
    import torch

    n = q.shape[-2] // P
    i = torch.arange(P * n) % n
    mask = i[None, :] <= i[:, None]
    return _shards(_masked(q, k, v, mask), P)


def _all_but_one(P, **kw):
    """Each rank's output is attention over every block except one (any one)."""
    def holds(g, w):
        import torch

        q, k, v = _case(P, **kw)
        n = q.shape[-2] // P
        if close(g, w):
            return False
        for r, qr in enumerate(_shards(q, P)):
            options = []
            for miss in range(P):
                keep = torch.ones(P * n, dtype=torch.bool)
                keep[miss * n:(miss + 1) * n] = False
                options.append(_masked(qr, k[..., keep, :], v[..., keep, :]))
            if not any(close(g[r], o.numpy(), (1e-6, 1e-8)) for o in options):
                return False
        return True
    return _holds(holds)


RING_ATTENTION_SIM = attach(RING_ATTENTION_SIM, probes={
    # source: zhuzilin/ring-flash-attention and lucidrains/ring-attention-pytorch pass k and v
    # as one buffer round the ring; the slip is rotating one tensor of the pair
    "v_stays_home": (
        Probe("P = 3, no mask, random q, k, v: each shard's output", _run_sim(3),
              _is_model(3, _own_values)),
        Probe("P = 3, every shard's K block the same: each shard's output", _run_sim(3, same_k=True),
              _is_model(3, _own_block, same_k=True)),
    ),
    # source: liu-2023-ring and zhuzilin/ring-flash-attention's update_out_and_lse: partial
    # outputs are weighted by their log-sum-exp; a plain or running average (any weights
    # that ignore each block's softmax mass) is the slip
    "averaged_partials": (
        Probe("P = 3, no mask: each shard's output against its per-block partials",
              _run_sim(3, seed=72), _fixed_weights(3, seed=72)),
        Probe("P = 4, no mask: each shard's output against its per-block partials",
              _run_sim(4, seed=77), _fixed_weights(4, seed=77)),
    ),
    # source: feifeibear/long-context-attention#53 and pytorch/pytorch#141622 (the causal
    # mask of a shard must use the tokens' global positions, which depend on the layout)
    "local_positions": (
        Probe("P = 3: no mask, then causal", _pair(_run_sim(3), _run_sim(3, causal=True)),
              _holds(_right_wrong)),
        Probe("P = 3, causal: each shard's output", _run_sim(3, causal=True, seed=73),
              _is_model(3, _local_mask, seed=73)),
    ),
    # source: zhuzilin/ring-flash-attention#39 (a mismatched number of send/recv rounds
    # between ranks)
    "one_hop_short": (
        Probe("P = 3, no mask: every rank misses one block", _run_sim(3, seed=74),
              _all_but_one(3, seed=74)),
        Probe("P = 4, no mask: every rank misses one block", _run_sim(4, seed=75),
              _all_but_one(4, seed=75)),
    ),
    # source: Dao-AILab/flash-attention's lse merge (out = exp(lse_i − lse)·out_i): merging
    # with exp(lse_i) unshifted overflows
    "unshifted_merge": (
        Probe("P = 3, float64: scores near 1, then scores near 900",
              _pair(_run_sim(3), _run_sim(3, scale=30.0)),
              _holds(lambda g, w: close(g[0], w[0]) and not finite()(g[1], w[1]))),
        Probe("P = 3, float32, scores near 100", _run_sim(3, scale=10.0, dtype="float32"),
              _holds(lambda g, w: not finite()(g, w))),
    ),
    # source: zhuzilin/ring-flash-attention (send to rank + 1, receive from rank − 1): the
    # opposite direction is a valid ring that disagrees with the kata's schedule
    "schedule_backwards": (
        Probe.of("rotation_schedule(3)", "rotation_schedule", 3,
                 holds=_holds(lambda g, w: [list(r) for r in g] ==
                              [[(r + t) % 3 for r in range(3)] for t in range(3)])),
        Probe.of("rotation_schedule(5)", "rotation_schedule", 5,
                 holds=_holds(lambda g, w: [list(r) for r in g] ==
                              [[(r + t) % 5 for r in range(5)] for t in range(5)])),
    ),
}, diagnostics=(
    Probe("P = 4, causal, contiguous shards: each rank's output", _run_sim(4, causal=True, seed=76),
          axes=("rank", "batch", "query", "feature")),
    Probe.of("rotation_schedule(4)", "rotation_schedule", 4, axes=("step", "rank")),
))


def _gather_then_softmax(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
    """Correct, other way: each rank collects the blocks as they arrive and runs one softmax
    over all of them at the end (memory O(P·n), no merge)."""
    import torch

    P = len(q_shards)
    n = q_shards[0].shape[-2]
    out = []
    for r in range(P):
        order = [(r - t) % P for t in range(P)]
        k = torch.cat([k_shards[j] for j in order], -2)
        v = torch.cat([v_shards[j] for j in order], -2)
        mask = None
        if causal:
            qp = T.positions(r, P, n, layout)
            kp = torch.cat([T.positions(j, P, n, layout) for j in order])
            mask = kp[None, :] <= qp[:, None]
        out.append(_masked(q_shards[r], k, v, mask).to(q_shards[r].dtype))
    return out


RING_ATTENTION_SIM = attach(RING_ATTENTION_SIM, variants=(
    Fake("gather_then_softmax", {"ring_attention_sim": _gather_then_softmax}),))
