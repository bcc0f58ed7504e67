"""Level 7 · ring_overlap: a toy model of when a ring step's transfer hides under its compute."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import strategies as st

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
