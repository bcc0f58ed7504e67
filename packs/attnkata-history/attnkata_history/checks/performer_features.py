"""performer_features — positive random features for the softmax kernel (Choromanski et al. 2021)."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, batch_dims, filled, seeds, sizes

from .common import call_shaped, dense_attention, tol

UNBIASED_M = 20000          # features per estimate in the unbiasedness check
UNBIASED_Z = 4.0            # allowed |estimate − exp(x·y)| in standard errors
ERROR_MS = (16, 64, 256, 1024)


@st.composite
def _inputs(draw):
    lead = draw(batch_dims(max_rank=1))
    n_q, n_k, d, d_v, m = (draw(sizes(1, 9)), draw(sizes(1, 9)), draw(sizes(1, 8)), draw(sizes(1, 6)),
                           draw(sizes(1, 40)))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    scale = draw(st.sampled_from((1.0, 0.5, 0.01)))
    seed = draw(seeds())
    return (filled((*lead, n_q, d), dtype, scale, seed), filled((*lead, n_k, d), dtype, scale, seed + 1),
            filled((*lead, n_k, d_v), dtype, 1.0, seed + 2), filled((m, d), dtype, 1.0, seed + 3))


@check("positive_features matches exp(x Wᵀ − |x|²/2)/√m on random shapes, dtypes and m")
def perf_features_match(ctx):
    @ctx.given(case=_inputs())
    def prop(case):
        q, _, _, w = case
        ctx.expect("positive_features", q, w)

    prop()


@check("performer_attention matches the reference on random shapes, dtypes and m")
def perf_attention_match(ctx):
    @ctx.given(case=_inputs())
    def prop(case):
        ctx.expect("performer_attention", *case, tol=tol(case[0].dtype, 10.0))

    prop()


@check("the worked example of the stub: φ([1]) with W = [[1], [−1]]")
def perf_worked_example(ctx):
    w = np.array([[1.0], [-1.0]])
    ctx.expect("positive_features", np.array([[1.0], [0.5]]), w)


@check(f"unbiased: with m = {UNBIASED_M} seeded N(0, I) directions, the mean of m·φ_r(x)φ_r(y) is "
       f"within {UNBIASED_Z:g} standard errors of exp(x·y), for 5 pairs")
def perf_unbiased(ctx):
    # Seeded, so the verdict is the same on every run; the reference's largest deviation over
    # these 5 pairs is 0.4 standard errors, a biased map (a missing −|x|²/2) is off by > 30.
    d = 4
    for t in range(5):
        r = np.random.default_rng(t)
        x, y = r.standard_normal(d) * 0.4, r.standard_normal(d) * 0.4
        w = np.random.default_rng(100 + t).standard_normal((UNBIASED_M, d))
        phi = call_shaped(ctx, "positive_features", np.stack([x, y]), w)
        p = UNBIASED_M * phi[0] * phi[1]               # per-direction estimates of exp(x·y)
        est, se, want = float(p.mean()), float(p.std() / np.sqrt(UNBIASED_M)), float(np.exp(x @ y))
        if not np.isfinite(est) or abs(est - want) > UNBIASED_Z * max(se, 1e-12):
            ctx.expect("positive_features", np.stack([x, y]), w)   # names a misconception if one fits
            ctx.fail(f"pair {t}: the mean of m·φ_r(x)·φ_r(y) over m = {UNBIASED_M} directions is "
                     f"{est:.5g} ± {se:.2g} (one standard error), but exp(x·y) = {want:.5g}: "
                     f"{abs(est - want) / max(se, 1e-12):.1f} standard errors away. The estimate "
                     f"is biased.")


def _mean_errors(attention):
    """Mean absolute error of ``attention(q, k, v, w)`` against exact softmax attention, per m."""
    out = []
    for m in ERROR_MS:
        errs = []
        for t in range(3):
            r = np.random.default_rng(t)
            q, k = (r.standard_normal((32, 8)) * 0.5 for _ in range(2))
            v = r.standard_normal((32, 8))
            w = np.random.default_rng(1000 + t).standard_normal((m, 8))
            errs.append(float(np.abs(np.asarray(attention(q, k, v, w)) - dense_attention(q, k, v)).mean()))
        out.append(float(np.mean(errs)))
    return out


@check(f"toy: the error against exact softmax attention falls as m grows (m = "
       f"{', '.join(map(str, ERROR_MS))}; 32 tokens, d = 8, |q|, |k| ≈ 1.4; at least 4× from "
       f"first to last)")
def perf_error_falls(ctx):
    def attention(q, k, v, w):
        out = np.asarray(ctx.call("performer_attention", q, k, v, w))
        if out.shape != (32, 8):
            ctx.expect("performer_attention", q, k, v, w)   # says what is wrong with the shape
        return out

    errs = _mean_errors(attention)
    figures = ", ".join(f"m={m}: {e:.4f}" for m, e in zip(ERROR_MS, errs))
    ctx.record(f"mean |performer − softmax attention| {figures}")
    if not errs[-1] * 4 <= errs[0]:
        ctx.expect("performer_attention", *(np.random.default_rng(0).standard_normal((3, 5, 4)) * 0.5),
                   np.random.default_rng(1).standard_normal((64, 4)))
        ctx.fail(f"the error against exact softmax attention does not fall with m ({figures}): "
                 f"the features do not estimate exp(q·k/√d).")


# --- misconceptions ------------------------------------------------------------

def _features(x, w, norm=0.5, sqrt_m=True):
    f = np.exp(x @ w.T - norm * np.sum(x * x, axis=-1, keepdims=True))
    return (f / np.sqrt(w.shape[0]) if sqrt_m else f).astype(x.dtype)


def _trig(x, w):
    proj = x @ w.T
    scale = np.exp(0.5 * np.sum(x * x, axis=-1, keepdims=True)) / np.sqrt(w.shape[0])
    return (np.concatenate([np.cos(proj), np.sin(proj)], axis=-1) * scale).astype(x.dtype)


def _attention(features, cq=None, ck=None):
    def attention(q, k, v, w):
        d = q.shape[-1]
        c_q = d ** -0.25 if cq is None else cq(d)
        c_k = d ** -0.25 if ck is None else ck(d)
        fq = features((q * c_q).astype(q.dtype), w)
        fk = features((k * c_k).astype(k.dtype), w)
        num = fq @ (np.swapaxes(fk, -1, -2) @ v)
        den = fq @ fk.sum(axis=-2)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (num / den).astype(q.dtype)

    return attention


def _no_norm(x, w):
    return _features(x, w, norm=0.0)


def _full_norm(x, w):
    return _features(x, w, norm=1.0)


def _no_sqrt_m(x, w):
    return _features(x, w, sqrt_m=False)


MISCONCEPTIONS = (
    # source: choromanski-2021 Lemma 1 — the positive estimator is exp(wᵀx − |x|²/2); without
    # the correction E[φ(x)·φ(y)] = exp(x·y + |x|²/2 + |y|²/2).
    Misconception("forgot_norm_term", "left out the −|x|²/2", {"positive_features": _no_norm,
                  "performer_attention": _attention(_no_norm)},
                  "E[exp(w·x) exp(w·y)] = exp(|x + y|²/2) = exp(x·y)·exp(|x|²/2)·exp(|y|²/2): the "
                  "−|x|²/2 in each feature removes the extra factors."),
    # source: choromanski-2021 Lemma 1 — the correction is −|x|²/2, half the squared norm.
    Misconception("full_norm_term", "subtracted |x|² instead of |x|²/2", {"positive_features": _full_norm,
                  "performer_attention": _attention(_full_norm)},
                  "The Gaussian moment E[exp(w·z)] = exp(|z|²/2) sets the half: subtract |x|²/2."),
    # source: choromanski-2021 eq. (5) — φ averages over m features with the factor 1/√m per side.
    Misconception("forgot_sqrt_m", "left out the 1/√m", {"positive_features": _no_sqrt_m},
                  "Attention hides it (the constant cancels in the normaliser), but φ(x)·φ(y) must "
                  "AVERAGE over the m directions to estimate exp(x·y): divide each side by √m."),
    # source: rahimi-recht random Fourier features, which choromanski-2021 §2.3 shows can give
    # negative, unstable estimates of the softmax kernel; FAVOR+ uses positive features.
    Misconception("trig_features", "used trigonometric features [cos, sin]·exp(|x|²/2)",
                  {"positive_features": _trig, "performer_attention": _attention(_trig)},
                  "sin/cos features are unbiased too but can be negative: attention rows with "
                  "near-zero or negative normalisers. This kata asks for the positive features."),
    # source: choromanski-2021 §2.2 — softmax attention's kernel is exp(q·k/√d); the 1/√d is
    # split as d^(−1/4) on each of q and k before featurising.
    Misconception("forgot_quarter_root", "featurised q and k without the d^(−1/4) scaling",
                  {"performer_attention": _attention(_features, cq=lambda d: 1.0, ck=lambda d: 1.0)},
                  "Without it the features estimate exp(q·k), not exp(q·k/√d): a sharper softmax "
                  "than the one being approximated."),
    # source: choromanski-2021 §2.2 — scaling only the queries by 1/√d gives the same kernel
    # in expectation but different (and higher-variance) features.
    Misconception("scaled_queries_only", "divided q by √d and left k unscaled",
                  {"performer_attention": _attention(_features, cq=lambda d: d ** -0.5, ck=lambda d: 1.0)},
                  "The same kernel on average, but not the same features: split the scale as "
                  "d^(−1/4) on each side, as in the paper."),
)

PERFORMER_FEATURES = Kata(
    id="performer_features",
    level=22,
    title="Performer: positive random features for exp(q·k)",
    path="history/performer_features.py",
    entries=("positive_features", "performer_attention"),
    checks=(perf_features_match, perf_attention_match, perf_worked_example, perf_unbiased, perf_error_falls),
    predictions=(
        Prediction("trig_can_be_negative", "which features can estimate exp(x·y) below zero? "
                   "(choose: trig, positive, both, neither)", "trig", kind="choice",
                   choices=("trig", "positive", "both", "neither"),
                   why="cos and sin take negative values; exp(·) never does, so positive features "
                       "give positive estimates and positive attention weights."),
        Prediction("error_at_1024", "the toy's average error with m = 1024, if m = 64 gives 0.2",
                   0.05, rel_tol=0.5,
                   why="An average of m independent estimates has a standard error ∝ 1/√m: 16× the "
                       "features, 4× less error (0.05). The measured toy falls a little slower "
                       "where inputs are large."),
    ),
    misconceptions=MISCONCEPTIONS,
    claims=(
        Claim("performer-unbiased", "E_W[φ(x)·φ(y)] = exp(x·y) for φ(x) = exp(xWᵀ − |x|²/2)/√m with "
              "W ~ N(0, I): checked statistically, seeded, 20,000 features per pair, within 4 "
              "standard errors for 5 pairs.", scope="toy", source="choromanski-2021",
              evidence=("perf_unbiased",),
              not_claimed="Anything about orthogonal random features (the paper's variance "
                          "reduction), which are not used here."),
        Claim("performer-error-vs-features", "Toy, measured (NumPy, float64, seeded): 32 tokens, "
              "d = 8, q and k entries N(0, 0.25): the mean absolute error of Performer attention "
              "against exact softmax attention (3 seeds) is about 0.05, 0.02, 0.012, 0.007 at m = 16, "
              "64, 256, 1024 — roughly 1/√m (0.004 at m = 4096 in a one-off run). With entries "
              "N(0, 1) a one-off run gave 0.19 at m = 16 and still 0.066 at m = 4096: the "
              "estimator's variance grows with |q|, |k|.",
              scope="toy", source="choromanski-2021", evidence=("perf_error_falls",),
              not_claimed="Anything about trained models, long sequences or speed; the check only "
                          "requires a 4× fall from m = 16 to m = 1024 on the first toy."),
    ),
    hints=(
        "φ: proj = x @ w.T is [..., N, m]; subtract 0.5 * (x * x).sum(-1, keepdims=True); exp; "
        "divide by sqrt(m).",
        "Attention: scale q and k by d ** -0.25 first, featurise both with the same w, then do "
        "linear attention: fq @ (fk.T @ v) divided by fq @ fk.sum(axis=-2).",
        "Keep leading dims: use np.swapaxes(fk, -1, -2) rather than .T, and fk.sum(axis=-2)[..., None] "
        "for the normaliser.",
    ),
)
