"""Level 7 · ring_overlap: a toy model of when a ring step's transfer hides under its compute."""

from __future__ import annotations

import math
from fractions import Fraction

from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check

BYTES = (1, 2, 4)


def threshold(flops_per_s: int, bytes_per_s: int, dtype_bytes: int) -> int:
    return max(1, math.ceil(Fraction(flops_per_s) * dtype_bytes / (2 * Fraction(bytes_per_s))))


@st.composite
def hardware(draw: st.DrawFn) -> tuple[int, int, int]:
    """(FLOP/s, bytes/s, bytes per element): integers, so the boundary is exact in floats too."""
    return (draw(st.integers(10**12, 2 * 10**15)), draw(st.integers(10**9, 10**12)),
            draw(st.sampled_from(BYTES)))


@check("block_flops = 4·c²·d and block_bytes = 2·c·d·bytes, on random sizes")
def counts_match(ctx):
    for c, d, b in ((3, 5, 2), (4096, 128, 2), (1, 1, 4)):
        ctx.expect("block_flops", c, d)
        ctx.expect("block_bytes", c, d, b)

    @ctx.given(c=st.integers(1, 1 << 17), d=st.integers(1, 1024), b=st.sampled_from(BYTES))
    def prop(c, d, b):
        ctx.expect("block_flops", c, d)
        ctx.expect("block_bytes", c, d, b)

    prop()


def expect_verdicts(ctx, blocks: list[int], d: int, flops: int, bw: int, b: int) -> None:
    """overlap_hidden for several block sizes at once: a wrong model must match all of them."""
    got = tuple(ctx.call("overlap_hidden", c, d, flops, bw, b) for c in blocks)
    want = tuple(ctx.reference("overlap_hidden", c, d, flops, bw, b) for c in blocks)
    ctx.match(got, want, f"[overlap_hidden(c, {d}, {flops:g}, {bw:g}, {b}) for c in {blocks}]",
              rerun=lambda ns: tuple(ns.overlap_hidden(c, d, flops, bw, b) for c in blocks),
              entries=("overlap_hidden",))


@check("overlap_hidden matches compute time ≥ transfer time, just below, at and above the threshold")
def overlap_matches(ctx):
    # A round case: c* = 10¹⁵ · 2 / (2 · 5·10¹⁰) = 20 000 exactly; equal times count as hidden.
    expect_verdicts(ctx, [4096, 19_999, 20_000, 20_001, 40_000], 128, 10**15, 5 * 10**10, 2)

    @ctx.given(hw=hardware(), d=st.integers(1, 512), extra=st.integers(2, 1 << 15))
    def prop(hw, d, extra):
        flops, bw, b = hw
        edge = threshold(flops, bw, b)
        expect_verdicts(ctx, sorted({max(1, edge - 1), edge, edge + 1, 2 * edge, extra}), d, flops, bw, b)

    prop()


@check("the verdict does not depend on d: d cancels from both sides")
def verdict_ignores_d(ctx):
    for flops, bw in ((10**15, 5 * 10**10), (10**12, 10**10)):
        blocks = [64, 4096, 20_000, 30_000, 40_000, 80_000]
        expect_verdicts(ctx, blocks, 128, flops, bw, 2)
        for c in blocks:
            verdicts = {d: ctx.call("overlap_hidden", c, d, flops, bw, 2) for d in (1, 64, 128, 4096)}
            if len(set(verdicts.values())) > 1:
                ctx.fail(f"overlap_hidden(block_tokens={c}, d, {flops:g}, {bw:g}, 2) changes with d: "
                         f"{verdicts}. Both times grow in proportion to d, so d cannot decide.")


@check("min_block_tokens is the smallest c that hides the transfer")
def min_tokens_matches(ctx):
    ctx.expect("min_block_tokens", 10**15, 5 * 10**10, 2)

    @ctx.given(hw=hardware())
    def prop(hw):
        flops, bw, b = hw
        c = ctx.expect("min_block_tokens", flops, bw, b)
        expect_verdicts(ctx, sorted({max(1, c - 1), c, c + 1, 2 * c, 4 * c}), 64, flops, bw, b)

    prop()


def _flops_qk_only(block_tokens, d):
    return 2 * block_tokens * block_tokens * d


def _bytes_k_only(block_tokens, d, dtype_bytes=2):
    return block_tokens * d * dtype_bytes


def _flops_linear(block_tokens, d):
    return 4 * block_tokens * d


def _hidden(flops_fn, bytes_fn, strict=False):
    def overlap_hidden(block_tokens, d, flops_per_s, bytes_per_s, dtype_bytes=2):
        compute = flops_fn(block_tokens, d) / flops_per_s
        transfer = bytes_fn(block_tokens, d, dtype_bytes) / bytes_per_s
        return compute > transfer if strict else compute >= transfer
    return overlap_hidden


def _min_tokens(scale, strict=False):
    def min_block_tokens(flops_per_s, bytes_per_s, dtype_bytes=2):
        edge = Fraction(flops_per_s) * dtype_bytes * scale / (2 * Fraction(bytes_per_s))
        return max(1, math.floor(edge) + 1 if strict else math.ceil(edge))
    return min_block_tokens


def _ref_flops(block_tokens, d):
    return 4 * block_tokens * block_tokens * d


def _ref_bytes(block_tokens, d, dtype_bytes=2):
    return 2 * block_tokens * d * dtype_bytes


RING_OVERLAP = Kata(
    id="ring_overlap",
    level=7,
    title="When the transfer hides under the compute (a toy model)",
    path="level7/ring_overlap.py",
    entries=("block_flops", "block_bytes", "overlap_hidden", "min_block_tokens"),
    checks=(counts_match, overlap_matches, verdict_ignores_d, min_tokens_matches),
    predictions=(
        Prediction("kv_block_bytes", "c = 4096 tokens per block, d = 128, bf16 (2 bytes): bytes "
                   "one ring step moves (K and V)", 2_097_152, kind="exact",
                   why="2 tensors · 4096 · 128 · 2 bytes = 2 MiB."),
        Prediction("min_block_tokens_example", "a device doing 10¹⁵ FLOP/s linked at 5·10¹⁰ B/s, "
                   "bf16: the smallest block c (tokens) whose compute hides its K/V transfer",
                   20_000, rel_tol=0.001,
                   why="4c²d/F ≥ 2cd·2/B ⇔ c ≥ F/B = 10¹⁵ / (5·10¹⁰) = 20 000."),
        Prediction("hidden_at_4096", "same device and link, c = 4096, d = 128: is the transfer "
                   "hidden? (True/False)", False, kind="exact",
                   why="4096 < 20 000: the link is the bottleneck; the ring waits on it."),
        Prediction("d_changes_verdict", "does doubling d change whether the transfer hides? "
                   "(choose: yes, no)", "no", kind="choice", choices=("yes", "no"),
                   why="Compute and transfer both grow in proportion to d."),
    ),
    misconceptions=(
        Misconception("forgot_pv", "counted only the QKᵀ matmul (2·c²·d FLOPs)",
                      {"block_flops": _flops_qk_only, "overlap_hidden": _hidden(_flops_qk_only, _ref_bytes),
                       "min_block_tokens": _min_tokens(Fraction(2))},
                      "A block is two matmuls: scores QKᵀ and output PV, 2·c²·d FLOPs each."),
        Misconception("only_k_moves", "counted only the K block on the wire",
                      {"block_bytes": _bytes_k_only, "overlap_hidden": _hidden(_ref_flops, _bytes_k_only),
                       "min_block_tokens": _min_tokens(Fraction(1, 2))},
                      "K and V both travel each step: 2·c·d·bytes."),
        Misconception("strict_inequality", "counted equal times as not hidden",
                      {"overlap_hidden": _hidden(_ref_flops, _ref_bytes, strict=True),
                       "min_block_tokens": _min_tokens(Fraction(1), strict=True)},
                      "When compute takes exactly as long as the transfer, the next block arrives "
                      "just in time: hidden (≥, not >)."),
        Misconception("linear_compute", "counted compute linear in c (4·c·d)",
                      {"block_flops": _flops_linear, "overlap_hidden": _hidden(_flops_linear, _ref_bytes)},
                      "Every query of the block meets every key of the block: c² pairs, d "
                      "multiply-adds each, for QKᵀ and again for PV."),
    ),
    claims=(
        Claim("ring-overlap-condition", "A ring step's K/V transfer hides under its compute when "
              "4·c²·d/F ≥ 2·c·d·bytes/B, i.e. when the block holds at least F·bytes/(2B) tokens, "
              "whatever d.", scope="toy", source="liu-2023-ring",
              not_claimed="A model, not a measurement: no kernel efficiency, latency, link "
                          "contention, bidirectional links or causal skipping; nothing here was "
                          "timed."),
    ),
    hints=(
        "One ring step: the rank computes q_block·k_blockᵀ and p·v_block (c × c × d each) while "
        "K and V ([c, d] each) travel to the next rank.",
        "FLOPs: a [c, d]·[d, c] matmul costs 2·c·c·d (multiply and add); there are two. Bytes: "
        "2·c·d·dtype_bytes. Times: FLOPs / flops_per_s and bytes / bytes_per_s.",
        "Hidden when compute_time ≥ transfer_time. Solve 4c²d/F ≥ 2cd·b/B for c: c ≥ F·b/(2B); "
        "min_block_tokens is its ceiling (at least 1). fractions.Fraction keeps it exact.",
    ),
    requires=(),
    generic_fakes=("zeros", "echo", "constant", "random"),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): new misconceptions, and probes for all, each a few
# calls whose pattern (a factor of 2, a verdict that flips at 2c* or c*/2 or never, a
# threshold one too high or too low) holds for the mistake however it was written.
# ---------------------------------------------------------------------------

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, attempt, check as _holds  # noqa: E402


def _bytes_bf16(block_tokens, d, dtype_bytes=2):
    return 2 * block_tokens * d * 2


def _min_tokens_paper(flops_per_s, bytes_per_s, dtype_bytes=2):
    return max(1, math.ceil(Fraction(flops_per_s) / Fraction(bytes_per_s)))


def _min_tokens_floor(flops_per_s, bytes_per_s, dtype_bytes=2):
    return max(1, math.floor(Fraction(flops_per_s) * dtype_bytes / (2 * Fraction(bytes_per_s))))


_F, _B = 10**15, 5 * 10**10          # c* = 20 000 in bf16


def _calls(entry, *arg_lists):
    return lambda ns: tuple(attempt(lambda a=a: getattr(ns, entry)(*a)) for a in arg_lists)


def _verdicts(cs, flops=_F, bw=_B, b=2, d=128):
    return _calls("overlap_hidden", *[(c, d, flops, bw, b) for c in cs])


def _ratio(r):
    return _holds(lambda g, w: all(x == y * r for x, y in zip(g, w)) and g != w)


def _is(*values):
    return _holds(lambda g, w: tuple(g) == tuple(values) and tuple(g) != tuple(w))


RING_OVERLAP = attach(RING_OVERLAP, add=(
    # source: liu-2023-ring states the overlap condition as block size ≥ F/B for its bf16
    # setting; read as a rule for every dtype it ignores the element's size
    Misconception("ignored_dtype_bytes", "sized the transfer as if every element took 2 bytes "
                  "(the F/B rule for every dtype)",
                  {"block_bytes": _bytes_bf16, "overlap_hidden": _hidden(_ref_flops, _bytes_bf16),
                   "min_block_tokens": _min_tokens_paper},
                  "Bytes on the wire are elements × bytes per element: fp32 moves twice what "
                  "bf16 does, fp8 half. The threshold is F·dtype_bytes/(2B), which is F/B only "
                  "for 2-byte elements."),
    # source: no thread found; a teaching note — int(x) or math.floor for a threshold that
    # must be reached, not approached
    Misconception("floor_threshold", "rounded the minimum block size down",
                  {"min_block_tokens": _min_tokens_floor},
                  "The smallest c with c ≥ F·b/(2B) is the ceiling: rounding down gives a block "
                  "just too small to hide its transfer whenever the bound is not an integer."),
), probes={
    # source: Dao-AILab/flash-attention's benchmarks count attention FLOPs as 4·N²·d (two
    # matmuls); counting QKᵀ alone halves it
    "forgot_pv": (
        Probe("block_flops(3, 5) and block_flops(7, 2)", _calls("block_flops", (3, 5), (7, 2)),
              _ratio(Fraction(1, 2))),
        Probe("overlap_hidden at c = 20 000, 30 000, 40 000 (c* = 20 000)",
              _verdicts([20_000, 30_000, 40_000]), _is(False, False, True)),
    ),
    # source: liu-2023-ring (each host sends its key-value block): K and V both travel
    "only_k_moves": (
        Probe("block_bytes(3, 5, 2) and block_bytes(7, 2, 4)",
              _calls("block_bytes", (3, 5, 2), (7, 2, 4)), _ratio(Fraction(1, 2))),
        Probe("overlap_hidden at c = 9 999, 10 000, 19 999 (c* = 20 000)",
              _verdicts([9_999, 10_000, 19_999]), _is(False, True, True)),
    ),
    # source: no thread found; a teaching note — "hidden" means the next block has arrived
    # by the time compute ends, which includes arriving exactly then
    "strict_inequality": (
        Probe("overlap_hidden at c = 19 999, 20 000, 20 001 (c* = 20 000 exactly)",
              _verdicts([19_999, 20_000, 20_001]), _is(False, False, True)),
        Probe("min_block_tokens where the bound is an integer (10¹⁵, 5·10¹⁰, 2) and (10¹², 10¹⁰, 4)",
              _calls("min_block_tokens", (_F, _B, 2), (10**12, 10**10, 4)), _is(20_001, 201)),
    ),
    # source: liu-2023-ring (compute per block grows as c², communication as c: the reason a
    # large enough block hides the transfer)
    "linear_compute": (
        Probe("block_flops(3, 5) and block_flops(6, 5)", _calls("block_flops", (3, 5), (6, 5)),
              _holds(lambda g, w: g[1] == 2 * g[0] and g != w)),
        Probe("overlap_hidden at c = 1, 20 000, 10⁶", _verdicts([1, 20_000, 10**6]),
              _holds(lambda g, w: len(set(map(repr, g))) == 1 and len(set(w)) > 1)),
    ),
    "ignored_dtype_bytes": (
        Probe("block_bytes(3, 5, b) for b = 1 and 4", _calls("block_bytes", (3, 5, 1), (3, 5, 4)),
              _holds(lambda g, w: g[0] == g[1] and g != w)),
        Probe("min_block_tokens(10¹⁵, 5·10¹⁰, b) for b = 1, 2, 4",
              _calls("min_block_tokens", (_F, _B, 1), (_F, _B, 2), (_F, _B, 4)),
              _holds(lambda g, w: len(set(map(repr, g))) == 1 and g != w)),
    ),
    "floor_threshold": (
        Probe("min_block_tokens with an integer bound (c* = 20 000), then c* = 33 333.3",
              _calls("min_block_tokens", (_F, _B, 2), (_F, 3 * 10**10, 2)), _is(20_000, 33_333)),
        Probe("min_block_tokens with an integer bound (c* = 200), then c* = 71.4",
              _calls("min_block_tokens", (10**12, 10**10, 4), (10**12, 7 * 10**9, 1)), _is(200, 71)),
    ),
}, variants=(
    Fake("float_threshold", {"min_block_tokens": lambda flops_per_s, bytes_per_s, dtype_bytes=2:
                             max(1, -(-flops_per_s * dtype_bytes // (2 * bytes_per_s)))}),
))
