"""Level 2 — choosing the next token: temperature, top-k, top-p, and sampling."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.compare import Mismatch
from attnkata.strategies import FLOAT_DTYPES, filled, seeds, sizes

# ---------------------------------------------------------------------------
# next_token_probs
# ---------------------------------------------------------------------------


def _softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


def _top_p_is_clear(logits, temperature, top_k, top_p, margin=1e-3):
    """False when float rounding could decide which token crosses p (a near-tie)."""
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    p = np.sort(_softmax(z))[::-1]
    mass = np.cumsum(p)
    return bool(np.all(np.abs(mass - top_p) > margin) and np.all(np.abs(np.diff(p)) > 1e-6))


@st.composite
def _sampling_case(draw):
    v = draw(sizes(1, 40))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    logits = filled((v,), dtype, draw(st.sampled_from((1.0, 3.0, 1000.0))), draw(seeds()))
    temperature = draw(st.sampled_from((1.0, 0.5, 2.0, 0.05, 10.0)))
    top_k = draw(st.one_of(st.none(), st.integers(1, v + 2)))
    top_p = draw(st.one_of(st.none(), st.floats(0.05, 1.0)))
    if top_p is not None and top_p < 1.0 and not _top_p_is_clear(logits, temperature, top_k, top_p):
        top_p = None  # a near-tie at the boundary: any answer would be a rounding accident
    return logits, dict(temperature=temperature, top_k=top_k, top_p=top_p)


@check("matches the reference on random logits, temperatures, top-k and top-p")
def probs_match_reference(ctx):
    @ctx.given(case=_sampling_case())
    def prop(case):
        logits, kw = case
        ctx.expect("next_token_probs", logits, **kw)

    prop()


@check("temperature sharpens (T < 1) and flattens (T > 1); very hot with top_k = 1 keeps only the argmax")
def probs_temperature(ctx):
    logits = np.array([1.0, 3.0, 2.0, -1.0])
    for t in (0.5, 2.0):
        ctx.expect("next_token_probs", logits, temperature=t)
    ctx.expect("next_token_probs", logits, temperature=100.0, top_k=1)
    ctx.expect("next_token_probs", np.array([0.5, -2.0, 1.0], np.float32), temperature=0.01)


@check("top-k keeps every token tied with the k-th largest logit: [2, 5, 5, 1] with k = 1 keeps two")
def probs_top_k_ties(ctx):
    for logits, ks in (([2.0, 5.0, 5.0, 1.0], (1, 2, 3, 4, 9)), ([1.0, 3.0, 3.0, 3.0, 0.0], (2,))):
        logits = np.array(logits)
        for k in ks:
            got = ctx.call("next_token_probs", logits, top_k=k)
            want = ctx.reference("next_token_probs", logits, top_k=k)
            if (isinstance(got, np.ndarray) and got.shape == want.shape
                    and np.count_nonzero(got) == k < np.count_nonzero(want)):
                ctx.fail(f"next_token_probs({logits.tolist()}, top_k={k}) = {np.round(got, 4)}: it "
                         f"kept exactly {k} token(s), but every token tied with the k-th largest "
                         f"logit stays; expected {np.round(want, 4)}", misconception="top_k_breaks_ties")
            ctx.expect("next_token_probs", logits, top_k=k)


@check("top-p keeps the token that crosses p, and runs on the distribution renormalised after top-k")
def probs_top_p(ctx):
    logits = np.log(np.array([0.5, 0.3, 0.2]))
    for p in (0.45, 0.6, 0.95, 1.0):
        ctx.expect("next_token_probs", logits, top_p=p)
    four = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    ctx.expect("next_token_probs", four, top_k=2, top_p=0.5)   # renormalised: 4/7 ≥ 0.5 alone
    ctx.expect("next_token_probs", four, top_k=3, top_p=0.7)


@check("edge cases: one token, banned (-inf) tokens, logits of ±1000, float32 stays float32")
def probs_edges(ctx):
    ctx.expect("next_token_probs", np.array([4.0]))
    ctx.expect("next_token_probs", np.array([1.0, -np.inf, 0.0]), top_k=2)
    ctx.expect("next_token_probs", np.array([1000.0, 999.0, -1000.0], np.float32))
    probs = ctx.call("next_token_probs", np.array([0.3, 0.1, 2.0, -0.7]), top_p=0.9)
    if not (np.isclose(probs.sum(), 1.0) and (probs >= 0).all()):
        ctx.fail(f"next_token_probs must return a distribution: got {probs}, summing to "
                 f"{probs.sum():.6g}")


def _keep_top_p(p, top_p, crossing=True):
    """Mask of the most probable tokens whose mass reaches top_p (crossing token kept or not)."""
    order = np.argsort(-p, kind="stable")
    mass = np.cumsum(p[order])
    last = int(np.searchsorted(mass, top_p, side="left"))
    last = min(last if crossing else max(last - 1, 0), p.size - 1)
    keep = np.zeros(p.size, bool)
    keep[order[:last + 1]] = True
    return keep


def _keep_top_k(z, top_k, ties=True):
    if top_k is None or top_k >= z.size:
        return np.ones(z.size, bool)
    if ties:
        return z >= np.sort(z)[-top_k]
    keep = np.zeros(z.size, bool)
    keep[np.argsort(-z, kind="stable")[:top_k]] = True
    return keep


def _probs(z, top_k, top_p, *, ties=True, crossing=True):
    p = _softmax(np.where(_keep_top_k(z, top_k, ties), z, -np.inf))
    if top_p is not None:
        p = np.where(_keep_top_p(p, top_p, crossing), p, 0)
        p = p / p.sum()
    return p


def _temp_after(logits, temperature=1.0, top_k=None, top_p=None):
    p = _probs(logits, top_k, top_p) / np.asarray(temperature, dtype=logits.dtype)
    return (p / p.sum()).astype(logits.dtype)


def _drops_crossing(logits, temperature=1.0, top_k=None, top_p=None):
    return _probs(logits / temperature, top_k, top_p, crossing=False).astype(logits.dtype)


def _breaks_ties(logits, temperature=1.0, top_k=None, top_p=None):
    return _probs(logits / temperature, top_k, top_p, ties=False).astype(logits.dtype)


def _unrenormalised(logits, temperature=1.0, top_k=None, top_p=None):
    z = logits / temperature
    p = np.where(_keep_top_k(z, top_k), _softmax(z), 0)   # top-k'd but not yet renormalised
    if top_p is not None:
        p = np.where(_keep_top_p(p, top_p), p, 0)
    return (p / p.sum()).astype(logits.dtype)


def _no_renorm(logits, temperature=1.0, top_k=None, top_p=None):
    z = logits / temperature
    p = _softmax(z)
    keep = _keep_top_k(z, top_k)
    if top_p is not None:
        keep &= _keep_top_p(_softmax(np.where(keep, z, -np.inf)), top_p)
    return np.where(keep, p, 0).astype(logits.dtype)


def _naive(logits, temperature=1.0, top_k=None, top_p=None):
    z = logits / temperature
    e = np.where(_keep_top_k(z, top_k), np.exp(z), 0)
    p = e / e.sum()
    if top_p is not None:
        p = np.where(_keep_top_p(p, top_p), p, 0)
        p = p / p.sum()
    return p.astype(logits.dtype)


NEXT_TOKEN_PROBS = Kata(
    id="next_token_probs", level=2, title="Temperature, top-k and top-p, exactly",
    path="level2/next_token_probs.py", entries=("next_token_probs",),
    checks=(probs_match_reference, probs_temperature, probs_top_k_ties, probs_top_p, probs_edges),
    predictions=(
        Prediction("hot_top1_survivors", "temperature = 100 and top_k = 1: which tokens can still "
                   "be drawn? (choose: only the argmax, every token nearly uniformly, the top half)",
                   "only the argmax", kind="choice",
                   choices=("only the argmax", "every token nearly uniformly", "the top half"),
                   why="Temperature never reorders logits (it divides them all by the same T > 0); "
                       "top_k = 1 then keeps the largest, whatever T flattened."),
        Prediction("tied_top1_count", "logits [2, 5, 5, 1] with top_k = 1: how many tokens keep "
                   "non-zero probability?", 2, kind="exact",
                   why="Every token whose logit is ≥ the k-th largest (5) stays: both 5s, at 0.5 each."),
        Prediction("top_p_count", "probabilities [0.5, 0.3, 0.2] with top_p = 0.6: how many tokens "
                   "are kept?", 2, kind="exact",
                   why="0.5 alone is short of 0.6; adding 0.3 crosses it, and the crossing token "
                       "is kept: [0.625, 0.375, 0]."),
    ),
    misconceptions=(
        Misconception("temperature_after_softmax", "applied temperature after softmax (it cancels "
                      "in the renormalisation)", {"next_token_probs": _temp_after},
                      "Divide the LOGITS by T, then softmax. Dividing probabilities by T and "
                      "renormalising changes nothing."),
        Misconception("top_p_drops_crossing", "top-p dropped the token that crosses p",
                      {"next_token_probs": _drops_crossing},
                      "Keep the smallest set whose mass REACHES p: include the token that takes "
                      "the running sum from below p to ≥ p."),
        Misconception("top_k_breaks_ties", "top-k kept exactly k tokens, breaking ties arbitrarily",
                      {"next_token_probs": _breaks_ties},
                      "Keep every token whose logit is ≥ the k-th largest: ties with it stay in, "
                      "so the result never depends on argsort's order."),
        Misconception("top_p_unrenormalised", "ran top-p on probabilities not renormalised after top-k",
                      {"next_token_probs": _unrenormalised},
                      "After top-k, renormalise; top-p measures mass in THAT distribution."),
        Misconception("not_renormalised", "zeroed the filtered tokens but did not renormalise",
                      {"next_token_probs": _no_renorm},
                      "The kept probabilities must sum to 1 again: divide by their sum."),
        Misconception("no_max_subtraction", "exponentiated without subtracting the maximum",
                      {"next_token_probs": _naive},
                      "exp(1000) overflows (so does exp(100) / T at T = 0.05 in float32): "
                      "subtract the maximum scaled logit first."),
    ),
    claims=(
        Claim("sampling-is-a-distribution", "Temperature, top-k (ties kept) and top-p (crossing "
              "token kept) turn logits into one exact, renormalised distribution.", scope="exact",
              source="leviathan-2023",
              not_claimed="Nothing about which settings give better text."),
    ),
    hints=(
        "Order: z = logits / T; top-k on z; softmax; top-p on that distribution; renormalise.",
        "Top-k with ties: kth = np.sort(z)[-k]; keep z >= kth (set the rest to -inf before softmax).",
        "Top-p: order = np.argsort(-p); mass = np.cumsum(p[order]); the first index where mass ≥ p "
        "is np.searchsorted(mass, top_p); keep order[:that + 1] and renormalise.",
    ),
)

# ---------------------------------------------------------------------------
# sample_next
# ---------------------------------------------------------------------------

LOGITS = np.array([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, 1.5, -2.0])
CONFIGS = ({}, {"temperature": 0.5}, {"temperature": 2.0}, {"top_k": 3}, {"top_p": 0.6},
           {"temperature": 0.7, "top_k": 4, "top_p": 0.8})
DRAWS, TV_BOUND = 3000, 0.06  # a correct sampler stays under ~0.04; each wrong one is ≥ 0.18 off


def _draws(fn, seed, n, kw):
    rng = np.random.default_rng(seed)
    return [fn(LOGITS.copy(), rng, **kw) for _ in range(n)]


def draws(ns, seeds, n, kw):
    """Probe (runs next to the learner's code): for each seed, ``n`` tokens drawn by
    ``sample_next`` from ONE Generator, as the learner returned them.  The Generator
    must live where the draws happen: sent to the worker per call, it would arrive as
    a fresh copy every time and repeat the same draw."""
    return [_draws(ns.sample_next, seed, n, kw) for seed in seeds]


def _freqs(samples):
    return np.bincount(np.asarray(samples, dtype=np.int64), minlength=LOGITS.size) / len(samples)


def _tv(a, b):
    return 0.5 * float(np.abs(a - b).sum())


def _check_tokens(ctx, samples, what):
    bad = [s for s in samples if type(s) is not int]
    if bad:
        if isinstance(bad[0], np.integer):
            ctx.fail(f"{what} returned {type(bad[0]).__name__} {bad[0]!r}, not a Python int",
                     misconception="numpy_int")
        ctx.fail(f"{what} returned {bad[0]!r:.60} ({type(bad[0]).__name__}): expected a Python int "
                 f"token id")
    out = [s for s in samples if not 0 <= s < LOGITS.size]
    if out:
        ctx.fail(f"{what} returned token {out[0]}, outside the vocabulary 0..{LOGITS.size - 1}")


@check("returns a Python int token id in range")
def sample_returns_int(ctx):
    x = ctx.call("sample_next", LOGITS.copy(), np.random.default_rng(0))
    _check_tokens(ctx, [x], "sample_next(logits, rng)")


@check(f"{DRAWS} draws per setting match next_token_probs (total variation ≤ {TV_BOUND}); "
       f"zero-probability tokens are never drawn")
def sample_frequencies(ctx):
    for i, kw in enumerate(CONFIGS):
        what = "sample_next(logits, rng" + "".join(f", {k}={v}" for k, v in kw.items()) + ")"
        ctx.call("sample_next", LOGITS.copy(), np.random.default_rng(i), **kw)  # guards mutation
        samples, = ctx.probe(__name__, "draws", (1000 + i,), DRAWS, kw, what=f"{DRAWS} × {what}")
        _check_tokens(ctx, samples, what)
        want = _probs(LOGITS / kw.get("temperature", 1.0), kw.get("top_k"), kw.get("top_p"))
        got = _freqs(samples)
        banned = [t for t in range(LOGITS.size) if want[t] == 0 and got[t] > 0]
        tv = _tv(got, want)
        if not banned and tv <= TV_BOUND:
            continue
        summary = (f"drew token {banned[0]}, whose probability is 0" if banned else
                   f"token frequencies are {tv:.3f} away from next_token_probs in total variation "
                   f"(at most {TV_BOUND} expected from {DRAWS} draws)")
        show = {"float_kind": lambda x: f"{x:.3f}"}
        problem = Mismatch(summary, (f"expected  {np.array2string(want, formatter=show)}",
                                     f"got       {np.array2string(got, formatter=show)}"))
        raise ctx.failure(f"{DRAWS} × {what}", problem, _diagnose(ctx, kw, got))


def _diagnose(ctx, kw, got):
    found = []
    for m in ctx.kata.misconceptions:
        fn = m.impls.get("sample_next")
        try:
            theirs = _freqs(_draws(fn, 7, DRAWS, kw))
        except Exception:
            continue
        if _tv(got, theirs) <= 1.5 * TV_BOUND:
            found.append(m)
    return found


@check("draws come from the rng argument: the same seed repeats them, other seeds change them")
def sample_uses_rng(ctx):
    ctx.entry("sample_next")
    kw = {"temperature": 2.0}
    a, b, c, d = ctx.probe(__name__, "draws", (123, 123, 124, 125), 40, kw,
                           what="sample_next with seeded Generators")
    _check_tokens(ctx, a, "sample_next(logits, rng, temperature=2.0)")
    if a != b:
        ctx.fail("sample_next: two Generators with the same seed gave different tokens, so the "
                 "draws do not come from `rng` (global np.random?)", misconception="ignores_rng")
    if a == c == d and len(set(a)) > 1:
        ctx.fail("sample_next: three different seeds gave the very same 40 tokens: `rng` is not "
                 "what the draws come from", misconception="ignores_rng")


_GLOBAL = np.random.default_rng()


def _ignores_temperature(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(rng.choice(logits.size, p=_probs(logits.astype(np.float64), top_k, top_p)))


def _greedy(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(np.argmax(logits))


def _ignores_filters(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(rng.choice(logits.size, p=_softmax(logits.astype(np.float64) / temperature)))


def _numpy_int(logits, rng, temperature=1.0, top_k=None, top_p=None):
    cdf = np.cumsum(_probs(logits.astype(np.float64) / temperature, top_k, top_p))
    return np.searchsorted(cdf, rng.random() * cdf[-1], side="right")  # np.int64


def _global_rng(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(_GLOBAL.choice(logits.size, p=_probs(logits.astype(np.float64) / temperature,
                                                    top_k, top_p)))


SAMPLE_NEXT = Kata(
    id="sample_next", level=2, title="Drawing the next token",
    path="level2/sample_next.py", entries=("sample_next",),
    checks=(sample_returns_int, sample_frequencies, sample_uses_rng),
    predictions=(
        Prediction("count_of_token_2", "probabilities [0.7, 0.2, 0.1], 10,000 draws: about how "
                   "many times is token 2 drawn?", 1000, rel_tol=0.1,
                   why="10,000 × 0.1 = 1000, give or take √(10,000·0.1·0.9) ≈ 30."),
        Prediction("cold_limit", "as the temperature goes to 0, sampling becomes… (choose: greedy, "
                   "uniform, unchanged)", "greedy", kind="choice",
                   choices=("greedy", "uniform", "unchanged"),
                   why="Dividing by a tiny T blows up the gaps between logits: all mass goes to "
                       "the argmax."),
    ),
    misconceptions=(
        Misconception("ignores_temperature", "sampled at temperature 1 whatever was asked",
                      {"sample_next": _ignores_temperature},
                      "Pass temperature on: draw from next_token_probs(logits, temperature, top_k, top_p)."),
        Misconception("greedy", "always returned the most likely token", {"sample_next": _greedy},
                      "Sampling draws at random in proportion to the probabilities; argmax is the "
                      "temperature → 0 limit only."),
        Misconception("ignores_filters", "ignored top-k and top-p", {"sample_next": _ignores_filters},
                      "Filtered tokens have probability 0 and must never be drawn."),
        Misconception("numpy_int", "returned a numpy integer, not a Python int",
                      {"sample_next": _numpy_int},
                      "np.searchsorted, np.argmax and indexing return numpy integers "
                      "(np.int64): wrap the result in int()."),
        Misconception("ignores_rng", "drew from global random state instead of `rng`",
                      {"sample_next": _global_rng},
                      "Use the Generator you are given (rng.random(), rng.choice(...)) so a seed "
                      "reproduces a generation."),
    ),
    claims=(
        Claim("sampler-matches-distribution", "sample_next draws tokens with the frequencies of "
              "next_token_probs, reproducibly from the given Generator.", scope="toy",
              source="leviathan-2023",
              not_claimed=f"Checked statistically: {DRAWS} seeded draws per setting, total "
                          f"variation ≤ {TV_BOUND}; not a proof of exactness."),
    ),
    hints=(
        "First build the distribution: p = next_token_probs(logits, temperature, top_k, top_p) "
        "(you may import it: `from .next_token_probs import next_token_probs`).",
        "Then draw one index with probability p[i], using only `rng`: rng.choice(len(p), p=p) or "
        "inverse-CDF with rng.random().",
        "return int(rng.choice(p.size, p=p)) — or, by inverse CDF, "
        "int(np.searchsorted(np.cumsum(p), rng.random(), side='right')); int() turns np.int64 "
        "into a Python int.",
    ),
)
