"""Level 2 · next_token_probs: temperature, top-k and top-p, exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

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
