"""Level 7 · ring_attention_sim: the ring on P simulated devices, in one process."""

from __future__ import annotations

import copy

from hypothesis import strategies as st

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
