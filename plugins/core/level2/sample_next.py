"""Level 2 · sample_next: drawing the next token from one Generator."""

from __future__ import annotations

import numpy as np

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.compare import Mismatch

from .sampling import filtered_probs, softmax

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
        want = filtered_probs(LOGITS / kw.get("temperature", 1.0), kw.get("top_k"), kw.get("top_p"))
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
    return int(rng.choice(logits.size, p=filtered_probs(logits.astype(np.float64), top_k, top_p)))


def _greedy(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(np.argmax(logits))


def _ignores_filters(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(rng.choice(logits.size, p=softmax(logits.astype(np.float64) / temperature)))


def _numpy_int(logits, rng, temperature=1.0, top_k=None, top_p=None):
    cdf = np.cumsum(filtered_probs(logits.astype(np.float64) / temperature, top_k, top_p))
    return np.searchsorted(cdf, rng.random() * cdf[-1], side="right")  # np.int64


def _global_rng(logits, rng, temperature=1.0, top_k=None, top_p=None):
    return int(_GLOBAL.choice(logits.size, p=filtered_probs(logits.astype(np.float64) / temperature,
                                                    top_k, top_p)))



sample_strided_inputs = layout_check(
    "sample_next", lambda ctx: [((ctx.rng.standard_normal(11) * 2, np.random.default_rng(s)),
                                 {"top_k": 5}) for s in (1, 2, 3)],
    "logits as every other entry of a longer buffer: the same draw from the same generator",
    id="sample_strided_inputs", layouts=("sliced",))


SAMPLE_NEXT = Kata(
    id="sample_next", level=2, title="Drawing the next token",
    path="level2/sample_next.py", entries=("sample_next",),
    checks=(sample_returns_int, sample_frequencies, sample_uses_rng,
            sample_strided_inputs),
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
