"""Level 8 · speculative_decoding — draft-then-verify, and a proof that the output is the target's.

Randomness enters ``speculative_step`` as arguments, so the checks can run it on every
outcome: :func:`outcomes` builds, for each draft sequence and each place the first
rejection can fall, uniforms in the middle of the corresponding interval, each call
weighted by its exact probability.  The learner's code then induces an exact output
distribution, compared with the target's.  A seeded chi-square test over many random
steps is the statistical witness beside it.
"""

from __future__ import annotations

import itertools

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check

# ---------------------------------------------------------------------------
# The judge's copy of the rule, with switches for the mistakes
# ---------------------------------------------------------------------------


def inverse_cdf(probs, u, *, normalised=True):
    cdf = np.cumsum(probs)
    j = int(np.searchsorted(cdf, u * (cdf[-1] if normalised else 1.0), side="right"))
    j = min(j, probs.size - 1)
    while normalised and probs[j] == 0:
        j -= 1
    return j


def step(p, q, xs, us, ru, *, ratio="p/q", resample="residual", bonus=True, stop=True):
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    out = []
    for i, x in enumerate(int(t) for t in xs):
        if ratio == "greedy":
            ok = x == int(np.argmax(p[i]))
        else:
            r = p[i, x] / q[i, x] if ratio == "p/q" else (q[i, x] / p[i, x] if p[i, x] > 0 else np.inf)
            ok = us[i] < min(1.0, r)
        if ok:
            out.append(x)
            continue
        if ratio == "greedy":
            out.append(int(np.argmax(p[i])))
        elif resample == "target":
            out.append(inverse_cdf(p[i], ru))
        else:
            res = np.maximum(p[i] - q[i], 0.0)
            out.append(inverse_cdf(res / res.sum(), ru) if resample == "residual"
                       else inverse_cdf(res, ru, normalised=False))
        if stop:
            return out
    if bonus and (stop or len(out) == len(xs)):
        out.append(inverse_cdf(p[len(xs)], ru))
    return out


def _ratio_inverted(p, q, xs, us, ru):
    return step(p, q, xs, us, ru, ratio="q/p")


def _resample_from_target(p, q, xs, us, ru):
    return step(p, q, xs, us, ru, resample="target")


def _residual_not_normalised(p, q, xs, us, ru):
    return step(p, q, xs, us, ru, resample="raw")


def _no_bonus(p, q, xs, us, ru):
    return step(p, q, xs, us, ru, bonus=False)


def _no_bonus_tokens(alpha, gamma):
    return float(gamma) if alpha >= 1 else float((1 - alpha ** gamma) / (1 - alpha))


def _divides_at_one(alpha, gamma):
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def _greedy(p, q, xs, us, ru):
    return step(p, q, xs, us, ru, ratio="greedy")


def _keeps_going(p, q, xs, us, ru):
    return step(p, q, xs, us, ru, stop=False)


def _tv_without_half(p, q):
    return float(1.0 - np.abs(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum())


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _dist(rng, v, sparse):
    w = rng.gamma(0.7, size=v)
    if sparse:
        w[rng.random(v) < 0.3] = 0.0
    if w.sum() == 0:
        w[rng.integers(v)] = 1.0
    return w / w.sum()


@st.composite
def steps(draw):
    v = draw(st.integers(2, 8))
    gamma = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sparse = draw(st.booleans())
    p = np.stack([_dist(rng, v, sparse) for _ in range(gamma + 1)])
    q = np.stack([_dist(rng, v, sparse) for _ in range(gamma)])
    if draw(st.booleans()):          # a good draft: close to the target
        q = 0.8 * p[:gamma] + 0.2 * q
    xs = [int(rng.choice(v, p=q[i])) for i in range(gamma)]
    return p, q, xs, rng.random(gamma), float(rng.random())


EX_P = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]])
EX_Q = np.array([[0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])


def toy_target(prefix, v=3):
    """p(· | prefix): a made-up target over V tokens that depends on the whole prefix."""
    w = np.array([1.0 + ((7 * sum(prefix) + 3 * len(prefix) + 5 * j) % 4) for j in range(v)])
    return w / w.sum()


def toy_draft(prefix, v=3):
    w = np.array([1.0 + ((2 * sum(prefix) + j * j + len(prefix)) % 3) for j in range(v)])
    return w / w.sum()


def outcomes(gamma, v=3, target=toy_target, draft=toy_draft):
    """Every way one step can go: ``(weight, args)``, with uniforms inside each region."""
    cases = []
    for xs in itertools.product(range(v), repeat=gamma):
        p = np.stack([target(list(xs[:i]), v) for i in range(gamma + 1)])
        q = np.stack([draft(list(xs[:i]), v) for i in range(gamma)])
        w_draft = float(np.prod([q[i, x] for i, x in enumerate(xs)]))
        acc = [min(1.0, p[i, x] / q[i, x]) for i, x in enumerate(xs)]
        for j in range(gamma + 1):                   # j: the first rejected guess (γ: none)
            w = w_draft * float(np.prod(acc[:j])) * (1.0 - acc[j] if j < gamma else 1.0)
            if w == 0:
                continue
            us = [a / 2 for a in acc[:j]] + ([(1 + acc[j]) / 2] if j < gamma else [])
            us += [0.5] * (gamma - len(us))
            r = np.maximum(p[j] - q[j], 0.0) if j < gamma else p[gamma]
            r = r / r.sum()
            cdf = np.concatenate([[0.0], np.cumsum(r)])
            for z in range(v):
                if r[z] > 0:
                    cases.append((w * r[z], (p, q, list(xs), np.array(us), float((cdf[z] + cdf[z + 1]) / 2))))
    return cases


def run_outcomes(ns, calls):
    """Probe (next to the learner's code): speculative_step on each argument tuple."""
    return [ns.speculative_step(*args) for args in calls]


def distribution(cases, outs):
    dist: dict = {}
    for (w, _), out in zip(cases, outs):
        key = tuple(int(t) for t in out)
        dist[key] = dist.get(key, 0.0) + w
    return dist


def conditional_gaps(dist, target=toy_target, v=3):
    """Largest |P(Y_k = b | Y_<k = s, L ≥ k) − p(b | s)| over every prefix s, and where."""
    worst, where = 0.0, None
    prefixes = {s[:k] for s in dist for k in range(max(map(len, dist)) + 1)}
    for s in sorted(prefixes):
        k = len(s)
        nxt = np.zeros(v)
        for seq, w in dist.items():
            if len(seq) > k and seq[:k] == s:
                nxt[seq[k]] += w
        if nxt.sum() == 0:
            continue
        gap = np.abs(nxt / nxt.sum() - target(list(s), v))
        if gap.max() > worst:
            worst, where = float(gap.max()), (s, nxt / nxt.sum(), target(list(s), v))
    return worst, where


def _tokens_ok(ctx, outs, gamma, v):
    for out in outs:
        if not isinstance(out, list) or not 1 <= len(out) <= gamma + 1 \
                or any(type(t) is not int or not 0 <= t < v for t in out):
            ctx.fail(f"speculative_step returned {out!r:.80}: expected a list of 1 … γ + 1 = "
                     f"{gamma + 1} Python ints, each a token id in 0 … {v - 1}.")


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


@check("the worked example: all guesses accepted plus a bonus token, and a first-guess rejection")
def spec_worked_example(ctx):
    ctx.expect("speculative_step", EX_P, EX_Q, [0, 2], np.array([0.9, 0.35]), 0.5)
    ctx.expect("speculative_step", EX_P, EX_Q, [1, 2], np.array([0.9, 0.35]), 0.5)
    ctx.expect("acceptance_rate", EX_P[0], EX_Q[0])
    ctx.expect("expected_tokens_per_step", 0.7, 2)


@check("speculative_step matches the reference on random steps (V 2 … 8, γ 1 … 5, sparse and "
       "close drafts)")
def spec_matches(ctx):
    @ctx.given(s=steps())
    def prop(s):
        out = ctx.expect("speculative_step", *s)
        _tokens_ok(ctx, [out], len(s[2]), s[0].shape[1])

    prop()


@check("acceptance_rate and expected_tokens_per_step match the reference (α = 0 and α = 1 included)")
def spec_rates(ctx):
    @ctx.given(s=steps(), gamma=st.integers(1, 8), alpha=st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.99, 1.0]))
    def prop(s, gamma, alpha):
        p, q = s[0], s[1]
        ctx.expect("acceptance_rate", p[0], q[0])
        ctx.expect("expected_tokens_per_step", alpha, gamma)

    prop()


@check("exact: enumerating every draft and every uniform's region (V = 3, γ = 1, 2, 3), the emitted "
       "tokens are distributed exactly as the target's, prefix by prefix; the mean length is "
       "(1 − α^(γ+1)) / (1 − α)")
def spec_exact_distribution(ctx):
    ctx.entry("speculative_step")
    for gamma in (1, 2, 3):
        cases = outcomes(gamma)
        calls = [args for _, args in cases]
        outs = ctx.probe(__name__, "run_outcomes", calls,
                         what=f"speculative_step on all {len(calls)} outcomes of a γ = {gamma} step")
        _tokens_ok(ctx, outs, gamma, 3)
        gap, where = conditional_gaps(distribution(cases, outs))
        if gap > 1e-9:
            s, got, want = where
            show = {"float_kind": lambda x: f"{x:.4f}"}
            matched = _diagnose(ctx, cases, outs)
            lines = [f"γ = {gamma}, V = 3: after the emitted prefix {list(s)} the next token is distributed "
                     f"{np.array2string(got, formatter=show)}, but the target's p(· | {list(s)}) is "
                     f"{np.array2string(want, formatter=show)} (exact, over all outcomes)."]
            ctx.fail("\n".join(lines), misconception=matched, diagnose=True)
    # the mean length, with the same p and q at every position (the formula's assumption)
    p1, q1 = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.5, 0.3])
    cases = outcomes(3, target=lambda s, v: p1, draft=lambda s, v: q1)
    outs = ctx.probe(__name__, "run_outcomes", [a for _, a in cases], what="speculative_step, i.i.d. positions")
    _tokens_ok(ctx, outs, 3, 3)
    mean = sum(w * len(o) for (w, _), o in zip(cases, outs))
    alpha = float(np.minimum(p1, q1).sum())
    want = (1 - alpha ** 4) / (1 - alpha)
    if abs(mean - want) > 1e-9:
        ctx.fail(f"with the same p and q at every position (α = {alpha:g}, γ = 3) a step emits {mean:.6f} "
                 f"tokens on average; (1 − α⁴)/(1 − α) = {want:.6f}.",
                 misconception=_diagnose_mean(ctx, cases, mean), diagnose=True)
    ctx.record(f"exact enumeration (V = 3, γ = 1, 2, 3): largest gap to the target ≤ 1e-9; "
               f"mean tokens per step {mean:.4f} = (1 − α⁴)/(1 − α) at α = {alpha:g}")


def _diagnose(ctx, cases, outs):
    mine = distribution(cases, outs)
    for m in ctx.kata.misconceptions:
        fn = m.impls.get("speculative_step")
        if fn is None:
            continue
        try:
            theirs = distribution(cases, [fn(*a) for _, a in cases])
        except Exception:
            continue
        if set(theirs) == set(mine) and all(abs(theirs[k] - mine[k]) < 1e-9 for k in mine):
            return m.id
    return None


def _diagnose_mean(ctx, cases, mean):
    for m in ctx.kata.misconceptions:
        fn = m.impls.get("speculative_step")
        if fn is not None and abs(sum(w * len(fn(*a)) for w, a in cases) - mean) < 1e-9:
            return m.id
    return None


# Chi-square critical value for 4 degrees of freedom (V = 5) at p = 1e-6, i.e. the
# regularised upper incomplete gamma Q(2, x/2) = 1e-6 (tests/test_level8.py recomputes it
# with torch.special.gammaincc).  The seed is fixed, so the verdict is deterministic; a
# correct sampler fails such a test once in a million seeds.
CHI2_CRIT_DF4 = 33.38
STAT_P = np.array([[0.35, 0.25, 0.2, 0.15, 0.05], [0.1, 0.4, 0.1, 0.3, 0.1], [0.2] * 5])
STAT_Q = np.array([[0.1, 0.3, 0.3, 0.1, 0.2], [0.25, 0.25, 0.2, 0.2, 0.1]])
STAT_N, STAT_SEED = 20000, 2023


def sample_steps(ns, p, q, n, seed):
    """Probe: ``n`` steps with draft tokens and uniforms drawn from one seeded Generator."""
    rng = np.random.default_rng(seed)
    gamma = q.shape[0]
    p0, q0 = np.array(p, dtype=np.float64), np.array(q, dtype=np.float64)
    outs = []
    for _ in range(n):  # fresh copies each step: a subject that edits p or q in place harms
        p, q = p0.copy(), q0.copy()  # neither the next step nor the caller's arrays
        xs = [int(rng.choice(q.shape[1], p=q[i])) for i in range(gamma)]
        outs.append(ns.speculative_step(p, q, xs, rng.random(gamma), float(rng.random())))
    return outs


def chi_square(outs, k, p):
    """Pearson's statistic for the k-th emitted token (over steps that emit one) against p."""
    toks = [o[k] for o in outs if len(o) > k]
    counts = np.bincount(np.asarray(toks, dtype=np.int64), minlength=p.size)
    expected = len(toks) * p
    return float(((counts - expected) ** 2 / expected).sum()), len(toks)


@check(f"statistical: {STAT_N} seeded steps (V = 5, γ = 2); the 1st and 2nd emitted tokens pass "
       f"Pearson's chi-square against the target at p = 1e-6 (statistic < {CHI2_CRIT_DF4})")
def spec_statistical(ctx):
    ctx.entry("speculative_step")
    outs = ctx.probe(__name__, "sample_steps", STAT_P, STAT_Q, STAT_N, STAT_SEED,
                     what=f"{STAT_N} seeded speculative steps")
    _tokens_ok(ctx, outs, 2, STAT_P.shape[1])
    figures = []
    for k in (0, 1):
        stat, n = chi_square(outs, k, STAT_P[k])
        figures.append(f"token {k + 1}: χ² = {stat:.2f} over {n} steps")
        if stat >= CHI2_CRIT_DF4:
            theirs = None
            for m in ctx.kata.misconceptions:
                fn = m.impls.get("speculative_step")
                if fn is not None and outs == sample_steps(type("ns", (), {"speculative_step": staticmethod(fn)}),
                                                           STAT_P, STAT_Q, STAT_N, STAT_SEED):
                    theirs = m.id
                    break
            ctx.fail(f"over {n} seeded steps the {'first' if k == 0 else 'second'} emitted token fails a "
                     f"chi-square test against the target (χ² = {stat:.1f} ≥ {CHI2_CRIT_DF4}, 4 degrees "
                     f"of freedom, p < 1e-6): the output is not distributed as the target's.",
                     misconception=theirs, diagnose=True)
    ctx.record(f"seed {STAT_SEED}, {STAT_N} steps: " + "; ".join(figures) + f" (critical {CHI2_CRIT_DF4})")


# ---------------------------------------------------------------------------
# The kata
# ---------------------------------------------------------------------------


spec_strided_inputs = layout_check(
    "speculative_step", lambda ctx: [((EX_P, EX_Q, [0, 2], np.array([0.9, 0.35]), 0.5), {}),
                                     ((EX_P, EX_Q, [1, 2], np.array([0.1, 0.2]), 0.7), {})],
    "target and draft distributions (and the uniforms) as transposed and sliced views",
    id="spec_strided_inputs", layouts=("transposed", "sliced"))


SPECULATIVE_DECODING = Kata(
    id="speculative_decoding", level=8,
    title="Speculative decoding: draft, verify with min(1, p/q), resample the residual",
    path="level8/speculative_decoding.py",
    entries=("acceptance_rate", "expected_tokens_per_step", "speculative_step"),
    checks=(spec_worked_example, spec_matches, spec_rates, spec_exact_distribution, spec_statistical,
            spec_strided_inputs),
    predictions=(
        Prediction("alpha_example", "p = [0.6, 0.3, 0.1], q = [0.3, 0.3, 0.4]: the acceptance rate α",
                   0.7, why="Σ min(p, q) = 0.3 + 0.3 + 0.1 = 0.7 (one minus the total variation 0.3)."),
        Prediction("tokens_per_step", "α = 0.8, γ = 3: expected tokens per step", 2.952,
                   why="(1 − 0.8⁴)/(1 − 0.8) = 0.5904 / 0.2 = 2.952: 1 + 0.8 + 0.64 + 0.512."),
        Prediction("alpha_one_limit", "a draft identical to the target, γ = 4: tokens per step", 5,
                   kind="exact", why="Every guess is accepted (p/q = 1) and the bonus token comes on top: γ + 1."),
        Prediction("residual_example", "p = [0.5, 0.4, 0.1], q = [0.2, 0.2, 0.6], the guess was "
                   "rejected: the replacement's distribution", (0.6, 0.4, 0.0),
                   why="max(0, p − q) = [0.3, 0.2, 0], normalised: [0.6, 0.4, 0]. Token 2, which the "
                       "draft over-proposed, cannot come back."),
    ),
    misconceptions=(
        # Source note: the ratio is easy to write upside down; q/p accepts what the DRAFT likes.
        Misconception("ratio_inverted", "accepted with min(1, q/p) instead of min(1, p/q)",
                      {"speculative_step": _ratio_inverted},
                      "Accept x with probability p(x)/q(x) (capped at 1): guesses the target likes "
                      "more than the draft are always kept, over-proposed ones are thinned."),
        # Source note: "reject, then sample from the target" sounds right and is the most common
        # bug report against speculative samplers; it double-counts the accepted mass.
        Misconception("resample_from_target", "resampled a rejected position from p instead of "
                      "norm(max(0, p − q))", {"speculative_step": _resample_from_target},
                      "Acceptance already emitted min(p, q); only the missing mass max(0, p − q) may "
                      "come from the resample, or over-proposed tokens come out too often."),
        # Source note: an unnormalised residual fed to an inverse CDF runs off its end.
        Misconception("residual_not_normalised", "drew from max(0, p − q) without renormalising it",
                      {"speculative_step": _residual_not_normalised},
                      "Divide max(0, p − q) by its sum before the inverse CDF; its total is 1 − α, "
                      "not 1."),
        # Source note: the bonus token is the easiest part of the papers' algorithm to miss.
        Misconception("no_bonus_token", "emitted no bonus token when every guess was accepted",
                      {"speculative_step": _no_bonus, "expected_tokens_per_step": _no_bonus_tokens},
                      "The target scored γ + 1 positions in its one pass: when all γ guesses pass, "
                      "sample one more token from p_γ. Hence (1 − α^(γ+1))/(1 − α), not (1 − α^γ)/(1 − α)."),
        # Source note: greedy speculative decoding (accept when the target's argmax agrees) is
        # correct for greedy decoding only; learners reuse it under sampling.
        Misconception("greedy_verify", "accepted a guess only when it is the target's argmax",
                      {"speculative_step": _greedy},
                      "Under sampling the target's answer is a distribution, not its argmax: accept "
                      "with probability min(1, p/q)."),
        # Source note: a loop that forgets to stop after the first rejection.
        Misconception("keeps_going_after_reject", "kept verifying later guesses after a rejection",
                      {"speculative_step": _keeps_going},
                      "Guesses after a rejected one were drafted from a prefix that is now wrong: "
                      "stop at the first rejection."),
        # Source note: the closed form (1 − α^(γ+1))/(1 − α) copied without its α = 1 limit
        # (a draft identical to the target) divides by zero.
        Misconception("divides_at_alpha_one", "divided by 1 − α at α = 1 (the closed form's "
                      "limit case left out)", {"expected_tokens_per_step": _divides_at_one},
                      "At α = 1 every guess is accepted: γ + 1 tokens, the limit of "
                      "(1 − α^(γ+1))/(1 − α). Return γ + 1 there instead of dividing by 0.",
                      raises=(("ZeroDivisionError", ""),)),
        # Source note: total variation is ½ Σ|p − q|; the ½ is often dropped.
        Misconception("tv_without_half", "computed α as 1 − Σ|p − q| (total variation without its ½)",
                      {"acceptance_rate": _tv_without_half},
                      "α = Σ min(p, q) = 1 − ½ Σ|p − q|."),
    ),
    claims=(
        Claim("spec-exact-distribution", "Speculative sampling with min(1, p/q) acceptance and "
              "residual resampling emits tokens distributed exactly as the target's.", scope="exact",
              source="leviathan-2023", evidence=("spec_exact_distribution", "spec_matches"),
              not_claimed="Enumerated on toy distributions over 3 tokens and γ ≤ 3; not a "
                          "statement about any real draft or target model."),
        Claim("spec-tokens-per-step", "With acceptance rate α at every position, one step emits "
              "(1 − α^(γ+1)) / (1 − α) tokens on average.", scope="exact", source="leviathan-2023",
              evidence=("spec_exact_distribution", "spec_rates"),
              not_claimed="Tokens per step, not wall-clock speed-up: that also depends on the "
                          "draft's cost relative to the target's, which nothing here measures."),
        Claim("spec-chi-square", "Seeded chi-square tests of the first and second emitted tokens "
              "against the target pass at p = 1e-6.", scope="toy", source="chen-2023-spec",
              evidence=("spec_statistical",),
              not_claimed="A statistical witness on one seed and one pair of distributions."),
    ),
    hints=(
        "acceptance_rate is one line: np.minimum(p, q).sum(). expected_tokens_per_step: the "
        "geometric sum 1 + α + … + α^γ; at α = 1 it is γ + 1.",
        "speculative_step: loop i over the draft tokens; accept x if accept_u[i] < min(1, p[i, x] / "
        "q[i, x]). On the first rejection build r = np.maximum(p[i] − q[i], 0), r /= r.sum(), draw "
        "from r with resample_u and return at once.",
        "Inverse CDF: int(np.searchsorted(np.cumsum(r), resample_u, side='right')). If no guess was "
        "rejected, draw the bonus token from p[γ] the same way. Return Python ints.",
    ),
    requires=("numpy", "hypothesis"),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): single steps with chosen uniforms, where each rule
# decides the outcome — an over-proposed guess at u = 0.5, the target's argmax drafted
# less often than the target wants, the replacement drawn at ru = 0.4, 0.55, 0.95 —
# and α on two pairs of distributions.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds, close  # noqa: E402

_P3 = np.array([0.5, 0.4, 0.1])
_Q3 = np.array([0.2, 0.2, 0.6])


def _one(p_row, q_row, x, u, ru=0.3, bonus_row=(0.2, 0.3, 0.5)):
    """One guess: p = [p_row, bonus_row], q = [q_row]; returns the emitted tokens."""
    p = np.array([p_row, bonus_row], dtype=np.float64)
    q = np.array([q_row], dtype=np.float64)
    return lambda ns: [int(t) for t in ns.speculative_step(p, q, [x], np.array([u]), ru)]


def _accepted(x):
    return _holds(lambda g, w: isinstance(g, list) and g[:1] == [x] and w[:1] != [x])


def _rejected(x):
    return _holds(lambda g, w: isinstance(g, list) and g[:1] != [x] and w[:1] == [x])


def _all_accepted(gamma):
    p = np.full((gamma + 1, 3), 1 / 3)
    q = np.full((gamma, 3), 1 / 3)
    xs = [i % 3 for i in range(gamma)]
    return lambda ns: [int(t) for t in ns.speculative_step(p, q, xs, np.zeros(gamma), 0.5)]


def _Step(what, run, holds):
    """A probe that drives speculative_step (so a failure of another entry is never
    named after it)."""
    return Probe(what, run, holds, entries=("speculative_step",))


def _nonfinite_or_raised(g, w):
    from attnkata.diagnose import Raised

    return isinstance(g, Raised) or not np.isfinite(float(g))


def _alpha_one_and_half(ns):
    from attnkata.diagnose import attempt

    return (attempt(lambda: ns.expected_tokens_per_step(1.0, 4)),
            attempt(lambda: ns.expected_tokens_per_step(0.5, 4)))


def _reject_then_good(gamma, at):
    """Guess ``at`` is over-proposed and rejected (u = 0.99); every other guess is certain."""
    p = np.tile(np.array([0.1, 0.8, 0.1]), (gamma + 1, 1))
    q = np.tile(np.array([0.1, 0.8, 0.1]), (gamma, 1))
    p[at], q[at] = [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]
    xs = [1] * gamma
    us = np.full(gamma, 0.01)
    us[at] = 0.99
    return lambda ns: [int(t) for t in ns.speculative_step(p, q, xs, us, 0.5)]


SPECULATIVE_DECODING = attach(SPECULATIVE_DECODING, probes={
    # source: deepseek-ai/DeepSpec#31 (the acceptance ratio must use the same draft
    # distribution the guess was drawn from: min(1, p(x)/q(x)))
    "ratio_inverted": (
        _Step("a guess the draft over-proposes (p 0.1, q 0.6) at u = 0.5", _one(_P3, _Q3, 2, 0.5),
              _accepted(2)),
        _Step("a guess the draft under-proposes (p 0.4, q 0.1) at u = 0.5",
              _one([0.5, 0.4, 0.1], [0.2, 0.1, 0.7], 1, 0.5), _rejected(1)),
    ),
    # source: NJUNLP/MCSD#5 and eth-sri/language-model-arithmetic#14 ("why resample from
    # p − q and not from p?")
    "resample_from_target": (
        _Step("a rejected guess, replacement at ru = 0.95: a token the residual excludes",
              _one(_P3, _Q3, 2, 0.99, ru=0.95), _holds(lambda g, w: g[:1] == [2] and w[:1] != [2])),
        _Step("a rejected guess, replacement at ru = 0.55: p's draw (1), not the residual's (0)",
              _one(_P3, _Q3, 2, 0.99, ru=0.55), _holds(lambda g, w: g[:1] == [1] and w[:1] == [0])),
    ),
    # source: vllm-project/vllm#2336 (modified rejection sampling: the recovered distribution
    # is max(0, p − q) normalised)
    "residual_not_normalised": (
        _Step("a rejected guess, replacement at ru = 0.95: a token the residual excludes",
              _one(_P3, _Q3, 2, 0.99, ru=0.95), _holds(lambda g, w: g[:1] == [2] and w[:1] != [2])),
        _Step("a rejected guess, replacement at ru = 0.4: past the residual's unnormalised mass",
              _one(_P3, _Q3, 2, 0.99, ru=0.4), _holds(lambda g, w: g[:1] == [1] and w[:1] == [0])),
    ),
    # source: vllm-project/vllm#5131 ("if all the draft tokens are selected then we append
    # the bonus token")
    "no_bonus_token": (
        _Step("γ = 2, p = q uniform, every guess accepted: tokens emitted", _all_accepted(2),
              _holds(lambda g, w: len(g) == 2 and len(w) == 3)),
        _Step("γ = 4, every guess accepted: tokens emitted", _all_accepted(4),
              _holds(lambda g, w: len(g) == 4 and len(w) == 5)),
    ),
    # source: jaymody/speculative-sampling#3 and ml-explore/mlx-swift-lm#459 (argmax or
    # equality acceptance is right for greedy decoding only)
    "greedy_verify": (
        _Step("the target's argmax guessed where q > p (p 0.5, q 0.8) at u = 0.99",
              _one([0.5, 0.3, 0.2], [0.8, 0.1, 0.1], 0, 0.99), _accepted(0)),
        _Step("a guess the target likes more than the draft (p 0.3, q 0.1), not its argmax",
              _one([0.6, 0.3, 0.1], [0.8, 0.1, 0.1], 1, 0.99), _holds(lambda g, w: g[:1] == [0])),
    ),
    # source: lablup/mlxcel#902 ("on the first rejection, the correction is drawn … then
    # stop"): later guesses were drafted from a prefix that is now wrong
    "keeps_going_after_reject": (
        _Step("γ = 2: the 1st guess rejected, the 2nd certain", _reject_then_good(2, 0),
              _holds(lambda g, w: len(w) == 1 and len(g) > 1 and g[0] != 1)),
        _Step("γ = 3: the 2nd guess rejected, the 3rd certain", _reject_then_good(3, 1),
              _holds(lambda g, w: len(w) == 2 and len(g) > 2 and g[1] != 1)),
    ),
    # source: leviathan-2023 eq. 1 divides by 1 − α; the α = 1 limit (γ + 1) is the case
    # a literal transcription of the formula misses
    "divides_at_alpha_one": (
        Probe("expected_tokens_per_step at α = 1 and at α = 0.5, γ = 4", _alpha_one_and_half,
              _holds(lambda g, w: _nonfinite_or_raised(g[0], w[0]) and close(float(g[1]), w[1])),
              entries=("expected_tokens_per_step",)),
        Probe.of("expected_tokens_per_step(1.0, 1)", "expected_tokens_per_step", 1.0, 1,
                 holds=_holds(_nonfinite_or_raised)),
    ),
    # source: leviathan-2023 (α = 1 − D_LK with D_LK = ½ Σ|p − q|): the ½ dropped
    "tv_without_half": (
        Probe.of("acceptance_rate([.5, .4, .1], [.2, .2, .6])", "acceptance_rate", _P3, _Q3,
                 holds=_holds(lambda g, w: close(float(g), 0.0) and close(float(w), 0.5))),
        Probe.of("acceptance_rate([.7, .3], [.4, .6])", "acceptance_rate",
                 np.array([0.7, 0.3]), np.array([0.4, 0.6]),
                 holds=_holds(lambda g, w: close(float(g), 0.4) and close(float(w), 0.7))),
    ),
})


def _step_by_cdf_scan(target_probs, draft_probs, draft_tokens, accept_u, resample_u):
    """Correct, other way: u·q < p for acceptance, and draws by scanning the normalised CDF."""
    p, q = np.asarray(target_probs, float), np.asarray(draft_probs, float)

    def draw(probs):
        cdf = np.cumsum(probs) / probs.sum()
        j = int(np.argmax(cdf > resample_u)) if (cdf > resample_u).any() else probs.size - 1
        while probs[j] <= 0:
            j -= 1
        return j

    out = []
    for i, x in enumerate(int(t) for t in draft_tokens):
        if accept_u[i] * q[i, x] < p[i, x]:
            out.append(x)
            continue
        out.append(draw(np.clip(p[i] - q[i], 0, None)))
        return out
    out.append(draw(p[len(out)]))
    return out


from attnkata import Fake  # noqa: E402

SPECULATIVE_DECODING = attach(SPECULATIVE_DECODING, variants=(
    Fake("cdf_scan", {"speculative_step": _step_by_cdf_scan}),))
