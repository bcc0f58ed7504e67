"""Reference · flash_attention_backward: the project's reference kernels, ``kernels/flash_bwd.py``.

One copy of each kernel: read ``attnkata_kernels.flash_bwd`` for the model answer —
``_attn_bwd_preprocess``, ``_attn_bwd_dkdv`` and ``_attn_bwd_dq`` are the bodies of the
stub's three kernels (same arguments), with P rebuilt from lse in the log2 domain and
only the causal diagonal paying for a mask.
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
