"""Level 5 · flash_attention_backward — gradients recomputed tile by tile from the lse."""

from __future__ import annotations

from typing import Any

from attnkata import Claim, Fake, Kata, Misconception, Prediction
from attnkata.layouts import layout_check

from .common import (BWD_TOL, Case, as_outputs, attention64, cases, kernel_check,
                            refuse_torch_attention, scale_of, scores64)

ENTRY = "flash_attention_backward"


def backward_inputs(case: Case) -> tuple:
    """``(q, k, v, o, lse, do)``: o and lse from float64 attention, in the kernel's types."""
    q, k, v, do = case.tensors(with_do=True)
    o, lse = as_outputs(q, *attention64(q, k, v, case.causal, case.sm_scale))
    return q, k, v, o, lse, do


def autograd64(q, k, v, do, causal=False, sm_scale=None):
    """dq, dk, dv by torch autograd through float64 attention, cast to the inputs' dtypes."""
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    o, _ = attention64(q64, k64, v64, causal, sm_scale)
    o.backward(do.double())
    return q64.grad.to(q.dtype), k64.grad.to(k.dtype), v64.grad.to(v.dtype)


def grads64(q, k, v, o, lse, do, causal=False, sm_scale=None, *, delta=True, group_sum=True,
            scaled=True, mask_in_backward=True):
    """The FlashAttention backward in float64 from ``(o, lse)``, with switches for the bugs."""
    import torch

    sc = scale_of(q, sm_scale)
    s, _, heads = scores64(q, k, causal and mask_in_backward, sc)
    p = torch.exp(s - lse.double()[..., None])  # P rebuilt from lse; masked scores give 0
    kk, vv, dod = k.double()[:, heads], v.double()[:, heads], do.double()
    dp = dod @ vv.transpose(-1, -2)
    d_row = (dod * o.double()).sum(-1, keepdim=True) if delta else 0.0
    ds = p * (dp - d_row)
    g = sc if scaled else 1.0
    dq = (ds @ kk) * g
    dk_h, dv_h = (ds.transpose(-1, -2) @ q.double()) * g, p.transpose(-1, -2) @ dod

    def fold(x: Any) -> Any:  # (B, H_q, N, d) -> (B, H_kv, N, d)
        B, H_q, N, d = x.shape
        x = x.reshape(B, k.shape[1], H_q // k.shape[1], N, d)
        return x.sum(2) if group_sum else x[:, :, 0]

    return dq.to(q.dtype), fold(dk_h).to(k.dtype), fold(dv_h).to(v.dtype)


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def _layout_cases(ctx):
    for case in (Case(1, 4, 2, 17, 16, "float32", True, None, 1.0, 31),
                 Case(1, 2, 1, 20, 16, "float16", False, 0.3, 1.0, 32)):
        yield backward_inputs(case), {"causal": case.causal, "sm_scale": case.sm_scale}


# q and k as views while v, o and do stay packed: roles that share one set of strides in
# the kernels get different layouts, so only the launcher's .contiguous() makes it right
bwd_strided_inputs = layout_check(
    ENTRY, _layout_cases,
    "q and k as transposed, sliced and head-interleaved views, v, o and do packed: the "
    "launcher's .contiguous() gives every role one layout",
    id="bwd_strided_inputs", layouts=("transposed", "sliced", "heads_interleaved"),
    which=(0, 1), tol=lambda args, kwargs: BWD_TOL[str(args[0].dtype).replace("torch.", "")],
    decorator=kernel_check)


def _expect(ctx: Any, case: Case, inputs: tuple | None = None) -> Any:
    inputs = inputs or backward_inputs(case)
    return ctx.expect(ENTRY, *inputs, causal=case.causal, sm_scale=case.sm_scale,
                      tol=BWD_TOL[case.dtype])


@kernel_check("matches the reference kernels: GQA, causal or not, N not a multiple of the block, fp32/fp16")
def bwd_matches_reference(ctx):
    @ctx.given(max_examples=12, shrink=False, case=cases())
    def prop(case):
        _expect(ctx, case)

    prop()


@kernel_check("agrees with float64 torch autograd through attention")
def bwd_matches_autograd(ctx):
    for case in (Case(1, 2, 1, 33, 32, "float32", True, None, 2.0, 21),
                 Case(1, 2, 2, 17, 16, "float16", False, 0.3, 1.0, 22)):
        inputs = backward_inputs(case)
        q, k, v, o, lse, do = inputs
        got = _expect(ctx, case, inputs)
        want = autograd64(q, k, v, do, case.causal, case.sm_scale)
        ctx.match(got, want, f"{ENTRY} against float64 autograd ({case.dtype}, causal={case.causal})",
                  rerun=lambda ns, c=case: getattr(ns, ENTRY)(*backward_inputs(c), causal=c.causal,
                                                              sm_scale=c.sm_scale),
                  tol=BWD_TOL[case.dtype], entries=(ENTRY,))


@kernel_check("GQA: a KV head's dk and dv are the sums over the query heads that share it")
def bwd_gqa_group_sum(ctx):
    for h_q, h_kv, causal in ((4, 1, False), (4, 2, True)):
        _expect(ctx, Case(1, h_q, h_kv, 17, 16, "float32", causal, None, 1.0, 30 + h_kv))


@kernel_check("the kernels compute the gradients: no torch SDPA or autograd over an N × N matrix")
def bwd_no_torch_attention(ctx):
    case = Case(1, 2, 1, 40, 16, "float32", True, None, 1.0, 41)
    inputs = backward_inputs(case)
    refuse_torch_attention(ctx, ENTRY, inputs, {"causal": True}, case.N)
    _expect(ctx, case, inputs)


# ---------------------------------------------------------------------------
# Misconceptions
# ---------------------------------------------------------------------------

def _no_delta(q, k, v, o, lse, do, causal=False, sm_scale=None):
    return grads64(q, k, v, o, lse, do, causal, sm_scale, delta=False)


def _first_head_only(q, k, v, o, lse, do, causal=False, sm_scale=None):
    return grads64(q, k, v, o, lse, do, causal, sm_scale, group_sum=False)


def _unscaled_grads(q, k, v, o, lse, do, causal=False, sm_scale=None):
    return grads64(q, k, v, o, lse, do, causal, sm_scale, scaled=False)


def _unmasked_recompute(q, k, v, o, lse, do, causal=False, sm_scale=None):
    return grads64(q, k, v, o, lse, do, causal, sm_scale, mask_in_backward=False)


def _autograd_shortcut(q, k, v, o, lse, do, causal=False, sm_scale=None):
    return autograd64(q, k, v, do, causal, sm_scale)


FLASH_ATTENTION_BACKWARD = Kata(
    id="flash_attention_backward",
    level=5,
    title="FlashAttention backward in Triton: recompute P from the lse",
    path="level5/flash_attention_backward.py",
    entries=(ENTRY,),
    checks=(bwd_matches_reference, bwd_matches_autograd, bwd_gqa_group_sum, bwd_no_torch_attention,
            bwd_strided_inputs),
    predictions=(
        Prediction("backward_matmuls", "tile-sized matmuls per (query tile, key tile) pair in the "
                   "backward (the forward has 2: Q·Kᵀ and P·V)", 5, kind="exact",
                   why="Q·Kᵀ again (to rebuild P), dV += Pᵀ·dO, dP = dO·Vᵀ, dQ += dS·K, dK += dSᵀ·Q."),
        Prediction("backward_flops", "FLOPs of the backward at B = 4, H = 32, N = 4096, d = 128, "
                   "not causal", 2.74877906944e12, rel_tol=0.01,
                   why="5 matmuls of 2·N²·d per head: 10·B·H·N²·d, 2.5× the forward."),
        Prediction("stored_p_bytes", "bytes to keep P for the backward at B = 4, H = 32, N = 4096 "
                   "in fp16 (what recomputation avoids)", 4_294_967_296, rel_tol=0.01,
                   why="B·H·N²·2 bytes = 4 GiB."),
        Prediction("lse_bytes", "bytes of the float32 lse that replaces it", 2_097_152, rel_tol=0.01,
                   why="B·H·N·4 bytes = 2 MiB: one number per query row."),
    ),
    misconceptions=(
        Misconception("missing_delta", "forgot D = rowsum(dO ∘ O) in dS = P ∘ (dP − D)",
                      {ENTRY: _no_delta},
                      "The softmax Jacobian subtracts each row's Σ_k P_ik dP_ik, which equals "
                      "dO_i · O_i: compute D once per row (a pre-pass) and use dS = P * (dP − D[:, None])."),
        Misconception("gqa_not_summed", "dk/dv not summed over the GQA group (one query head only)",
                      {ENTRY: _first_head_only},
                      "Every query head of a group reads the same K, V, so their gradients add: "
                      "loop g over GROUP inside the dK/dV program and accumulate all of them."),
        Misconception("grads_missing_sm_scale", "forgot sm_scale on dq and dk",
                      {ENTRY: _unscaled_grads},
                      "S = sm_scale · Q Kᵀ, so by the chain rule dQ = sm_scale · dS K and "
                      "dK = sm_scale · dSᵀ Q (dV has no scale)."),
        Misconception("backward_ignores_causal", "recomputed P without the causal mask",
                      {ENTRY: _unmasked_recompute},
                      "exp(S − lse) is not 0 above the diagonal on its own: apply the same mask "
                      "as the forward (set P to 0 where key > query) before using it."),
    ),
    claims=(
        Claim("flash-backward-matches-autograd",
              "Gradients recomputed tile by tile from the forward's lse (P never stored) equal "
              "float64 autograd within the dtype's tolerance; a KV head's dk, dv are the sums over "
              "its query group.",
              scope="exact", source="dao-2022",
              evidence=("bwd_matches_reference", "bwd_matches_autograd", "bwd_gqa_group_sum"),
              not_claimed="This CPU run shows correctness only (Triton interpreter, N ≤ 40, "
                          "d ≤ 32): no TFLOP/s or % of peak — the bench plugin measures those on a "
                          "GPU. bf16 and d = 64/128 are checked only when compiled on a GPU."),
    ),
    hints=(
        "Three launches: a pre-pass D = rowsum(dO * O) per row; a dK/dV kernel (one program per "
        "key tile of a KV head, looping over query tiles of every head in its group); a dQ kernel "
        "(one program per query tile, looping over key tiles like the forward).",
        "Rebuild P inside each tile: p = exp(sm_scale * q·kᵀ − lse[:, None]), then zero it where "
        "the causal mask or the bounds hide a key. Rows past N can load lse = +inf so p = 0.",
        "Per tile: dv += tl.dot(pᵀ, do); dp = tl.dot(do, vᵀ); ds = p * (dp − D[:, None]); "
        "dk += tl.dot(dsᵀ, q); dq += tl.dot(ds, k). Multiply dk and dq by sm_scale once at the end.",
    ),
    requires=("torch", "triton"),
    timeout=60.0,
    fakes=(Fake("autograd_shortcut", {ENTRY: _autograd_shortcut}),),
    bench={"kind": "flash_bwd", "entry": ENTRY,
           "reference": "attnkata_kernels.flash_bwd:flash_bwd",
           "forward": "attnkata_kernels.flash_fwd:flash_fwd",
           "baseline": "torch.nn.functional.scaled_dot_product_attention (backward)",
           "shapes": [{"B": 4, "H_q": 32, "H_kv": 8, "N": n, "d": 128} for n in (1024, 4096)],
           "dtypes": ["bfloat16", "float16"], "causal": [False, True],
           "flops": "10 * B * H_q * N**2 * d (2.5x the forward; halved when causal)"},
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): inputs built on first use (torch is imported
# lazily) on which each wrong backward shows its own signature — equal value rows (dS must
# vanish), all scores equal (P = 1/N), MHA vs GQA, sm_scale = 1 vs 0.3, causal or not —
# and the wrong formula itself, computed in float64 here.
# ---------------------------------------------------------------------------

import copy  # noqa: E402
import math  # noqa: E402

from attnkata.diagnose import (Probe, Raised, all_of, attach, attempt, check as _holds,  # noqa: E402
                               close, pick, scaled)

from .common import kv_heads  # noqa: E402

_TB = BWD_TOL["float32"]


class _Lazy:
    def __init__(self, build: Any):
        self.build, self.value = build, None

    def __call__(self) -> Any:
        if self.value is None:
            self.value = self.build()
        return self.value


def _inputs(h_q: int, h_kv: int, causal: bool, sm_scale: float | None = None, seed: int = 70,
            flat_v: bool = False, zero_k: bool = False) -> Any:
    def build():
        case = Case(1, h_q, h_kv, 17, 16, "float32", causal, sm_scale, 1.0, seed)
        q, k, v, do = case.tensors(with_do=True)
        if flat_v:
            v = v[:, :, :1].expand_as(v).contiguous()
        if zero_k:
            k = k * 0
        o, lse = as_outputs(q, *attention64(q, k, v, causal, sm_scale))
        return (q, k, v, o, lse, do), {"causal": causal, "sm_scale": sm_scale}
    return _Lazy(build)


_GQA = _inputs(4, 2, False)
_GQA_CAUSAL = _inputs(4, 2, True)
_MHA = _inputs(2, 2, False)
_MQA = _inputs(4, 1, False, seed=71)
_FLAT_V = _inputs(2, 1, False, flat_v=True)
_ZERO_K = _inputs(2, 1, False, zero_k=True)
_SCALE1 = _inputs(2, 1, False, sm_scale=1.0)
_SCALE03 = _inputs(2, 1, False, sm_scale=0.3)


def _call(inputs: Any) -> Any:
    def run(ns):
        args, kw = inputs()
        return getattr(ns, ENTRY)(*copy.deepcopy(args), **kw)
    return run


def _pair(first: Any, second: Any) -> Any:
    return lambda ns: (attempt(lambda: _call(first)(ns)), attempt(lambda: _call(second)(ns)))


def _right(g: Any, w: Any, which=(0, 1, 2)) -> bool:
    return not isinstance(g, Raised) and all(close(g[i], w[i], _TB) for i in which)


def _wrong(g: Any, w: Any, which: tuple) -> bool:
    return not isinstance(g, Raised) and all(not close(g[i], w[i], _TB) for i in which)


def _formula(inputs: Any, **flags: Any) -> Any:
    """The output equals ``grads64(**flags)`` (one wrong formula) on ``inputs`` and is wrong."""
    def fn(g, w):
        args, kw = inputs()
        want = grads64(*args, **kw, **flags)
        return (not isinstance(g, Raised) and all(close(a, b, _TB) for a, b in zip(g, want))
                and not _right(g, w))
    return _holds(fn)


def _one_head_share(inputs: Any) -> Any:
    """dq right; each KV head's dv is the share of ONE query head of its group (whichever)."""
    def fn(g, w):
        if isinstance(g, Raised) or not close(g[0], w[0], _TB) or close(g[2], w[2], _TB):
            return False
        (q, k, v, o, lse, do), kw = inputs()
        heads = kv_heads(q, k)
        per_head = grads64(q, k[:, heads], v[:, heads], o, lse, do, **kw)[2]   # [B, H_q, N, d]
        G = q.shape[1] // k.shape[1]
        return all(any(close(g[2][:, j], per_head[:, j * G + i], _TB) for i in range(G))
                   for j in range(k.shape[1]))
    return _holds(fn)


def _lse_units_mixed(q, k, v, o, lse, do, causal=False, sm_scale=None):
    """P rebuilt with exp2 from a natural-log lse: exp(s − lse·ln 2), not exp(s − lse)."""
    return grads64(q, k, v, o, lse * math.log(2.0), do, causal, sm_scale)


FLASH_ATTENTION_BACKWARD = attach(
    FLASH_ATTENTION_BACKWARD,
    add=(
        # source: ROCm/aotriton#108 and lightseekorg/tokenspeed#571 (base-2 and natural-log
        # LSE mixed between a forward and its consumer); triton-lang/triton#2700 (why the
        # tutorial kernels use exp2)
        Misconception("lse_units_mixed", "rebuilt P with exp2 from the natural-log lse "
                      "(units mixed)", {ENTRY: _lse_units_mixed},
                      "exp2(x) = exp(x·ln 2): if you rebuild P with exp2, scale the scores by "
                      "log2(e) AND use lse·log2(e) — or stay with exp and the natural-log lse. "
                      "Mixed, P is no longer normalised."),
    ),
    probes={
        # source: Dao-AILab/flash-attention#2555 (D_i = rowsum(dO ∘ O) in the papers);
        # tile-ai/tilelang#547 (the flash_bwd_prep pass that computes Delta)
        "missing_delta": (
            Probe("every value row equal (dS must vanish): dv right, dq and dk not zero",
                  _call(_FLAT_V),
                  _holds(lambda g, w: _right(g, w, (2,)) and float(g[0].abs().max()) > 1e-2
                         and float(w[0].abs().max()) < 1e-3)),
            Probe("GQA 4:2: dS = P ∘ dP, no D", _call(_GQA), _formula(_GQA, delta=False)),
        ),
        # source: ainslie-2023-gqa (G query heads share one KV head); state-spaces/mamba#462
        # (K/V repeated before SDPA, where autograd sums the copies' gradients for you)
        "gqa_not_summed": (
            Probe("MHA (right), then GQA 4:2: dq right, dk and dv wrong",
                  _pair(_MHA, _GQA),
                  _holds(lambda g, w: _right(g[0], w[0]) and _right(g[1], w[1], (0,))
                         and _wrong(g[1], w[1], (1, 2)))),
            Probe("MQA 4:1: dv is one query head's share", _call(_MQA), _one_head_share(_MQA)),
        ),
        # source: Dao-AILab/flash-attention#373 (a chain rule through S = QKᵀ written down
        # wrong); sm_scale multiplies dq and dk, never dv
        "grads_missing_sm_scale": (
            Probe("sm_scale = 1 (right), then sm_scale = 0.3 (dq, dk off; dv right)",
                  _pair(_SCALE1, _SCALE03),
                  _holds(lambda g, w: _right(g[0], w[0]) and _right(g[1], w[1], (2,))
                         and _wrong(g[1], w[1], (0, 1)))),
            Probe("GQA 4:2, default scale: dq and dk a constant times the right ones",
                  _call(_GQA), all_of(pick(0, scaled()), pick(1, scaled()),
                                      _holds(lambda g, w: _right(g, w, (2,))))),
        ),
        # source: Dao-AILab/flash-attention#517 (where the causal mask goes; the backward
        # must place it exactly as the forward did)
        "backward_ignores_causal": (
            Probe("GQA 4:2 not causal (right), then causal", _pair(_GQA, _GQA_CAUSAL),
                  _holds(lambda g, w: _right(g[0], w[0]) and _wrong(g[1], w[1], (2,)))),
            Probe("GQA 4:2 causal: P rebuilt without the mask", _call(_GQA_CAUSAL),
                  _formula(_GQA_CAUSAL, mask_in_backward=False)),
        ),
        "lse_units_mixed": (
            Probe("every score 0 (P = 1/N): dv a constant times the right one",
                  _call(_ZERO_K), pick(2, scaled())),
            Probe("GQA 4:2: P = exp(s − lse·ln 2)", _call(_GQA), _holds(
                lambda g, w: not isinstance(g, Raised) and not _right(g, w)
                and all(close(a, b, _TB) for a, b in zip(
                    g, _lse_units_mixed(*_GQA()[0], **_GQA()[1]))))),
        ),
    },
    diagnostics=(Probe("GQA 4:2, causal, N = 17", _call(_GQA_CAUSAL),
                       axes=("batch", "head", "row", "feature")),),
)
