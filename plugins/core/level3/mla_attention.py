"""Level 3 · mla_attention: attending through a compressed latent (MLA), absorbed or not."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import FLOAT_DTYPES, SCALES, filled, seeds, sizes

from .common import peak_bytes


@st.composite
def _mla_case(draw):
    n_q, n, d, d_c, d_v = (draw(sizes(1, 9)), draw(sizes(1, 17)), draw(sizes(1, 16)),
                           draw(sizes(1, 16)), draw(sizes(1, 8)))
    dtype, scale, seed = draw(st.sampled_from(FLOAT_DTYPES)), draw(st.sampled_from(SCALES)), draw(seeds())
    q = filled((n_q, d), dtype, scale, seed)
    c_kv = filled((n, d_c), dtype, 1.0, seed + 1)
    w_uk = filled((d_c, d), dtype, 1 / np.sqrt(d_c), seed + 2)
    w_uv = filled((d_c, d_v), dtype, 1 / np.sqrt(d_c), seed + 3)
    return q, c_kv, w_uk, w_uv, draw(st.booleans())


@check("matches the reference on random shapes, dtypes and scales, absorbed or not")
def mla_matches_reference(ctx):
    @ctx.given(case=_mla_case())
    def prop(case):
        *arrays, absorb = case
        ctx.expect("mla_attention", *arrays, absorb=absorb)

    prop()


@check("absorb=True equals absorb=False (square d = d_c included, where a wrong transpose still runs)")
def mla_absorb_exact(ctx):
    rng = np.random.default_rng(int(ctx.rng.integers(2**31)))
    for n_q, n, d, d_c, d_v in ((3, 10, 6, 6, 4), (1, 9, 8, 3, 8), (4, 5, 2, 7, 3)):
        q = rng.standard_normal((n_q, d))
        c_kv = rng.standard_normal((n, d_c))
        w_uk, w_uv = rng.standard_normal((d_c, d)), rng.standard_normal((d_c, d_v))
        plain = ctx.expect("mla_attention", q, c_kv, w_uk, w_uv)
        ctx.expect("mla_attention", q, c_kv, w_uk, w_uv, absorb=True)
        ctx.match(ctx.call("mla_attention", q, c_kv, w_uk, w_uv, absorb=True), plain,
                  f"mla_attention(absorb=True) vs absorb=False, d={d}, d_c={d_c}")


MLA_N, MLA_D, MLA_DC, MLA_DV = 8192, 256, 32, 8


@check(f"absorb=True builds no [N, d] keys: peak memory at N = {MLA_N}, d = {MLA_D}, d_c = {MLA_DC} "
       f"stays under half of one K (tracemalloc)")
def mla_absorb_no_keys(ctx):
    rng = np.random.default_rng(5)
    q = rng.standard_normal((1, MLA_D)).astype(np.float32)
    c_kv = rng.standard_normal((MLA_N, MLA_DC)).astype(np.float32)
    w_uk = rng.standard_normal((MLA_DC, MLA_D)).astype(np.float32)
    w_uv = rng.standard_normal((MLA_DC, MLA_DV)).astype(np.float32)
    ctx.expect("mla_attention", q, c_kv[:40], w_uk, w_uv, absorb=True)
    what = f"mla_attention(q [1, {MLA_D}], c_kv [{MLA_N}, {MLA_DC}], ..., absorb=True)"
    peak = peak_bytes(ctx, "mla_attention", (q, c_kv, w_uk, w_uv), {"absorb": True}, what)
    k_bytes = MLA_N * MLA_D * 4
    ctx.record(f"absorbed path peak {peak / 1e6:.2f} MB vs {k_bytes / 1e6:.1f} MB for the keys "
               f"(tracemalloc, N={MLA_N})")
    if peak > k_bytes // 2:
        ctx.fail(f"{what}: peak memory {peak / 1e6:.1f} MB; the keys c_kv @ w_uk would be "
                 f"{k_bytes / 1e6:.1f} MB and the absorbed path should stay under "
                 f"{k_bytes / 2e6:.1f} MB. K was materialised: fold w_uk into the query instead",
                 misconception="absorb_builds_k")


def _softmax_rows(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mla(q, c_kv, w_uk, w_uv, absorb=False, *, transpose=True, latent_scale=False, scale=True,
         build_k=False):
    d = c_kv.shape[-1] if latent_scale and absorb else q.shape[-1]
    factor = np.asarray(1 / np.sqrt(d) if scale else 1.0, dtype=q.dtype)
    if absorb and not build_k:
        q_lat = q @ (w_uk.T if transpose else w_uk)
        p = _softmax_rows((q_lat @ c_kv.T) * factor)
        return ((p @ c_kv) @ w_uv).astype(q.dtype)
    p = _softmax_rows((q @ (c_kv @ w_uk).T) * factor)
    return (p @ (c_kv @ w_uv)).astype(q.dtype)


def _wrong_transpose(q, c_kv, w_uk, w_uv, absorb=False):
    return _mla(q, c_kv, w_uk, w_uv, absorb, transpose=False)


def _latent_scale(q, c_kv, w_uk, w_uv, absorb=False):
    return _mla(q, c_kv, w_uk, w_uv, absorb, latent_scale=True)


def _builds_k(q, c_kv, w_uk, w_uv, absorb=False):
    return _mla(q, c_kv, w_uk, w_uv, absorb, build_k=True)


def _no_scale(q, c_kv, w_uk, w_uv, absorb=False):
    return _mla(q, c_kv, w_uk, w_uv, absorb, scale=False)



def _mla_layout_cases(ctx):
    args = (ctx.rng.standard_normal((4, 8)), ctx.rng.standard_normal((6, 3)),
            ctx.rng.standard_normal((3, 8)), ctx.rng.standard_normal((3, 5)))
    yield args, {}
    yield args, {"absorb": True}


mla_strided_inputs = layout_check(
    "mla_attention", _mla_layout_cases,
    "q, the latent cache and both up-projections as transposed, sliced and Fortran-ordered "
    "views, absorbed or not", id="mla_strided_inputs", layouts=("transposed", "sliced", "fortran"))


MLA_ATTENTION = Kata(
    id="mla_attention", level=3, title="Multi-head latent attention: cache a latent, absorb W_UK",
    path="level3/mla_attention.py", entries=("mla_attention",),
    checks=(mla_matches_reference, mla_absorb_exact, mla_absorb_no_keys,
            mla_strided_inputs),
    predictions=(
        Prediction("mla_bytes_per_token_layer", "MLA caches one latent of d_c = 512 numbers per "
                   "token per layer, in fp16: bytes per token per layer?", 1024, rel_tol=0.01,
                   why="512 × 2 bytes = 1024 bytes: no separate K and V, no heads axis."),
        Prediction("mha_over_mla", "MHA with 32 heads of d = 128 (fp16) stores how many times "
                   "more per token per layer than that latent?", 16, rel_tol=0.01,
                   why="32·128·2·2 = 16,384 bytes against 1,024: 16×. (DeepSeek-V2 also caches a "
                       "small RoPE key, left out here.)"),
        Prediction("absorbed_query_width", "with d = 128 and d_c = 512, how many numbers wide is "
                   "the absorbed query q·W_UKᵀ?", 512, kind="exact",
                   why="It lives in the latent space: [N_q, d_c], so it can meet c_kv directly."),
    ),
    misconceptions=(
        Misconception("absorb_wrong_transpose", "absorbed with q @ W_UK instead of q @ W_UKᵀ",
                      {"mla_attention": _wrong_transpose},
                      "k_j = c_j W_UK, so q·k_j = q W_UKᵀ c_jᵀ: the query is multiplied by the "
                      "TRANSPOSE of W_UK ([d, d_c]). Square shapes hide the mistake."),
        Misconception("scale_by_latent", "scaled absorbed scores by 1/√d_c instead of 1/√d",
                      {"mla_attention": _latent_scale},
                      "Absorption regroups the same product q·k; the scale still belongs to the "
                      "key width d."),
        Misconception("absorb_builds_k", "with absorb=True still built K = c_kv @ W_UK",
                      {"mla_attention": _builds_k},
                      "The point of absorbing is never to build [N, d] keys: compute q W_UKᵀ "
                      "([N_q, d_c]) and score it against c_kv."),
        Misconception("forgot_scale", "forgot the 1/√d scaling", {"mla_attention": _no_scale},
                      "Divide the scores by √d, d being the width of q and k."),
    ),
    claims=(
        Claim("mla-absorption-exact", "Absorbing W_UK into the query gives exactly the same "
              "attention as rebuilding K from the latent.", scope="exact", source="deepseek-2024-mla",
              evidence=("mla_absorb_exact", "mla_matches_reference"),
              not_claimed="One head, no decoupled RoPE part; nothing about model quality."),
        Claim("mla-no-keys", "The absorbed path never materialises the [N, d] keys.", scope="toy",
              source="deepseek-2024-mla", evidence=("mla_absorb_no_keys",),
              not_claimed=f"Measured with tracemalloc in NumPy at N = {MLA_N}, d = {MLA_D}."),
    ),
    hints=(
        "Without absorbing: k = c_kv @ w_uk [N, d], v = c_kv @ w_uv [N, d_v], then ordinary "
        "attention softmax(q kᵀ / √d) v.",
        "q kᵀ = q (c_kv W_UK)ᵀ = (q W_UKᵀ) c_kvᵀ: multiply the query by w_uk.T first, and the "
        "scores come out without any [N, d] array.",
        "absorb=True: q_lat = q @ w_uk.T; p = softmax(q_lat @ c_kv.T / √d); o = (p @ c_kv) @ w_uv "
        "— √d with d = q.shape[-1], not d_c.",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): the same inputs absorbed and not, square
# (d = d_c: a wrong transpose still runs) and not, d = 1 (no scale to forget), and the
# absorbed path's peak memory next to a right answer.
# ---------------------------------------------------------------------------

from typing import Any  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, Raised, all_of, attach, attempt, check as _holds,  # noqa: E402
                               close, equals, measure)


def _mla_in(n_q: int, n: int, d: int, d_c: int, d_v: int, seed: int) -> tuple:
    r = np.random.default_rng(seed)
    return (r.standard_normal((n_q, d)), r.standard_normal((n, d_c)),
            r.standard_normal((d_c, d)) / np.sqrt(d_c), r.standard_normal((d_c, d_v)))


_SQUARE = _mla_in(3, 9, 6, 6, 4, 1431)    # d = d_c
_WIDE = _mla_in(3, 9, 12, 4, 5, 1432)     # d = 12, d_c = 4
_NARROW = _mla_in(2, 7, 4, 9, 3, 1433)    # d = 4, d_c = 9
_D1 = _mla_in(3, 8, 1, 5, 4, 1434)        # d = 1: 1/√d = 1


def _attend(q, c_kv, w_uk, w_uv, scale, latent_out=False):
    """Plain MLA attention in float64 at ``scale``; ``latent_out``: stop before W_UV."""
    s = (q @ (c_kv @ w_uk).T) * scale
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return p @ c_kv if latent_out else p @ (c_kv @ w_uv)


def _call(args: tuple, absorb: bool) -> Any:
    return lambda ns: ns.mla_attention(*(a.copy() for a in args), absorb=absorb)


def _both(*runs: tuple) -> Any:
    return lambda ns: tuple(attempt(lambda r=r: _call(*r)(ns)) for r in runs)


def _wrong(g: Any, w: Any) -> bool:
    return isinstance(g, Raised) or not close(g, w)


def _peak_and_value(n: int, d: int) -> Any:
    def run(ns):
        r = np.random.default_rng(n + d)
        q = r.standard_normal((1, d)).astype(np.float32)
        c = r.standard_normal((n, 32)).astype(np.float32)
        w_uk, w_uv = (r.standard_normal((32, w)).astype(np.float32) for w in (d, 8))
        seen = measure(ns, "attnkata.probes", "peak_call", "mla_attention", (q, c, w_uk, w_uv),
                       {"absorb": True})
        return float(seen["peak"]), attempt(lambda: _call(_WIDE, True)(ns))
    return run


def _keys_built(n: int, d: int) -> Any:
    return _holds(lambda g, w: close(g[1], w[1]) and g[0] > 0.5 * n * d * 4)


def _latent_out(q, c_kv, w_uk, w_uv, absorb=False):
    if not absorb:
        return _mla(q, c_kv, w_uk, w_uv)
    p = _softmax_rows((q @ w_uk.T @ c_kv.T) / np.sqrt(q.shape[-1]))
    return (p @ c_kv).astype(q.dtype)          # the latent output, W_UV never applied


def _absorbed_einsum(q, c_kv, w_uk, w_uv, absorb=False):
    """Correct, written differently: einsum, and W_UV folded into the latent values first."""
    d = q.shape[-1]
    if absorb:
        s = np.einsum("qd,cd,nc->qn", q, w_uk, c_kv) / np.sqrt(d)
    else:
        s = np.einsum("qd,nd->qn", q, np.einsum("nc,cd->nd", c_kv, w_uk)) / np.sqrt(d)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s) / np.exp(s).sum(axis=-1, keepdims=True)
    return np.einsum("qn,nc,cv->qv", p, c_kv, w_uv).astype(q.dtype)


def _last_axis_is_latent(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and got[:-1] == want[:-1] and got[-1] != want[-1]


MLA_ATTENTION = attach(
    MLA_ATTENTION,
    add=(
        # source: PaddlePaddle/PaddleFleet#1679 (MLA's "V de-absorption": the latent output
        # must still go through W_UV); Dao-AILab/flash-attention#1504 (the kernel returns
        # the 512-wide latent, the caller up-projects it)
        Misconception("absorbed_skips_w_uv", "absorb=True returned the latent output p·c_kv "
                      "([N_q, d_c]) without W_UV", {"mla_attention": _latent_out},
                      "Absorbing W_UK changes how scores are computed; the values are still "
                      "c_kv @ W_UV. (p @ c_kv) is a latent of width d_c: multiply it by w_uv to "
                      "get [N_q, d_v]."),
    ),
    probes={
        # source: ROCm/rocm-libraries#9442 (review: the absorbed weight's shape written with
        # the wrong axis); deepseek-2024-mla appendix (q·W_UKᵀ, not q·W_UK)
        "absorb_wrong_transpose": (
            Probe("d = d_c = 6: absorb=False, then absorb=True",
                  _both((_SQUARE, False), (_SQUARE, True)),
                  _holds(lambda g, w: close(g[0], w[0]) and _wrong(g[1], w[1])
                         and not isinstance(g[1], Raised))),
            Probe("d = 12, d_c = 4: absorb=False, then absorb=True",
                  _both((_WIDE, False), (_WIDE, True)),
                  _holds(lambda g, w: close(g[0], w[0]) and isinstance(g[1], Raised)
                         and g[1].type == "ValueError")),
        ),
        # source: deepseek-ai/DeepSeek-V2#23 (a learner unsure which scale factors MLA
        # applies, and where); the absorbed product is d_c wide, its scale is still 1/√d
        "scale_by_latent": (
            Probe("absorb=True at d = d_c (same scale either way), then at d = 12, d_c = 4",
                  _both((_SQUARE, True), (_WIDE, True)),
                  _holds(lambda g, w: close(g[0], w[0]) and _wrong(g[1], w[1]))),
            Probe("absorb=True at d = 4, d_c = 9: attention scaled by 1/√d_c",
                  _call(_NARROW, True),
                  all_of(equals(_attend(*_NARROW, 1 / np.sqrt(9))),
                         _holds(lambda g, w: not close(g, w))), axes=("query", "feature")),
        ),
        # source: deepseek-2024-mla §2.1.2 (absorption exists so that K is never built);
        # Avarok-Cybersecurity/atlas#1078 (review: an MLA decode that moved the whole
        # cache per token, O(T) work where one row was needed)
        "absorb_builds_k": (
            Probe("absorb=True at N = 8192, d = 256, d_c = 32: peak memory, and a right answer",
                  _peak_and_value(8192, 256), _keys_built(8192, 256)),
            Probe("absorb=True at N = 4096, d = 512, d_c = 32: peak memory, and a right answer",
                  _peak_and_value(4096, 512), _keys_built(4096, 512)),
        ),
        # source: vaswani-2017 §3.2.1; invisible at d = 1, so the probes compare d = 1 and d > 1
        "forgot_scale": (
            Probe("absorb=False at d = 1, then at d = 12", _both((_D1, False), (_WIDE, False)),
                  _holds(lambda g, w: close(g[0], w[0]) and _wrong(g[1], w[1]))),
            Probe("absorb=False at d = 12: attention at scale 1", _call(_WIDE, False),
                  all_of(equals(_attend(*_WIDE, 1.0)), _holds(lambda g, w: not close(g, w))),
                  axes=("query", "feature")),
        ),
        "absorbed_skips_w_uv": (
            Probe("absorb=True at d = 12, d_c = 4, d_v = 5: the latent output",
                  _call(_WIDE, True), equals(_attend(*_WIDE, 1 / np.sqrt(12), latent_out=True))),
            Probe("absorb=False, then absorb=True (d = 4, d_c = 9, d_v = 3)",
                  _both((_NARROW, False), (_NARROW, True)),
                  _holds(lambda g, w: close(g[0], w[0]) and not isinstance(g[1], Raised)
                         and np.shape(g[1]) == (2, 9))),
        ),
    },
    raises={"absorb_wrong_transpose": (("ValueError", r"mismatch|align|shape"),)},
    shapes={"absorbed_skips_w_uv": (_last_axis_is_latent,)},
    diagnostics=(Probe("absorb=True at d = 12, d_c = 4", _call(_WIDE, True),
                       axes=("query", "feature")),),
    variants=(Fake("einsum_chain", {"mla_attention": _absorbed_einsum}),),
)
