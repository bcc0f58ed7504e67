"""Reference · ring_overlap: when does one ring step's transfer hide under its compute?"""

import math
from fractions import Fraction

PREDICTIONS = {
    "kv_block_bytes": 2_097_152,
    "min_block_tokens_example": 20_000,
    "hidden_at_4096": False,
    "d_changes_verdict": "no",
}


def block_flops(block_tokens: int, d: int) -> int:
    # QKᵀ and PV: two [c, c, d] matmuls, 2 FLOPs (multiply, add) per term each.
    return 4 * block_tokens * block_tokens * d


def block_bytes(block_tokens: int, d: int, dtype_bytes: int = 2) -> int:
    # One K block and one V block, each [c, d].
    return 2 * block_tokens * d * dtype_bytes


def overlap_hidden(block_tokens: int, d: int, flops_per_s: float, bytes_per_s: float,
                   dtype_bytes: int = 2) -> bool:
    compute_s = block_flops(block_tokens, d) / flops_per_s
    transfer_s = block_bytes(block_tokens, d, dtype_bytes) / bytes_per_s
    return compute_s >= transfer_s


def min_block_tokens(flops_per_s: float, bytes_per_s: float, dtype_bytes: int = 2) -> int:
    # 4c²d/F ≥ 2cd·b/B  ⇔  c ≥ F·b / (2B): d cancels. Fractions keep the boundary exact.
    return max(1, math.ceil(Fraction(flops_per_s) * dtype_bytes / (2 * Fraction(bytes_per_s))))
