"""Level 5 · triton_softmax — your first Triton kernel: one program per row.

Intuition
---------
A GPU runs the same small program thousands of times at once. In Triton you write that
program for ONE block of data and launch a grid of copies; each copy asks
`tl.program_id(0)` which block is its own. For a row softmax the natural block is a row:
copy number `row` loads its row into registers, finds the max, exponentiates, sums,
divides and writes the row back. The row crosses DRAM twice (one read, one write), where
three separate torch ops (max, exp-and-sum, divide) would read it about three times.

Triton works on whole blocks whose length must be a power of two. A row of 100 numbers
is handled by a block of 128 lanes; the last 28 lanes point past the row, so every load
and store carries a MASK (which lanes are real). A masked-off lane of a load takes the
`other` value you choose — and for a softmax that value must be −∞, so that e^(−∞) = 0
adds nothing to the sum and can never be the max.

The math
--------
For row r of X, with real length n = n_cols:

    m   = max_{c < n} X[r, c]                       the row maximum (subtracted for stability)
    e_c = exp(X[r, c] − m)                          each in (0, 1]; the max gives exactly 1
    Y[r, c] = e_c / Σ_{c' < n} e_{c'}               non-negative, sums to 1

- r           : the row this program owns, `tl.program_id(0)`
- c           : a lane, `tl.arange(0, BLOCK_SIZE)`; lanes c ≥ n are outside the row
- BLOCK_SIZE  : `triton.next_power_of_2(n)`, a compile-time constant (`tl.constexpr`)
- stride_xm   : how many ELEMENTS separate the starts of rows r and r+1 in memory; for
                a column slice `big[:, :n]` of a wider tensor it is big's width, not n
- X, Y        : pointers to element [0, 0]; element [r, c] lives at `X + r*stride_xm + c`

Triton in four calls: `tl.program_id(0)` (which copy am I), `tl.arange(0, B)` (the lane
offsets 0..B−1), `tl.load(ptrs, mask=..., other=...)` (gather a block; masked lanes read
`other`), `tl.store(ptrs, values, mask=...)` (scatter a block; masked lanes write nothing).
Reductions: `tl.max(x, axis=0)`, `tl.sum(x, axis=0)`; `tl.exp` exponentiates lane-wise.
Compute in float32 (`x.to(tl.float32)`) and cast back on the store
(`y.to(Y.dtype.element_ty)`), so fp16 inputs keep float32 accuracy inside the kernel.

Worked example
--------------
Row x = [2.0, 1.0, −1.0], n_cols = 3, BLOCK_SIZE = 4, lanes [0, 1, 2, 3]:

    mask     = [T, T, T, F]
    loaded   = [2.0, 1.0, −1.0, −inf]        (other = −inf on the masked lane)
    m        = 2.0
    x − m    = [0, −1, −3, −inf]
    e        = [1, 0.36788, 0.04979, 0]       sum = 1.41767
    y        = [0.70538, 0.25950, 0.03512]    stored on lanes 0..2 only

Had the masked lane loaded 0 instead, it would add e^(0 − 2) = 0.13534 to the sum and
every y would shrink (0.70538 → 0.64391); with an all-negative row it would even become
the max.

Running it
----------
Without a GPU attnkata sets TRITON_INTERPRET=1 and your kernel runs on the CPU in
Triton's interpreter: slow, but every `tl.` call behaves as on the GPU (print inside the
kernel with `tl.device_print` or plain `print` while interpreting).
"""

import torch
import triton
import triton.language as tl

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # x is [1000, 300]. How many programs does the launcher below start? (an int)
    "programs": ...,
    # BLOCK_SIZE for rows of 300 columns (an int).
    "block_size": ...,
    # How many lanes per row does the mask switch off when n_cols = 300? (an int)
    "masked_lanes": ...,
    # Bytes of DRAM traffic for a fused fp32 softmax of a [4096, 4096] tensor, if each
    # element is read once and written once (a number).
    "fused_bytes": ...,
}


@triton.jit
def softmax_kernel(Y, X, stride_ym, stride_xm, n_cols, BLOCK_SIZE: tl.constexpr):
    """Program ``row = tl.program_id(0)`` writes ``softmax(X[row, :n_cols])`` to ``Y[row, :n_cols]``.

    Y, X        : pointers to element [0, 0] of the output and of the input
    stride_ym/xm: elements between the starts of consecutive rows of Y / X
    n_cols      : the real row length; BLOCK_SIZE ≥ n_cols is its power-of-two padding
    """
    raise NotImplementedError("kata triton_softmax: write the kernel body "
                              "(program id, masked load with other=-inf, max, exp, sum, masked store)")


def triton_softmax(x: torch.Tensor) -> torch.Tensor:
    """Row softmax of ``x [n_rows, n_cols]`` (fp32/fp16/bf16) in one kernel launch.

    Returns a new tensor of x's shape and dtype. The launcher is written for you: it
    allocates the output, picks BLOCK_SIZE and starts one program per row.
    """
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
