"""Level 6 · waste — how much KV memory max-length reservation wastes, and how little paging does."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import sizes

# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def realistic_lengths(n: int = 256, max_len: int = 2048, seed: int = 2023) -> np.ndarray:
    """Request lengths with a long tail: log-normal around 300 tokens, clipped to [1, max_len]."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(np.log(300), 0.8, n)), 1, max_len).astype(np.int64)


@st.composite
def _batches(draw):
    max_len = draw(sizes(1, 64))
    lens = draw(st.lists(st.integers(1, max_len), min_size=1, max_size=8))
    as_array = draw(st.booleans())
    return (np.array(lens, dtype=np.int64) if as_array else lens), max_len, draw(sizes(1, 17))


@check("matches the reference on random batches (lists and numpy arrays; lengths 1 … max_len; "
       "block sizes 1 … 17)")
def waste_matches_reference(ctx):
    @ctx.given(batch=_batches())
    def prop(batch):
        lens, max_len, block_size = batch
        ctx.expect("reserved_waste", lens, max_len)
        ctx.expect("paged_waste", lens, block_size)

    prop()


@check("paging wastes less than one block per sequence, for any lengths")
def paged_under_one_block(ctx):
    @ctx.given(batch=_batches())
    def prop(batch):
        lens, _, bs = batch
        w = float(ctx.expect("paged_waste", lens, bs))
        used = int(np.sum(lens))
        if used and w < 1:
            wasted = used * w / (1 - w)  # reserved − used, recovered from the fraction
            if not wasted < len(lens) * bs:
                ctx.fail(f"paged_waste({list(map(int, lens))}, {bs}) = {w:.4g} means {wasted:.4g} "
                         f"wasted token slots, not fewer than one block ({bs}) per sequence.")

    prop()


@check("a realistic length distribution (256 requests, median ≈ 300, max_len 2048): "
       "reservation wastes most of the memory, paging under 4 %")
def realistic_batch(ctx):
    lens = realistic_lengths()
    reserved = ctx.expect("reserved_waste", lens, 2048)
    paged = ctx.expect("paged_waste", lens, 16)
    if not (reserved > 0.6 and paged < 0.04):
        ctx.fail(f"reserved_waste = {reserved:.3f} and paged_waste = {paged:.3f} on a realistic "
                 f"batch; expected most memory wasted by reservation and under 4 % by paging.")


@check("edge cases: lengths that fill their blocks exactly, every sequence at max_len, "
       "block size 1, one-token sequences")
def waste_edges(ctx):
    ctx.expect("paged_waste", [16, 32, 48], 16)
    ctx.expect("reserved_waste", np.array([2048, 2048]), 2048)
    ctx.expect("paged_waste", np.array([5, 1, 9]), 1)
    ctx.expect("paged_waste", [1, 1, 1, 1], 16)
    ctx.expect("reserved_waste", [1], 2048)
    ctx.expect("paged_waste", [1000], 16)


# ---------------------------------------------------------------------------
# Misconceptions
# ---------------------------------------------------------------------------


def _lens(seq_lens):
    return [int(n) for n in seq_lens]


def _reserved_used_fraction(seq_lens, max_len):
    lens = _lens(seq_lens)
    return sum(lens) / (len(lens) * max_len)


def _reserved_longest(seq_lens, max_len):
    lens = _lens(seq_lens)
    longest = max(lens)
    return 1.0 - sum(lens) / (len(lens) * longest) if longest else 0.0


def _reserved_over_used(seq_lens, max_len):
    lens = _lens(seq_lens)
    used = sum(lens)
    return (len(lens) * max_len - used) / used if used else 0.0


def _paged(seq_lens, block_size, blocks):
    lens = _lens(seq_lens)
    reserved = sum(blocks(n, block_size) for n in lens) * block_size
    return 1.0 - sum(lens) / reserved if reserved else 0.0


def _paged_floor(seq_lens, block_size):
    return _paged(seq_lens, block_size, lambda n, b: n // b)


def _paged_extra_block(seq_lens, block_size):
    return _paged(seq_lens, block_size, lambda n, b: n // b + 1)


def _paged_mean_of_fractions(seq_lens, block_size):
    lens = [n for n in _lens(seq_lens) if n]
    per = [1.0 - n / (-(-n // block_size) * block_size) for n in lens]
    return sum(per) / len(per) if per else 0.0


WASTE = Kata(
    id="waste",
    level=6,
    title="Why page at all: memory wasted by reserving max_len versus by blocks",
    path="level6/waste.py",
    entries=("reserved_waste", "paged_waste"),
    checks=(waste_matches_reference, paged_under_one_block, realistic_batch, waste_edges),
    predictions=(
        Prediction("blocks_for_1000_tokens", "block size 16: how many blocks does a sequence of "
                   "1000 tokens need?", 63, kind="exact", why="⌈1000 / 16⌉ = 63 (62 full blocks hold 992)."),
        Prediction("worst_waste_per_sequence", "block size 16: the most token slots paging can "
                   "waste on one sequence", 15, kind="exact",
                   why="Only the last block is partly empty, and it holds at least one token."),
        Prediction("reserved_waste_example", "four requests of 100, 300, 500 and 1000 tokens, each "
                   "reserved max_len = 2048 slots: the fraction of reserved memory wasted",
                   1 - 1900 / 8192, why="1900 tokens used of 4 · 2048 = 8192 reserved: 76.8 % wasted."),
        Prediction("paged_waste_example", "the same four requests in blocks of 16: fraction wasted",
                   36 / 1936, why="7 + 19 + 32 + 63 = 121 blocks = 1936 slots for 1900 tokens: "
                                  "36 slots, 1.9 %."),
    ),
    misconceptions=(
        Misconception("used_not_wasted", "returned the fraction used, not the fraction wasted",
                      {"reserved_waste": _reserved_used_fraction},
                      "Waste = 1 − used / reserved."),
        Misconception("reserved_longest_not_max_len", "reserved the longest actual length instead "
                      "of max_len", {"reserved_waste": _reserved_longest},
                      "A contiguous cache must reserve max_len up front: the server cannot know how "
                      "long an answer will be until it is finished."),
        Misconception("reserved_over_used", "divided the waste by the memory used instead of the "
                      "memory reserved", {"reserved_waste": _reserved_over_used},
                      "A fraction of cache memory: (reserved − used) / reserved, which lies in [0, 1]."),
        Misconception("floor_blocks", "counted ⌊n / B⌋ blocks (the partial last block is lost)",
                      {"paged_waste": _paged_floor},
                      "A sequence needs ⌈n / B⌉ = (n + B − 1) // B blocks: a partly filled block "
                      "is still a whole block of memory."),
        Misconception("extra_block", "counted n // B + 1 blocks, one too many when n is a multiple of B",
                      {"paged_waste": _paged_extra_block},
                      "⌈n / B⌉ equals n // B + 1 only when B does not divide n."),
        Misconception("mean_of_fractions", "averaged each sequence's waste fraction instead of "
                      "dividing total waste by total memory", {"paged_waste": _paged_mean_of_fractions},
                      "Memory is shared by the whole batch: Σ wasted slots / Σ reserved slots. A "
                      "one-token sequence wastes 15/16 of ONE block, not 15/16 of the cache."),
    ),
    claims=(
        Claim("paging-wastes-under-one-block", "Paging wastes fewer than one block per sequence: "
              "only each sequence's last block is partly empty.", scope="exact",
              source="kwon-2023-paged", evidence=("paged_under_one_block", "waste_edges"),
              not_claimed="Only internal fragmentation of KV blocks; not block-table metadata, "
                          "allocator overheads or GPU memory fragmentation."),
        Claim("reservation-wastes-most", "For a long-tailed batch of request lengths, reserving "
              "max_len per request wastes most of the cache (≈ 79 % here) while 16-token blocks "
              "waste under 4 %.", scope="toy", source="kwon-2023-paged",
              evidence=("realistic_batch",),
              not_claimed="One synthetic length distribution, not a measurement of a serving "
                          "system; real servers also lose memory to reservation for future tokens."),
    ),
    hints=(
        "Waste is a fraction of memory set aside: 1 − (tokens stored) / (token slots reserved).",
        "Reservation sets aside max_len slots per sequence; paging sets aside whole blocks: "
        "⌈n / B⌉ · B slots for a sequence of n tokens.",
        "Sum over the batch before dividing; -(-n // B) is ⌈n / B⌉ in integer arithmetic. "
        "Return a Python float (0.0 when nothing is reserved).",
    ),
    requires=("torch",),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): each probe is one small batch whose answer under
# the mistake is known in closed form, whichever way the learner spelled it.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, Raised, attach, check as _holds, close  # noqa: E402


def _is(fn):
    """Holds when the output is ``fn(want)`` (and differs from the answer)."""
    return _holds(lambda g, w: not close(g, w) and close(float(g), fn(float(w))))


def _mean_waste(lens, b):
    return float(np.mean([1 - n / (-(-n // b) * b) for n in lens]))


WASTE = attach(WASTE, probes={
    # source: kwon-2023-paged quotes both a used share (20–38 % of KV memory holds
    # tokens) and a wasted share of existing systems; mixing the two is this mistake
    "used_not_wasted": (
        Probe.of("lengths 100 and 300, max_len 1000", "reserved_waste", [100, 300], 1000,
                 holds=_is(lambda w: 1 - w)),
        Probe.of("two sequences at max_len = 2048", "reserved_waste", [2048, 2048], 2048,
                 holds=_holds(lambda g, w: close(float(g), 1.0) and close(float(w), 0.0))),
    ),
    # source: padding to the longest sequence of a batch (transformers' padding="longest")
    # carried over to a cache that must reserve max_len before the answer's length is known
    "reserved_longest_not_max_len": (
        Probe.of("three sequences of 10 tokens, max_len 100", "reserved_waste", [10, 10, 10], 100,
                 holds=_holds(lambda g, w: close(float(g), 0.0) and close(float(w), 0.9))),
        Probe.of("lengths 5 and 10, max_len 1000", "reserved_waste", [5, 10], 1000,
                 holds=_holds(lambda g, w: close(float(g), 0.25))),
    ),
    # source: no thread found; a teaching note — overhead quoted relative to the memory
    # used (a ratio that exceeds 1) where the kata asks for a fraction of the reservation
    "reserved_over_used": (
        Probe.of("one sequence of 100, max_len 400", "reserved_waste", [100], 400,
                 holds=_is(lambda w: w / (1 - w))),
        Probe.of("lengths 50 and 50, max_len 100", "reserved_waste", [50, 50], 100,
                 holds=_is(lambda w: w / (1 - w))),
    ),
    # source: pegainfer-project/pegainfer#291 and EricLBuehler/mistral.rs#552 (block
    # counts off by one at block boundaries: start_pos // block_size past the table)
    "floor_blocks": (
        Probe.of("one sequence of 5, block size 4", "paged_waste", [5], 4,
                 holds=_holds(lambda g, w: not isinstance(g, Raised) and float(g) < 0)),
        # no slots counted: 0.0 by a guard, ZeroDivisionError, or ±inf/NaN from numpy
        Probe.of("one sequence of 3, block size 4 (shorter than a block)", "paged_waste", [3], 4,
                 holds=_holds(lambda g, w: (isinstance(g, Raised) and g.type == "ZeroDivisionError")
                              or (not isinstance(g, Raised) and close(float(w), 0.25)
                                  and (close(float(g), 0.0) or not np.isfinite(float(g)))))),
    ),
    # source: pegainfer-project/pegainfer#291 (one page too many exactly when seq_len is a
    # multiple of the page size)
    "extra_block": (
        Probe.of("lengths 16 and 32, block size 16 (full blocks)", "paged_waste", [16, 32], 16,
                 holds=_holds(lambda g, w: close(float(g), 1 - 48 / 80))),
        Probe.of("one sequence of 4, block size 4", "paged_waste", [4], 4,
                 holds=_holds(lambda g, w: close(float(g), 0.5))),
    ),
    # source: no thread found; a teaching note — per-request fragmentation averaged, where
    # the cache's waste is a ratio of sums
    "mean_of_fractions": (
        Probe.of("lengths 1 and 32, block size 16", "paged_waste", [1, 32], 16,
                 holds=_holds(lambda g, w: close(float(g), _mean_waste([1, 32], 16)))),
        Probe.of("lengths 3, 5 and 64, block size 4", "paged_waste", [3, 5, 64], 4,
                 holds=_holds(lambda g, w: close(float(g), _mean_waste([3, 5, 64], 4)))),
    ),
}, diagnostics=(
    Probe("one sequence of n = 0 … 9 tokens, block size 4: paged_waste([n], 4)",
          lambda ns: np.array([float(ns.paged_waste([n], 4)) for n in range(10)]),
          axes=("length n",)),
    Probe("one sequence of n = 0 … 9 tokens, max_len 9: reserved_waste([n], 9)",
          lambda ns: np.array([float(ns.reserved_waste([n], 9)) for n in range(10)]),
          axes=("length n",)),
))


def _paged_float_ceil(seq_lens, block_size):
    """Correct, other way: np.ceil on float lengths (exact for any realistic length)."""
    lens = np.asarray(seq_lens, dtype=np.float64)
    slots = float((np.ceil(lens / block_size) * block_size).sum())
    return float(1.0 - lens.sum() / slots) if slots else 0.0


from attnkata import Fake  # noqa: E402

WASTE = attach(WASTE, variants=(Fake("float_ceil", {"paged_waste": _paged_float_ceil}),))
