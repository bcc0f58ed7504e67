"""What the bench times: the sweep of shapes, their inputs, and the candidates per shape.

Three kinds of kernel, one contract each (shared/KATAS.md, levels 5 and 6), and one pair:

* ``flash_fwd`` -- ``f(q, k, v, causal) -> (o, lse)``; ``q`` ``[B, H_q, N, d]``;
* ``flash_bwd`` -- ``f(q, k, v, o, lse, do, causal) -> (dq, dk, dv)``;
* ``flash_fwdbwd`` -- the forward then the backward, as training runs them: the reference
  kernels one after the other, SDPA's forward and its autograd backward (one call each);
  judged on ``(dq, dk, dv)``, counted as 3.5x the forward's FLOPs (FlashAttention-2's
  convention: the backward is 2.5x);
* ``paged_decode`` -- ``f(q, k_pages, v_pages, block_tables, seq_lens) -> o``; ``q`` ``[S, H_q, d]``.

Candidates at every shape: the target's kernel (the learner's kata), the reference
kernel in ``attnkata_kernels``, and torch's ``scaled_dot_product_attention`` with each
backend pinned (flash, efficient, cuDNN, math); a backend that cannot run a shape says
why instead of timing.  The flash sweep follows the FlashAttention papers: 16k tokens per
batch (``B = 16384 / N``) and model width 2048 (``H = 2048 / d``), no GQA by default, so
that every SDPA backend computes the same thing (with ``gqa > 1`` SDPA gets
``enable_gqa``).  Paged decode uses GQA (32 query heads over 8 KV heads), ``S``
sequences of ``N`` tokens each in shuffled pages.  Its SDPA rows are a *dense upper bound,
no paging*: SDPA gets K/V already contiguous, gathered from the pages outside the timed
region (``sdpa_*``); ``sdpa_gather`` times the gather too, then lets torch pick a backend.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

KINDS = ("flash_fwd", "flash_bwd", "flash_fwdbwd", "paged_decode")
SDPA_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")
SDPA_NAMES = {"FLASH_ATTENTION": "sdpa_flash", "EFFICIENT_ATTENTION": "sdpa_efficient",
              "CUDNN_ATTENTION": "sdpa_cudnn", "MATH": "sdpa_math"}
BASELINES = ("reference", *SDPA_NAMES.values(), "sdpa_gather")
DENSE_LABEL = ("dense upper bound, no paging: SDPA reads K/V already contiguous; their gather from "
               "the pages is excluded from the timed region")
GATHER_LABEL = ("paging through a gather: K/V gathered from the pages inside the timed region, then "
                "dense SDPA (torch's own backend choice)")
REFERENCE = {"flash_fwd": "attnkata_kernels.flash_fwd.flash_fwd",
             "flash_bwd": "attnkata_kernels.flash_bwd.flash_bwd",
             "flash_fwdbwd": "attnkata_kernels.flash_fwd.flash_fwd + attnkata_kernels.flash_bwd.flash_bwd",
             "paged_decode": "attnkata_kernels.paged_decode.paged_decode"}
OUTPUT_NAMES = {"flash_fwd": ("o", "lse"), "flash_bwd": ("dq", "dk", "dv"), "flash_fwdbwd": ("dq", "dk", "dv"),
                "paged_decode": ("o",)}
DTYPES = ("fp16", "bf16", "fp32")
MATH_LIMIT_BYTES = 4 * 2**30  # the math backend materialises B*H*N*N float32 scores


@dataclass(frozen=True)
class Case:
    """One shape of one kind of kernel."""

    kind: str
    dtype: str
    B: int
    H_q: int
    H_kv: int
    N: int
    d: int
    causal: bool = False
    page_size: int = 0

    @property
    def flops(self) -> int:
        """Forward ``4 B H N^2 d`` (halved when causal), backward 2.5x, both 3.5x; decode ``4 S H_q N d``."""
        if self.kind == "paged_decode":
            return 4 * self.B * self.H_q * self.N * self.d
        fwd = flash_flops(self.B, self.H_q, self.N, self.d, self.causal)
        return {"flash_bwd": int(2.5 * fwd), "flash_fwdbwd": int(3.5 * fwd)}.get(self.kind, fwd)

    @property
    def kv_bytes(self) -> int:
        """Bytes of K and V one call must read: every token of every KV head, once."""
        return 2 * self.B * self.N * self.H_kv * self.d * dtype_bytes(self.dtype)

    def label(self) -> str:
        mask = " causal" if self.causal else ""
        return f"{self.kind} {self.dtype} B={self.B} H={self.H_q}/{self.H_kv} N={self.N} d={self.d}{mask}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def flash_flops(B: int, H: int, N: int, d: int, causal: bool = False) -> int:
    """``4 B H N^2 d``: QK^T and PV are two ``N x N x d`` matmuls of 2 FLOPs per multiply-add."""
    total = 4 * B * H * N * N * d
    return total // 2 if causal else total


def dtype_bytes(dtype: str) -> int:
    return 4 if dtype == "fp32" else 2


def torch_dtype(name: str) -> Any:
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def sweep(kinds=KINDS, sizes=(512, 1024, 2048, 4096, 8192, 16384), head_dims=(64, 128),
          dtypes=("fp16", "bf16"), causal=(False, True), tokens: int = 16384, width: int = 2048, gqa: int = 1,
          decode_batch: int = 32, decode_heads: tuple[int, int] = (32, 8), page_size: int = 16) -> list[Case]:
    """Every case of the sweep, kind by kind, in a stable order."""
    cases = []
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown bench kind {kind!r}; choose from {KINDS}")
        for dtype in dtypes:
            for d in head_dims:
                for is_causal in (causal if kind != "paged_decode" else (False,)):
                    for N in sizes:
                        if kind == "paged_decode":
                            cases.append(Case(kind, dtype, decode_batch, decode_heads[0], decode_heads[1],
                                              N, d, False, page_size))
                        else:
                            H = max(gqa, width // d // gqa * gqa)
                            cases.append(Case(kind, dtype, max(1, tokens // N), H, H // gqa, N, d, is_causal))
    return cases


QUICK_BUDGET_S = 225.0  # ``--quick``: what has not started by then is skipped; the last
                        # candidate started (its compile and autotune) and the files fit in 5 minutes


def quick_cases(kinds=KINDS, tokens: int = 16384, width: int = 2048, decode_batch: int = 32,
                decode_heads: tuple[int, int] = (32, 8), page_size: int = 16) -> list[Case]:
    """``attnkata bench --quick``: bf16, d = 128 -- the forward (causal and not) and paged decode
    at 1k and 4k tokens, and one forward + backward (N = 4096, not causal).  The 4k shapes
    (where the targets are set) come first, so a run cut short by its budget keeps them."""
    d, dtype = 128, "bf16"
    H = width // d

    def flash(kind: str, N: int, causal: bool) -> Case:
        return Case(kind, dtype, max(1, tokens // N), H, H, N, d, causal)

    def decode(N: int) -> Case:
        return Case("paged_decode", dtype, decode_batch, decode_heads[0], decode_heads[1], N, d, False, page_size)

    order = [flash("flash_fwd", 4096, False), flash("flash_fwd", 4096, True), flash("flash_fwdbwd", 4096, False),
             decode(4096), flash("flash_fwd", 1024, False), flash("flash_fwd", 1024, True), decode(1024)]
    return [c for c in order if c.kind in kinds]


# -- inputs and the truth ------------------------------------------------------

def make_inputs(case: Case, device: Any, seed: int) -> dict[str, Any]:
    """Fresh inputs for one case, drawn by the framework from ``seed`` (learners never see them)."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    dt = torch_dtype(case.dtype)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).to(dt)

    if case.kind == "paged_decode":
        S, P = case.B, case.page_size
        per_seq = math.ceil(case.N / P)
        num_blocks = S * per_seq + 1  # one spare page nobody uses
        perm = torch.randperm(num_blocks, generator=gen, device=device)[: S * per_seq]
        block_tables = perm.view(S, per_seq).to(torch.int32)
        seq_lens = torch.full((S,), case.N, device=device, dtype=torch.int32)
        return {"q": randn(S, case.H_q, case.d), "k_pages": randn(num_blocks, P, case.H_kv, case.d),
                "v_pages": randn(num_blocks, P, case.H_kv, case.d), "block_tables": block_tables,
                "seq_lens": seq_lens}
    q = randn(case.B, case.H_q, case.N, case.d)
    k = randn(case.B, case.H_kv, case.N, case.d)
    v = randn(case.B, case.H_kv, case.N, case.d)
    inputs = {"q": q, "k": k, "v": v}
    if case.kind in ("flash_bwd", "flash_fwdbwd"):
        inputs["do"] = randn(case.B, case.H_q, case.N, case.d)
    return inputs


def contiguous_kv(inputs: dict[str, Any]) -> tuple[Any, Any]:
    """Paged K/V gathered into ``[S, H_kv, N, d]`` (sequence lengths all equal here)."""
    tables, n = inputs["block_tables"].long(), int(inputs["seq_lens"][0])

    def gather(pages):
        S, per_seq = tables.shape
        x = pages[tables.reshape(-1)].reshape(S, per_seq * pages.shape[1], *pages.shape[2:])
        return x[:, :n].transpose(1, 2).contiguous()

    return gather(inputs["k_pages"]), gather(inputs["v_pages"])


def truth(case: Case, inputs: dict[str, Any]) -> tuple[tuple, tuple]:
    """``(truth, same math in the case's dtype)`` for the outputs of this kind.

    The truth is float32 for fp16/bf16 kernels and float64 for fp32 ones, so that the
    kernel's dtype always drifts measurably from it.

    For ``flash_bwd`` (and ``flash_fwdbwd``) it also completes the inputs with the forward's
    ``o`` and ``lse``.
    """
    import torch

    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # no TF32 in the truth
    try:
        return _truth(case, inputs)
    finally:
        torch.set_float32_matmul_precision(precision)


def _truth(case: Case, inputs: dict[str, Any]) -> tuple[tuple, tuple]:
    from . import oracle

    import torch

    low = torch_dtype(case.dtype)
    high = torch.float64 if low == torch.float32 else torch.float32
    if case.kind == "paged_decode":
        k, v = contiguous_kv(inputs)
        q = inputs["q"].unsqueeze(2)  # (S, H_q, 1, d)
        exact, drift = oracle.attention(q, k, v, dtype=high)[0], oracle.attention(q, k, v, dtype=low)[0]
        return (exact.squeeze(2),), (drift.squeeze(2),)
    q, k, v = inputs["q"], inputs["k"], inputs["v"]
    o, lse = oracle.attention(q, k, v, case.causal, dtype=high)
    o_low, lse_low = oracle.attention(q, k, v, case.causal, dtype=low)
    if case.kind == "flash_fwd":
        return (o, lse), (o_low, lse_low)
    inputs["o"], inputs["lse"] = o.to(low), lse.float()  # the kernels' contract: lse is float32
    do = inputs["do"]
    exact = oracle.attention_backward(q, k, v, o, lse, do, case.causal, dtype=high)
    drift = oracle.attention_backward(q, k, v, o_low, lse_low, do, case.causal, dtype=low)
    return exact, drift


# -- candidates ----------------------------------------------------------------

@dataclass
class Prepared:
    """A candidate ready to run: ``run()`` is what gets timed, ``outputs(run())`` what gets checked."""

    run: Callable[[], Any]
    setup: Callable[[], Any] | None = None
    outputs: Callable[[Any], tuple] = lambda ret: tuple(ret) if isinstance(ret, (tuple, list)) else (ret,)
    time: Callable[[], Any] | None = None   # times itself (in the learner's worker): returns a ``Timed``


@dataclass(frozen=True)
class Candidate:
    """One implementation to time: ``prepare(case, inputs) -> Prepared`` (may raise ``Unsupported``)."""

    name: str
    impl: str
    prepare: Callable[[Case, dict], Prepared]
    sdpa_backend: str | None = None
    autotuned: tuple[tuple[str, Any], ...] = ()   # (name, triton autotuner): chosen configs recorded
    label: str = ""                               # what the row stands for, when its name does not say


class Unsupported(Exception):
    """This candidate cannot run this case (a backend without the shape, no GQA support…)."""


def kernel_args(kind: str, case: Case, x: dict) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of the kata's contract for ``kind`` on the inputs ``x``."""
    if kind == "flash_fwd":
        return (x["q"], x["k"], x["v"]), {"causal": case.causal}
    if kind == "flash_bwd":
        return (x["q"], x["k"], x["v"], x["o"], x["lse"], x["do"]), {"causal": case.causal}
    if kind == "flash_fwdbwd":
        raise Unsupported("forward + backward is timed for the reference kernels and SDPA only")
    return (x["q"], x["k_pages"], x["v_pages"], x["block_tables"], x["seq_lens"]), {}


def kernel_candidate(name: str, impl: str, kind: str, fn: Callable, autotuned: tuple = ()) -> Candidate:
    """A function with the kata's contract for ``kind``, run in this process (a reference kernel)."""

    def prepare(case: Case, x: dict) -> Prepared:
        args, kwargs = kernel_args(kind, case, x)
        return Prepared(lambda: fn(*args, **kwargs))

    return Candidate(name, impl, prepare, autotuned=autotuned)


def remote_candidate(name: str, kind: str, kernel: Any, flush_bytes: int = 0) -> Candidate:
    """The target's kernel, in its worker (:class:`~.learner.RemoteKernel`): the inputs are
    staged there once per case, its outputs judged here, its timing taken there and checked."""

    def prepare(case: Case, x: dict) -> Prepared:
        args, kwargs = kernel_args(kind, case, x)
        staged = kernel.stage(*args, **kwargs)
        return Prepared(lambda: kernel.call(staged), time=lambda: kernel.time(staged, flush_bytes=flush_bytes))

    where = kernel.where()  # the function that runs, as the worker sees it
    return Candidate(name, f"{kernel.label} ({where['impl']} in {where['file']})", prepare)


def reference_candidate(kind: str) -> Candidate:
    import importlib

    if kind == "flash_fwdbwd":
        return fwdbwd_reference()
    module_name, fn_name = REFERENCE[kind].rsplit(".", 1)
    module = importlib.import_module(module_name)
    return kernel_candidate("reference", REFERENCE[kind], kind, getattr(module, fn_name), autotuners(module))


def fwdbwd_reference() -> Candidate:
    """The reference forward then the reference backward on its ``o`` and ``lse``, one call."""
    from attnkata_kernels import flash_bwd as bwd_module
    from attnkata_kernels import flash_fwd as fwd_module

    def prepare(case: Case, x: dict) -> Prepared:
        q, k, v, do = x["q"], x["k"], x["v"], x["do"]

        def run():
            o, lse = fwd_module.flash_fwd(q, k, v, causal=case.causal)
            return bwd_module.flash_bwd(q, k, v, o, lse, do, causal=case.causal)

        return Prepared(run)

    return Candidate("reference", REFERENCE["flash_fwdbwd"], prepare,
                     autotuned=autotuners(fwd_module) + autotuners(bwd_module))


def autotuners(module: Any) -> tuple[tuple[str, Any], ...]:
    """The ``@triton.autotune`` kernels a module defines (their chosen configs go in the rows)."""
    try:
        from triton.runtime.autotuner import Autotuner
    except ImportError:
        return ()
    return tuple((name, obj) for name, obj in vars(module).items() if isinstance(obj, Autotuner))


def sdpa_candidate(kind: str, backend: str) -> Candidate:
    """torch's SDPA with one backend pinned by ``sdpa_kernel``."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = getattr(SDPBackend, backend)

    def call(q, k, v, causal):
        kwargs = {"is_causal": causal} if causal else {}
        if q.shape[1] != k.shape[1]:
            kwargs["enable_gqa"] = True
        try:
            with sdpa_kernel([chosen]):  # the timed path: nothing else on the host
                return F.scaled_dot_product_attention(q, k, v, **kwargs)
        except TypeError as exc:  # torch < 2.5: no enable_gqa
            raise Unsupported(f"GQA needs enable_gqa (torch >= 2.5): {exc}") from None
        except RuntimeError as exc:  # no kernel for this shape: ask again, keeping torch's reasons
            with warnings.catch_warnings(record=True) as caught, sdpa_kernel([chosen]):
                warnings.simplefilter("always")
                try:
                    F.scaled_dot_product_attention(q, k, v, **kwargs)
                except RuntimeError:
                    pass
            why = "; ".join(dict.fromkeys(str(w.message).strip().splitlines()[0] for w in caught
                                          if str(w.message).strip()))
            raise Unsupported((why or str(exc).strip().splitlines()[0])[:300]) from None

    def prepare(case: Case, x: dict) -> Prepared:
        if backend == "MATH" and case.kind != "paged_decode" and 4 * case.B * case.H_q * case.N**2 > MATH_LIMIT_BYTES:
            raise Unsupported(f"skipped: the math backend materialises the N x N scores "
                              f"({4 * case.B * case.H_q * case.N**2 / 2**30:.0f} GiB in float32)")
        if case.kind == "flash_fwd":
            return Prepared(lambda: call(x["q"], x["k"], x["v"], case.causal))
        if case.kind == "paged_decode":
            k, v = contiguous_kv(x)  # outside the timed region: a dense upper bound, no paging
            q = x["q"].unsqueeze(2)
            return Prepared(lambda: call(q, k, v, False), outputs=lambda o: (o.squeeze(2),))
        q, k, v = (x[n].detach().clone().requires_grad_() for n in ("q", "k", "v"))
        do = x["do"]

        def clear():
            q.grad = k.grad = v.grad = None

        if case.kind == "flash_fwdbwd":
            def both():
                call(q, k, v, case.causal).backward(do)

            return Prepared(both, setup=clear, outputs=lambda _: (q.grad, k.grad, v.grad))
        o = call(q, k, v, case.causal)

        def backward():
            o.backward(do, retain_graph=True)

        return Prepared(backward, setup=clear, outputs=lambda _: (q.grad, k.grad, v.grad))

    return Candidate(SDPA_NAMES[backend], f"torch.nn.functional.scaled_dot_product_attention[{backend}]",
                     prepare, sdpa_backend=backend, label=DENSE_LABEL if kind == "paged_decode" else "")


def gather_candidate() -> Candidate:
    """Paged decode the plain way: gather K/V from the pages (timed), then dense SDPA."""
    import torch.nn.functional as F

    def prepare(case: Case, x: dict) -> Prepared:
        q = x["q"].unsqueeze(2)
        gqa = {"enable_gqa": True} if case.H_q != case.H_kv else {}

        def run():
            k, v = contiguous_kv(x)
            return F.scaled_dot_product_attention(q, k, v, **gqa)

        return Prepared(run, outputs=lambda o: (o.squeeze(2),))

    return Candidate("sdpa_gather", "K/V gather from pages + torch.nn.functional.scaled_dot_product_attention",
                     prepare, sdpa_backend="default (torch's choice)", label=GATHER_LABEL)


def baseline_candidates(kind: str) -> list[Candidate]:
    """The reference kernel and each SDPA backend this torch knows."""
    from torch.nn.attention import SDPBackend

    out = [reference_candidate(kind)]
    out += [sdpa_candidate(kind, b) for b in SDPA_BACKENDS if hasattr(SDPBackend, b)]
    if kind == "paged_decode":
        out.append(gather_candidate())
    return out


def autotune_choice(candidate: Candidate) -> str | None:
    """The config each of the candidate's autotuners chose for the last shape it ran."""
    chosen = []
    for name, tuner in candidate.autotuned:
        config = getattr(tuner, "best_config", None)
        if config is not None:
            parts = [p for p in str(config).split(", ") if not p.endswith(": None")]
            chosen.append(f"{name}: {', '.join(parts)}")
    return "; ".join(chosen) or None
