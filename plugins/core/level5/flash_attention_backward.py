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
