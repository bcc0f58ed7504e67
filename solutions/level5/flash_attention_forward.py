"""Reference · flash_attention_forward: the project's reference kernel, ``kernels/flash_fwd.py``.

One copy of each kernel: read ``attnkata_kernels.flash_fwd`` for the model answer —
``_attn_fwd`` is the body of the stub's ``flash_fwd_kernel`` (plus autotune keys and a TMA
switch): one key loop in which only the causal diagonal and the ragged tail pay for a
mask, scores in the log2 domain; it autotunes its tiles.
"""

from attnkata_kernels.flash_fwd import flash_fwd

PREDICTIONS = {
    "tile_flops": 1_048_576,  # 2 · 64·64·64 (Q·Kᵀ) + 2 · 64·64·64 (P·V)
    "tile_bytes": 16_384,  # (64·64 K + 64·64 V) · 2 bytes
    "tile_intensity": 64.0,  # = BLOCK_M: each loaded K/V byte is used by BLOCK_M queries
    "forward_flops": 1.099511627776e12,  # 4 · 4 · 32 · 4096² · 128
    "forward_flops_causal": 5.49755813888e11,
}


def flash_attention_forward(q, k, v, causal=False, sm_scale=None):
    return flash_fwd(q, k, v, causal=causal, sm_scale=sm_scale)
