"""The truth a benchmarked kernel is checked against before it is timed.

Plain torch, chunked over queries so that even N = 16k never holds more than a slab of
the ``N x N`` score matrix, and independent of every kernel it judges (the learner's,
the reference Triton kernels and torch's SDPA).  Run in float32 it is the truth; run in
the kernel's own dtype it measures how far that dtype alone drifts, and a kernel may be
off by a small multiple of that drift (the tolerance rule of tests/test_kernels.py).

Shapes: ``q`` ``[B, H_q, N_q, d]``, ``k, v`` ``[B, H_kv, N_k, d]``; ``lse`` ``[B, H_q, N_q]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

FP32_EPS = 2.0**-23


def _rows_per_chunk(B: int, H: int, N_k: int, budget_bytes: int) -> int:
    return max(1, budget_bytes // max(1, B * H * N_k * 4))


def _grouped(q, H_kv: int):
    """``[B, H_q, N_q, d]`` -> ``[B, H_kv, group * N_q, d]``: a GQA group's queries share K/V, so
    they become rows of one matrix (query head ``h`` uses KV head ``h // group``); K/V are never repeated."""
    B, H_q, N_q, d = q.shape
    return q.reshape(B, H_kv, (H_q // H_kv) * N_q, d)


def _scores(q_c, k, r0, sm_scale, causal, N_q, N_k):
    """Scaled scores of grouped rows ``r0: r0 + len``; row ``r`` is query position ``r % N_q``
    (causal: key j visible iff j <= position + N_k - N_q)."""
    import torch

    s = torch.matmul(q_c, k.transpose(-1, -2)) * sm_scale  # (B, H_kv, c, N_k)
    if causal:
        rows = torch.arange(r0, r0 + q_c.shape[-2], device=q_c.device)[:, None] % N_q + (N_k - N_q)
        cols = torch.arange(N_k, device=q_c.device)[None, :]
        s = s.masked_fill(cols > rows, float("-inf"))
    return s


def attention(q, k, v, causal: bool = False, sm_scale: float | None = None, dtype: Any = None,
              budget_bytes: int = 256 * 2**20):
    """``(o, lse)`` of softmax attention computed in ``dtype`` (default float32)."""
    import torch

    dtype = dtype or torch.float32
    B, H_q, N_q, d = q.shape
    H_kv, N_k = k.shape[1], k.shape[-2]
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
    qg, k, v = _grouped(q.to(dtype), H_kv), k.to(dtype), v.to(dtype)  # (B, H_kv, R, d), R = group * N_q
    o = torch.empty_like(qg)
    acc = torch.promote_types(dtype, torch.float32)  # float32, or float64 for a float64 truth
    lse = torch.empty(qg.shape[:-1], device=q.device, dtype=acc)
    step = _rows_per_chunk(B, H_kv, N_k, budget_bytes)
    for r0 in range(0, qg.shape[2], step):
        s = _scores(qg[:, :, r0:r0 + step], k, r0, sm_scale, causal, N_q, N_k)
        lse[:, :, r0:r0 + step] = torch.logsumexp(s.to(acc), dim=-1)
        o[:, :, r0:r0 + step] = torch.matmul(torch.softmax(s, dim=-1), v)
    return o.reshape(B, H_q, N_q, d), lse.reshape(B, H_q, N_q)


def attention_backward(q, k, v, o, lse, do, causal: bool = False, sm_scale: float | None = None,
                       dtype: Any = None, budget_bytes: int = 128 * 2**20):
    """``(dq, dk, dv)`` of softmax attention in ``dtype``, recomputing P from ``lse`` per chunk.

    ``dS = P * (dP - D)`` with ``dP = dO V^T`` and ``D = rowsum(dO * O)``; a KV head's
    gradient sums over its query heads (they are rows of one grouped matrix here).
    Accumulators are float32 (float64 when ``dtype`` is).
    """
    import torch

    dtype = dtype or torch.float32
    B, H_q, N_q, d = q.shape
    H_kv, N_k = k.shape[1], k.shape[-2]
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
    qg, dog = _grouped(q.to(dtype), H_kv), _grouped(do.to(dtype), H_kv)
    k, v = k.to(dtype), v.to(dtype)
    acc = torch.promote_types(dtype, torch.float32)  # float32, or float64 for a float64 truth
    delta = _grouped((do.to(acc) * o.to(acc)).sum(-1, keepdim=True), H_kv)[..., 0]  # (B, H_kv, R)
    lse = _grouped(lse.to(acc).unsqueeze(-1), H_kv)[..., 0]
    dq = torch.empty(qg.shape, device=q.device, dtype=acc)
    dk = torch.zeros(k.shape, device=q.device, dtype=acc)
    dv = torch.zeros(k.shape, device=q.device, dtype=acc)
    step = _rows_per_chunk(B, H_kv, N_k, budget_bytes)
    for r0 in range(0, qg.shape[2], step):
        sl = slice(r0, r0 + step)
        s = _scores(qg[:, :, sl], k, r0, sm_scale, causal, N_q, N_k)
        p = torch.exp(s.to(acc) - lse[:, :, sl, None]).to(dtype)  # (B, H_kv, c, N_k)
        dv += torch.matmul(p.transpose(-1, -2), dog[:, :, sl]).to(acc)
        dp = torch.matmul(dog[:, :, sl], v.transpose(-1, -2)).to(acc)
        ds = (p.to(acc) * (dp - delta[:, :, sl, None])).to(dtype)
        dq[:, :, sl] = torch.matmul(ds, k).to(acc) * sm_scale
        dk += torch.matmul(ds.transpose(-1, -2), qg[:, :, sl]).to(acc) * sm_scale
    return dq.reshape(B, H_q, N_q, d), dk, dv


@dataclass(frozen=True)
class Verdict:
    """Whether outputs matched the truth: the worst output's error and its bound."""

    ok: bool
    max_abs_err: float
    tol: float
    message: str = ""


def compare(outputs: Sequence[Any], truth: Sequence[Any], drift: Sequence[Any],
            names: Sequence[str], factor: float = 4.0) -> Verdict:
    """Each output within ``factor`` x its dtype's drift of the float32 truth, plus 16 fp32 ulps.

    ``drift`` holds the same quantities computed plainly in the kernel's dtype.  Outputs
    beyond ``len(outputs)`` are not checked (SDPA returns no ``lse``).
    """
    import torch

    worst = Verdict(True, 0.0, 1.0)
    if not outputs:
        return Verdict(False, math.inf, 0.0, "returned nothing")
    for out, ref, low, name in zip(outputs, truth, drift, names):
        if not isinstance(out, torch.Tensor):
            return Verdict(False, math.inf, 0.0, f"{name}: expected a tensor, got {type(out).__name__}")
        if tuple(out.shape) != tuple(ref.shape):
            return Verdict(False, math.inf, 0.0,
                           f"{name}: expected shape {tuple(ref.shape)}, got {tuple(out.shape)}")
        if not torch.isfinite(out).all():
            return Verdict(False, math.inf, 0.0, f"{name}: contains NaN or inf")
        ref64 = ref.double()
        scale = ref64.abs().max().item() + 1.0 if ref.numel() else 1.0
        tol = factor * (low.double() - ref64).abs().max().item() + 16 * FP32_EPS * scale
        err = (out.double() - ref64).abs().max().item() if ref.numel() else 0.0
        if err > tol:
            return Verdict(False, err, tol, f"{name}: max error {err:.3g} > tolerance {tol:.3g}")
        if err * worst.tol >= worst.max_abs_err * tol:  # the largest err / tol so far
            worst = Verdict(True, err, tol)
    return worst


def checksum(tensors: Sequence[Any]) -> list[float]:
    """One float64 sum per tensor: a cheap witness that a call left its inputs alone."""
    return [t.double().sum().item() for t in tensors]
