"""Level 7 · ring_attention: the ring on real processes (torch.distributed, gloo on CPU).

Every check forks a small world of ranks (``procs.run_ranks``) from the learner's
worker (the probe :func:`ring_on_ranks`), hands rank r its shard, calls the learner's
``ring_attention`` under a :class:`CommProbe`, and brings each rank's output, error and
counters back as data; the judging process compares each output with full attention
computed on the whole sequence (never sent to the worker).  A mismatch is
rerun with each misconception that changes outputs; behaviours that do not change
outputs (a deadlock, blocking transfers, an extra rotation, a collective) are named by
what the ranks did.  Inputs are seeded random cases, not hypothesis examples: each
launch costs processes, and a replayed deadlock would cost its timeout twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnkata.compare import compare, describe
from attnkata.harness import KataFailure, LearnerError, NotStarted, Unavailable

from . import rings as T
from .comm_probe import CommProbe
from .procs import RankError, fork_available, run_ranks

TOL = {"float32": (3e-4, 3e-5)}
#: misconceptions named by what the ranks did, not by their outputs (which are right or absent)
BEHAVIOURS = ("deadlock_send_first", "blocking_no_overlap", "extra_rotation", "all_gather_kv")


@dataclass(frozen=True)
class RingCase:
    """One call on every rank: ``q[r], k[r], v[r]`` are rank r's shards (global rank order)."""

    q: tuple
    k: tuple
    v: tuple
    want: tuple
    causal: bool
    layout: str = "contiguous"
    groups: tuple = ()  # subgroups as tuples of global ranks; () means the whole world
    dtype: str = "float32"

    def describe(self, world_size: int) -> str:
        kwargs = {"causal": self.causal}
        if self.groups:
            kwargs["group"] = f"<one of the groups {list(map(list, self.groups))}>"
        if self.layout != "contiguous":
            kwargs["layout"] = self.layout
        return describe("ring_attention", (self.q[0], self.k[0], self.v[0]), kwargs) + \
            f" on {world_size} ranks"

    def inputs(self) -> dict:
        """What the ranks are given: shards and switches, never the expected outputs."""
        return {"q": self.q, "k": self.k, "v": self.v, "causal": self.causal,
                "layout": self.layout, "groups": self.groups}


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def make_case(rng: Any, world_size: int, n_local: int, d: int, lead: tuple, dtype: str, scale: float,
              causal: bool, layout: str = "contiguous", groups: tuple = ()) -> RingCase:
    import torch

    members = groups or (tuple(range(world_size)),)
    q, k, v, want = ([None] * world_size for _ in range(4))
    for ranks in members:  # one sequence per group, sharded over its ranks
        size = len(ranks)
        full = [torch.from_numpy(rng.standard_normal((*lead, size * n_local, d)) * s)
                .to(getattr(torch, dtype)) for s in (scale, scale, 1.0)]
        pieces = [T.shard(x, size, layout) for x in (*full, T.full_attention(*full, causal))]
        for i, rank in enumerate(ranks):
            q[rank], k[rank], v[rank], want[rank] = (p[i] for p in pieces)
    return RingCase(tuple(q), tuple(k), tuple(v), tuple(want), causal, layout, groups, dtype)


def seeded_cases(rng: Any, world_size: int, causal: bool, layout: str = "contiguous") -> list[RingCase]:
    """Three cases: one token per shard; odd sizes in float64; large scores in float32."""
    even = 2 if layout == "zigzag" else 1
    specs = [
        (even * 1, 4, (), "float32", 1.0),
        (even * int(rng.choice([3, 5] if even == 1 else [2, 3])), int(rng.choice([1, 3, 8])), (2,),
         "float64", 1.0),
        (even * int(rng.integers(2, 4)), int(rng.integers(2, 9)), (2, 3), "float32", 10.0),
    ]
    return [make_case(rng, world_size, n, d, lead, dtype, scale, causal, layout)
            for n, d, lead, dtype, scale in specs]


# ---------------------------------------------------------------------------
# Running on the ranks: in the learner's worker (a probe), judged here
# ---------------------------------------------------------------------------

#: the module of :func:`ring_on_ranks`, named in the kata's ``probes``
PROBE_MODULE = __name__


def call_on_rank(fn: Any, rank: int, world_size: int, case: dict, state: dict) -> dict:
    """What each rank runs: the learner's ring_attention on its shard, watched.

    ``case`` is :meth:`RingCase.inputs`. Runs in a rank forked from the learner's
    worker: it imports nothing from the judging side."""
    import torch.distributed as dist

    kwargs: dict = {"causal": case["causal"]}
    if case["groups"]:
        if "groups" not in state:  # every rank creates every group, in the same order
            state["groups"] = [dist.new_group(list(ranks)) for ranks in case["groups"]]
        kwargs["group"] = next(g for g, ranks in zip(state["groups"], case["groups"]) if rank in ranks)
    if case["layout"] != "contiguous":
        kwargs["layout"] = case["layout"]
    q, k, v = case["q"][rank], case["k"][rank], case["v"][rank]
    before = [t.detach().clone() for t in (q, k, v)]
    with CommProbe() as probe:
        out = fn(q, k, v, **kwargs)
    mutated = [name for name, b, a in zip("qkv", before, (q, k, v)) if _changed(b, a)]
    return {"out": out, "probe": probe.summary(), "mutated": mutated}


def _changed(before: Any, after: Any) -> bool:
    import torch

    a = after.detach()
    return not (before.shape == a.shape and bool(torch.equal(before.isnan(), a.isnan()))
                and bool(torch.equal(before.nan_to_num(0.0), a.nan_to_num(0.0))))


def ring_on_ranks(module: Any, world_size: int, cases: list, learner_root: str | None = None,
                  entry: str = "ring_attention") -> dict:
    """Worker-side probe: ``module.<entry>`` on ``world_size`` gloo ranks, case by case.

    Called next to the learner's code (``ctx.probe``), so the ranks are forked from the
    learner's worker, inside its sandbox and process group.  Returns plain data:
    ``{"results": results[case][rank]}`` (each ``{"out", "probe", "mutated"}``) or
    ``{"error": RankError.as_data()}``.  The judging process compares the outputs."""
    fn = getattr(module, entry)
    root = Path(learner_root) if learner_root else None
    try:
        return {"results": run_ranks(world_size, functools.partial(call_on_rank, fn), cases,
                                     learner_root=root)}
    except RankError as err:
        return {"error": err.as_data()}


def launch(ctx: Any, world_size: int, cases: list[RingCase]) -> list[list[dict]]:
    """Run the learner's ring_attention on every case; a rank's failure becomes the kata's
    outcome.  The ranks run next to the learner's code (:func:`ring_on_ranks`)."""
    if not fork_available():
        raise Unavailable("the ring attention tests fork processes (Linux or macOS)")
    ctx.entry("ring_attention")
    root = str(ctx.target_root) if ctx.target_root else None
    reply = ctx.probe(PROBE_MODULE, "ring_on_ranks", world_size, [c.inputs() for c in cases],
                      learner_root=root,
                      what=f"ring_attention on {world_size} ranks ({len(cases)} calls)")
    if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
        try:
            err = RankError.from_data(reply["error"])
        except (KeyError, TypeError):
            err = None
        if err is not None:
            _rank_failure(ctx, world_size, cases, err)
    results = reply.get("results") if isinstance(reply, dict) else None
    if not _well_formed(results, len(cases), world_size):
        raise KataFailure(f"ring_attention on {world_size} ranks: the ranks' results came back "
                          f"malformed (one dict per case and rank was expected)")
    return results


def _well_formed(results: Any, n_cases: int, world_size: int) -> bool:
    return (isinstance(results, list) and len(results) == n_cases and all(
        isinstance(per_rank, list) and len(per_rank) == world_size and all(
            isinstance(r, dict) and {"out", "probe", "mutated"} <= set(r)
            and isinstance(r["probe"], dict) and isinstance(r["mutated"], list)
            for r in per_rank) for per_rank in results))


def _rank_failure(ctx: Any, world_size: int, cases: list[RingCase], err: RankError) -> None:
    """Raise what ``err`` means for the learner: deadlocks named, exceptions per rank."""
    what = cases[err.case].describe(world_size) if 0 <= err.case < len(cases) else f"{world_size} ranks"
    logs = "".join(f"\n[rank {r} printed]\n{text}" for r, text in sorted(err.logs.items()))
    if err.kind == "not_started":
        raise NotStarted(err.message)
    if err.kind == "start":
        raise Unavailable(f"could not start {world_size} gloo processes here: {err.message}")
    if err.kind == "raised":
        raise LearnerError(f"{what}: {err.message}{logs}")
    if err.kind == "refused":
        ctx.fail(f"{what}: {err.message}{logs}", misconception="all_gather_kv")
    if err.kind == "deadlock":
        ctx.fail(f"{what}: deadlock: {err.message}. Blocking send before recv on every rank? "
                 f"Each rank then waits for a neighbour that is itself waiting. (Or sends and "
                 f"receives that do not pair up: with group=, isend/irecv take global ranks.)"
                 f"{logs}", misconception="deadlock_send_first")
    if err.kind == "timeout":
        raise KataFailure(f"{what}: {err.message}: an endless loop, or a rank waiting for a "
                          f"message its neighbour never sends?{logs}")
    raise KataFailure(f"{what}: {err.message}{logs}")


def _call_item(rank: int, world_size: int, item: tuple, state: dict) -> Any:
    fn, case = item
    return call_on_rank(fn, rank, world_size, case, state)["out"]


def outputs_of(impls: list, world_size: int, case: RingCase) -> list:
    """Each impl's per-rank outputs on ``case`` (None where it fails), in one launch if it can.

    The impls are the checks' own misconceptions: they run on ranks forked from here."""
    inputs = case.inputs()
    try:
        return [list(per_rank) for per_rank in
                run_ranks(world_size, _call_item, [(fn, inputs) for fn in impls])]
    except Exception:  # one of them failed: try them one by one
        pass
    out = []
    for fn in impls:
        try:
            out.append(run_ranks(world_size, _call_item, [(fn, inputs)])[0])
        except Exception:
            out.append(None)
    return out


def expect_ring(ctx: Any, world_size: int, cases: list[RingCase]) -> list[list[dict]]:
    """Every rank's output must equal its slice of full attention; returns the rank results."""
    results = launch(ctx, world_size, cases)
    for case, per_rank in zip(cases, results):
        what = case.describe(world_size)
        for rank, res in enumerate(per_rank):
            if res["mutated"]:
                raise KataFailure(f"{what}: rank {rank} modified its input `{res['mutated'][0]}` in "
                                  f"place. Receive into new buffers (torch.empty_like) instead of "
                                  f"overwriting the caller's k and v.")
        got = [res["out"] for res in per_rank]
        problem = _mismatch(got, case)
        if problem is not None:
            matched = _diagnose(ctx, world_size, case, got)
            explain = getattr(ctx, "explain", None)   # probes name the family (issue 14)
            diagnosis = explain(matched) if explain is not None else None
            raise ctx.failure(what, problem, diagnosis.misconceptions if diagnosis else matched,
                              diagnosis)
    return results


def _mismatch(got: list, case: RingCase):
    for rank, (g, w) in enumerate(zip(got, case.want)):
        problem = compare(g, w, tol=TOL.get(case.dtype), path=f"rank {rank}")
        if problem is not None:
            return problem
    return None


def _diagnose(ctx: Any, world_size: int, case: RingCase, got: list) -> list:
    """The misconceptions whose outputs on ``case`` are the learner's, on every rank."""
    candidates = [m for m in ctx.kata.misconceptions
                  if m.id not in BEHAVIOURS and "ring_attention" in m.impls]
    theirs = outputs_of([m.impls["ring_attention"] for m in candidates], world_size, case)
    tol = TOL.get(case.dtype)
    return [m for m, outs in zip(candidates, theirs) if outs is not None
            and all(compare(g, t, tol=tol) is None for g, t in zip(got, outs))]
