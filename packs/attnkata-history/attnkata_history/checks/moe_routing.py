"""moe_routing — top-k gating, capacity, dispatch, combine and the load-balancing loss
(Shazeer et al. 2017; Fedus et al. 2022)."""

from __future__ import annotations

import math

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.strategies import FLOAT_DTYPES, filled, seeds, sizes

from .common import call_shaped, softmax_rows


def _ref_gating(logits, k):
    experts = np.argsort(-logits, axis=-1, kind="stable")[:, :k].astype(np.int64)
    return experts, softmax_rows(np.take_along_axis(logits, experts, axis=-1)).astype(logits.dtype)


def _ref_dispatch(experts, n_experts, capacity, token_major=False, limit=True):
    n_tokens, k = experts.shape
    slots = np.full((n_tokens, k), -1, dtype=np.int64)
    filled = np.zeros(n_experts, dtype=np.int64)
    order = ([(t, c) for t in range(n_tokens) for c in range(k)] if token_major
             else [(t, c) for c in range(k) for t in range(n_tokens)])
    for t, c in order:
        e = experts[t, c]
        if filled[e] < capacity or not limit:
            slots[t, c] = filled[e]
            filled[e] += 1
    return slots


@st.composite
def _routing(draw):
    n_tokens, n_experts, d, d_out = draw(sizes(1, 24)), draw(sizes(1, 8)), draw(sizes(1, 6)), draw(sizes(1, 5))
    k = draw(st.integers(1, min(3, n_experts)))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    seed = draw(seeds())
    skew = draw(st.sampled_from((0.0, 0.0, 2.0)))     # a router that favours expert 0
    logits = filled((n_tokens, n_experts), dtype, 1.0, seed)
    logits[:, 0] += skew
    cf = draw(st.sampled_from((0.5, 1.0, 1.25, 2.0)))
    return (logits, k, cf, filled((n_tokens, d), dtype, 1.0, seed + 1),
            filled((n_experts, d, d_out), dtype, 1.0, seed + 2))


@check("gating, capacity, dispatch, combine and loss match the reference on random routers "
       "(skewed ones included), k ≤ 3 and capacity factors 0.5 … 2")
def moe_match(ctx):
    @ctx.given(case=_routing())
    def prop(case):
        logits, k, cf, x, w = case
        n_tokens, n_experts = logits.shape
        ctx.expect("top_k_gating", logits, k)
        ctx.expect("expert_capacity", n_tokens, n_experts, cf, k)
        experts, gates = _ref_gating(logits, k)
        cap = math.ceil(k * n_tokens * cf / n_experts)
        ctx.expect("dispatch", experts, n_experts, cap)
        slots = _ref_dispatch(experts, n_experts, cap)
        ctx.expect("moe_combine", x, experts, gates, slots, w)
        ctx.expect("load_balancing_loss", logits, experts)

    prop()


@check("capacity for many shapes, including ones where rounding matters")
def moe_capacity_table(ctx):
    for t, e, cf, k in ((8, 4, 1.0, 1), (10, 4, 1.0, 1), (10, 4, 1.25, 2), (7, 3, 0.5, 1),
                        (1024, 64, 1.0, 2), (1000, 7, 1.1, 1), (5, 8, 1.0, 1)):
        ctx.expect("expert_capacity", t, e, cf, k)


@check("the worked example of the stub: slots [0, 1, 0, −1], loss 1.0704")
def moe_worked_example(ctx):
    logits = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.5, 0.0]])
    ctx.expect("top_k_gating", logits, 1)
    experts = np.array([[0], [0], [1], [0]])
    ctx.expect("dispatch", experts, 2, 2)
    ctx.expect("load_balancing_loss", logits, experts)


@check("equal logits: the lower expert index comes first, also among 64 experts")
def moe_ties(ctx):
    logits = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
    for k in (1, 2):
        ctx.expect("top_k_gating", logits, k)
    # NumPy's default argsort is an introsort: stable by accident on a few experts (it
    # falls back to insertion sort), not on 64 with many ties, where it reorders equal
    # logits. Integer logits in 0..2 make every row full of ties.
    wide = np.random.default_rng(5).integers(0, 3, size=(32, 64)).astype(np.float64)
    for k in (2, 4):
        got = call_shaped(ctx, "top_k_gating", wide, k)
        ctx.match(got[0], ctx.reference("top_k_gating", wide, k)[0],
                  f"top_k_gating(logits [32, 64] of integers 0..2, so full of ties, {k}): the "
                  "experts. Equal logits must go to the lower index: a stable sort "
                  "(np.argsort(-logits, kind='stable'))",
                  rerun=lambda ns, k=k: ns.top_k_gating(wide.copy(), k)[0])


@check("no expert takes more than its capacity; a choice is dropped only when its expert is full")
def moe_capacity_respected(ctx):
    rng = np.random.default_rng(11)
    experts = np.stack([rng.permutation(6)[:2] for _ in range(40)])
    experts[:25, 0] = 0                                # expert 0 is popular
    cap = 7
    slots = np.asarray(call_shaped(ctx, "dispatch", experts, 6, cap))
    for e in range(6):
        got = np.sort(slots[(experts == e) & (slots >= 0)])
        if len(got) > cap or (got != np.arange(len(got))).any():
            ctx.expect("dispatch", experts, 6, cap)
            ctx.fail(f"expert {e} got slots {got.tolist()}: they must be 0, 1, … without gaps and "
                     f"at most capacity = {cap} of them.")
        if len(got) < cap and ((experts == e) & (slots < 0)).any():
            ctx.expect("dispatch", experts, 6, cap)
            ctx.fail(f"a choice of expert {e} was dropped although it holds only {len(got)} of "
                     f"{cap} tokens.")


@check("with room for everyone, y = Σ_c gates·(x @ w[expert]) — nothing dropped")
def moe_combine_direct(ctx):
    rng = np.random.default_rng(4)
    logits, x, w = rng.standard_normal((9, 4)), rng.standard_normal((9, 3)), rng.standard_normal((4, 3, 2))
    experts, gates = (np.asarray(a) for a in call_shaped(ctx, "top_k_gating", logits, 2))
    slots = np.asarray(call_shaped(ctx, "dispatch", experts, 4, 100))
    if (slots < 0).any():
        ctx.fail("dispatch dropped a token although capacity (100) exceeds the number of tokens (9).")
    want = sum(gates[:, c, None] * np.einsum("td,tde->te", x, w[experts[:, c]]) for c in range(2))
    ctx.match(call_shaped(ctx, "moe_combine", x, experts, gates, slots, w), want,
              "moe_combine with nothing dropped versus Σ_c gates[:, c]·(x @ w[experts[:, c]])",
              rerun=lambda ns: ns.moe_combine(x.copy(), experts.copy(), gates.copy(), slots.copy(), w.copy()))


@check("the loss is 1 when routing is perfectly even, E when everything goes to one expert")
def moe_loss_limits(ctx):
    e = 4
    uniform = np.zeros((8, e))
    even = np.repeat(np.arange(e), 2)[:, None]
    ctx.match(call_shaped(ctx, "load_balancing_loss", uniform, even), 1.0,
              "load_balancing_loss(uniform logits, even first choices)",
              rerun=lambda ns: ns.load_balancing_loss(uniform.copy(), even.copy()))
    collapsed = np.full((8, e), -1e4)
    collapsed[:, 0] = 0.0
    ctx.match(call_shaped(ctx, "load_balancing_loss", collapsed, np.zeros((8, 1), dtype=np.int64)), float(e),
              "load_balancing_loss(all probability and all tokens on expert 0)",
              rerun=lambda ns: ns.load_balancing_loss(collapsed.copy(), np.zeros((8, 1), dtype=np.int64)))


# --- misconceptions ------------------------------------------------------------

def _full_softmax_gating(logits, k):
    experts = np.argsort(-logits, axis=-1, kind="stable")[:, :k].astype(np.int64)
    return experts, np.take_along_axis(softmax_rows(logits), experts, axis=-1).astype(logits.dtype)


def _unstable_gating(logits, k):
    experts = np.argsort(logits, axis=-1, kind="stable")[:, ::-1][:, :k].astype(np.int64)
    return experts, softmax_rows(np.take_along_axis(logits, experts, axis=-1)).astype(logits.dtype)


def _combine(x, experts, gates, slots, w, use_gates=True, keep_dropped=False):
    y = np.zeros((x.shape[0], w.shape[-1]), dtype=x.dtype)
    for c in range(experts.shape[1]):
        kept = np.ones(x.shape[0], dtype=bool) if keep_dropped else slots[:, c] >= 0
        out = np.einsum("td,tde->te", x, w[experts[:, c]])
        y += (np.where(kept[:, None], (gates[:, c, None] if use_gates else 1) * out, 0)).astype(x.dtype)
    return y


def _loss(logits, experts, times_e=True, f_from_probs=False):
    n_tokens, n_experts = logits.shape
    probs = softmax_rows(np.asarray(logits, dtype=np.float64))
    p = probs.mean(axis=0)
    f = p if f_from_probs else np.bincount(experts[:, 0], minlength=n_experts) / n_tokens
    return float((n_experts if times_e else 1) * np.sum(f * p))


MISCONCEPTIONS = (
    # source: fedus-2022 §2.1 — Switch gates with p_i(x) over ALL experts; shazeer-2017-moe eq. (3)–(5)
    # (this kata) takes the softmax over the kept top-k logits, so gates sum to 1.
    Misconception("gates_not_renormalised", "took the full softmax's probabilities of the top k",
                  {"top_k_gating": _full_softmax_gating},
                  "This kata follows Shazeer et al.: softmax over the k KEPT logits, so each token's "
                  "gates sum to 1. (Switch, with k = 1, keeps p_i instead: another convention.)"),
    # source: numpy's argsort docs — reversing an ascending sort puts the HIGHER index first
    # among equal logits; the kata breaks ties toward the lower index.
    Misconception("ties_to_higher_index", "reversed an ascending argsort (ties go to the higher index)",
                  {"top_k_gating": _unstable_gating},
                  "np.argsort(-logits, kind='stable') keeps equal logits in index order; "
                  "np.argsort(logits)[:, ::-1] reverses that order too."),
    # source: fedus-2022 eq. (3) — capacity = tokens/experts × capacity factor; rounding down
    # drops a token the budget had room for.
    Misconception("capacity_rounded_down", "rounded the capacity down",
                  {"expert_capacity": lambda t, e, cf, k=1: int(k * t * cf / e)},
                  "C = ⌈k·T·cf/E⌉: 10 tokens over 4 experts need buffers of 3, not 2."),
    # source: lepikhin-2021 GShard §2.2 / fedus-2022 — with k choices each token occupies k
    # slots, so the average load is k·T/E.
    Misconception("capacity_ignores_k", "left k out of the capacity",
                  {"expert_capacity": lambda t, e, cf, k=1: math.ceil(t * cf / e)},
                  "Each token sends k copies: the average expert receives k·T/E of them."),
    # source: lepikhin-2021 GShard Algorithm 1 — second choices are placed only after every
    # token's first choice.
    Misconception("dispatch_token_major", "placed each token's choices together (token by token)",
                  {"dispatch": lambda ex, n, cap: _ref_dispatch(ex, n, cap, token_major=True)},
                  "First choices of ALL tokens go first, then second choices: a late token's first "
                  "choice must not lose its slot to an earlier token's second choice."),
    # source: fedus-2022 §2.2 — tokens beyond an expert's capacity are dropped (skip the layer).
    Misconception("no_capacity_limit", "never dropped a token",
                  {"dispatch": lambda ex, n, cap: _ref_dispatch(ex, n, cap, limit=False)},
                  "An expert's buffer holds C tokens; the next ones get slot −1."),
    # source: shazeer-2017-moe eq. (1) — y = Σ_i G(x)_i E_i(x): outputs are weighted by the gates.
    Misconception("ignored_gates", "added the experts' outputs without their gates",
                  {"moe_combine": lambda x, ex, g, s, w: _combine(x, ex, g, s, w, use_gates=False)},
                  "Multiply each expert's output by its gate; the gates are what the router learns "
                  "through."),
    # source: fedus-2022 §2.2 — a dropped token's representation is passed on by the residual
    # connection only; the expert never sees it.
    Misconception("computed_dropped", "still applied the expert to dropped choices",
                  {"moe_combine": lambda x, ex, g, s, w: _combine(x, ex, g, s, w, keep_dropped=True)},
                  "A choice with slot −1 never reached the expert: it adds nothing to y."),
    # source: fedus-2022 eq. (4) — loss = α·N·Σ f_i·P_i; the factor N (experts) makes the even
    # optimum equal 1 whatever N is.
    Misconception("loss_without_e", "left out the factor E",
                  {"load_balancing_loss": lambda lg, ex: _loss(lg, ex, times_e=False)},
                  "Multiply by E: then perfectly even routing scores 1 for any number of experts."),
    # source: fedus-2022 §2.2 — f_i counts hard assignments (not differentiable); P_i carries the
    # gradient. Using P for both makes it E·Σ P_i².
    Misconception("f_from_probabilities", "used the mean probabilities for f as well",
                  {"load_balancing_loss": lambda lg, ex: _loss(lg, ex, f_from_probs=True)},
                  "f_e is the share of tokens whose first choice IS e (counted from experts[:, 0]); "
                  "only P_e comes from the softmax."),
)

MOE_ROUTING = Kata(
    id="moe_routing",
    level=23,
    title="MoE routing: top-k gates, capacity, dropped tokens, balance",
    path="history/moe_routing.py",
    entries=("top_k_gating", "expert_capacity", "dispatch", "moe_combine", "load_balancing_loss"),
    checks=(moe_match, moe_capacity_table, moe_worked_example, moe_ties, moe_capacity_respected, moe_combine_direct,
            moe_loss_limits),
    predictions=(
        Prediction("dropped_cf1", "8 tokens, 4 experts, k = 1, capacity factor 1.0; 6 pick expert 0, "
                   "1 expert 1, 1 expert 2: tokens dropped", 4, kind="exact",
                   why="C = ⌈8·1/4⌉ = 2: expert 0 keeps 2 of its 6, the others fit: 4 dropped."),
        Prediction("dropped_cf2", "the same with capacity factor 2.0", 2, kind="exact",
                   why="C = ⌈8·2/4⌉ = 4: expert 0 keeps 4 of 6: 2 dropped — doubling the buffers "
                       "(and their compute) still drops tokens when the router is skewed."),
        Prediction("uniform_loss", "load-balancing loss for uniform router rows and even first "
                   "choices", 1.0,
                   why="f_e = P_e = 1/E: E·Σ_e (1/E)(1/E) = E·E/E² = 1, its minimum."),
    ),
    misconceptions=MISCONCEPTIONS,
    claims=(
        Claim("moe-capacity", "With capacity ⌈k·T·cf/E⌉ no expert holds more than its capacity, and a "
              "choice is dropped only when its expert is already full; first choices are placed "
              "before second choices.", scope="exact", source="fedus-2022",
              evidence=("moe_match", "moe_capacity_respected"),
              not_claimed="How many tokens a trained router drops: that depends on training, and "
                          "the auxiliary loss's weight α is not modelled."),
        Claim("moe-balance-loss", "The Switch load-balancing loss E·Σ f_e·P_e equals 1 for perfectly "
              "even routing and E when everything goes to one expert.", scope="exact",
              source="fedus-2022", evidence=("moe_loss_limits",),
              not_claimed="That minimising it alone gives good routing; no training is run."),
        Claim("moe-gated-sum", "A sparsely gated layer outputs Σ over kept choices of gate × expert "
              "output, with gates from a softmax over the top-k logits.", scope="exact",
              source="shazeer-2017-moe", evidence=("moe_combine_direct",),
              not_claimed="The paper's noisy gating (learned noise before the top-k) is left out."),
    ),
    hints=(
        "Gating: experts = np.argsort(-logits, axis=-1, kind='stable')[:, :k]; gather their logits "
        "with np.take_along_axis and softmax those. Capacity: math.ceil(k * T * cf / E).",
        "Dispatch: a counter per expert; loop c over choices OUTSIDE, t over tokens inside; a "
        "choice gets the counter's value if it is below capacity, else −1.",
        "Combine: for each choice c, out = np.einsum('td,tde->te', x, w[experts[:, c]]); add "
        "gates[:, c, None] * out where slots[:, c] >= 0. Loss: f = np.bincount(experts[:, 0], "
        "minlength=E) / T, P = softmax(logits).mean(0), E * (f * P).sum().",
    ),
)
