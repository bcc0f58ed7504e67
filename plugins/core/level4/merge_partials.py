"""Level 4 · merge_partials: combining attention outputs computed over disjoint keys."""

from __future__ import annotations

import copy
import functools

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.harness import KataFailure
from attnkata.strategies import FLOAT_DTYPES, qkv

from .probe import attention_tol, plain_attention


def partial(q, k, v, keys):
    """Normalised attention output and lse of the queries over the keys selected by ``keys``."""
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    if not keys.any():
        return (np.zeros((*lead, q.shape[-2], v.shape[-1]), dtype=q.dtype),
                np.full((*lead, q.shape[-2]), -np.inf, dtype=q.dtype))
    return plain_attention(q, k[..., keys, :], v[..., keys, :])


@st.composite
def _split(draw, parts):
    q, k, v = draw(qkv(max_n=12))
    labels = np.array(draw(st.lists(st.integers(0, parts - 1), min_size=k.shape[-2],
                                    max_size=k.shape[-2])))
    return q, k, v, [partial(q, k, v, labels == i) for i in range(parts)]


def _nan_when_empty(ctx):
    """Whether the target returns NaN when one part, or both, have no keys."""
    o, lse = np.ones((1, 2)), np.zeros(1)
    empty = (np.zeros((1, 2)), np.full(1, -np.inf))
    for a, b in ((empty, empty), ((o, lse), empty), (empty, (o, lse))):
        try:
            with np.errstate(all="ignore"):
                if _has_nan(ctx.target.merge_partials(*copy.deepcopy((*a, *b)))):
                    return True
        except Exception:  # its own failure is reported by the check that ran it
            return False
    return False


def _names_nan(ctx):
    """A NaN mismatch that nothing else explains is named when the target NaNs on empty parts."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except KataFailure as exc:
                if exc.misconception is None and "got NaN" in exc.message and _nan_when_empty(ctx):
                    ctx.fail(exc.message, misconception="nan_on_empty")
                raise
        return run
    return wrap


@check("merging the two parts of a random split of the keys gives attention over all keys")
def merge_two_parts(ctx):
    @ctx.given(case=_split(2))
    @_names_nan(ctx)
    def prop(case):
        q, k, v, (a, b) = case
        tol = attention_tol(q, k, v)
        got = ctx.expect("merge_partials", *a, *b, tol=tol)
        ctx.match(got, plain_attention(q, k, v), "merge of two parts vs attention over all keys",
                  rerun=lambda ns: ns.merge_partials(*copy.deepcopy((*a, *b))), tol=tol)

    prop()


@check("associative and commutative: any order of merging three parts (some with no keys) agrees")
def merge_any_order(ctx):
    @ctx.given(case=_split(3))
    @_names_nan(ctx)
    def prop(case):
        q, k, v, (a, b, c) = case
        tol = attention_tol(q, k, v)
        orders = {
            "(A ⊕ B) ⊕ C": lambda ns, A, B, C: ns.merge_partials(*ns.merge_partials(*A, *B), *C),
            "A ⊕ (B ⊕ C)": lambda ns, A, B, C: ns.merge_partials(*A, *ns.merge_partials(*B, *C)),
            "C ⊕ (B ⊕ A)": lambda ns, A, B, C: ns.merge_partials(*C, *ns.merge_partials(*B, *A)),
        }
        results = {}
        for name, order in orders.items():
            scenario = lambda ns, order=order: order(ns, *copy.deepcopy((a, b, c)))  # noqa: E731
            results[name] = ctx.expect_scenario(scenario, f"merge_partials, order {name}", tol=tol)
        first, *others = orders
        for name in others:
            ctx.match(results[name], results[first], f"merge order {name} vs {first}", tol=tol)

    prop()


@check("a part with no keys (o = 0, lse = -inf) changes nothing and two such parts give o = 0, "
       "lse = -inf, never NaN; lse in the thousands does not overflow")
def merge_empty_and_extreme(ctx):
    for dtype in FLOAT_DTYPES:
        o_a = ctx.rng.standard_normal((4, 3)).astype(dtype)
        lse_a = np.array([0.5, -np.inf, 2000.0, -3000.0], dtype=dtype)
        o_a[1] = 0
        empty = (np.zeros((4, 3), dtype=dtype), np.full(4, -np.inf, dtype=dtype))
        for label, a, b in (("both parts have no keys", empty, empty),
                            ("part B has no keys", (o_a, lse_a), empty),
                            ("part A has no keys", empty, (o_a, lse_a))):
            got = ctx.call("merge_partials", *copy.deepcopy((*a, *b)))
            if _has_nan(got):
                ctx.fail(f"merge_partials ({dtype.__name__}, {label}: o = 0, lse = -inf there) "
                         f"returned NaN; a part with no keys has weight 0, and two of them give "
                         f"o = 0, lse = -inf.", misconception="nan_on_empty")
            ctx.expect("merge_partials", *a, *b)
        o_c = ctx.rng.standard_normal((4, 3)).astype(dtype)
        lse_c = np.array([-1000.0, 3.0, 2001.0, -2999.0], dtype=dtype)
        ctx.expect("merge_partials", o_a, lse_a, o_c, lse_c)


def _has_nan(out):
    try:
        return any(np.isnan(np.asarray(o, dtype=np.float64)).any() for o in out)
    except (TypeError, ValueError):
        return False


def _average(o_a, lse_a, o_b, lse_b):
    return (o_a + o_b) / 2, np.logaddexp(lse_a, lse_b)


def _by_lse(o_a, lse_a, o_b, lse_b):
    return ((lse_a[..., None] * o_a + lse_b[..., None] * o_b)
            / (lse_a + lse_b)[..., None]), np.logaddexp(lse_a, lse_b)


def _weights(lse_a, lse_b):
    m = np.maximum(lse_a, lse_b)
    m = np.where(np.isfinite(m), m, 0)
    return m, np.exp(lse_a - m), np.exp(lse_b - m)


def _not_renormalised(o_a, lse_a, o_b, lse_b):
    m, w_a, w_b = _weights(lse_a, lse_b)
    return w_a[..., None] * o_a + w_b[..., None] * o_b, m + np.log(w_a + w_b)


def _max_lse(o_a, lse_a, o_b, lse_b):
    m, w_a, w_b = _weights(lse_a, lse_b)
    total = w_a + w_b
    o = (w_a[..., None] * o_a + w_b[..., None] * o_b) / np.where(total == 0, 1, total)[..., None]
    return o, np.maximum(lse_a, lse_b)


def _unguarded(o_a, lse_a, o_b, lse_b):
    lse = np.logaddexp(lse_a, lse_b)  # -inf when both are empty, and then -inf − (-inf) = NaN
    return np.exp(lse_a - lse)[..., None] * o_a + np.exp(lse_b - lse)[..., None] * o_b, lse



def _merge_layout_cases(ctx):
    q, k, v = (ctx.rng.standard_normal((2, n, 8)) for n in (5, 9, 9))
    keys = np.arange(9) % 3 == 0
    yield (*partial(q, k, v, keys), *partial(q, k, v, ~keys)), {}


merge_strided_inputs = layout_check(
    "merge_partials", _merge_layout_cases,
    "both partial outputs and lses as transposed and sliced views", id="merge_strided_inputs",
    layouts=("transposed", "sliced"))


MERGE_PARTIALS = Kata(
    id="merge_partials",
    level=4,
    title="Merging partial attention outputs over disjoint keys",
    path="level4/merge_partials.py",
    entries=("merge_partials",),
    checks=(merge_two_parts, merge_any_order, merge_empty_and_extreme,
            merge_strided_inputs),
    predictions=(
        Prediction("merged_o", "part A: o_a = 1, lse_a = ln 3; part B: o_b = 5, lse_b = ln 1 = 0 "
                   "(one query, d = 1): the merged o", 2.0,
                   why="The parts carry masses e^lse = 3 and 1: o = (3·1 + 1·5) / 4."),
        Prediction("merged_lse", "…and the merged lse", 1.3863, why="ln(3 + 1) = ln 4."),
        Prediction("empty_weight", "the weight a part with no keys (lse = -inf) gets in the merge",
                   0.0, why="Its mass is e^-inf = 0."),
    ),
    misconceptions=(
        Misconception("nan_on_empty", "NaN when a part has no keys (lse = -inf)",
                      {"merge_partials": _unguarded},
                      "-inf − (-inf) and -inf + inf are NaN: they appear when the merged lse (or "
                      "the max, or the lse you anchor on) is -inf. Subtract m = max(lse_a, lse_b) "
                      "with 0 in place of a non-finite m, and divide by 1 where w_a + w_b = 0."),
        Misconception("averaged_outputs", "averaged the two outputs",
                      {"merge_partials": _average},
                      "Each part speaks for its share of the softmax mass, exp(lse): a part "
                      "whose keys scored higher must weigh more."),
        Misconception("weighted_by_lse", "weighted the outputs by lse instead of exp(lse − lse_max)",
                      {"merge_partials": _by_lse},
                      "lse is a log of the mass; the weights are the masses themselves, "
                      "exp(lse_a − m) and exp(lse_b − m) with m = max(lse_a, lse_b)."),
        Misconception("not_renormalised", "weighted the outputs but did not divide by the total weight",
                      {"merge_partials": _not_renormalised},
                      "o_a and o_b are already normalised averages; their mix is "
                      "(w_a·o_a + w_b·o_b) / (w_a + w_b)."),
        Misconception("lse_is_max", "took max(lse_a, lse_b) as the merged lse",
                      {"merge_partials": _max_lse},
                      "The masses add: lse = log(exp(lse_a) + exp(lse_b)) = m + log(w_a + w_b)."),
    ),
    claims=(
        Claim("merge-equals-union",
              "Merging the normalised outputs of two disjoint key sets gives attention over their union.",
              scope="exact", source="milakov-2018", evidence=("merge_two_parts", "merge_empty_and_extreme"),
              not_claimed="Nothing about communication: this is the arithmetic that split-KV "
                          "decoding and ring attention rely on."),
        Claim("merge-associative",
              "The merge is associative and commutative: partial outputs may be combined in any "
              "order and grouping, parts with no keys included.",
              scope="exact", source="rabe-2021", evidence=("merge_any_order",),
              not_claimed="Floating-point results of different orders agree within tolerance, not bit for bit."),
    ),
    hints=(
        "A part's lse is the log of its softmax mass. The merged mass is the sum of both: "
        "lse = log(exp(lse_a) + exp(lse_b)).",
        "Subtract m = max(lse_a, lse_b) before exponentiating: w_a = exp(lse_a − m), "
        "w_b = exp(lse_b − m); then lse = m + log(w_a + w_b) and o = (w_a·o_a + w_b·o_b) / (w_a + w_b).",
        "lse has shape [..., N_q] and o [..., N_q, d]: use w[..., None] to broadcast. Guard "
        "the both-empty case: m = np.where(np.isfinite(m), m, 0) and divide by 1 where w_a + w_b == 0.",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): parts of equal mass (where an average is
# right), parts of very different mass, parts with no keys, and what the merged o and lse
# become there — each wrong merge has its own formula, computed here.
# ---------------------------------------------------------------------------

from typing import Any  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, Raised, attach, attempt, check as _holds, close,  # noqa: E402
                               pick, scaled)

_R = np.random.default_rng(1440)
_OA, _OB = _R.standard_normal((2, 3, 4))
_EQUAL = (_OA, np.array([0.5, -1.0, 2.0]), _OB, np.array([0.5, -1.0, 2.0]))      # equal masses
_APART = (_OA, np.array([3.0, 0.2, 1.0]), _OB, np.array([1.0, 2.2, 4.0]))        # lse all > 0
_EMPTY_BOTH = (np.zeros((1, 4)), np.full(1, -np.inf), np.zeros((1, 4)), np.full(1, -np.inf))
_MIDDLE_EMPTY = (_OA * np.array([[1], [0], [1]]), np.array([0.5, -np.inf, 1.0]),
                 _OB * np.array([[1], [0], [1]]), np.array([2.0, -np.inf, -0.5]))


def _run(parts: tuple) -> Any:
    return lambda ns: ns.merge_partials(*(p.copy() for p in parts))


def _pair(first: tuple, second: tuple) -> Any:
    return lambda ns: tuple(attempt(lambda p=p: _run(p)(ns)) for p in (first, second))


def _o_is(fn: Any, parts: tuple) -> Any:
    """o equals ``fn(parts)`` (a wrong merge computed here) and is not the right o."""
    return _holds(lambda g, w: not isinstance(g, Raised) and close(g[0], fn(*parts))
                  and not close(g[0], w[0]))


def _mean(o_a, lse_a, o_b, lse_b):
    return (o_a + o_b) / 2


def _lse_weighted(o_a, lse_a, o_b, lse_b):
    return (lse_a[:, None] * o_a + lse_b[:, None] * o_b) / (lse_a + lse_b)[:, None]


def _has_nan(g: Any) -> bool:
    return not isinstance(g, Raised) and bool(np.isnan(np.asarray(g[0], float)).any()
                                              or np.isnan(np.asarray(g[1], float)).any())


def _softmax_weights(o_a, lse_a, o_b, lse_b):
    """Correct, written differently: a softmax over the stacked lses, as weights."""
    lse = np.stack([lse_a, lse_b])
    top = np.max(lse, axis=0)
    safe = np.where(np.isfinite(top), top, 0)
    w = np.exp(lse - safe)
    total = w.sum(axis=0)
    share = w / np.where(total == 0, 1, total)
    o = share[0][..., None] * o_a + share[1][..., None] * o_b
    with np.errstate(divide="ignore"):
        return o, safe + np.log(total)


MERGE_PARTIALS = attach(
    MERGE_PARTIALS,
    probes={
        # source: flashinfer-ai/flashinfer#4051, vllm-project/vllm#39148 and #28181 (merging
        # two empty states: -inf − -inf = NaN)
        "nan_on_empty": (
            Probe("both parts without keys (o = 0, lse = -inf)", _run(_EMPTY_BOTH),
                  _holds(lambda g, w: _has_nan(g))),
            Probe("three queries, the middle one with no keys in either part",
                  _run(_MIDDLE_EMPTY),
                  _holds(lambda g, w: _has_nan(g) and close(g[0][[0, 2]], w[0][[0, 2]])
                         and close(g[1][[0, 2]], w[1][[0, 2]]))),
        ),
        # source: SHI-Labs/NATTEN#202 (merge_attentions weighs each part by exp(lse), and
        # computes those weights without overflow); an average ignores the masses
        "averaged_outputs": (
            Probe("equal masses (an average is right there), then different masses",
                  _pair(_EQUAL, _APART),
                  _holds(lambda g, w: close(g[0][0], w[0][0])
                         and close(g[1][0], _mean(*_APART)) and not close(g[1][0], w[1][0]))),
            Probe("parts of different mass: o is (o_a + o_b) / 2", _run(_APART),
                  _o_is(_mean, _APART)),
        ),
        # source: Dao-AILab/flash-attention#978 (an lse of +inf breaking merge_attentions:
        # lse is a log, its exp is the mass)
        "weighted_by_lse": (
            Probe("parts of different mass: o weighs each part by its lse",
                  _run(_APART), _o_is(_lse_weighted, _APART)),
            Probe("equal masses (weights ½ either way), then different masses",
                  _pair(_EQUAL, _APART),
                  _holds(lambda g, w: close(g[0][0], w[0][0])
                         and close(g[1][0], _lse_weighted(*_APART)))),
        ),
        # source: rabe-2021 and milakov-2018 (each part's o is already normalised; the mix
        # divides by the total weight)
        "not_renormalised": (
            Probe("equal masses: o is o_a + o_b, twice the right o", _run(_EQUAL),
                  _holds(lambda g, w: close(g[0], 2 * w[0]) and close(g[1], w[1]))),
            Probe("one query, different masses: o is the right o times a constant",
                  _run(tuple(p[:1] for p in _APART)), pick(0, scaled())),
        ),
        # source: deepseek-ai/FlashMLA#77 and Dao-AILab/flash-attention#978 (what lse a
        # merge must see); the masses add: log(e^a + e^b) ≥ max(a, b)
        "lse_is_max": (
            Probe("equal masses: o right, lse = lse_a (log 2 short)", _run(_EQUAL),
                  _holds(lambda g, w: close(g[0], w[0]) and close(g[1], _EQUAL[1]))),
            Probe("different masses: o right, lse = max(lse_a, lse_b)", _run(_APART),
                  _holds(lambda g, w: close(g[0], w[0])
                         and close(g[1], np.maximum(_APART[1], _APART[3]))
                         and not close(g[1], w[1]))),
        ),
    },
    diagnostics=(Probe("three queries, parts of different mass", _run(_APART),
                       axes=("query", "feature")),),
    variants=(Fake("softmax_over_lses", {"merge_partials": _softmax_weights}),),
)
