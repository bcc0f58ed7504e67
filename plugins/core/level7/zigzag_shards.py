"""Level 7 · zigzag_shards: the split that gives every rank the same causal work."""

from __future__ import annotations

from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.compare import describe
from attnkata.strategies import seeds


@st.composite
def zigzag_inputs(draw: st.DrawFn) -> tuple:
    import numpy as np
    import torch

    world_size = draw(st.integers(2, 4))
    ndim = draw(st.integers(1, 3))
    dim = draw(st.integers(-ndim, ndim - 1))
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    shape[dim] = 2 * world_size * draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(("float32", "float64", "int64")))
    x = np.random.default_rng(draw(seeds())).standard_normal(shape) * 10
    return torch.from_numpy(x).to(getattr(torch, dtype)), world_size, dim


@check("matches the reference: any dim (negative too), P = 1..4, float and integer tensors")
def zigzag_matches(ctx):
    @ctx.given(case=zigzag_inputs())
    def prop(case):
        x, world_size, dim = case
        ctx.expect("zigzag_shards", x, world_size, dim)

    prop()
    import torch

    ctx.expect("zigzag_shards", torch.from_numpy(ctx.rng.standard_normal((4, 3))), 1, 0)  # P = 1


@check("a length not divisible by 2·world_size raises ValueError")
def zigzag_rejects_uneven(ctx):
    import torch

    fn = ctx.entry("zigzag_shards")
    for n, world_size in ((6, 4), (5, 1), (9, 2), (10, 3), (3, 2)):
        x = torch.arange(n * 2, dtype=torch.float32).reshape(2, n)
        what = describe("zigzag_shards", (x, world_size, 1), {})

        def attempt():
            try:
                fn(x, world_size, 1)
            except ValueError:
                return True
            return False

        if not ctx.run(attempt, what):
            ctx.fail(f"{what}: expected ValueError ({n} tokens cannot be cut into "
                     f"{2 * world_size} equal chunks), but it returned", misconception="uneven_allowed")


def causal_work(shards) -> list[int]:
    """Score entries causal attention computes per rank: a query at position p meets p + 1 keys."""
    return [int((s.long() + 1).sum()) for s in shards]


@check("every rank gets the same causal work: Σ (p + 1) over its positions, P = 2, 3, 4")
def zigzag_balances_work(ctx):
    import torch

    for world_size in (2, 3, 4):
        for chunk in (1, 3):
            pos = torch.arange(2 * world_size * chunk)
            got = ctx.call("zigzag_shards", pos, world_size, 0)
            work = ctx.run(lambda: causal_work(got), "summing the positions of your shards")
            want = causal_work(ctx.reference("zigzag_shards", pos, world_size, 0))
            contiguous = causal_work(pos.split(len(pos) // world_size))
            ctx.match(work, want,
                      f"causal work per rank from zigzag_shards(arange({len(pos)}), {world_size}, 0) "
                      f"(contiguous shards would give {contiguous})",
                      rerun=lambda ns: causal_work(ns.zigzag_shards(pos, world_size, 0)),
                      entries=("zigzag_shards",))


def _pairs(x, world_size, dim, partner, mine_first=True):
    import torch

    n = x.shape[dim]
    if n % (2 * world_size):
        raise ValueError("length not divisible by 2·world_size")
    chunks = x.split(n // (2 * world_size), dim=dim)
    out = []
    for r in range(world_size):
        pair = [chunks[r], chunks[partner(r, world_size)]]
        out.append(torch.cat(pair if mine_first else pair[::-1], dim=dim))
    return out


def mirror_in_first_half(x, world_size, dim):
    return _pairs(x, world_size, dim, lambda r, p: p - 1 - r)


def mirror_off_by_one(x, world_size, dim):
    return _pairs(x, world_size, dim, lambda r, p: (2 * p - r) % (2 * p))


def mirror_first(x, world_size, dim):
    return _pairs(x, world_size, dim, lambda r, p: 2 * p - 1 - r, mine_first=False)


def striped(x, world_size, dim):
    return _pairs(x, world_size, dim, lambda r, p: p + r)


def contiguous(x, world_size, dim):
    if x.shape[dim] % (2 * world_size):
        raise ValueError("length not divisible by 2·world_size")
    return list(x.split(x.shape[dim] // world_size, dim=dim))


def uneven_allowed(x, world_size, dim):
    import torch

    chunks = torch.tensor_split(x, 2 * world_size, dim=dim)
    return [torch.cat([chunks[r], chunks[2 * world_size - 1 - r]], dim=dim) for r in range(world_size)]



def _zigzag_layout_cases(ctx):
    import torch

    x = torch.from_numpy(ctx.rng.standard_normal((2, 16, 8)))
    yield (x, 4, 1), {}
    yield (x.float(), 2, -1), {}


zigzag_strided_inputs = layout_check(
    "zigzag_shards", _zigzag_layout_cases,
    "x as a transposed or sliced view: the shards hold the same values",
    id="zigzag_strided_inputs", layouts=("transposed", "sliced"))


ZIGZAG_SHARDS = Kata(
    id="zigzag_shards",
    level=7,
    title="Zigzag sharding: the same causal work on every rank",
    path="level7/zigzag_shards.py",
    entries=("zigzag_shards",),
    checks=(zigzag_matches, zigzag_rejects_uneven, zigzag_balances_work,
            zigzag_strided_inputs),
    predictions=(
        Prediction("contiguous_tiles_p4", "P = 4, causal, the sequence cut into 2P = 8 equal chunks; "
                   "a tile is one (query chunk, key chunk) pair causal attention needs (key chunk ≤ "
                   "query chunk; a diagonal tile counts as one). Contiguous shards (rank r holds "
                   "chunks 2r and 2r + 1): tiles per rank, as a tuple for ranks 0..3",
                   (3, 7, 11, 15), kind="exact",
                   why="Query chunk i needs i + 1 tiles; rank r holds chunks 2r, 2r + 1: (2r + 1) + "
                       "(2r + 2) = 4r + 3."),
        Prediction("zigzag_tiles_p4", "same count with zigzag shards (rank r holds chunks r and "
                   "7 − r): tiles per rank", (9, 9, 9, 9), kind="exact",
                   why="(r + 1) + (8 − r) = 9 on every rank: the early chunk's light load pairs "
                       "with the late chunk's heavy one."),
        Prediction("contiguous_imbalance", "contiguous shards, P = 4, a very long sequence: the "
                   "busiest rank's causal score entries divided by the least busy rank's", 7,
                   rel_tol=0.02, why="Rank r's share tends to (2r + 1)/P²: (2P − 1)/1 = 7 for P = 4."),
        Prediction("partner_of_chunk_1", "P = 4: which chunk does rank 1 hold along with chunk 1?",
                   6, kind="exact", why="2P − 1 − r = 8 − 1 − 1 = 6."),
    ),
    misconceptions=(
        Misconception("mirror_in_first_half", "paired chunk r with chunk P − 1 − r",
                      {"zigzag_shards": mirror_in_first_half},
                      "There are 2P chunks, not P: the mirror of chunk r is chunk 2P − 1 − r, "
                      "which lives in the second half."),
        Misconception("mirror_off_by_one", "paired chunk r with chunk 2P − r (off by one)",
                      {"zigzag_shards": mirror_off_by_one},
                      "Chunks are numbered 0..2P − 1, so the last is 2P − 1: chunk r pairs with "
                      "2P − 1 − r (chunks[-(r + 1)], not chunks[-r])."),
        Misconception("mirror_first", "put the late chunk before the early one",
                      {"zigzag_shards": mirror_first},
                      "Rank r holds chunk r followed by chunk 2P − 1 − r: the order matters, since "
                      "ring attention derives token positions from it."),
        Misconception("striped", "paired chunk r with chunk P + r",
                      {"zigzag_shards": striped},
                      "Chunk P + r is as late in the second half as chunk r is in the first: both "
                      "light or both heavy. Pair the first chunk with the last."),
        Misconception("contiguous_split", "cut P contiguous pieces (no zigzag)",
                      {"zigzag_shards": contiguous},
                      "Contiguous shards leave rank 0 almost idle under a causal mask and the last "
                      "rank with the most work. Cut 2P chunks and pair r with 2P − 1 − r."),
        Misconception("uneven_allowed", "accepted a length not divisible by 2P",
                      {"zigzag_shards": uneven_allowed},
                      "Ring attention needs equal shards on every rank; refuse the split with "
                      "ValueError rather than hand out chunks of different sizes."),
    ),
    claims=(
        Claim("zigzag-balances-causal-work", "With zigzag shards every rank computes the same "
              "number of causal score entries; contiguous shards give rank r a share near "
              "(2r + 1)/P².", scope="exact", source="liu-2023-ring",
              evidence=("zigzag_balances_work",),
              not_claimed="Counted, not timed. The zigzag split is a later refinement used with the "
                          "ring of liu-2023-ring, not part of that paper."),
    ),
    hints=(
        "Cut the sequence dimension into 2P equal chunks (x.split(n // (2P), dim)); rank r takes "
        "chunk r and chunk 2P − 1 − r, in that order.",
        "Check divisibility first: if x.shape[dim] % (2 * world_size) != 0, raise ValueError.",
        "[torch.cat([chunks[r], chunks[2 * P - 1 - r]], dim=dim) for r in range(P)]",
    ),
    requires=("torch",),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): shard arange(2P·c) and read which chunks each rank
# got, in which order — the family of each pairing mistake is a rule on chunk numbers.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, Raised, attach, check as _holds  # noqa: E402


def _chunks_of(P, c, dim=0):
    """zigzag_shards of positions 0 … 2P·c − 1: each rank's chunk numbers, in order."""
    def run(ns):
        import torch

        n = 2 * P * c
        x = torch.arange(n) if dim == 0 else torch.arange(n).repeat(2, 1)
        out = ns.zigzag_shards(x, P, dim)
        rows = [s if dim == 0 else s[0] for s in out]
        return [[int(p) // c for p in r.tolist()[::c]] for r in rows]
    return run


def _rule(pairing):
    """Holds when every rank r holds exactly the chunks ``pairing(r, P)``, in that order."""
    def holds(g, w):
        if isinstance(g, Raised) or g == w:
            return False
        P = len(w)
        return [list(r) for r in g] == [list(pairing(r, P)) for r in range(P)]
    return _holds(holds)


def _uneven(n, P):
    def run(ns):
        import torch

        from attnkata.diagnose import attempt

        out = attempt(lambda: ns.zigzag_shards(torch.arange(n), P, 0))
        return out if isinstance(out, Raised) else [len(s) for s in out]
    return run


ZIGZAG_SHARDS = attach(ZIGZAG_SHARDS, probes={
    # source: feifeibear/long-context-attention#53 (which chunks a rank holds under zigzag:
    # the partner of chunk r is the mirror in the whole sequence of 2P chunks)
    "mirror_in_first_half": (
        Probe("P = 4, chunks of 1: each rank's chunks", _chunks_of(4, 1),
              _rule(lambda r, P: (r, P - 1 - r)), axes=("rank", "chunk")),
        Probe("P = 3, chunks of 2: each rank's chunks", _chunks_of(3, 2),
              _rule(lambda r, P: (r, P - 1 - r))),
    ),
    # source: jzhang38/EasyContext#57 (zigzag chunking from torch.chunk; indexing the mirror
    # as chunks[-r] hands rank 0 its own chunk twice)
    "mirror_off_by_one": (
        Probe("P = 4, chunks of 1: each rank's chunks", _chunks_of(4, 1),
              _rule(lambda r, P: (r, (2 * P - r) % (2 * P)))),
        Probe("P = 3, chunks of 2: each rank's chunks", _chunks_of(3, 2),
              _rule(lambda r, P: (r, (2 * P - r) % (2 * P)))),
    ),
    # source: zhuzilin/ring-flash-attention's test_zigzag_ring_flash_attn_func (chunk r then
    # chunk 2P − 1 − r; the positions a rank derives follow that order)
    "mirror_first": (
        Probe("P = 4, chunks of 1: each rank's chunks", _chunks_of(4, 1),
              _rule(lambda r, P: (2 * P - 1 - r, r))),
        Probe("P = 2, chunks of 3, along dim 1 of a [2, 12] tensor", _chunks_of(2, 3, dim=1),
              _rule(lambda r, P: (2 * P - 1 - r, r))),
    ),
    # source: lucidrains/ring-attention-pytorch#20 ("is it just another way to permute the
    # sequence?"): striping (Striped Attention, Brandon et al. 2023) mixed up with zigzag
    "striped": (
        Probe("P = 4, chunks of 1: each rank's chunks", _chunks_of(4, 1),
              _rule(lambda r, P: (r, P + r))),
        Probe("P = 3, chunks of 2: each rank's chunks", _chunks_of(3, 2),
              _rule(lambda r, P: (r, P + r))),
    ),
    # source: pytorch/pytorch#141622 (context parallel without load balancing: contiguous
    # shards under a causal mask)
    "contiguous_split": (
        Probe("P = 4, chunks of 1: each rank's chunks", _chunks_of(4, 1),
              _rule(lambda r, P: (2 * r, 2 * r + 1))),
        Probe("P = 3, chunks of 2: each rank's chunks", _chunks_of(3, 2),
              _rule(lambda r, P: (2 * r, 2 * r + 1))),
    ),
    # source: jzhang38/EasyContext#57 (a length not divisible by 2·world_size fails later
    # with a cryptic size mismatch instead of a clear error)
    "uneven_allowed": (
        Probe("arange(6) into P = 2 (6 tokens, 4 chunks)", _uneven(6, 2),
              _holds(lambda g, w: not isinstance(g, Raised))),
        Probe("arange(10) into P = 3", _uneven(10, 3),
              _holds(lambda g, w: not isinstance(g, Raised))),
    ),
})


def _index_pairs(x, world_size, dim):
    """Correct, other way: one index_select per rank with the two chunks' positions."""
    import torch

    if x.shape[dim] % (2 * world_size):
        raise ValueError("length not divisible by 2·world_size")
    c = x.shape[dim] // (2 * world_size)
    return [x.index_select(dim, torch.cat([torch.arange(r * c, (r + 1) * c),
                                           torch.arange((2 * world_size - 1 - r) * c,
                                                        (2 * world_size - r) * c)]))
            for r in range(world_size)]


from attnkata import Fake  # noqa: E402

ZIGZAG_SHARDS = attach(ZIGZAG_SHARDS, variants=(Fake("index_pairs", {"zigzag_shards": _index_pairs}),))
