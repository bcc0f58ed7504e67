"""Level 1 — RoPE: positions as rotations, so scores depend on the offset only."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import covers, layout_check
from attnkata.strategies import FLOAT_DTYPES, SCALES, batch_dims, filled, seeds, sizes

from .common import call_shaped, rope_tol


@st.composite
def _rope_inputs(draw):
    lead = draw(batch_dims())
    n = draw(sizes(1, 17))
    d = 2 * draw(sizes(1, 8))
    x = filled((*lead, n, d), draw(st.sampled_from(FLOAT_DTYPES)), draw(st.sampled_from(SCALES)),
               draw(seeds()))
    rng = np.random.default_rng(draw(seeds()))
    kind = draw(st.sampled_from(("arange", "offset", "random")))
    positions = np.arange(n)
    if kind == "offset":                      # a chunk that starts later in the sequence
        positions = positions + draw(st.integers(1, 40))
    elif kind == "random":                    # any integers: unsorted, repeated
        positions = rng.integers(0, 64, n)
    base = draw(st.sampled_from((10000.0, 10000.0, 100.0, 500000.0)))
    return x, positions, base


@check("matches the reference on random shapes, dtypes, positions and bases")
def rope_matches_reference(ctx):
    @ctx.given(case=_rope_inputs())
    def prop(case):
        x, positions, base = case
        if base == 10000.0:
            ctx.expect("rope", x, positions, tol=rope_tol(x, positions))   # the default base
        else:
            ctx.expect("rope", x, positions, base=base, tol=rope_tol(x, positions))

    prop()


@check("worked examples: one pair at position 1; four features at position 2")
def rope_worked_examples(ctx):
    ctx.expect("rope", np.array([[1.0, 0.0]]), np.array([1]))
    ctx.expect("rope", np.array([[1.0, 0.0, 1.0, 0.0]]), np.array([2]), base=100.0)  # the docstring's
    ctx.expect("rope", np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([2]), base=100.0)
    ctx.expect("rope", np.array([[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32),
               np.array([3, 0]))


@check("position 0 leaves a vector unchanged")
def rope_position_zero(ctx):
    x = ctx.rng.standard_normal((3, 8))
    got = ctx.call("rope", x, np.zeros(3, dtype=np.int64))
    ctx.match(got, x, "rope(x, positions=[0, 0, 0]) versus x",
              rerun=lambda ns: ns.rope(x.copy(), np.zeros(3, dtype=np.int64)))


@check("rotation preserves every vector's norm")
def rope_preserves_norms(ctx):
    x = ctx.rng.standard_normal((2, 7, 12)) * 3
    positions = ctx.rng.integers(0, 200, 7)
    got = call_shaped(ctx, "rope", x, positions)
    ctx.match(np.linalg.norm(got, axis=-1), np.linalg.norm(x, axis=-1),
              "norms of rope(x, positions) versus norms of x",
              rerun=lambda ns: np.linalg.norm(ns.rope(x.copy(), positions.copy()), axis=-1))


@check("scores rope(q, m)·rope(k, n) depend only on m − n: shifting both positions changes nothing")
def rope_relative_scores(ctx):
    d = 16
    q = ctx.rng.standard_normal((6, d))
    k = ctx.rng.standard_normal((6, d))
    m = np.array([0, 1, 2, 5, 9, 30])
    n = np.array([0, 3, 1, 5, 2, 17])
    for shift in (1, 7, 100):
        def scores(ns, shift=shift):
            rq = ns.rope(q.copy(), m + shift)
            rk = ns.rope(k.copy(), n + shift)
            return np.einsum("id,id->i", rq, rk)

        want = np.einsum("id,id->i", call_shaped(ctx, "rope", q, m), call_shaped(ctx, "rope", k, n))
        got = np.einsum("id,id->i", call_shaped(ctx, "rope", q, m + shift),
                        call_shaped(ctx, "rope", k, n + shift))
        ctx.match(got, want, f"scores rope(q, m + {shift})·rope(k, n + {shift}) versus "
                  f"rope(q, m)·rope(k, n)", rerun=scores)


@covers("large_positions")
@check("float32 at positions 10⁵ to 10⁶: angles in float64 keep every pair's turn exact")
def rope_large_positions(ctx):
    # Tolerance from float32 rounding of the output alone: against float64 arithmetic the
    # reference is off by at most 0.42·ε·max|x| here, and another correct float32
    # implementation by 0.51·ε·max|x| (measured over 600 random cases); 4·ε·max|x| allows
    # 8×. Angles rounded to float32 (p·θ at p = 10⁶ is off by up to ~0.06 rad) miss it by
    # more than 17,000·ε·max|x|.
    eps = float(np.finfo(np.float32).eps)
    positions = np.array([100_000, 131_071, 250_000, 524_287, 999_999, 1_000_000])
    for base in (10000.0, 500000.0):
        x = ctx.rng.standard_normal((2, 6, 64)).astype(np.float32)
        ctx.expect("rope", x, positions, base=base, tol=(1e-6, 4 * eps * float(np.abs(x).max())))


rope_strided_inputs = layout_check(
    "rope", lambda ctx: [((ctx.rng.standard_normal((2, 5, 8)), np.array([0, 3, 1, 9, 40])), {}),
                         ((ctx.rng.standard_normal((7, 6)).astype(np.float32),
                           np.arange(7) + 100), {"base": 500.0})],
    "transposed, sliced and Fortran-ordered x (views of other buffers) give the same rotation",
    id="rope_strided_inputs", layouts=("transposed", "sliced", "fortran"), which=(0,))


def _angles(positions, d, base, exponent=2.0):
    i = np.arange(d // 2)
    return np.asarray(positions, dtype=np.float64)[:, None] * base ** (-exponent * i / d)


def _rotate_pairs(x, theta):
    cos, sin = np.cos(theta).astype(x.dtype), np.sin(theta).astype(x.dtype)
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def _rotate_half(x, positions, base=10000.0):
    d = x.shape[-1]
    theta = _angles(positions, d, base)
    cos, sin = np.cos(theta).astype(x.dtype), np.sin(theta).astype(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def _angles_in_x_dtype(x, positions, base=10000.0):
    d = x.shape[-1]
    i = np.arange(d // 2, dtype=x.dtype)
    inv_freq = (np.asarray(base, dtype=x.dtype) ** (-2 * i / np.asarray(d, dtype=x.dtype)))
    theta = np.asarray(positions).astype(x.dtype)[:, None] * inv_freq.astype(x.dtype)
    cos, sin = np.cos(theta), np.sin(theta)
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def _wrong_exponent(x, positions, base=10000.0):
    return _rotate_pairs(x, _angles(positions, x.shape[-1], base, exponent=1.0))


def _opposite(x, positions, base=10000.0):
    return _rotate_pairs(x, -_angles(positions, x.shape[-1], base))


def _index_positions(x, positions, base=10000.0):
    return _rotate_pairs(x, _angles(np.arange(x.shape[-2]), x.shape[-1], base))


ROPE = Kata(
    id="rope",
    level=1,
    title="RoPE: position as a rotation",
    path="level1/rope.py",
    entries=("rope",),
    checks=(rope_matches_reference, rope_worked_examples, rope_position_zero, rope_preserves_norms,
            rope_relative_scores, rope_large_positions, rope_strided_inputs),
    predictions=(
        Prediction("pair1_angle", "d = 8, base = 10000, position 3: the rotation angle (radians) "
                   "of pair i = 1, features (2, 3)", 0.3, rel_tol=1e-6,
                   why="θ = 3 · 10000^(−2·1/8) = 3 · 10000^(−1/4) = 3 · 0.1 = 0.3."),
        Prediction("shift_changes_score", "does rope(q, m)·rope(k, n) change when m and n both "
                   "grow by 5? (choose: yes, no)", "no", kind="choice", choices=("yes", "no"),
                   why="Rotating both by the same extra angle leaves the angle between them: the "
                       "score depends on m − n only."),
    ),
    misconceptions=(
        Misconception("rotate_half", "paired feature i with i + d/2 (rotate-half, GPT-NeoX "
                      "layout) instead of interleaved pairs (2i, 2i+1)", {"rope": _rotate_half},
                      "This kata follows the RoFormer paper: pair i is features 2i and 2i+1, "
                      "x[..., 0::2] and x[..., 1::2]. The half-split layout is another convention, "
                      "equivalent only after permuting the features."),
        Misconception("wrong_exponent", "frequency exponent off by 2: base^(−i/d) instead of "
                      "base^(−2i/d)", {"rope": _wrong_exponent},
                      "Pair i turns at base^(−2i/d): 2i is the index of the pair's first feature, "
                      "so the slowest pair turns at about 1/base per position."),
        Misconception("opposite_direction", "rotated in the opposite direction (sign of sin flipped)",
                      {"rope": _opposite},
                      "A rotation by +θ maps (a, b) to (a·cosθ − b·sinθ, a·sinθ + b·cosθ)."),
        # source: long-context RoPE precision reports on the Hugging Face transformers and
        # vLLM trackers (inv_freq and position·inv_freq kept in float32 or bf16)
        Misconception("angles_low_precision", "computed the angles p·base^(−2i/d) in float32 "
                      "(x's dtype) instead of float64", {"rope": _angles_in_x_dtype},
                      "float32 keeps about 7 significant digits: at position 10⁶ the angle "
                      "p·θ is off by up to ~0.06 rad, so far-apart tokens get visibly wrong "
                      "rotations. Build the angle table in float64 and cast only cos and sin."),
        Misconception("index_not_positions", "used the row index instead of the given positions",
                      {"rope": _index_positions},
                      "Positions are an argument: a cached chunk may start at position 100, and "
                      "positions need not be 0, 1, 2, …"),
    ),
    claims=(
        Claim("rope-relative", "With RoPE, the score rope(q, m)·rope(k, n) depends on the offset "
              "m − n only.", scope="exact", source="su-2021-rope",
              evidence=("rope_relative_scores",),
              not_claimed="Nothing about extrapolation to lengths beyond training, or the decay "
                          "of scores with distance that the paper also discusses."),
        Claim("rope-norm", "RoPE rotates: it preserves the norm of every query and key.",
              scope="exact", source="su-2021-rope", evidence=("rope_preserves_norms",),
              not_claimed="Nothing about models that apply RoPE to only part of each head."),
    ),
    hints=(
        "Work on pairs: a = x[..., 0::2] and b = x[..., 1::2] are [..., N, d/2]; pair i at "
        "position p turns by θ = p · base^(−2i/d).",
        "Build θ as an [N, d/2] table: positions[:, None] * base ** (-2 * np.arange(d // 2) / d), "
        "in float64; it broadcasts over the leading dims of x.",
        "out = np.empty_like(x); out[..., 0::2] = a·cosθ − b·sinθ; out[..., 1::2] = a·sinθ + b·cosθ "
        "(cast cos and sin to x.dtype so float32 stays float32).",
    ),
)
