"""Level 5 shared pieces: where kernels run, generated attention inputs, float64 truths,
and the guards every kernel check wears (unwritten kernels, banned torch shortcuts).

torch and triton are imported inside functions only, so collecting the ladder stays fast
and a broken Triton install reaches the framework as "unavailable", never as a crash.
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from attnkata.strategies import st

from attnkata import check
from attnkata.compare import describe
from attnkata.harness import LearnerError, NotStarted, Unavailable

# (rtol, atol) for attention outputs and gradients, by input dtype. fp32 runs full-precision
# dots; fp16/bf16 results sit within a few times the reference kernel's own error.
FWD_TOL = {"float32": (1e-4, 1e-5), "float16": (1e-2, 4e-3), "bfloat16": (3e-2, 2e-2)}
BWD_TOL = {"float32": (1e-3, 1e-4), "float16": (3e-2, 3e-2), "bfloat16": (1e-1, 8e-2)}


def interpreting() -> bool:
    """Triton runs on the CPU interpreter (set by attnkata when no GPU is visible)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def device() -> str:
    import torch

    return "cuda" if not interpreting() and torch.cuda.is_available() else "cpu"


def dtype_names() -> tuple[str, ...]:
    """fp32 and fp16 everywhere; bf16 only when compiled (Triton 3.9's interpreter
    reads bf16 memory wrongly, so a CPU run cannot check it)."""
    return ("float32", "float16") if interpreting() else ("float32", "float16", "bfloat16")


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


# ---------------------------------------------------------------------------
# Kernel checks: backend present, and an unwritten kernel reads as "not started"
# ---------------------------------------------------------------------------

_UNWRITTEN = re.compile(r"(kata \w+: [^'\"\n]*)")


def kernel_check(doc: str) -> Callable[[Callable[[Any], None]], Any]:
    """Like ``@check``, for katas whose learner code is a Triton kernel.

    A stub kernel's body is ``raise NotImplementedError("kata <id>: ...")``.  Under the
    interpreter that surfaces as ``InterpreterError``; compiled, as a ``CompilationError``
    ("unsupported AST node type: Raise").  Both mean "not started", not "failed".
    """

    def wrap(fn: Callable[[Any], None]) -> Any:
        def guarded(ctx: Any) -> None:
            if not interpreting():
                import torch

                if not torch.cuda.is_available():
                    raise Unavailable("TRITON_INTERPRET is off and no CUDA GPU is visible: "
                                      "unset TRITON_INTERPRET to run the kernels on the CPU")
            try:
                fn(ctx)
            except LearnerError as exc:
                if "NotImplementedError" in exc.message and f"kata {ctx.kata.id}:" in exc.message:
                    found = _UNWRITTEN.search(exc.message)
                    raise NotStarted(found.group(1).strip() if found else
                                     f"kata {ctx.kata.id}: a kernel body still raises "
                                     f"NotImplementedError") from None
                raise

        guarded.__name__ = fn.__name__
        return check(doc, id=fn.__name__)(guarded)

    return wrap


# ---------------------------------------------------------------------------
# Banned shortcuts: record, next to the learner's code, the torch calls an entry makes
# ---------------------------------------------------------------------------

def torch_calls(ctx: Any, name: str, args: tuple, kwargs: dict) -> tuple[Any, list[tuple[str, tuple]]]:
    """Call the learner's ``name`` under a ``TorchFunctionMode`` in its own process (the
    worker-side probe :func:`attnkata.probes.torch_calls`); return its result and, for each
    torch call made, ``(name, shapes of the tensors it returned)``.

    A recorder in the judging process would see none of the worker's calls.  What it
    reports is the learner's process's word: it names a refusal, and the outputs are still
    compared here.  Inputs are copies, so a call that mutates them changes nothing here.
    """
    ctx.entry(name)
    return ctx.probe("attnkata.probes", "torch_calls", name, copy.deepcopy(args),
                     copy.deepcopy(kwargs), what=describe(name, args, kwargs))


ATTENTION_SHORTCUTS = ("scaled_dot_product_attention", "multi_head_attention_forward",
                       "_scaled_dot_product_attention_math")


def refuse_torch_attention(ctx: Any, name: str, args: tuple, kwargs: dict, n: int) -> Any:
    """Call the learner's ``name`` and refuse it if torch did the attention: SDPA, or any
    torch op that produced an ``N × N`` tensor (the score matrix a flash kernel never builds)."""
    out, seen = torch_calls(ctx, name, args, kwargs)
    for fn, shapes in seen:
        if fn in ATTENTION_SHORTCUTS:
            ctx.fail(f"kata {ctx.kata.id}: refused — {name} called torch's `{fn}`. This kata "
                     f"asks for the attention itself in a Triton kernel; torch's fused attention "
                     f"is what the bench plugin compares your kernel against.")
        square = [s for s in shapes if len(s) >= 2 and tuple(s[-2:]) == (n, n)]
        if square:
            ctx.fail(f"kata {ctx.kata.id}: refused — {name} built an N × N tensor "
                     f"{list(square[0])} with torch `{fn}` (N = {n}). FlashAttention never "
                     f"materialises the score matrix: scores live in BLOCK_M × BLOCK_N tiles "
                     f"inside the kernel.")
    return out


# ---------------------------------------------------------------------------
# Attention inputs
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One attention problem: ``q [B, H_q, N, d]``, ``k, v [B, H_kv, N, d]``."""

    B: int
    H_q: int
    H_kv: int
    N: int
    d: int
    dtype: str
    causal: bool
    sm_scale: float | None
    scale: float
    seed: int

    def tensors(self, with_do: bool = False) -> tuple:
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        dt = torch_dtype(self.dtype)

        def randn(h: int, scale: float) -> Any:
            x = torch.randn(self.B, h, self.N, self.d, generator=gen, dtype=torch.float64) * scale
            return x.to(dtype=dt, device=device())

        q, k, v = randn(self.H_q, self.scale), randn(self.H_kv, self.scale), randn(self.H_kv, 1.0)
        return (q, k, v, randn(self.H_q, 1.0)) if with_do else (q, k, v)


HEADS = ((1, 1), (2, 1), (2, 2), (4, 2), (3, 1))


@st.composite
def cases(draw: st.DrawFn, heads: tuple = HEADS, causal: bool | None = None) -> Case:
    """Small problems under the interpreter (N ≤ 40, d ≤ 32), larger ones when compiled."""
    if interpreting():
        n = draw(st.sampled_from((1, 5, 16, 17, 33, 40)))
        d = draw(st.sampled_from((16, 32)))
        b = draw(st.sampled_from((1, 1, 2)))
    else:
        n = draw(st.sampled_from((1, 17, 64, 129, 300)))
        d = draw(st.sampled_from((16, 32, 64, 128)))
        b = draw(st.sampled_from((1, 2)))
    h_q, h_kv = draw(st.sampled_from(heads))
    return Case(B=b, H_q=h_q, H_kv=h_kv, N=n, d=d, dtype=draw(st.sampled_from(dtype_names())),
                causal=draw(st.booleans()) if causal is None else causal,
                sm_scale=draw(st.sampled_from((None, None, 0.3))),
                scale=draw(st.sampled_from((1.0, 1.0, 3.0))), seed=draw(st.integers(0, 2**31 - 1)))


# ---------------------------------------------------------------------------
# float64 attention, with knobs that reproduce the classic mistakes
# ---------------------------------------------------------------------------

def scale_of(q: Any, sm_scale: float | None) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else float(sm_scale)


def kv_heads(q: Any, k: Any, modulo: bool = False) -> Any:
    """Index of the KV head each query head reads: grouped ``h // G`` (or the modulo bug)."""
    import torch

    h_q, h_kv = q.shape[1], k.shape[1]
    h = torch.arange(h_q, device=k.device)
    return h % h_kv if modulo else h // (h_q // h_kv)


def visible(n: int, causal: bool, dev: Any, shift: int = 0) -> Any:
    """``[N, N]`` boolean: key j visible to query i (``j ≤ i + shift`` when causal)."""
    import torch

    ones = torch.ones(n, n, dtype=torch.bool, device=dev)
    return ones.tril(shift) if causal else ones


def scores64(q: Any, k: Any, causal: bool, scale: float, *, modulo: bool = False,
             shift: int = 0) -> tuple[Any, Any, Any]:
    """float64 masked scores ``[B, H_q, N, N]`` and the (expanded) key heads used."""
    heads = kv_heads(q, k, modulo)
    kk = k.double()[:, heads]  # (B, H_q, N, d)
    s = (q.double() @ kk.transpose(-1, -2)) * scale
    mask = visible(q.shape[2], causal, q.device, shift)
    return s.masked_fill(~mask, float("-inf")), mask, heads


def attention64(q: Any, k: Any, v: Any, causal: bool = False, sm_scale: float | None = None, *,
                modulo: bool = False, shift: int = 0, lse_unit: float = 1.0,
                scale: float | None = None) -> tuple[Any, Any]:
    """``(o, lse)`` in float64 from exp and sums (no torch softmax: the ban check stays clean).

    A row that sees no key gives NaN, as a kernel without an empty-row guard does.
    """
    import torch

    sc = scale_of(q, sm_scale) if scale is None else scale
    s, _, heads = scores64(q, k, causal, sc, modulo=modulo, shift=shift)
    m = s.amax(-1, keepdim=True)
    e = torch.exp(s - m)
    lse = (m + torch.log(e.sum(-1, keepdim=True))).squeeze(-1)
    o = (e / e.sum(-1, keepdim=True)) @ v.double()[:, heads]
    return o, lse * lse_unit


def as_outputs(q: Any, o: Any, lse: Any) -> tuple[Any, Any]:
    """The kernel's output types: ``o`` in q's dtype, ``lse`` float32."""
    import torch

    return o.to(q.dtype), lse.to(torch.float32)
