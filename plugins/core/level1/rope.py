"""Level 1 — RoPE: positions as rotations, so scores depend on the offset only."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

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


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): each convention mistake is one deterministic rotation, so
# two inputs (different d, positions and base) pin it; the precision mistake is right at
# small positions, wrong in float32 at 10⁵–10⁶ by a small turn; a layout that mixes the two
# conventions is right at d = 2 and no longer preserves norms beyond it.
# Where learners go wrong — a source note per misconception:
# - rotate_half: Dao-AILab/flash-attention#288 (interleaved or not, per checkpoint) and
#   henrywoo/pyllama#83, zai-org/ChatGLM-6B#838 (rotate_half versus rotate_every_two).
# - wrong_exponent: rasbt/LLMs-from-scratch#838 (which index goes in base^(−2i/d)).
# - opposite_direction: the sign of the sine term (a rotation by −θ).
# - angles_low_precision: note at the misconception above (inv_freq kept in low precision).
# - index_not_positions: Blaizzy/mlx-vlm#1983 and pytorch/executorch#2010 (decode rotates
#   by the row index, ignoring the cache offset).
# - layout_mixed: note at its implementation below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, attempt, check as holds, close  # noqa: E402


def _mixed_layout(x, positions, base=10000.0):
    # source: raiyanyahya/how-to-train-your-gpt#6 and facebookresearch/xformers#779 (cos and
    # sin laid out as cat(freqs, freqs) for rotate-half, applied to interleaved pairs: the
    # two features of a pair turn by different angles, so it is no rotation at all)
    d = x.shape[-1]
    theta = _angles(positions, d, base)
    emb = np.concatenate([theta, theta], axis=-1)
    cos, sin = np.cos(emb).astype(x.dtype), np.sin(emb).astype(x.dtype)
    other = np.empty_like(x)
    other[..., 0::2], other[..., 1::2] = -x[..., 1::2], x[..., 0::2]
    return x * cos + other * sin


_RR = np.random.default_rng(1404)
_X1, _P1 = _RR.standard_normal((3, 8)), np.array([0, 5, 11])
_X2, _P2 = _RR.standard_normal((2, 4, 6)), np.array([7, 1, 30, 2])
_XS = _RR.standard_normal((4, 64)).astype(np.float32)
_SMALL, _LARGE = np.array([3, 0, 7, 2]), np.array([999_999, 524_287, 1_000_000, 750_001])
_X2D = _RR.standard_normal((4, 2))
_XT = _RR.standard_normal((4, 32)).astype(np.float32)
_SMALL2, _LARGE2 = np.array([1, 5, 2, 9]), np.array([100_000, 262_143, 600_000, 999_983])


def _same_as(fn, x, positions, base):
    want = fn(x, positions, base)
    what = f"x {list(x.shape)}, positions {positions.tolist()}, base {base:g}"
    return Probe.of(what, "rope", x, positions, base=base,
                    holds=holds(lambda g, w: close(g, want) and not close(want, w)),
                    axes=("batch", "token", "feature")[-x.ndim:])


def _two(label, a, b, pred):
    """One probe over two calls: ``pred(got_a, got_b, want_a, want_b)``."""
    return Probe(label, lambda ns: (attempt(lambda: ns.rope(*a[0], **a[1])),
                                    attempt(lambda: ns.rope(*b[0], **b[1]))),
                 holds(lambda g, w: pred(g[0], g[1], w[0], w[1])))


def _norms_changed(g, x):
    return not np.allclose(np.linalg.norm(np.asarray(g, float), axis=-1), np.linalg.norm(x, axis=-1),
                           rtol=1e-6)


ROPE = attach(
    ROPE,
    add=(
        Misconception("layout_mixed", "cos/sin laid out for the half-split convention "
                      "(cat(θ, θ)) but applied to interleaved pairs",
                      {"rope": _mixed_layout},
                      "Pair i = features (2i, 2i+1) turns by ONE angle θ_i: repeat each angle for "
                      "both features of its pair (np.repeat(θ, 2, axis=-1)), or work on "
                      "a = x[..., 0::2], b = x[..., 1::2] directly."),
    ),
    probes={
        "rotate_half": (_same_as(_rotate_half, _X1, _P1, 10000.0),
                        _same_as(_rotate_half, _X2, _P2, 100.0)),
        "wrong_exponent": (_same_as(_wrong_exponent, _X1, _P1, 10000.0),
                           _same_as(_wrong_exponent, _X2, _P2, 100.0)),
        "opposite_direction": (_same_as(_opposite, _X1, _P1, 10000.0),
                               _same_as(_opposite, _X2, _P2, 100.0)),
        "index_not_positions": (
            _two("positions 0–3, then 50–53", ((_X2[0], np.arange(4)), {}),
                 ((_X2[0], np.arange(4) + 50), {}),
                 lambda ga, gb, wa, wb: close(ga, wa) and close(gb, wa) and not close(wb, wa)),
            _same_as(lambda x, p, base: _rotate_pairs(x, _angles(np.arange(x.shape[-2]), x.shape[-1],
                                                                  base)),
                     _X2[1], np.array([3, 1, 2, 0]), 10000.0),
        ),
        "angles_low_precision": (
            _two("float32 at positions 0–7, then at 5·10⁵–10⁶", ((_XS, _SMALL), {}),
                 ((_XS, _LARGE), {}), lambda ga, gb, wa, wb: close(ga, wa) and not close(gb, wb)),
            _two("float32 at positions 1–9, then at 10⁵–10⁶: off by a small turn, norms kept",
                 ((_XT, _SMALL2), {}), ((_XT, _LARGE2), {}),
                 lambda ga, gb, wa, wb: close(ga, wa) and not close(gb, wb)
                 and float(np.abs(np.asarray(gb, float) - wb).max()) < 0.2 * float(np.abs(_XT).max())
                 and not _norms_changed(gb, _XT.astype(np.float64))),
        ),
        "layout_mixed": (
            _two("d = 2, then d = 8", ((_X2D, np.array([1, 4, 9, 2])), {}), ((_X1, _P1), {}),
                 lambda ga, gb, wa, wb: close(ga, wa) and _norms_changed(gb, _X1)),
            _same_as(_mixed_layout, _X2, _P2, 100.0),
        ),
    },
    diagnostics=(
        Probe.of("x [3, 8] at positions 0, 5, 11", "rope", _X1, _P1, axes=("token", "feature")),
        Probe.of("x [4, 6] at positions 7, 1, 30, 2, base 100", "rope", _X2[0], _P2, base=100.0,
                 axes=("token", "feature")),
    ),
    variants=(
        Fake("complex_multiply", {"rope": lambda x, positions, base=10000.0: _rope_complex(
            x, positions, base)}),
        Fake("rotation_matrix", {"rope": lambda x, positions, base=10000.0: _rope_matrix(
            x, positions, base)}),
    ),
)


def _rope_complex(x, positions, base=10000.0):
    """A correct variant: pairs as complex numbers times e^{iθ} (angles in float64)."""
    d = x.shape[-1]
    theta = np.asarray(positions, np.float64)[:, None] * base ** (-np.arange(0, d, 2) / d)
    z = (x[..., 0::2].astype(np.float64) + 1j * x[..., 1::2]) * np.exp(1j * theta)
    out = np.empty(x.shape, np.float64)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out.astype(x.dtype)


def _rope_matrix(x, positions, base=10000.0):
    """A correct variant: an explicit 2×2 rotation per pair, applied with einsum."""
    d = x.shape[-1]
    theta = _angles(positions, d, base)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)       # [N, d/2, 2, 2]
    pairs = x.reshape(*x.shape[:-1], d // 2, 2).astype(np.float64)
    return np.einsum("npij,...npj->...npi", rot, pairs).reshape(x.shape).astype(x.dtype)
# == end of diagnosis by behaviour, levels 0-2 ==
