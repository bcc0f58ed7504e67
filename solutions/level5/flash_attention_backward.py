"""Reference · flash_attention_backward: the project's reference kernels, ``kernels/flash_bwd.py``.

One copy of each kernel: read ``attnkata_kernels.flash_bwd`` for the model answer —
``_attn_bwd_preprocess`` is the stub's first kernel; ``_attn_bwd`` does the work of its
dK/dV and dQ kernels in one (five matmuls per tile pair, dQ added with float32 atomics,
where the stub's atomic-free split costs seven), with P rebuilt from lse in the log2
domain and only the causal diagonal paying for a mask.
"""

from attnkata_kernels.flash_bwd import flash_bwd

PREDICTIONS = {
    "backward_matmuls": 5,  # Q·Kᵀ (recompute), Pᵀ·dO, dO·Vᵀ, dS·K, dSᵀ·Q
    "backward_flops": 2.74877906944e12,  # 10 · 4 · 32 · 4096² · 128
    "stored_p_bytes": 4_294_967_296,  # 4 · 32 · 4096² · 2 bytes
    "lse_bytes": 2_097_152,  # 4 · 32 · 4096 · 4 bytes
}


def flash_attention_backward(q, k, v, o, lse, do, causal=False, sm_scale=None):
    return flash_bwd(q, k, v, o, lse, do, causal=causal, sm_scale=sm_scale)
