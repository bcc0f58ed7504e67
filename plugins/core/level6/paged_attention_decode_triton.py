"""Level 6 · paged_attention_decode_triton — the same contract as the torch kata, as a kernel.

The checks are the torch kata's (``paged_attention_decode.make_checks``) at sizes Triton accepts
(powers of two) and small enough for the CPU interpreter.
"""

from __future__ import annotations

from attnkata import Claim, Kata, Prediction

from .paged_attention_decode import kernel_device, make_checks, misconceptions

ENTRY = "paged_attention_decode_triton"

PAGED_ATTENTION_DECODE_TRITON = Kata(
    id="paged_attention_decode_triton",
    level=6,
    title="Paged decode in Triton: walk the block table inside the kernel",
    path="level6/paged_attention_decode_triton.py",
    entries=(ENTRY,),
    checks=make_checks(ENTRY, dims=(16, 32), block_sizes=(1, 2, 4, 8), groups=(1, 2, 4),
                       dtypes=("float32", "float32", "float16"), examples=6, max_seqs=3,
                       max_len=20, d_fixed=16, device=kernel_device),
    predictions=(
        Prediction("programs_in_grid", "the launcher starts one program per (sequence, query "
                   "head): with S = 4 and H_q = 8, how many programs run?", 32, kind="exact",
                   why="A grid of (S, H_q) = (4, 8) programs."),
        Prediction("bytes_read_per_step", "one decode step for one sequence of 4096 tokens, "
                   "H_kv = 8, d = 128, fp16: bytes of keys and values read", 16 * 2**20,
                   why="4096 tokens · 8 heads · 128 · 2 bytes · 2 (K and V) = 16 MiB, for a "
                       "single new token."),
        Prediction("flops_per_byte_mha", "with H_q = H_kv (no GQA) in fp16: FLOPs per byte of "
                   "K/V read (a multiply-add is 2 FLOPs)", 1.0,
                   why="Per token and head: q·k and p·v are 2d multiply-adds = 4d FLOPs, for 2d "
                       "elements · 2 bytes = 4d bytes: 1 FLOP per byte, far below what a GPU "
                       "can do per byte moved. Decode is memory-bound; GQA multiplies the ratio "
                       "by the group size."),
    ),
    misconceptions=misconceptions(ENTRY, kernel=True),
    claims=(
        Claim("paged-decode-triton-equals-contiguous", "The Triton paged decode kernel equals "
              "attention over the same keys and values stored contiguously, within the dtype's "
              "tolerance.", scope="exact", source="kwon-2023-paged",
              evidence=("equals_contiguous_decode", "placement_invariant", "matches_reference"),
              not_claimed="Checked on the CPU interpreter at small sizes; bandwidth on a GPU is "
                          "the bench plugin's measurement, not a claim of this kata."),
    ),
    hints=(
        "Start from the docstring's loop: the program ids give (seq, head); kv_head = head // "
        "GROUP; offs_d = tl.arange(0, HEAD_DIM) and offs_t = tl.arange(0, BLOCK_SIZE).",
        "Inside `for j in range(0, tl.cdiv(n, BLOCK_SIZE))`: b = tl.load(Block_tables + seq * "
        "stride_bts + j); the key tile's pointers are K_pages + b * stride_kb + offs_t[:, None] "
        "* stride_kt + kv_head * stride_kh + offs_d[None, :]; mask rows with j * BLOCK_SIZE + "
        "offs_t < n.",
        "Scores: x = tl.sum(k * q[None, :], 1) * sm_scale, then tl.where(valid, x, -inf); "
        "online softmax: m_new = tl.maximum(m_i, tl.max(x, 0)); alpha = tl.exp(m_i - m_new); "
        "p = tl.exp(x - m_new); l_i = l_i * alpha + tl.sum(p, 0); acc = acc * alpha + "
        "tl.sum(p[:, None] * v, 0). Cast the loads to tl.float32 for fp16 inputs.",
    ),
    requires=("torch", "triton"),
    timeout=60.0,
    bench={"kind": "paged_decode", "entry": ENTRY,
           "reference": "attnkata_kernels.paged_decode:paged_decode",
           "metric": "achieved bandwidth (bytes of K/V read per second)",
           "shapes": {"S": 32, "H_q": 32, "H_kv": 8, "d": 128, "block_size": 16,
                      "seq_len": 4096, "dtype": "float16"}},
)


# Diagnosis by behaviour (issue 14): the torch kata's probes, at sizes the kernel takes
# (d = 16, block sizes 2 and 4, float32), run on the learner's kernel.
from attnkata.diagnose import attach  # noqa: E402

from .paged_attention_decode import decode_probes  # noqa: E402

PAGED_ATTENTION_DECODE_TRITON = attach(PAGED_ATTENTION_DECODE_TRITON, **decode_probes(ENTRY))
