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
        found = _diagnose(ctx, kw, got)      # matched by frequencies; probes weigh in too
        raise ctx.failure(f"{DRAWS} × {what}", problem, found, ctx.explain(found))


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
    "logits as every other entry of a longer buffer: the same draw as from the contiguous "
    "logits with the same generator state", id="sample_strided_inputs", layouts=("sliced",),
    against="self")


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


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): draws made next to the learner's code from ONE Generator
# per seed (``draws`` above, run in the worker through ``measure``), judged by what the
# family does: the token frequencies it follows, the tokens it never draws, the type it
# returns, whether a seed repeats it, whether anything varies at all.
# Where learners go wrong — a source note per misconception:
# - ignores_temperature: OpenNMT/CTranslate2#1620 (the sampling temperature does not
#   reach the distribution used).
# - greedy: argmax where a draw was meant (temperature → 0 is its only limit).
# - ignores_filters: the distribution drawn from is the softmax before top-k / top-p.
# - numpy_int: np.searchsorted / np.argmax return np.int64, not int.
# - ignores_rng: global np.random state instead of the Generator passed in.
# - choice_unnormalised, reseeds_every_call: notes at their implementations below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, Raised, attach, check as holds, measure, raises  # noqa: E402


def _unnormalised_choice(logits, rng, temperature=1.0, top_k=None, top_p=None):
    # source: genlm/llamppl#12, sherjilozair/char-rnn-tensorflow#1 and Russell91/apollo#5
    # (rng.choice(p=...) with weights that do not sum to 1: "probabilities do not sum to 1")
    z = logits.astype(np.float64) / temperature
    w = np.where(filtered_probs(z, top_k, top_p) > 0, np.exp(z - z.max()), 0.0)
    return int(rng.choice(logits.size, p=w))


def _reseeded(logits, rng, temperature=1.0, top_k=None, top_p=None):
    # source: seeding inside the sampling function ("for reproducibility"): every call
    # starts the same stream, so every draw is the same token
    fresh = np.random.default_rng(0)
    return int(fresh.choice(logits.size, p=filtered_probs(logits.astype(np.float64) / temperature,
                                                          top_k, top_p)))


def _sampled(seeds, n, kw):
    return lambda ns: measure(ns, __name__, "draws", seeds, n, kw)


def _dist(kw):
    return filtered_probs(LOGITS / kw.get("temperature", 1.0), kw.get("top_k"), kw.get("top_p"))


def _freq_probe(kw, pred, what, n=DRAWS):
    """``pred(freqs)`` on ``n`` draws with settings ``kw`` from one seeded Generator."""
    return Probe(f"{n} draws, " + (", ".join(f"{k}={v}" for k, v in kw.items()) or "defaults"),
                 _sampled((4242,), n, kw),
                 holds(lambda g, w: not isinstance(g, Raised) and pred(_freqs(g[0]))))


def _follows(kw_drawn, kw_like):
    """Draws at ``kw_drawn`` follow the distribution of ``kw_like`` instead."""
    want, like = _dist(kw_drawn), _dist(kw_like)
    return lambda f: _tv(f, like) <= TV_BOUND and _tv(f, want) > 2 * TV_BOUND


def _constant(g, w):
    flat = [t for run in g for t in run]
    return len(set(flat)) == 1


SAMPLE_NEXT = attach(
    SAMPLE_NEXT,
    add=(
        Misconception("choice_unnormalised", "passed unnormalised weights (exp of the logits) "
                      "to rng.choice, which demands probabilities summing to 1",
                      {"sample_next": _unnormalised_choice},
                      "rng.choice(n, p=p) needs p ≥ 0 summing to 1 (within ~1e-8): divide the "
                      "kept weights by their sum (next_token_probs does), in float64."),
        Misconception("reseeds_every_call", "created a new seeded Generator inside sample_next, "
                      "so every call draws the same token", {"sample_next": _reseeded},
                      "Seed once, outside: the caller passes `rng`, and each call must advance "
                      "it. np.random.default_rng(0) inside restarts the stream every time."),
    ),
    probes={
        "ignores_temperature": (
            _freq_probe({"temperature": 0.5}, _follows({"temperature": 0.5}, {}), "T = 0.5"),
            _freq_probe({"temperature": 3.0}, _follows({"temperature": 3.0}, {}), "T = 3"),
        ),
        "greedy": (
            Probe("200 draws at temperature 2", _sampled((11,), 200, {"temperature": 2.0}),
                  holds(lambda g, w: set(g[0]) == {int(np.argmax(LOGITS))})),
            Probe("200 draws at temperature 100, top_k = 5",
                  _sampled((12,), 200, {"temperature": 100.0, "top_k": 5}),
                  holds(lambda g, w: set(g[0]) == {int(np.argmax(LOGITS))})),
        ),
        "ignores_filters": (
            _freq_probe({"top_k": 2}, _follows({"top_k": 2}, {}), "top_k = 2"),
            _freq_probe({"temperature": 2.0, "top_p": 0.5},
                        _follows({"temperature": 2.0, "top_p": 0.5}, {"temperature": 2.0}), "top_p"),
        ),
        "numpy_int": (
            Probe("20 draws, defaults", _sampled((5,), 20, {}),
                  holds(lambda g, w: all(isinstance(t, np.integer) for t in g[0]))),
            Probe("20 draws, top_k = 3", _sampled((6,), 20, {"top_k": 3}),
                  holds(lambda g, w: all(isinstance(t, np.integer) for t in g[0]))),
        ),
        "ignores_rng": (
            Probe("two runs of 40 draws from Generators seeded alike (T = 2)",
                  _sampled((77, 77), 40, {"temperature": 2.0}),
                  holds(lambda g, w: g[0] != g[1] and len(set(g[0])) > 1)),
            Probe("two runs of 40 draws from Generators seeded alike (top_k = 4)",
                  _sampled((78, 78), 40, {"top_k": 4, "temperature": 1.5}),
                  holds(lambda g, w: g[0] != g[1] and len(set(g[0])) > 1)),
        ),
        "choice_unnormalised": (
            Probe("one draw, defaults", _sampled((1,), 1, {}), raises("ValueError", "sum to 1")),
            Probe("one draw, top_k = 3", _sampled((2,), 1, {"top_k": 3}),
                  raises("ValueError", "sum to 1")),
        ),
        "reseeds_every_call": (
            Probe("40 draws from each of 3 seeds at temperature 100 (nearly uniform)",
                  _sampled((21, 22, 23), 40, {"temperature": 100.0}),
                  holds(lambda g, w: _constant(g, w) and g[0][0] != int(np.argmax(LOGITS)))),
            Probe("40 draws from each of 2 seeds at temperature 2",
                  _sampled((31, 32), 40, {"temperature": 2.0}),
                  holds(lambda g, w: _constant(g, w) and g[0][0] != int(np.argmax(LOGITS)))),
        ),
    },
    raises={"choice_unnormalised": (("ValueError", "sum to 1"),)},
    diagnostics=(
        Probe(f"{DRAWS} draws at temperature 1.5, top_k = 6: frequency per token "
              f"(±0.035 is sampling noise)",
              lambda ns: _freqs(measure(ns, __name__, "draws", (909,), DRAWS,
                                        {"temperature": 1.5, "top_k": 6})[0]),
              axes=("token",), tol=(0.0, 0.035)),
    ),
    variants=(
        Fake("inverse_cdf", {"sample_next": lambda logits, rng, temperature=1.0, top_k=None,
                             top_p=None: _inverse_cdf(logits, rng, temperature, top_k, top_p)}),
        Fake("gumbel_max", {"sample_next": lambda logits, rng, temperature=1.0, top_k=None,
                            top_p=None: _gumbel_max(logits, rng, temperature, top_k, top_p)}),
    ),
)


def _inverse_cdf(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """A correct variant: one uniform number against the cumulative distribution."""
    cdf = np.cumsum(filtered_probs(logits.astype(np.float64) / temperature, top_k, top_p))
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), logits.size - 1))



def _gumbel_max(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """A correct variant that uses the generator differently: argmax of log p + Gumbel noise."""
    p = filtered_probs(logits.astype(np.float64) / temperature, top_k, top_p)
    with np.errstate(divide="ignore"):
        return int(np.argmax(np.log(p) + rng.gumbel(size=p.size)))

# == end of diagnosis by behaviour, levels 0-2 ==
