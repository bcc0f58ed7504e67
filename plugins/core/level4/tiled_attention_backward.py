"""Level 4 · tiled_attention_backward: gradients recomputed tile by tile from lse."""

from __future__ import annotations

import math

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import filled, qkv, seeds, sizes

from .probe import call_watched, causal_allowed, plain_attention, score_max
from .tiled_attention import judge_tiles


def autograd_grads(q, k, v, do, causal):
    """(dq, dk, dv) of plain attention by torch autograd, in float64 on the CPU."""
    import torch

    Q, K, V = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, k, v))
    s = Q @ K.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(~torch.from_numpy(causal_allowed(q.shape[-2], k.shape[-2])), -math.inf)
    m = s.amax(dim=-1, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(s - m)
    total = e.sum(dim=-1, keepdim=True)
    o = (e / torch.where(total == 0, torch.ones_like(total), total)) @ V
    o.backward(torch.tensor(do, dtype=torch.float64))
    return tuple(t.grad.numpy().astype(q.dtype) for t in (Q, K, V))


def grad_tol(q, k, want):
    """float64: the default.  float32: rounding a score of size |s| moves the weights by about
    |s|·ε relatively, and every gradient by that much of the largest one."""
    if q.dtype != np.float32:
        return None
    eps = float(np.finfo(np.float32).eps)
    largest = max([1.0] + [float(np.abs(w).max()) for w in want if w.size])
    return 1e-3, 16 * eps * (1.0 + score_max(q, k)) * largest


@st.composite
def _case(draw, dtypes=(np.float32, np.float64)):
    q, k, v = draw(qkv(max_n=20, max_d=10, dtypes=dtypes, scales=(1.0, 1.0, 0.001, 10.0, 40.0)))
    do = filled(q.shape[:-1] + (v.shape[-1],), q.dtype, 1.0, draw(seeds()))
    return q, k, v, do, draw(sizes(1, 9)), draw(sizes(1, 9)), draw(st.booleans())


def _run(ns, q, k, v, do, block_q, block_k, causal):
    o, lse = plain_attention(q, k, v, causal)
    return ns.tiled_attention_backward(q.copy(), k.copy(), v.copy(), o, lse, do.copy(),
                                       block_q=block_q, block_k=block_k, causal=causal)


def _expect_grads(ctx, q, k, v, do, block_q, block_k, causal, *, truth):
    o, lse = plain_attention(q, k, v, causal)
    kw = dict(block_q=block_q, block_k=block_k, causal=causal)
    if not truth:
        want = ctx.reference("tiled_attention_backward", q, k, v, o, lse, do, **kw)
        return ctx.expect("tiled_attention_backward", q, k, v, o, lse, do,
                          tol=grad_tol(q, k, want), **kw)
    got = ctx.call_soon("tiled_attention_backward", q, k, v, o, lse, do, **kw)
    want = autograd_grads(q, k, v, do, causal)    # computed here while the worker runs the learner's
    got = got()
    ctx.match(got, want,
              f"tiled_attention_backward(q=[{', '.join(map(str, q.shape))}], block_q={block_q}, "
              f"block_k={block_k}, causal={causal}) vs torch autograd (float64)",
              tol=grad_tol(q, k, want), rerun=lambda ns: _run(ns, q, k, v, do, block_q, block_k, causal))
    return got


@check("dq, dk, dv match torch autograd of plain attention (float64) for random shapes, "
       "blocks and causal masks")
def backward_matches_autograd(ctx):
    @ctx.given(case=_case(dtypes=(np.float64,)))
    def prop(case):
        _expect_grads(ctx, *case, truth=True)

    prop()


@check("matches the reference in float32 and float64, extreme scales included")
def backward_matches_reference(ctx):
    @ctx.given(case=_case())
    def prop(case):
        _expect_grads(ctx, *case, truth=False)

    prop()


@check("square tiles (N_q = N_k, block_q = block_k) and the default blocks, causal and not")
def backward_square(ctx):
    q, k, v, do = (ctx.rng.standard_normal((2, 32, 8)) for _ in range(4))
    for causal in (False, True):
        _expect_grads(ctx, q, k, v, do, 8, 8, causal, truth=True)
        _expect_grads(ctx, q, k, v, do, 64, 64, causal, truth=False)


@check("queries that see no key (causal, N_q > N_k) get zero gradients, not NaN")
def backward_empty_queries(ctx):
    for dtype in (np.float32, np.float64):
        q, do = (ctx.rng.standard_normal((9, 4)).astype(dtype) for _ in range(2))
        k, v = (ctx.rng.standard_normal((4, 4)).astype(dtype) for _ in range(2))
        for block_q, block_k in ((2, 3), (4, 4)):
            _expect_grads(ctx, q, k, v, do, block_q, block_k, True, truth=dtype == np.float64)


@check("recomputes score tiles no larger than block_q × block_k and skips the causally empty "
       "ones (one or two passes over the tiles; counted, not timed)")
def backward_counts_tiles(ctx):
    for n_q, n_k, block_q, block_k, causal in ((40, 40, 8, 8, True), (13, 29, 4, 8, True),
                                               (20, 20, 6, 7, False)):
        q, k, v, do = (ctx.rng.standard_normal((n, 8)) for n in (n_q, n_k, n_k, n_q))
        o, lse = plain_attention(q, k, v, causal)
        kw = dict(block_q=block_q, block_k=block_k, causal=causal)
        what = (f"tiled_attention_backward(q=[{n_q}, 8], k=[{n_k}, 8], block_q={block_q}, "
                f"block_k={block_k}, causal={causal})")
        got, log = call_watched(ctx, "tiled_attention_backward", (q, k, v, o, lse, do), kw,
                                {0: "q", 1: "k"}, what)
        ctx.match(got, ctx.reference("tiled_attention_backward", q, k, v, o, lse, do, **kw), what,
                  rerun=lambda ns: _run(ns, q, k, v, do, **kw))
        judge_tiles(ctx, log, what, n_q, n_k, block_q, block_k, causal, passes=(1, 2))


# ---------------------------------------------------------------------------
# Wrong variants
# ---------------------------------------------------------------------------

def _backward(q, k, v, o, lse, do, block_q=64, block_k=64, causal=False, *, use_d=True,
              normalised=True, scaled=True, transposed=False):
    n_q, d = q.shape[-2:]
    n_k = k.shape[-2]
    scale = d ** -0.5 if scaled else 1.0
    offset = n_k - n_q
    D = np.sum(do * o, axis=-1) if use_d else np.zeros(o.shape[:-1], dtype=o.dtype)
    lse = np.where(np.isfinite(lse), lse, 0)
    dq, dk, dv = (np.zeros(a.shape, dtype=a.dtype) for a in (q, k, v))
    for k0 in range(0, n_k, block_k):
        k1 = min(k0 + block_k, n_k)
        k_j, v_j = k[..., k0:k1, :], v[..., k0:k1, :]
        for q0 in range(0, n_q, block_q):
            q1 = min(q0 + block_q, n_q)
            q_i, do_i = q[..., q0:q1, :], do[..., q0:q1, :]
            s = (q_i @ np.swapaxes(k_j, -1, -2)) * d ** -0.5
            if causal:
                s = np.where(np.arange(k0, k1)[None, :] <= np.arange(q0, q1)[:, None] + offset, s, -np.inf)
            p = np.exp(s - lse[..., q0:q1, None]) if normalised else np.exp(s)
            dv[..., k0:k1, :] += np.swapaxes(p, -1, -2) @ do_i
            ds = p * (do_i @ np.swapaxes(v_j, -1, -2) - D[..., q0:q1, None])
            dq[..., q0:q1, :] += (ds @ k_j) * scale
            dk[..., k0:k1, :] += ((ds @ q_i) if transposed else (np.swapaxes(ds, -1, -2) @ q_i)) * scale
    return dq, dk, dv


def _variant(**flags):
    def wrong(q, k, v, o, lse, do, block_q=64, block_k=64, causal=False):
        return _backward(q, k, v, o, lse, do, block_q, block_k, causal, **flags)
    return wrong



def _backward_layout_cases(ctx):
    q, k, v, do = (ctx.rng.standard_normal((2, 10, 8)) for _ in range(4))
    for causal in (False, True):
        o, lse = plain_attention(q, k, v, causal)
        yield (q, k, v, o, lse, do), {"block_q": 4, "block_k": 3, "causal": causal}


backward_strided_inputs = layout_check(
    "tiled_attention_backward", _backward_layout_cases,
    "q, k, v, o, lse and do as transposed, sliced and Fortran-ordered views",
    id="backward_strided_inputs", layouts=("transposed", "sliced", "fortran"))


TILED_ATTENTION_BACKWARD = Kata(
    id="tiled_attention_backward",
    level=4,
    title="FlashAttention's backward: recompute the tiles from lse, never store P",
    path="level4/tiled_attention_backward.py",
    entries=("tiled_attention_backward",),
    probes=("attnkata_plugins.core.level4.probe",),  # watched_call runs in the worker
    checks=(backward_matches_autograd, backward_matches_reference, backward_square,
            backward_empty_queries, backward_counts_tiles,
            backward_strided_inputs),
    predictions=(
        Prediction("d_row", "one query with o = [1, 2] and dO = [3, -1]: its D = rowsum(dO ∘ O)",
                   1.0, why="3·1 + (−1)·2 = 1."),
        Prediction("p_over_lse_bytes", "N = 8192: bytes of P stored in fp16 (N×N) divided by bytes "
                   "of lse stored in fp32 (N values)", 4096,
                   why="2·N² / (4·N) = N / 2 = 4096: 128 MiB against 32 KiB."),
    ),
    misconceptions=(
        Misconception("forgot_D", "forgot the D = rowsum(dO ∘ O) term in dS",
                      {"tiled_attention_backward": _variant(use_d=False)},
                      "Softmax's Jacobian gives dS = P ∘ (dP − D) with D_i = Σ_j P_ij·dP_ij = "
                      "rowsum(dO ∘ O)_i: every probability competes with the others."),
        Misconception("unnormalised_p", "recomputed P as exp(S) without subtracting lse (unnormalised)",
                      {"tiled_attention_backward": _variant(normalised=False)},
                      "P = exp(S − lse) is the softmax itself: lse carries both the max and the "
                      "normaliser, so no division is needed, and nothing overflows."),
        Misconception("missing_scale", "left the 1/√d scale out of dq and dk",
                      {"tiled_attention_backward": _variant(scaled=False)},
                      "S = Q·Kᵀ/√d, so dQ = dS·K/√d and dK = dSᵀ·Q/√d."),
        Misconception("transposed_ds", "used dS instead of dSᵀ for dk",
                      {"tiled_attention_backward": _variant(transposed=True)},
                      "dS is [queries, keys]; dK_j = dS_ijᵀ·Q_i sums over the queries."),
    ),
    claims=(
        Claim("backward-matches-autograd",
              "The tiled backward, recomputing P from lse tile by tile, equals autograd's gradients "
              "of plain attention for dq, dk and dv, causal and not.", scope="exact",
              source="dao-2022", evidence=("backward_matches_autograd", "backward_square",
                                           "backward_empty_queries"),
              not_claimed="Nothing about speed or GPU memory traffic; float64 on the CPU."),
    ),
    hints=(
        "Recompute each tile exactly as the forward did: s = q_i @ k_jᵀ / √d (masked where "
        "causal), then P = exp(s − lse_i) — already normalised.",
        "dV_j += Pᵀ @ dO_i; dP = dO_i @ v_jᵀ; dS = P ∘ (dP − D_i) with D = rowsum(dO ∘ O) "
        "computed once before the loops.",
        "dQ_i += dS @ k_j / √d and dK_j += dSᵀ @ q_i / √d. Replace a -inf lse by 0 before "
        "subtracting: those rows are all -inf, so P is 0 there.",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): inputs on which a wrong backward shows its
# own signature — every value row equal (dS must vanish: only a missing D leaves it), all
# scores 0 (an unnormalised P scales dV by N_k), d = 1 (no scale to forget), square and
# rectangular tiles (dS used untransposed), causal or not — and each wrong formula,
# computed here on the full matrices.
# ---------------------------------------------------------------------------

from typing import Any  # noqa: E402

from attnkata import Fake  # noqa: E402
from attnkata.diagnose import (Probe, Raised, all_of, attach, attempt, check as _holds,  # noqa: E402
                               close, pick, scaled)

_B = np.random.default_rng(1460)
_QB, _KB, _VB, _DO = (_B.standard_normal((8, 4)) for _ in range(4))
_FLATV = np.repeat(_VB[:1], 8, axis=0)                  # every value row equal
_ZEROK = np.zeros((8, 4))                               # every score 0
_D1 = tuple(_B.standard_normal((6, 1)) for _ in range(3)) + (_B.standard_normal((6, 1)),)
_D9 = tuple(_B.standard_normal((6, 9)) for _ in range(3)) + (_B.standard_normal((6, 9)),)
_GEN = (_QB, _KB, _VB, _DO)


def _bwd(args: tuple, bq: int = 4, bk: int = 4, causal: bool = False) -> Any:
    return lambda ns: _run(ns, *args, bq, bk, causal)


def _pair(first: Any, second: Any) -> Any:
    return lambda ns: (attempt(lambda: first(ns)), attempt(lambda: second(ns)))


def _grads(q, k, v, do, causal=False, *, use_d=True, norm=True, scale=True, dk_t=True,
           mask=True):
    """dq, dk, dv on the full matrices (float64), each flag one wrong formula."""
    o, lse = plain_attention(q, k, v, causal)
    d = q.shape[-1]
    s = q @ k.T / math.sqrt(d)
    if causal and mask:
        s = np.where(causal_allowed(len(q), len(k)), s, -np.inf)
    p = np.exp(s - lse[:, None]) if norm else np.exp(s)
    dv = p.T @ do
    dp = do @ v.T
    ds = p * (dp - ((do * o).sum(-1)[:, None] if use_d else 0))
    c = 1 / math.sqrt(d) if scale else 1.0
    return ds @ k * c, (ds.T @ q if dk_t else ds @ q) * c, dv


def _is(want: tuple) -> Any:
    """The output equals ``want`` (a wrong formula's gradients) and is wrong."""
    return _holds(lambda g, w: not isinstance(g, Raised) and all(close(a, b) for a, b in zip(g, want))
                  and not all(close(a, b) for a, b in zip(g, w)))


def _right(g: Any, w: Any, which=(0, 1, 2)) -> bool:
    return not isinstance(g, Raised) and all(close(g[i], w[i]) for i in which)


def _ignores_causal(q, k, v, o, lse, do, block_q=64, block_k=64, causal=False):
    return _backward(q, k, v, o, lse, do, block_q, block_k, False)


def _query_outer(q, k, v, o, lse, do, block_q=64, block_k=64, causal=False):
    """Correct, written differently: query blocks outside (dq local, dk and dv accumulated
    across query blocks), D computed per query block."""
    n_q, d = q.shape[-2:]
    n_k = k.shape[-2]
    off = n_k - n_q
    lse = np.where(np.isfinite(lse), lse, 0)
    dq, dk, dv = np.zeros(q.shape, q.dtype), np.zeros(k.shape, k.dtype), np.zeros(v.shape, v.dtype)
    for q0 in range(0, n_q, block_q):
        q1 = min(q0 + block_q, n_q)
        D = np.einsum("...qd,...qd->...q", do[..., q0:q1, :], o[..., q0:q1, :])
        for k0 in range(0, n_k, block_k):
            k1 = min(k0 + block_k, n_k)
            if causal and k0 > q1 - 1 + off:
                break
            s = np.einsum("...qd,...kd->...qk", q[..., q0:q1, :], k[..., k0:k1, :]) / math.sqrt(d)
            if causal:
                s = np.where(np.arange(k0, k1)[None, :] <= np.arange(q0, q1)[:, None] + off, s, -np.inf)
            p = np.exp(s - lse[..., q0:q1, None])
            dv[..., k0:k1, :] += np.einsum("...qk,...qd->...kd", p, do[..., q0:q1, :])
            ds = p * (np.einsum("...qd,...kd->...qk", do[..., q0:q1, :], v[..., k0:k1, :]) - D[..., None])
            dq[..., q0:q1, :] += np.einsum("...qk,...kd->...qd", ds, k[..., k0:k1, :]) / math.sqrt(d)
            dk[..., k0:k1, :] += np.einsum("...qk,...qd->...kd", ds, q[..., q0:q1, :]) / math.sqrt(d)
    return dq, dk, dv


TILED_ATTENTION_BACKWARD = attach(
    TILED_ATTENTION_BACKWARD,
    add=(
        # source: Dao-AILab/flash-attention#517 (where the causal mask goes; the backward
        # must place it exactly as the forward did)
        Misconception("backward_ignores_causal", "recomputed P without the causal mask",
                      {"tiled_attention_backward": _ignores_causal},
                      "exp(s − lse) is not 0 above the diagonal by itself: lse came from the "
                      "masked row, but s there is finite. Mask s exactly as the forward did "
                      "before exponentiating."),
    ),
    probes={
        # source: Dao-AILab/flash-attention#2555 (D_i = rowsum(dO ∘ O) in the papers);
        # tile-ai/tilelang#547 (the flash_bwd_prep pass that computes Delta)
        "forgot_D": (
            Probe("every value row equal (dS must vanish): dq and dk nonzero, dv right",
                  _bwd((_QB, _KB, _FLATV, _DO)),
                  _holds(lambda g, w: _right(g, w, (2,)) and float(np.abs(g[0]).max()) > 1e-3
                         and float(np.abs(w[0]).max()) < 1e-9)),
            Probe("8 queries and keys, tiles 4 × 4: dS = P ∘ dP, no D", _bwd(_GEN),
                  _is(_grads(*_GEN, use_d=False))),
        ),
        # source: dao-2022 Algorithm 4 (P_ij = diag(l_i)⁻¹ exp(S_ij − m_i), from the stored
        # statistics); Dao-AILab/flash-attention#978 (what the stored LSE must be for that)
        "unnormalised_p": (
            Probe("every score 0 (lse = ln 8): dv is 8 times the right one",
                  _bwd((_QB, _ZEROK, _VB, _DO)),
                  _holds(lambda g, w: not isinstance(g, Raised) and close(g[2], 8 * w[2])
                         and not close(g[2], w[2]))),
            Probe("8 queries and keys, tiles 4 × 4: P = exp(S)", _bwd(_GEN),
                  _is(_grads(*_GEN, norm=False))),
        ),
        # source: Dao-AILab/flash-attention#373 (a reader's chain rule through S = QKᵀ
        # leaving out a factor); the scale multiplies dq and dk, never dv
        "missing_scale": (
            Probe("d = 1 (scale 1), then d = 9 (scale 1/3)",
                  _pair(_bwd(_D1, 2, 3), _bwd(_D9, 2, 3)),
                  _holds(lambda g, w: _right(g[0], w[0]) and _right(g[1], w[1], (2,))
                         and close(g[1][0], 3 * w[1][0]) and close(g[1][1], 3 * w[1][1])
                         and not close(g[1][0], w[1][0]))),
            Probe("d = 4: dq and dk a constant times the right ones, dv right", _bwd(_GEN),
                  all_of(pick(0, scaled()), pick(1, scaled()),
                         _holds(lambda g, w: _right(g, w, (2,))))),
        ),
        # source: Dao-AILab/flash-attention#373 (dK = QdSᵀ vs dSᵀQ in the paper's text)
        "transposed_ds": (
            Probe("square 4 × 4 tiles: dq and dv right, dk wrong", _bwd(_GEN),
                  _holds(lambda g, w: _right(g, w, (0, 2)) and not close(g[1], w[1]))),
            Probe("tiles 2 × 4 (dS is not square): dk wrong or a shape error",
                  _bwd(_GEN, 2, 4),
                  _holds(lambda g, w: (isinstance(g, Raised) and g.type == "ValueError")
                         or (_right(g, w, (0, 2)) and not close(g[1], w[1])))),
        ),
        "backward_ignores_causal": (
            Probe("not causal, then causal (8 × 8, tiles 4 × 4)",
                  _pair(_bwd(_GEN), _bwd(_GEN, causal=True)),
                  _holds(lambda g, w: _right(g[0], w[0]) and not isinstance(g[1], Raised)
                         and not close(g[1][2], w[1][2]))),
            Probe("causal: P recomputed without the mask", _bwd(_GEN, causal=True),
                  _is(_grads(*_GEN, causal=True, mask=False))),
        ),
    },
    raises={"transposed_ds": (("ValueError", r"mismatch|align|shape"),)},
    diagnostics=(Probe("8 queries and keys, causal, tiles 4 × 4", _bwd(_GEN, causal=True),
                       axes=("row", "feature"), tiles={"row": 4}),),
    variants=(Fake("query_blocks_outside", {"tiled_attention_backward": _query_outer}),),
)
