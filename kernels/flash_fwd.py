"""FlashAttention forward in Triton (FlashAttention-2 schedule, ``dao-2023``).

One program owns a ``BLOCK_M`` tile of queries of one (batch, query head) and streams the
keys and values of its KV head past it in ``BLOCK_N`` tiles. It keeps three running
quantities per query row and never materialises the ``N x N`` score matrix:

* ``m_i`` -- the largest scaled score seen so far (log2 domain),
* ``l_i`` -- the sum of ``2^(s - m_i)`` over the keys seen so far,
* ``acc`` -- the matching sum of ``2^(s - m_i) * v``.

When a new tile raises the maximum from ``m_i`` to ``m_ij``, the old sums are rescaled
by ``alpha = 2^(m_i - m_ij)`` (online softmax, ``milakov-2018``). At the end
``o = acc / l_i`` and ``lse = (m_i + log2 l_i) * ln 2``.

Scores live in the log2 domain: ``log2(e)`` is folded into the softmax scale once, and
``qk * scale - m`` is one fused multiply-add feeding ``exp2`` (the GPU's native
exponential), so each score costs one FMA and one ``exp2``.

There is one key loop. Key tiles every query row of the tile may see skip the mask; a
scalar test sends only the causal diagonal tile (or the ragged tail when N is not a
multiple of ``BLOCK_N``) through the compares. One loop keeps one software pipeline: two
loops (unmasked, then masked) would drain the pipeline and fill it again per program.

Causal query tiles near the end of the sequence see the most keys, so the grid runs them
first (heaviest first): the last programs to start are the short ones, and the tail of
the launch is short. Grouped-query attention (GQA, MQA) maps query head ``h`` to KV head
``h // (H_q // H_kv)`` in the address arithmetic; K and V are never repeated.

On Hopper (sm_90) and newer, tiles move through tensor descriptors (TMA, the tensor
memory accelerator: one instruction copies a whole tile to shared memory, clipping at
N); elsewhere, on strided layouts TMA cannot describe, and on the interpreter, the
kernel computes a pointer per element instead. The autotuner keys on N rounded up to a
power of two, on ``B * H_q`` (how many programs share the GPU) and on the GQA group.

Shapes: ``q`` ``[B, H_q, N, d]``, ``k, v`` ``[B, H_kv, N, d]``, ``o`` like ``q``,
``lse`` ``[B, H_q, N]`` float32.
"""

import math
import os

import torch
import triton
import triton.language as tl

from ._tuning import INTERPRET, ConfigTable, bucket

FORCE_POINTERS = os.environ.get("ATTNKATA_NO_TMA") == "1"
"""Set ``ATTNKATA_NO_TMA=1`` to run the pointer path on Hopper too (for comparing the two)."""

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
LOG2E = tl.constexpr(1.4426950408889634)  # log2(e): exp(x) == exp2(x * LOG2E)
LN2 = tl.constexpr(0.6931471805599453)  # ln(2): turns a log2-domain lse into natural log


def flops(B, H, N, d, causal=False):
    """FLOPs of one attention forward: two ``N x N x d`` matmuls (QK^T and PV) per head.

    Each matmul is ``2 * N * N * d`` multiply-adds counted as two FLOPs, so
    ``4 * B * H * N^2 * d``; a causal mask skips half of the score matrix.
    """
    total = 4 * B * H * N * N * d
    return total // 2 if causal else total


def check_qkv(q, k, v):
    """Validate ``q [B, H_q, N, d]``, ``k, v [B, H_kv, N, d]``; return ``(B, H_q, H_kv, N, d)``."""
    if q.dim() != 4 or k.shape != v.shape or k.dim() != 4:
        raise ValueError(f"expected q [B, H_q, N, d] and k, v [B, H_kv, N, d]; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    B, H_q, N, d = q.shape
    H_kv = k.shape[1]
    if k.shape[0] != B or k.shape[2] != N or k.shape[3] != d:
        raise ValueError(f"k, v {tuple(k.shape)} do not match q {tuple(q.shape)}")
    if H_q % H_kv:
        raise ValueError(f"H_kv={H_kv} must divide H_q={H_q}")
    if d not in HEAD_DIMS:
        raise ValueError(f"head dim {d} not in {HEAD_DIMS}")
    if not q.dtype == k.dtype == v.dtype or q.dtype not in DTYPES:
        raise TypeError(f"q, k, v must share one dtype of {DTYPES}; "
                        f"got {q.dtype}, {k.dtype}, {v.dtype}")
    return B, H_q, H_kv, N, d


def dot_precision(dtype):
    """``tl.dot`` precision: IEEE fp32 for fp32 inputs (no tf32 rounding); fp16/bf16 ignore it."""
    return "ieee" if dtype == torch.float32 else "tf32"


# Tile table (BLOCK_M, BLOCK_N, warps, stages, where). The compile gate built every row
# for sm_90 and sm_80 at the head dims it allows, with no register spill and shared
# memory within each target's limit. Dropped: 128 x 64 with 4 warps at d = 128 (each
# thread holds a 128-wide accumulator row slice plus the score tile and spills); 128 x 128
# with 3 stages needs 192 KB of shared memory at d = 128, over Ampere's 163 KB.
FWD_TABLE = ConfigTable(("BLOCK_M", "BLOCK_N"), [
    (128, 64, 4, 3, {"head_dims": (16, 32, 64)}),
    (128, 64, 8, 3, None),
    (128, 64, 8, 4, None),
    (128, 128, 8, 2, None),
    (128, 128, 8, 3, {"min_arch": 90}),
    (64, 64, 4, 3, None),
    (64, 64, 4, 4, None),
], interpret=(16, 16))


@triton.autotune(configs=FWD_TABLE.configs,
                 key=["N_BUCKET", "BH", "GROUP", "HEAD_DIM", "CAUSAL", "USE_TMA"],
                 prune_configs_by={"early_config_prune": FWD_TABLE.prune})
@triton.jit
def _attn_fwd(Q, K, V, Out, LSE, sm_scale,
              stride_qz, stride_qh, stride_qm, stride_qk,
              stride_kz, stride_kh, stride_kn, stride_kk,
              stride_vz, stride_vh, stride_vn, stride_vk,
              stride_oz, stride_oh, stride_om, stride_ok,
              H_Q, GROUP, N, N_BUCKET, BH,
              HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
              USE_TMA: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(N, BLOCK_M), B * H_q)``: one query tile of one (batch, query head).

    ``N_BUCKET`` and ``BH`` only key the autotuner. With ``USE_TMA`` the tiles move through
    Hopper's tensor memory accelerator (the ``*_stride_*k`` strides must then be 1).
    """
    tl.static_assert(BLOCK_M % BLOCK_N == 0, "the causal diagonal must be whole key tiles")
    tl.static_assert(HEAD_DIM >= 16, "tl.dot needs an inner dimension of at least 16")
    # -- which tile: causal tiles far down the sequence do the most work, so launch them first
    if CAUSAL:
        start_m = tl.num_programs(0) - 1 - tl.program_id(0)
    else:
        start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_z = (off_hz // H_Q).to(tl.int64)
    off_h = (off_hz % H_Q).to(tl.int64)
    off_kvh = off_h // GROUP  # GQA: query heads of one group share a KV head

    Q += off_z * stride_qz + off_h * stride_qh
    K += off_z * stride_kz + off_kvh * stride_kh
    V += off_z * stride_vz + off_kvh * stride_vh
    Out += off_z * stride_oz + off_h * stride_oh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N
    if USE_TMA:
        # -- one descriptor per [N, d] matrix: the copy engine clips at N and fills zeros
        q_desc = tl.make_tensor_descriptor(Q, shape=[N, HEAD_DIM], strides=[stride_qm, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
        k_desc = tl.make_tensor_descriptor(K, shape=[N, HEAD_DIM], strides=[stride_kn, 1],
                                           block_shape=[BLOCK_N, HEAD_DIM])
        v_desc = tl.make_tensor_descriptor(V, shape=[N, HEAD_DIM], strides=[stride_vn, 1],
                                           block_shape=[BLOCK_N, HEAD_DIM])
        o_desc = tl.make_tensor_descriptor(Out, shape=[N, HEAD_DIM], strides=[stride_om, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
        q = q_desc.load([start_m * BLOCK_M, 0])
    else:
        q = tl.load(Q + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk,
                    mask=row_ok[:, None], other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * LOG2E  # scores go straight to the log2 domain

    # -- one key loop; only tiles from `mask_from` on pay for a mask --
    if CAUSAL:
        hi = tl.minimum((start_m + 1) * BLOCK_M, N)  # no key after the tile's last query
        mask_from = start_m * BLOCK_M  # key tiles from here cross the diagonal
    else:
        hi = N
        mask_from = (N // BLOCK_N) * BLOCK_N  # only a ragged last tile needs the bound
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        # -- load K [BLOCK_N, HEAD_DIM] and V [BLOCK_N, HEAD_DIM] --
        if USE_TMA:
            k = k_desc.load([start_n, 0])
            v = v_desc.load([start_n, 0])
        else:
            k = tl.load(K + cols[:, None] * stride_kn + offs_d[None, :] * stride_kk,
                        mask=cols[:, None] < N, other=0.0)
            v = tl.load(V + cols[:, None] * stride_vn + offs_d[None, :] * stride_vk,
                        mask=cols[:, None] < N, other=0.0)
        # -- raw scores; the diagonal (or ragged) tile hides what a row may not see --
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        if start_n >= mask_from:  # a scalar test: full tiles skip the mask's compares
            visible = cols[None, :] < N
            if CAUSAL:
                visible = visible & (offs_m[:, None] >= cols[None, :])
            qk = tl.where(visible, qk, float("-inf"))
        # -- new running max, in the log2 domain --
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        # -- scale and subtract the max in one FMA, then the native base-2 exponential --
        p = tl.math.exp2(tl.fma(qk, qk_scale, -m_ij[:, None]))
        # -- rescale the old sums by alpha = 2^(m_old - m_new) --
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        # -- accumulate P V --
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_ij

    # -- epilogue: normalise, and store lse in natural log --
    acc = acc / l_i[:, None]
    lse = (m_i + tl.math.log2(l_i)) * LN2
    tl.store(LSE + off_hz.to(tl.int64) * N + offs_m, lse, mask=row_ok)
    if USE_TMA:
        o_desc.store([start_m * BLOCK_M, 0], acc.to(Out.dtype.element_ty))
    else:
        tl.store(Out + offs_m[:, None] * stride_om + offs_d[None, :] * stride_ok,
                 acc.to(Out.dtype.element_ty), mask=row_ok[:, None])


def _tma_allocator(size, alignment, stream):
    """Scratch for descriptors built inside a kernel (``tl.make_tensor_descriptor``)."""
    return torch.empty(size, device="cuda", dtype=torch.int8)


def tma_ok(*tensors):
    """Whether the TMA path may run: Hopper or newer, compiled, 16-byte aligned rows.

    The copy engine needs the base address and every stride but the last (which must be
    1) to be multiples of 16 bytes; anything else takes the pointer path.
    """
    if INTERPRET or FORCE_POINTERS or not all(t.is_cuda for t in tensors):
        return False
    if torch.cuda.get_device_capability(tensors[0].device)[0] < 9:
        return False
    for t in tensors:
        size = t.element_size()
        if t.stride(-1) != 1 or t.data_ptr() % 16:
            return False
        if any(s * size % 16 for s in t.stride()[:-1]):
            return False
    return True


def _use_tma(*tensors):
    """Pick the TMA path and make sure in-kernel descriptors have scratch to live in."""
    if not tma_ok(*tensors):
        return False
    from triton.runtime import _allocation
    if isinstance(_allocation._allocator.get(), _allocation.NullAllocator):
        triton.set_allocator(_tma_allocator)
    return True


def flash_fwd(q, k, v, causal=False, sm_scale=None):
    """Attention forward: ``o = softmax(q k^T * sm_scale) v`` and its row log-sum-exp.

    :param q: ``[B, H_q, N, d]`` fp32/fp16/bf16.
    :param k: ``[B, H_kv, N, d]``, same dtype; ``H_kv`` divides ``H_q`` (GQA/MQA).
    :param v: like ``k``.
    :param causal: query ``i`` attends to keys ``<= i``.
    :param sm_scale: score scale; default ``1 / sqrt(d)``.
    :returns: ``(o, lse)``: ``o`` like ``q``; ``lse`` float32 ``[B, H_q, N]``,
        natural-log sum-exp of the scaled scores (what the backward needs).
    """
    return _forward(q, k, v, causal, sm_scale, use_tma=None)


def _forward(q, k, v, causal, sm_scale, use_tma):
    """:func:`flash_fwd` with the load path chosen (``None``: TMA where :func:`tma_ok`)."""
    B, H_q, H_kv, N, d = check_qkv(q, k, v)
    o = torch.empty_like(q)
    lse = torch.empty((B, H_q, N), device=q.device, dtype=torch.float32)
    if o.numel() == 0:
        return o, lse
    if use_tma is None:
        use_tma = _use_tma(q, k, v, o)
    grid, args = _launch_args(q, k, v, o, lse, causal, sm_scale, use_tma)
    _attn_fwd[grid](**args)
    return o, lse


def _launch_args(q, k, v, o, lse, causal, sm_scale, use_tma):
    """The grid and every argument of ``_attn_fwd`` but the tile sizes (the autotuner's)."""
    B, H_q, H_kv, N, d = check_qkv(q, k, v)
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)

    def grid(meta):
        return (triton.cdiv(N, meta["BLOCK_M"]), B * H_q)

    names = _attn_fwd.fn.arg_names
    values = (q, k, v, o, lse, sm_scale, *q.stride(), *k.stride(), *v.stride(), *o.stride(),
              H_q, H_q // H_kv, N, bucket(N), B * H_q,
              d, causal, dot_precision(q.dtype), use_tma)
    return grid, dict(zip(names, values))


# Gate shapes: the targets (N = 4096; 8 query heads, GQA group 1 or 4).
GATE_DTYPES = (torch.float16, torch.bfloat16)
GATE_HEAD_DIMS = (64, 128)


def gate_cases(arch):
    """Compile-gate cases (see ``attnkata.compilegate``) for one target ``arch`` (90, 80).

    Every config the table allows on ``arch``, for fp16 and bf16 x d in (64, 128) x
    (causal or not) x (GQA group 1 or 4), TMA on sm_90 and pointers on sm_80.
    """
    cases = []
    for dtype in GATE_DTYPES:
        for d in GATE_HEAD_DIMS:
            for causal in (False, True):
                for group in (1, 4):
                    q = torch.empty(2, 8, 4096, d, dtype=dtype, device="meta")
                    k = torch.empty(2, 8 // group, 4096, d, dtype=dtype, device="meta")
                    lse = torch.empty(2, 8, 4096, dtype=torch.float32, device="meta")
                    _, args = _launch_args(q, k, k, q, lse, causal, None, use_tma=arch >= 90)
                    label = f"{str(dtype)[6:]} d{d} {'causal' if causal else 'full'} g{group}"
                    cases.append({"kernel": _attn_fwd, "label": label, "args": args,
                                  "configs": FWD_TABLE.select(d, arch)})
    return cases
