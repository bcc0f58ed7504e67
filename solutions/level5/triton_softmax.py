"""Reference · triton_softmax: one program per row; masked lanes load −inf; float32 inside."""

import torch
import triton
import triton.language as tl

PREDICTIONS = {
    "programs": 1000,
    "block_size": 512,
    "masked_lanes": 212,
    "fused_bytes": 134_217_728,
}


@triton.jit
def softmax_kernel(Y, X, stride_ym, stride_xm, n_cols, BLOCK_SIZE: tl.constexpr):
    """Program ``row = tl.program_id(0)`` writes ``softmax(X[row, :n_cols])`` to ``Y[row, :n_cols]``."""
    row = tl.program_id(0).to(tl.int64)  # int64: row * stride may pass 2^31 on big tensors
    cols = tl.arange(0, BLOCK_SIZE)
    in_row = cols < n_cols
    # -- load the row; padding lanes read -inf so they add exp(-inf) = 0 and never win the max --
    x = tl.load(X + row * stride_xm + cols, mask=in_row, other=-float("inf")).to(tl.float32)
    # -- stable softmax in registers --
    e = tl.exp(x - tl.max(x, axis=0))
    y = e / tl.sum(e, axis=0)
    tl.store(Y + row * stride_ym + cols, y.to(Y.dtype.element_ty), mask=in_row)


def triton_softmax(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"triton_softmax takes a 2-D tensor, got shape {tuple(x.shape)}")
    if x.stride(1) != 1:  # the kernel walks along a row one element at a time
        x = x.contiguous()
    n_rows, n_cols = x.shape
    y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if y.numel() == 0:
        return y
    BLOCK_SIZE = triton.next_power_of_2(n_cols)  # a whole row in one block
    num_warps = 4 if BLOCK_SIZE <= 2048 else 8  # wide rows: more threads share one row
    softmax_kernel[(n_rows,)](y, x, y.stride(0), x.stride(0), n_cols,
                              BLOCK_SIZE=BLOCK_SIZE, num_warps=num_warps)
    return y
