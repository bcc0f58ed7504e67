"""Level 5 · flash_attention_forward — online softmax in registers, tiles, GQA, the causal split."""

from __future__ import annotations

import copy
import math
from typing import Any

from attnkata import Claim, Fake, Kata, Misconception, Prediction
from attnkata.compare import compare
from attnkata.harness import KataFailure
from attnkata.layouts import layout_check, row_stride_ignored

from .common import (FWD_TOL, Case, as_outputs, attention64, cases, interpreting,
                            kernel_check, refuse_torch_attention, scale_of, scores64)

ENTRY = "flash_attention_forward"


def stub_block_n() -> int:
    """BLOCK_N of the stub's launcher: 16 under the interpreter, 64 compiled."""
    return 16 if interpreting() else 64


# ---------------------------------------------------------------------------
# The missing-rescale bug depends on the key tile size: simulate it per BLOCK_N
# ---------------------------------------------------------------------------

def rescale_forgotten(q, k, v, causal=False, sm_scale=None, block_n=None):
    """A tiled forward whose accumulator is never multiplied by ``exp(m_old − m_new)``.

    ``l`` is rescaled correctly, so ``lse`` is right and only ``o`` is off.
    """
    import torch

    block_n = block_n or stub_block_n()
    s, _, heads = scores64(q, k, causal, scale_of(q, sm_scale))
    vv = v.double()[:, heads]
    m = torch.full(s.shape[:-1], float("-inf"), dtype=torch.float64, device=s.device)
    l = torch.zeros_like(m)
    acc = torch.zeros(*s.shape[:-1], vv.shape[-1], dtype=torch.float64, device=s.device)
    for start in range(0, s.shape[-1], block_n):
        tile = s[..., start:start + block_n]
        m_new = torch.maximum(m, tile.amax(-1))
        p = torch.exp(tile - m_new[..., None])
        l = l * torch.exp(m - m_new) + p.sum(-1)
        acc = acc + p @ vv[..., start:start + block_n, :]  # the bug: no acc * alpha first
        m = m_new
    return as_outputs(q, acc / l[..., None], m + torch.log(l))


def _other_tilings(got: Any, args: tuple, kwargs: dict, tol: Any, pick: Any) -> bool:
    """Whether ``got`` is the missing-rescale output at some other BLOCK_N a learner chose."""
    for block_n in (16, 32, 64, 128):
        if block_n == stub_block_n():
            continue
        if compare(got, pick(rescale_forgotten(*args, **kwargs, block_n=block_n)), tol=tol) is None:
            return True
    return False


def expect_forward(ctx: Any, case: Case, tensors: tuple | None = None, rows: slice | None = None) -> Any:
    """The learner's ``(o, lse)`` must match the reference kernel's; ``rows`` compares a
    slice of the query rows only. Misconceptions are named, tile size regardless."""
    q, k, v = tensors or case.tensors()
    args, kwargs = (q, k, v), {"causal": case.causal, "sm_scale": case.sm_scale}
    tol = FWD_TOL[case.dtype]

    def pick(out: Any) -> Any:
        if rows is None or not isinstance(out, tuple) or len(out) != 2:
            return out
        return out[0][:, :, rows], out[1][:, :, rows]

    got = ctx.call_soon(ENTRY, *args, **kwargs)      # the worker runs it while the reference runs here
    want = pick(ctx.reference(ENTRY, *args, **kwargs))
    got = got()

    def rerun(ns: Any) -> Any:
        a = copy.deepcopy(args)
        return pick(getattr(ns, ENTRY)(*a, **kwargs))

    what = (f"{ENTRY}(q={list(q.shape)}, k, v={list(k.shape)} {case.dtype}, causal={case.causal}, "
            f"sm_scale={case.sm_scale})" + (f", query rows {rows.start}:{rows.stop}" if rows else ""))
    try:
        ctx.match(pick(got), want, what, rerun=rerun, tol=tol, entries=(ENTRY,))
    except KataFailure as exc:
        if exc.misconception is None and _other_tilings(pick(got), args, kwargs, tol, pick):
            ctx.fail(exc.message, misconception="missing_rescale")
        raise
    return got


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

@kernel_check("matches the reference kernel: GQA, causal or not, N not a multiple of the block, fp32/fp16")
def fwd_matches_reference(ctx):
    @ctx.given(max_examples=20, shrink=False, case=cases())
    def prop(case):
        expect_forward(ctx, case)

    prop()


@kernel_check("agrees with float64 attention (o and the natural-log lse) at an explicit sm_scale")
def fwd_matches_float64(ctx):
    for case in (Case(1, 2, 1, 33, 32, "float32", False, 0.2, 2.0, 5),
                 Case(2, 2, 2, 17, 16, "float16", True, None, 1.0, 6)):
        q, k, v = case.tensors()
        got = expect_forward(ctx, case, (q, k, v))
        want = as_outputs(q, *attention64(q, k, v, case.causal, case.sm_scale))
        ctx.match(got, want, f"{ENTRY} against float64 attention ({case.dtype}, causal={case.causal})",
                  rerun=lambda ns, c=case: getattr(ns, ENTRY)(*c.tensors(), causal=c.causal,
                                                              sm_scale=c.sm_scale),
                  tol=FWD_TOL[case.dtype], entries=(ENTRY,))


@kernel_check("GQA and MQA inside the kernel: query head h reads KV head h // (H_q / H_kv)")
def fwd_gqa_groups(ctx):
    for h_q, h_kv, causal in ((4, 2, False), (4, 1, True), (6, 3, False)):
        expect_forward(ctx, Case(1, h_q, h_kv, 17, 16, "float32", causal, None, 1.0, h_q * h_kv))


@kernel_check("causal: query i sees keys 0..i — its own position included")
def fwd_causal_diagonal(ctx):
    case = Case(1, 2, 1, 40, 16, "float32", True, None, 1.0, 40)
    q, k, v = case.tensors()
    # rows 1.. compared alone, so the diagonal shows whatever row 0 does
    expect_forward(ctx, case, (q, k, v), rows=slice(1, case.N))
    o, _ = expect_forward(ctx, case, (q, k, v))
    if not bool((o[:, :, 0].double() - v[:, :1, 0].double()).abs().max() < 1e-4):
        ctx.fail(f"{ENTRY}: with causal=True the first query sees only key 0, so o[:, h, 0] "
                 f"must equal v[:, h // G, 0].")


@kernel_check("the running max rises from tile to tile: every earlier tile must be rescaled")
def fwd_online_rescale(ctx):
    import torch

    case = Case(1, 1, 1, 40, 16, "float32", False, None, 1.0, 9)
    q, k, v = case.tensors()
    # each key scores higher than the one before it, so every key tile raises the max
    q = torch.ones_like(q)
    k = torch.linspace(0.0, 4.0, case.N, device=k.device, dtype=k.dtype)[None, None, :, None] \
        * torch.ones_like(k)
    expect_forward(ctx, case, (q, k, v))
    expect_forward(ctx, Case(1, 1, 1, 40, 16, "float16", True, None, 1.0, 9), (q.half(), k.half(), v.half()))


@kernel_check("the kernel computes the attention: no torch SDPA, no N × N tensor built in torch")
def fwd_no_torch_attention(ctx):
    case = Case(1, 2, 1, 40, 16, "float32", True, None, 1.0, 12)
    q, k, v = case.tensors()
    refuse_torch_attention(ctx, ENTRY, (q, k, v), {"causal": True}, case.N)
    expect_forward(ctx, case, (q, k, v))


def _layout_cases(ctx):
    for case in (Case(1, 4, 2, 17, 16, "float32", True, None, 1.0, 51),
                 Case(2, 2, 1, 20, 16, "float16", False, 0.3, 1.0, 52)):
        q, k, v = case.tensors()
        yield (q, k, v), {"causal": case.causal, "sm_scale": case.sm_scale}


fwd_strided_inputs = layout_check(
    ENTRY, _layout_cases,
    "honours strides: q, k, v as transposed, sliced and head-interleaved ([B, N, H, d]) views",
    id="fwd_strided_inputs", layouts=("transposed", "sliced", "heads_interleaved"),
    tol=lambda args, kwargs: FWD_TOL[str(args[0].dtype).replace("torch.", "")],
    decorator=kernel_check)


# ---------------------------------------------------------------------------
# Misconceptions (torch versions of what the buggy kernels compute)
# ---------------------------------------------------------------------------

def _modulo_heads(q, k, v, causal=False, sm_scale=None):
    return as_outputs(q, *attention64(q, k, v, causal, sm_scale, modulo=True))


def _diagonal_hidden(q, k, v, causal=False, sm_scale=None):
    return as_outputs(q, *attention64(q, k, v, causal, sm_scale, shift=-1))


def _lse_log2(q, k, v, causal=False, sm_scale=None):
    return as_outputs(q, *attention64(q, k, v, causal, sm_scale, lse_unit=1.0 / math.log(2.0)))


def _unscaled(q, k, v, causal=False, sm_scale=None):
    return as_outputs(q, *attention64(q, k, v, causal, sm_scale, scale=1.0))


def _row_stride_ignored(q, k, v, causal=False, sm_scale=None):
    """The kernel steps rows by HEAD_DIM and features by 1 (stride_qm, stride_qk and
    their k, v, o cousins unused): right on contiguous inputs, wrong on views."""
    import torch

    o, lse = as_outputs(q, *attention64(*(row_stride_ignored(t) for t in (q, k, v)), causal,
                                        sm_scale))
    out = torch.empty_like(q)        # the launcher's o: laid out like q when q is dense
    row_stride_ignored(out).copy_(o)  # and stored as if it were packed too
    return out, lse


def _sdpa_shortcut(q, k, v, causal=False, sm_scale=None):
    import torch
    import torch.nn.functional as F

    scale = scale_of(q, sm_scale)
    o = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal,
                                       scale=scale, enable_gqa=True)
    return o.to(q.dtype), attention64(q, k, v, causal, sm_scale)[1].to(torch.float32)


FLASH_ATTENTION_FORWARD = Kata(
    id="flash_attention_forward",
    level=5,
    title="FlashAttention forward in Triton: tiles, online softmax, GQA, causal",
    path="level5/flash_attention_forward.py",
    entries=(ENTRY,),
    checks=(fwd_matches_reference, fwd_matches_float64, fwd_gqa_groups, fwd_causal_diagonal,
            fwd_online_rescale, fwd_no_torch_attention, fwd_strided_inputs),
    predictions=(
        Prediction("tile_flops", "FLOPs of one inner-loop step at BLOCK_M = BLOCK_N = 64, d = 64: "
                   "the two matmuls Q·Kᵀ and P·V, a multiply-add counted as 2", 1_048_576,
                   rel_tol=0.01, why="2 · 64 · 64 · 64 for Q·Kᵀ plus the same for P·V."),
        Prediction("tile_bytes", "bytes that step reads from HBM in fp16: one K tile and one V tile "
                   "(the Q tile is already in registers, nothing is written)", 16_384, rel_tol=0.01,
                   why="2 tiles · 64 · 64 elements · 2 bytes."),
        Prediction("tile_intensity", "arithmetic intensity of that step, FLOPs per byte", 64.0,
                   rel_tol=0.02, why="4·BM·BN·d / (2·BN·d·2 bytes) = BLOCK_M: bigger query tiles "
                                     "reuse each loaded K/V byte more."),
        Prediction("forward_flops", "FLOPs of one forward pass at B = 4, H = 32, N = 4096, d = 128 "
                   "(4·B·H·N²·d)", 1.099511627776e12, rel_tol=0.01,
                   why="4 · 4 · 32 · 4096² · 128 ≈ 1.10e12: two N×N×d matmuls per head."),
        Prediction("forward_flops_causal", "the same pass with causal=True", 5.49755813888e11,
                   rel_tol=0.01, why="Half the tiles are above the diagonal and skipped: ≈ 5.50e11."),
    ),
    misconceptions=(
        Misconception("missing_rescale", "forgot to rescale the accumulator when the running max changes",
                      {ENTRY: rescale_forgotten},
                      "When a tile raises the row max from m_i to m_new, everything summed so far "
                      "was weighted by exp(s − m_i): multiply acc (and l_i) by "
                      "alpha = exp(m_i − m_new) before adding the new tile."),
        Misconception("gqa_modulo", "mapped query head h to KV head h % H_kv instead of h // G",
                      {ENTRY: _modulo_heads},
                      "Query heads of one group are consecutive: heads 0..G−1 share KV head 0, "
                      "so the KV head is off_h // GROUP."),
        Misconception("causal_excludes_diagonal", "causal mask off by one: query i cannot see key i",
                      {ENTRY: _diagonal_hidden},
                      "Query i may attend to keys j ≤ i, itself included: keep "
                      "offs_m[:, None] >= offs_n[None, :] (not >). Query 0 otherwise sees nothing."),
        Misconception("lse_in_log2", "returned lse in log2 units",
                      {ENTRY: _lse_log2},
                      "If you work with exp2 and scores times log2(e), the row sum-exp comes out "
                      "in log2 units: multiply by ln 2 before storing lse (the backward expects "
                      "natural log)."),
        Misconception("forgot_sm_scale", "forgot sm_scale (scores not multiplied by 1/√d)",
                      {ENTRY: _unscaled},
                      "Multiply q·kᵀ by sm_scale (1/√d by default) before the max and the exp; "
                      "lse is the log-sum-exp of the SCALED scores."),
        # source: Triton's fused-attention tutorial passes every stride; issues on
        # FlashAttention and Triton kernels giving wrong output for transposed or
        # non-contiguous q/k/v (a kernel that steps rows by HEAD_DIM)
        Misconception("row_stride_ignored", "assumed contiguous: stepped rows by HEAD_DIM and "
                      "features by 1, ignoring stride_qm/stride_qk (and k's, v's, o's)",
                      {ENTRY: _row_stride_ignored},
                      "q, k and v may be views — q from proj(x).view(B, N, H, d).transpose(1, 2) "
                      "has rows H·d elements apart. Address element [z, h, m, c] as "
                      "Q + z·stride_qz + h·stride_qh + m·stride_qm + c·stride_qk, and the same "
                      "for K, V and Out with their own strides."),
    ),
    claims=(
        Claim("flash-forward-matches",
              "The Triton FlashAttention forward equals softmax(q·kᵀ·scale)·v and its natural-log "
              "lse within the dtype's tolerance — causal or not, N not a multiple of the block, "
              "GQA/MQA by index arithmetic inside the kernel.",
              scope="exact", source="dao-2022",
              not_claimed="This CPU run shows correctness only (Triton interpreter, N ≤ 40, "
                          "d ≤ 32): no TFLOP/s, no % of peak — the bench plugin measures those on "
                          "a GPU as separate `measured` claims. bf16, d = 64/128 and longer "
                          "sequences are checked only when compiled on a GPU (Triton 3.9's "
                          "interpreter misreads bf16)."),
        Claim("gqa-index-mapping", "Query head h reading KV head h // (H_q/H_kv) inside the kernel "
              "gives the same result as attention over repeated K and V.",
              scope="exact", source="ainslie-2023-gqa", evidence=("fwd_gqa_groups",),
              not_claimed="Nothing about the memory saved: that is level 3's KV-cache ratio."),
        Claim("online-rescale-exact", "Rescaling the running sums by exp(m_old − m_new) whenever a "
              "tile raises the max makes the tiled softmax equal the full one.",
              scope="exact", source="milakov-2018", evidence=("fwd_online_rescale",)),
    ),
    hints=(
        "One program = one BLOCK_M tile of queries of one (batch, query head): "
        "start_m = tl.program_id(0), off_hz = tl.program_id(1); z = off_hz // H_Q, h = off_hz % H_Q, "
        "and the KV head is h // GROUP. Load the Q tile once; loop over key tiles.",
        "Keep m_i = -inf, l_i = 0, acc = 0 (float32) per row. Per key tile: s = tl.dot(q, kT) * "
        "sm_scale, masked to -inf past N (and above the diagonal when CAUSAL); m_new = max(m_i, "
        "tl.max(s, 1)); p = exp(s − m_new); alpha = exp(m_i − m_new); l_i = l_i * alpha + "
        "tl.sum(p, 1); acc = acc * alpha + tl.dot(p.to(v.dtype), v).",
        "After the loop: o = acc / l_i, lse = m_i + log(l_i) (natural log). When CAUSAL, stop the "
        "loop at min((start_m + 1) * BLOCK_M, N): later key tiles are fully masked. Store with "
        "mask=offs_m < N.",
    ),
    requires=("torch", "triton"),
    timeout=60.0,
    fakes=(Fake("sdpa_shortcut", {ENTRY: _sdpa_shortcut}),),
    bench={"kind": "flash_fwd", "entry": ENTRY,
           "reference": "attnkata_kernels.flash_fwd:flash_fwd",
           "baseline": "torch.nn.functional.scaled_dot_product_attention",
           "shapes": [{"B": 4, "H_q": 32, "H_kv": 8, "N": n, "d": 128} for n in (1024, 4096)],
           "dtypes": ["bfloat16", "float16"], "causal": [False, True],
           "flops": "4 * B * H_q * N**2 * d (halved when causal)"},
)


# ---------------------------------------------------------------------------
# Where learners go wrong — a source note per misconception:
# - missing_rescale: milakov-2018 and dao-2023's online softmax; deepseek-ai/FlashMLA#177
#   (the rescale factor written exp(m_new − m_old)); PaddleJitLab/CUDATutorial#69 (a
#   learner's online-softmax update that looked right because NaN compared as 0).
# - gqa_modulo: ggml-org/llama.cpp#25315 (modulo instead of division mapping heads);
#   ekzhang/jax-js#180 (KV heads tiled instead of repeated).
# - causal_excludes_diagonal: the diagonal and alignment confusion around causal masks
#   (Dao-AILab/flash-attention#517, pytorch/pytorch#108108).
# - lse_in_log2: lightseekorg/tokenspeed#571 and ROCm/aotriton#108 (an exp2 kernel
#   storing base-2 LSE where consumers expect natural log); triton-lang/triton#2700 (why
#   the tutorial uses exp2).
# - forgot_sm_scale: vaswani-2017 §3.2.1; the Triton tutorial folds sm_scale into
#   qk_scale, so a kernel written without it differs only when d > 1.
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md).  Inputs are built on first use (torch is
# imported lazily here); every predicate reads plain (o, lse) tensors in the judge.
# The tile size is the learner's choice, so the rescale probes use N = 136 keys: more
# than one key tile for BLOCK_N from 16 to 128.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, attempt, check as _holds, close  # noqa: E402

_N_TILES = 136


def _ramp(rising: bool, n: int = _N_TILES, dtype: str = "float32") -> tuple:
    """q = 1, keys scoring 0 → 4 (rising: every later key tile raises the row max) or
    4 → 0 (falling: the max is always in the first key tile)."""
    import torch

    q, _, v = Case(1, 1, 1, n, 16, dtype, False, None, 1.0, 21).tensors()
    ramp = torch.linspace(0.0, 4.0, n, dtype=torch.float64)
    ramp = ramp if rising else ramp.flip(0)
    k = (ramp[None, None, :, None] * torch.ones(1, 1, n, 16, dtype=torch.float64)).to(q.dtype)
    return torch.ones_like(q), k.to(q.device), v


def _last_key_high(n: int = _N_TILES) -> tuple:
    """Every key scores 0 except the last, which scores 6: only the last tile raises the max."""
    import torch

    q, k, v = _ramp(True, n)
    k = torch.zeros_like(k)
    k[:, :, -1] = 6.0 / 4.0   # q = 1, d = 16, scale 1/4: the last score is 6
    return q, k, v


def _flat(n: int = _N_TILES) -> tuple:
    """Every key scores 0: the row max is set by the first tile and never rises."""
    import torch

    q, k, v = _ramp(True, n)
    return q, torch.zeros_like(k), v


def _run_pair(first: tuple, second: tuple, **kw: Any) -> Any:
    return lambda ns: tuple(attempt(lambda a=a: getattr(ns, ENTRY)(*copy.deepcopy(a), **kw))
                            for a in (first, second))


def _right_then_o_wrong(tol: tuple) -> Any:
    """Right (o and lse) on the first input; o wrong on the second."""
    return _holds(lambda g, w: close(g[0][0], w[0][0], tol) and close(g[0][1], w[0][1], tol)
                  and not close(g[1][0], w[1][0], tol))


class _Lazy:
    """Probe inputs built once, on first use (torch stays unimported until a probe runs)."""

    def __init__(self, build: Any):
        self.build, self.value = build, None

    def __call__(self) -> Any:
        if self.value is None:
            self.value = self.build()
        return self.value


_GQA6 = _Lazy(lambda: Case(1, 6, 3, 17, 16, "float32", False, None, 1.0, 63).tensors())
_GQA4 = _Lazy(lambda: Case(1, 4, 2, 17, 16, "float32", False, None, 1.0, 42).tensors())
_PLAIN = _Lazy(lambda: Case(1, 2, 1, 24, 16, "float32", False, 0.5, 1.0, 24).tensors())
_CAUSAL = _Lazy(lambda: Case(1, 2, 2, 17, 16, "float32", True, None, 1.0, 17).tensors())
_ONE = _Lazy(lambda: Case(1, 1, 1, 1, 16, "float32", True, None, 1.0, 1).tensors())
_HALVED = _Lazy(lambda: (_PLAIN()[0] * 0.5,) + tuple(_PLAIN()[1:]))
_T32 = FWD_TOL["float32"]


def _heads_wrong(exactly: set) -> Any:
    """o is wrong in exactly the query heads ``exactly`` (each of them), right in the rest."""
    def fn(g, w):
        bad = {h for h in range(w[0].shape[1]) if not close(g[0][:, h], w[0][:, h], _T32)}
        return bad == exactly
    return _holds(fn)


def _probe(what: str, inputs: Any, holds: Any, **kw: Any) -> Probe:
    return Probe(what, lambda ns: getattr(ns, ENTRY)(*copy.deepcopy(inputs()), **kw), holds,
                 axes=("batch", "head", "query", "feature"), tol=_T32)


FLASH_ATTENTION_FORWARD = attach(
    FLASH_ATTENTION_FORWARD,
    probes={
        # source: the FlashAttention-2 paper's online softmax (dao-2023) and Triton's
        # fused-attention tutorial; forum threads on "flash attention wrong for long sequences"
        "missing_rescale": (
            Probe(f"the row max in the first key tile, then rising tile by tile (N = {_N_TILES})",
                  lambda ns: _run_pair(_ramp(False), _ramp(True))(ns), _right_then_o_wrong(_T32),
                  tol=_T32),
            Probe(f"every key scoring the same (the max never rises), then only the last key "
                  f"raising it (N = {_N_TILES})",
                  lambda ns: _run_pair(_flat(), _last_key_high())(ns),
                  _right_then_o_wrong(_T32), tol=_T32),
        ),
        "gqa_modulo": (
            _probe("6 query heads on 3 KV heads", _GQA6, _heads_wrong({1, 2, 3, 4})),
            _probe("4 query heads on 2 KV heads", _GQA4, _heads_wrong({1, 2})),
        ),
        "causal_excludes_diagonal": (
            _probe("one query, causal (it must see its own key)", _ONE,
                   _holds(lambda g, w: not close(g[0], w[0], _T32)), causal=True),
            Probe("the same input without, then with, the causal mask",
                  lambda ns: (attempt(lambda: getattr(ns, ENTRY)(*copy.deepcopy(_CAUSAL()))),
                              attempt(lambda: getattr(ns, ENTRY)(*copy.deepcopy(_CAUSAL()),
                                                                 causal=True))),
                  _holds(lambda g, w: close(g[0], w[0], _T32)
                         and not close(g[1][0][:, :, 0], w[1][0][:, :, 0], _T32)),
                  axes=("batch", "head", "query", "feature"), tol=_T32),
        ),
        "lse_in_log2": (
            _probe("sm_scale = 0.5, not causal", _PLAIN, _holds(
                lambda g, w: close(g[0], w[0], _T32) and close(g[1], w[1] / math.log(2.0), _T32)),
                sm_scale=0.5),
            _probe("causal, 2 KV heads", _CAUSAL, _holds(
                lambda g, w: close(g[0], w[0], _T32) and close(g[1], w[1] / math.log(2.0), _T32)),
                causal=True),
        ),
        "forgot_sm_scale": (
            _probe("sm_scale = 0.5 (the output is as if it were 1)", _PLAIN, _holds(
                lambda g, w: close(g[0], _unscaled(*_PLAIN())[0], _T32)
                and not close(g[0], w[0], _T32)), sm_scale=0.5),
            _probe("sm_scale = 0.5 and the queries halved beforehand (the output is as if "
                   "sm_scale were applied once)", _HALVED, _holds(
                       lambda g, w: close(g[0], as_outputs(_PLAIN()[0], *attention64(
                           *_PLAIN(), False, 0.5))[0], _T32) and not close(g[0], w[0], _T32)),
                   sm_scale=0.5),
        ),
    },
)


# ---------------------------------------------------------------------------
# row_stride_ignored: right on packed tensors, wrong on views of the same values (issue
# 14's non-contiguous inputs).  The same q, k, v are passed packed, then as views.
# ---------------------------------------------------------------------------

def _heads_interleaved(t: Any) -> Any:
    """The same values laid out as [B, N, H, d] memory, viewed as [B, H, N, d]."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def _features_sliced(t: Any) -> Any:
    """The same values as features 0:d of a buffer twice as wide."""
    import torch

    big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    big[..., :t.shape[-1]] = t
    return big[..., :t.shape[-1]]


_STRIDED = _Lazy(lambda: Case(1, 4, 2, 20, 16, "float32", True, None, 1.0, 54).tensors())


def _packed_then(view: Any) -> Any:
    def run(ns):
        packed = attempt(lambda: getattr(ns, ENTRY)(*copy.deepcopy(_STRIDED()), causal=True))
        viewed = attempt(lambda: getattr(ns, ENTRY)(*(view(t) for t in _STRIDED()), causal=True))
        return packed, viewed
    return run


_packed_right_view_wrong = _holds(lambda g, w: close(g[0][0], w[0][0], _T32)
                                  and close(g[0][1], w[0][1], _T32)
                                  and not close(g[1][0], w[1][0], _T32))

FLASH_ATTENTION_FORWARD = attach(
    FLASH_ATTENTION_FORWARD,
    probes={
        # source: flagos-ai/FlagAttention#1 (a kernel that assumed C-contiguous o and do:
        # fixed by passing every stride); Triton's fused-attention tutorial passes them all
        "row_stride_ignored": (
            Probe("GQA 4:2, causal, N = 20: packed q, k, v, then the same values as "
                  "[B, N, H, d] memory (heads interleaved)", _packed_then(_heads_interleaved),
                  _packed_right_view_wrong, tol=_T32),
            Probe("the same packed, then as features 0:16 of a 32-wide buffer",
                  _packed_then(_features_sliced), _packed_right_view_wrong, tol=_T32),
        ),
    },
    diagnostics=(_probe("GQA 4:2, causal, N = 20", _STRIDED, None, causal=True),),
)


# ---------------------------------------------------------------------------
# A correct variant written differently from the reference kernel: natural exp and log
# (no log2 domain), BLOCK_N = 32 (not the stub's 16), the causal mask applied in every
# tile; selfcheck proves it passes every check and fires no probe.
# ---------------------------------------------------------------------------

_NATURAL: list = []


def _natural_kernel() -> Any:
    if not _NATURAL:
        import triton
        import triton.language as tl

        @triton.jit
        def fwd_natural(Q, K, V, O, L, sqz, sqh, sqm, sqk, skz, skh, skn, skk,
                        svz, svh, svn, svk, soz, soh, som, sok, H, G, N, scale,
                        CAUSAL: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                        D: tl.constexpr):
            start = tl.program_id(0)
            hz = tl.program_id(1)
            z = hz // H
            h = hz % H
            kvh = h // G
            rows = start * BM + tl.arange(0, BM)
            feats = tl.arange(0, D)
            q = tl.load(Q + z * sqz + h * sqh + rows[:, None] * sqm + feats[None, :] * sqk,
                        mask=rows[:, None] < N, other=0.0)
            m_i = tl.full([BM], float("-inf"), tl.float32)
            l_i = tl.zeros([BM], tl.float32)
            acc = tl.zeros([BM, D], tl.float32)
            hi = N
            if CAUSAL:
                hi = tl.minimum((start + 1) * BM, N)
            for s0 in range(0, hi, BN):
                cols = s0 + tl.arange(0, BN)
                kt = tl.load(K + z * skz + kvh * skh + cols[None, :] * skn + feats[:, None] * skk,
                             mask=cols[None, :] < N, other=0.0)
                s = tl.dot(q, kt) * scale
                ok = cols[None, :] < N
                if CAUSAL:
                    ok = ok & (rows[:, None] >= cols[None, :])
                s = tl.where(ok, s, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, 1))
                alpha = tl.exp(m_i - m_new)
                p = tl.exp(s - m_new[:, None])
                l_i = l_i * alpha + tl.sum(p, 1)
                vt = tl.load(V + z * svz + kvh * svh + cols[:, None] * svn + feats[None, :] * svk,
                             mask=cols[:, None] < N, other=0.0)
                acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt)
                m_i = m_new
            tl.store(O + z * soz + h * soh + rows[:, None] * som + feats[None, :] * sok,
                     (acc / l_i[:, None]).to(O.dtype.element_ty), mask=rows[:, None] < N)
            tl.store(L + hz * N + rows, m_i + tl.log(l_i), mask=rows < N)

        _NATURAL.append(fwd_natural)
    return _NATURAL[0]


def _natural_exp_forward(q, k, v, causal=False, sm_scale=None):
    import torch
    import triton

    B, H, N, d = q.shape
    o = torch.empty_like(q)
    lse = torch.empty((B, H, N), dtype=torch.float32, device=q.device)
    if o.numel() == 0:
        return o, lse
    scale = scale_of(q, sm_scale)
    _natural_kernel()[(triton.cdiv(N, 16), B * H)](
        q, k, v, o, lse, *q.stride(), *k.stride(), *v.stride(), *o.stride(),
        H, H // k.shape[1], N, scale, CAUSAL=bool(causal), BM=16, BN=32, D=d)
    return o, lse


FLASH_ATTENTION_FORWARD = attach(FLASH_ATTENTION_FORWARD, variants=(
    Fake("natural_exp_block32", {ENTRY: _natural_exp_forward}),))
