"""linear_attention — φ(x) = elu(x) + 1 and the associativity trick (Katharopoulos et al. 2020)."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, batch_dims, filled, seeds, sizes

from .common import call_shaped, peak_slope, tol

MEMORY_SIZES = (256, 1024, 2048)
MEMORY_D = 8
MAX_SLOPE = 1.5


@st.composite
def _qkv(draw, same_n=False):
    lead = draw(batch_dims(max_rank=1))
    n_q = draw(sizes(1, 17))
    n_k = n_q if same_n else draw(sizes(1, 17))
    d, d_v = draw(sizes(1, 8)), draw(sizes(1, 8))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    scale = draw(st.sampled_from((1.0, 1.0, 0.01, 30.0)))
    seed = draw(seeds())
    return (filled((*lead, n_q, d), dtype, scale, seed), filled((*lead, n_k, d), dtype, scale, seed + 1),
            filled((*lead, n_k, d_v), dtype, 1.0, seed + 2))


def _phi(x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


def _quadratic(q, k, v, causal=False):
    a = _phi(q) @ np.swapaxes(_phi(k), -1, -2)             # [..., N_q, N_k], all > 0
    if causal:
        a = np.tril(a)
    return (a / a.sum(axis=-1, keepdims=True)) @ np.asarray(v, dtype=np.float64)


def _tol(v):
    return tol(v.dtype, 10 * float(np.abs(v).max(initial=1.0)))


@check("elu_feature matches elu(x) + 1, and stays finite and positive at ±1000")
def lin_feature(ctx):
    @ctx.given(x=st.builds(filled, st.tuples(sizes(1, 9), sizes(1, 9)), st.sampled_from(FLOAT_DTYPES),
                           st.sampled_from((1.0, 30.0)), seeds()))
    def prop(x):
        ctx.expect("elu_feature", x)

    prop()
    ctx.expect("elu_feature", np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0]))


@check("linear_attention matches the reference on random shapes, dtypes and scales")
def lin_match(ctx):
    @ctx.given(arrays=_qkv())
    def prop(arrays):
        ctx.expect("linear_attention", *arrays, tol=_tol(arrays[2]))

    prop()


@check("causal_linear_attention matches the reference (self-attention, N_q = N_k)")
def lin_causal_match(ctx):
    @ctx.given(arrays=_qkv(same_n=True))
    def prop(arrays):
        ctx.expect("causal_linear_attention", *arrays, tol=_tol(arrays[2]))

    prop()


@check("the worked example of the stub: o = 1.9539")
def lin_worked_example(ctx):
    q, k, v = np.array([[0.0, 1.0]]), np.array([[0.0, 0.0], [1.0, -1.0]]), np.array([[1.0], [3.0]])
    ctx.expect("linear_attention", q, k, v)


@check("equals the quadratic form (φ(Q)φ(K)ᵀ normalised, times V), causal and not, exactly "
       "up to rounding")
def lin_equals_quadratic(ctx):
    q, k, v = (ctx.rng.standard_normal((2, 12, 5)) for _ in range(3))
    ctx.match(call_shaped(ctx, "linear_attention", q, k, v), _quadratic(q, k, v),
              "linear_attention versus the quadratic form with the same φ",
              rerun=lambda ns: ns.linear_attention(q.copy(), k.copy(), v.copy()))
    ctx.match(call_shaped(ctx, "causal_linear_attention", q, k, v), _quadratic(q, k, v, causal=True),
              "causal_linear_attention versus the quadratic form with a causal mask",
              rerun=lambda ns: ns.causal_linear_attention(q.copy(), k.copy(), v.copy()))


@check("causal: output i does not change when inputs after i change; output 0 is v[0]")
def lin_causality(ctx):
    n = 9
    q, k, v = (ctx.rng.standard_normal((n, 4)) for _ in range(3))
    base = call_shaped(ctx, "causal_linear_attention", q, k, v)
    ctx.match(base[0], v[0], "causal_linear_attention(q, k, v)[0] versus v[0]",
              rerun=lambda ns: ns.causal_linear_attention(q.copy(), k.copy(), v.copy())[0])
    for i in (2, 6):
        q2, k2, v2 = q.copy(), k.copy(), v.copy()
        for a in (q2, k2, v2):
            a[i + 1:] = ctx.rng.standard_normal(a[i + 1:].shape) * 5
        got = call_shaped(ctx, "causal_linear_attention", q2, k2, v2)
        ctx.match(got[: i + 1], base[: i + 1], f"outputs 0..{i} after changing every input after {i}",
                  rerun=lambda ns, a=(q2, k2, v2), i=i: ns.causal_linear_attention(
                      *(x.copy() for x in a))[: i + 1])


def _memory(ctx, name):
    rng = np.random.default_rng(7)

    def args(n):
        return tuple(rng.standard_normal((n, MEMORY_D)).astype(np.float32) for _ in range(3))

    slope, peaks, figures = peak_slope(ctx, name, args, MEMORY_SIZES)
    ctx.record(f"{name}: tracemalloc peaks {figures} (log-log slope {slope:.2f})")
    if slope >= MAX_SLOPE:
        ctx.fail(f"{name}: peak memory beyond the output ({figures}) grows like N^{slope:.2f}; "
                 f"linear growth has slope 1, an N × N weight matrix slope 2. Keep only the "
                 f"[d, d_v] summary (and, causal, its running value), never φ(Q)φ(K)ᵀ.",
                 misconception="quadratic_memory" if name == "linear_attention" else "causal_quadratic")


@check(f"peak memory grows linearly in N, not quadratically (tracemalloc in your worker at "
       f"N = {', '.join(map(str, MEMORY_SIZES))}, d = d_v = {MEMORY_D}, float32)")
def lin_memory_linear(ctx):
    q, k, v = (ctx.rng.standard_normal((6, 3)) for _ in range(3))
    ctx.expect("linear_attention", q, k, v)          # right values first, then their cost
    _memory(ctx, "linear_attention")


@check(f"causal: peak memory grows linearly in N too (N = {', '.join(map(str, MEMORY_SIZES))})")
def lin_causal_memory_linear(ctx):
    q, k, v = (ctx.rng.standard_normal((6, 3)) for _ in range(3))
    ctx.expect("causal_linear_attention", q, k, v)
    _memory(ctx, "causal_linear_attention")


# --- misconceptions ------------------------------------------------------------

def _make(phi, normalise=True, causal_mode=None, quadratic=False):
    def linear(q, k, v):
        fq, fk = phi(q).astype(np.float64), phi(k).astype(np.float64)
        if quadratic or causal_mode is not None:
            a = fq @ np.swapaxes(fk, -1, -2)
            if causal_mode == "inclusive":
                a = np.tril(a)
            elif causal_mode == "exclusive":
                a = np.tril(a, -1)
            num = a @ v
            den = a.sum(axis=-1, keepdims=True)
        else:
            num = fq @ (np.swapaxes(fk, -1, -2) @ v)
            den = (fq * fk.sum(axis=-2)[..., None, :]).sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = num / den if normalise else num
        return out.astype(q.dtype)

    return linear


def _elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(x.dtype)


def _ref_phi(x):
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0))).astype(x.dtype)


def _exp_phi(x):
    with np.errstate(over="ignore"):
        return np.exp(x).astype(x.dtype)


def _scaled_phi(q, k, v, causal=False):
    d = q.shape[-1]
    return _make(_ref_phi, causal_mode="inclusive" if causal else None)(
        (q / np.sqrt(d)).astype(q.dtype), (k / np.sqrt(d)).astype(k.dtype), v)


MISCONCEPTIONS = (
    # source: katharopoulos-2020 §3.2.1 — φ(x) = elu(x) + 1; elu alone goes negative, so
    # weights can be negative and the normaliser can reach zero.
    Misconception("elu_without_plus_one", "used φ(x) = elu(x), without the + 1",
                  {"elu_feature": _elu, "linear_attention": _make(_elu),
                   "causal_linear_attention": _make(_elu, causal_mode="inclusive")},
                  "elu(x) dips to −1 for negative x, so weights can be negative and rows can sum to "
                  "0. The + 1 keeps every feature positive."),
    # source: katharopoulos-2020 §3.2 — the elementwise exponential is not the softmax kernel:
    # Σ_d e^{q_d} e^{k_d} ≠ e^{q·k}; Performer (choromanski-2021) is what approximates it.
    Misconception("exp_feature", "used φ(x) = exp(x), hoping to recover softmax",
                  {"elu_feature": _exp_phi, "linear_attention": _make(_exp_phi),
                   "causal_linear_attention": _make(_exp_phi, causal_mode="inclusive")},
                  "exp(q)·exp(k) = Σ_d e^{q_d + k_d}, not e^{q·k}: it is another kernel, not softmax "
                  "attention, and it overflows. The kata's φ is elu(x) + 1."),
    # source: katharopoulos-2020 eq. (5) — the denominator φ(q_i)ᵀ Σ_j φ(k_j) makes the
    # weights sum to 1.
    Misconception("no_normaliser", "forgot the normaliser φ(q)ᵀ z",
                  {"linear_attention": _make(_ref_phi, normalise=False),
                   "causal_linear_attention": _make(_ref_phi, normalise=False, causal_mode="inclusive")},
                  "Divide φ(q_i)ᵀ S by φ(q_i)ᵀ z (z = Σ_j φ(k_j)): otherwise the output grows with N."),
    # source: katharopoulos-2020 eq. (4) — no 1/√d: the kernel φ(q)·φ(k) replaces exp(q·k/√d).
    Misconception("scaled_by_sqrt_d", "divided q and k by √d before φ",
                  {"linear_attention": _scaled_phi,
                   "causal_linear_attention": lambda q, k, v: _scaled_phi(q, k, v, causal=True)},
                  "The √d belongs to softmax attention; linear attention applies φ to q and k as "
                  "they are."),
    # source: katharopoulos-2020 eq. (9)–(10) — S_i includes the current key: position i may
    # attend to itself.
    Misconception("causal_excludes_self", "updated the running sums after reading them (key i "
                  "left out of o_i)",
                  {"causal_linear_attention": _make(_ref_phi, causal_mode="exclusive")},
                  "Add φ(k_i) v_iᵀ to S and φ(k_i) to z BEFORE computing o_i: a token sees itself."),
    # source: katharopoulos-2020 §3.4 — the causal form uses prefix sums S_i, not the full S.
    Misconception("causal_full_sums", "used the full sums S, z in the causal form",
                  {"causal_linear_attention": _make(_ref_phi)},
                  "Causal means o_i depends on keys 0 … i only: keep running sums."),
    # source: katharopoulos-2020 §3.2 — the point is the product order φ(Q)(φ(K)ᵀV).
    Misconception("quadratic_memory", "built the N × N matrix φ(Q)φ(K)ᵀ",
                  {"linear_attention": _make(_ref_phi, quadratic=True)},
                  "Same numbers, but O(N²) memory. Multiply φ(K)ᵀV first: a [d, d_v] matrix."),
    # source: katharopoulos-2020 §3.4 — the RNN view needs only the state (S_i, z_i).
    Misconception("causal_quadratic", "computed the causal form through a masked N × N matrix",
                  {"causal_linear_attention": _make(_ref_phi, causal_mode="inclusive")},
                  "A masked φ(Q)φ(K)ᵀ gives the same numbers in O(N²) memory; the running sums do "
                  "it in O(d·d_v) state."),
)

LINEAR_ATTENTION = Kata(
    id="linear_attention",
    level=22,
    title="Linear attention: φ(Q)(φ(K)ᵀV), and the RNN inside",
    path="history/linear_attention.py",
    entries=("elu_feature", "linear_attention", "causal_linear_attention"),
    checks=(lin_feature, lin_match, lin_causal_match, lin_worked_example, lin_equals_quadratic,
            lin_causality, lin_memory_linear, lin_causal_memory_linear),
    predictions=(
        Prediction("state_size", "numbers in the causal form's state (S_i and z_i), d = d_v = 64",
                   4160, kind="exact",
                   why="S_i is d × d_v = 4096 numbers and z_i has d = 64: 4160, the same at token 10 "
                       "and token 10 million — the RNN view."),
        Prediction("flop_ratio", "N = 4096, d = d_v = 64: quadratic over linear multiply-adds", 64.0,
                   rel_tol=0.05,
                   why="Quadratic: N²d + N²d_v = 2N²d; linear: Nd·d_v twice = 2Nd·d_v; the ratio "
                       "is N/d_v = 4096/64 = 64."),
    ),
    misconceptions=MISCONCEPTIONS,
    claims=(
        Claim("linear-equals-quadratic", "With a feature map φ, φ(Q)(φ(K)ᵀV) normalised equals the "
              "quadratic form (φ(Q)φ(K)ᵀ normalised)V, causal (as running sums) and not.",
              scope="exact", source="katharopoulos-2020", evidence=("lin_equals_quadratic", "lin_causality"),
              not_claimed="That it equals SOFTMAX attention: φ(q)·φ(k) is a different kernel, and "
                          "models trained with it behave differently."),
        Claim("linear-memory", "Linear attention's peak memory grows linearly in N (a log-log "
              "slope below 1.5 is required; an N × N matrix gives about 2).", scope="toy",
              source="katharopoulos-2020", evidence=("lin_memory_linear", "lin_causal_memory_linear"),
              not_claimed="Speed: no wall-clock time is measured, and for N below d·d_v the "
                          "quadratic form does fewer operations."),
    ),
    hints=(
        "φ: np.where(x > 0, x + 1, np.exp(np.minimum(x, 0))) — the minimum keeps exp from "
        "overflowing on the branch np.where throws away.",
        "Non-causal: S = φ(k)ᵀ @ v is [d, d_v]; z = φ(k).sum(axis=-2); o = (φ(q) @ S) / (φ(q) @ z)[..., None].",
        "Causal: loop i = 0 … N−1; S += outer(φ(k_i), v_i), z += φ(k_i), then o_i = φ(q_i)·S / φ(q_i)·z "
        "— or np.cumsum over [N, d, d_v] outer products, which is still linear in N.",
    ),
)
