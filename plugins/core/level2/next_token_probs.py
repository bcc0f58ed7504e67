"""Level 2 · next_token_probs: temperature, top-k and top-p, exactly."""

from __future__ import annotations

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import FLOAT_DTYPES, filled, seeds, sizes

from .sampling import filtered_probs, keep_top_k, keep_top_p, softmax


def _top_p_is_clear(logits, temperature, top_k, top_p, margin=1e-3):
    """False when float rounding could decide which token crosses p (a near-tie)."""
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    p = np.sort(softmax(z))[::-1]
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


def _temp_after(logits, temperature=1.0, top_k=None, top_p=None):
    p = filtered_probs(logits, top_k, top_p) / np.asarray(temperature, dtype=logits.dtype)
    return (p / p.sum()).astype(logits.dtype)


def _drops_crossing(logits, temperature=1.0, top_k=None, top_p=None):
    return filtered_probs(logits / temperature, top_k, top_p, crossing=False).astype(logits.dtype)


def _breaks_ties(logits, temperature=1.0, top_k=None, top_p=None):
    return filtered_probs(logits / temperature, top_k, top_p, ties=False).astype(logits.dtype)


def _unrenormalised(logits, temperature=1.0, top_k=None, top_p=None):
    z = logits / temperature
    p = np.where(keep_top_k(z, top_k), softmax(z), 0)   # top-k'd but not yet renormalised
    if top_p is not None:
        p = np.where(keep_top_p(p, top_p), p, 0)
    return (p / p.sum()).astype(logits.dtype)


def _no_renorm(logits, temperature=1.0, top_k=None, top_p=None):
    z = logits / temperature
    p = softmax(z)
    keep = keep_top_k(z, top_k)
    if top_p is not None:
        keep &= keep_top_p(softmax(np.where(keep, z, -np.inf)), top_p)
    return np.where(keep, p, 0).astype(logits.dtype)


def _naive(logits, temperature=1.0, top_k=None, top_p=None):
    z = logits / temperature
    e = np.where(keep_top_k(z, top_k), np.exp(z), 0)
    p = e / e.sum()
    if top_p is not None:
        p = np.where(keep_top_p(p, top_p), p, 0)
        p = p / p.sum()
    return p.astype(logits.dtype)



probs_strided_inputs = layout_check(
    "next_token_probs", lambda ctx: [((ctx.rng.standard_normal(11) * 3,), {"top_k": 4}),
                                     ((ctx.rng.standard_normal(9).astype(np.float32),),
                                      {"temperature": 0.7, "top_p": 0.8})],
    "logits as every other entry of a longer buffer", id="probs_strided_inputs",
    layouts=("sliced",))


NEXT_TOKEN_PROBS = Kata(
    id="next_token_probs", level=2, title="Temperature, top-k and top-p, exactly",
    path="level2/next_token_probs.py", entries=("next_token_probs",),
    checks=(probs_match_reference, probs_temperature, probs_top_k_ties, probs_top_p, probs_edges,
            probs_strided_inputs),
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
        "Top-k with ties: kth = np.sort(z)[-k]; keep z >= kth (set the rest to -inf before "
        "softmax). Skip this when k >= V: np.sort(z)[-k] would be out of range, and every token stays.",
        "Top-p: order = np.argsort(-p); mass = np.cumsum(p[order]); the first index where mass ≥ p "
        "is np.searchsorted(mass, top_p); keep order[:that + 1] and renormalise.",
    ),
)


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# Probes (docs/DIAGNOSIS.md): distributions chosen so each mistake keeps a different set
# of tokens, or returns a different multiple of them — a crossing token, a tie at the
# k-th logit, a top-k that changes the top-p set, a temperature that changes it — and the
# predicate states the family's behaviour (which tokens survive, what the mass sums to).
# Where learners go wrong — a source note per misconception:
# - temperature_after_softmax: MoonshotAI/Kimi-Audio#161 (temperature applied after the
#   (log-)softmax instead of to the logits).
# - top_p_drops_crossing: ggml-org/llama.cpp#1953, Biohub/esm#360, thu-nics/C2C#21
#   and fishaudio/fish-speech#1171 (`cumsum <= top_p` drops the token that crosses p).
# - top_k_breaks_ties: torch.topk / argsort keep exactly k, ties broken by position.
# - top_p_unrenormalised: mmwillet/TTS.cpp#57 (top-p's interaction with top-k).
# - not_renormalised: the filtered probabilities left summing to less than 1.
# - no_max_subtraction: ml4a/ml4a#3 (sampling crashes at small temperatures: exp
#   overflows).
# - top_p_inverted, filters_before_temperature: notes at their implementations below.

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import Probe, attach, check as holds, close, nan_in  # noqa: E402


def _inverted_p(logits, temperature=1.0, top_k=None, top_p=None):
    # source: Aleph-Alpha-Research/magma#29 and lucidrains/x-transformers#184 (the mass
    # compared with 1 − top_p: top_p = 0.95 keeps the top 5%)
    p = filtered_probs(logits / temperature, top_k, None if top_p is None else 1.0 - top_p)
    return p.astype(logits.dtype)


def _filters_first(logits, temperature=1.0, top_k=None, top_p=None):
    # source: fishaudio/fish-speech#1150 (top-p ran on the raw logits and temperature was
    # applied afterwards, so top-p saw the wrong distribution)
    z = logits.astype(np.float64)
    keep = keep_top_k(z, top_k)
    if top_p is not None:
        keep &= keep_top_p(softmax(np.where(keep, z, -np.inf)), top_p)
    return softmax(np.where(keep, z / temperature, -np.inf)).astype(logits.dtype)


_L532 = np.log(np.array([0.5, 0.3, 0.2]))
_L4321 = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
_L4 = np.array([1.0, 3.0, 2.0, -1.0])


def _is(value):
    return holds(lambda g, w: close(g, np.asarray(value, float), (1e-6, 1e-9)))


def _call(what, logits, **kw):
    return lambda holds_: Probe.of(what, "next_token_probs", logits, holds=holds_,
                                   axes=("token",), **kw)


def _kept(value):
    """The probabilities of the kept tokens, renormalised, as the family keeps them."""
    v = np.asarray(value, float)
    return v / v.sum()


def _one_of_ties(k, tied):
    def fn(g, w):
        g = np.asarray(g, float)
        kept = np.flatnonzero(g > 0)
        return len(kept) == k and set(kept) <= set(tied) and np.allclose(g[kept], 1 / k)
    return holds(fn)


def _unnormalised(g, w):
    g = np.asarray(g, float)
    total = g.sum()
    return not np.isclose(total, 1) and total > 0 and close(g / total, w)


NEXT_TOKEN_PROBS = attach(
    NEXT_TOKEN_PROBS,
    add=(
        Misconception("top_p_inverted", "compared the running mass with 1 − top_p "
                      "(top_p = 0.9 kept only the top 10%)", {"next_token_probs": _inverted_p},
                      "top_p is the mass to KEEP: the smallest set of most likely tokens whose "
                      "probabilities add up to at least top_p."),
        Misconception("filters_before_temperature", "chose the top-k / top-p tokens on the raw "
                      "logits, then applied the temperature", {"next_token_probs": _filters_first},
                      "Temperature comes first: z = logits / T, then top-k on z, softmax, and "
                      "top-p on THAT distribution (a cooler T can shrink the nucleus)."),
    ),
    probes={
        "temperature_after_softmax": (
            _call("logits [1, 3, 2, −1], T = 0.5", _L4, temperature=0.5)(_is(softmax(_L4))),
            _call("logits [1, 3, 2, −1], T = 3", _L4, temperature=3.0)(_is(softmax(_L4))),
        ),
        "top_p_drops_crossing": (
            _call("p = [0.5, 0.3, 0.2], top_p = 0.6", _L532, top_p=0.6)(_is([1, 0, 0])),
            _call("p = [0.4, 0.3, 0.2, 0.1], top_p = 0.8", _L4321, top_p=0.8)(
                _is(_kept([0.4, 0.3, 0, 0]))),
        ),
        "top_k_breaks_ties": (
            _call("logits [2, 5, 5, 1], top_k = 1", np.array([2.0, 5.0, 5.0, 1.0]), top_k=1)(
                _one_of_ties(1, (1, 2))),
            _call("logits [1, 3, 3, 3, 0], top_k = 2", np.array([1.0, 3.0, 3.0, 3.0, 0.0]),
                  top_k=2)(_one_of_ties(2, (1, 2, 3))),
        ),
        "top_p_unrenormalised": (
            _call("p = [0.4, 0.3, 0.2, 0.1], top_k = 2, top_p = 0.5", _L4321, top_k=2, top_p=0.5)(
                _is(_kept([0.4, 0.3, 0, 0]))),
            _call("p = [0.4, 0.3, 0.2, 0.1], top_k = 3, top_p = 0.75", _L4321, top_k=3, top_p=0.75)(
                _is(_kept([0.4, 0.3, 0.2, 0]))),
        ),
        "not_renormalised": (
            _call("p = [0.5, 0.3, 0.2], top_k = 2", _L532, top_k=2)(holds(_unnormalised)),
            _call("p = [0.4, 0.3, 0.2, 0.1], top_p = 0.65", _L4321, top_p=0.65)(holds(_unnormalised)),
        ),
        "no_max_subtraction": (
            _call("logits [1000, 999, −1000], float64", np.array([1000.0, 999.0, -1000.0]))(nan_in()),
            _call("float32 logits [100, 50, 0] at T = 0.05", np.array([100.0, 50.0, 0.0], np.float32),
                  temperature=0.05)(nan_in()),
        ),
        "top_p_inverted": (
            _call("p = [0.5, 0.3, 0.2], top_p = 0.9", _L532, top_p=0.9)(_is([1, 0, 0])),
            _call("p = [0.4, 0.3, 0.2, 0.1], top_p = 0.35", _L4321, top_p=0.35)(
                _is(_kept([0.4, 0.3, 0, 0]))),
        ),
        "filters_before_temperature": (
            _call("p = [0.5, 0.3, 0.2], T = 0.25, top_p = 0.7", _L532, temperature=0.25, top_p=0.7)(
                _is(_kept([0.5 ** 4, 0.3 ** 4, 0]))),
            _call("p = [0.5, 0.3, 0.2], T = 3, top_p = 0.75", _L532, temperature=3.0, top_p=0.75)(
                _is(_kept([0.5 ** (1 / 3), 0.3 ** (1 / 3), 0]))),
        ),
    },
    diagnostics=(
        Probe.of("logits [1, 3, 2, −1, 0.5], T = 0.7, top_k = 4, top_p = 0.9", "next_token_probs",
                 np.array([1.0, 3.0, 2.0, -1.0, 0.5]), temperature=0.7, top_k=4, top_p=0.9,
                 axes=("token",)),
    ),
    variants=(
        Fake("mask_then_lse", {"next_token_probs": lambda logits, temperature=1.0, top_k=None,
                               top_p=None: _probs_lse(logits, temperature, top_k, top_p)}),
    ),
)


def _probs_lse(logits, temperature=1.0, top_k=None, top_p=None):
    """A correct variant: top-k by partition, probabilities by logsumexp, top-p by a
    sorted cumulative sum that keeps a token while the mass before it is below p."""
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        z = np.where(z >= np.partition(z, -top_k)[-top_k], z, -np.inf)
    m = z.max()
    p = np.exp(z - m - np.log(np.exp(z - m).sum()))
    if top_p is not None:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        keep = np.zeros(p.size, bool)
        keep[order[before < top_p]] = True
        p = np.where(keep, p, 0)
        p = p / p.sum()
    return p.astype(logits.dtype)
# == end of diagnosis by behaviour, levels 0-2 ==
