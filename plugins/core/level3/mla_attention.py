"""Level 3 · mla_attention: attending through a compressed latent (MLA), absorbed or not."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

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
