"""Level 5 · triton_softmax — the Triton warm-up: one program per row, masks, loads, stores."""

from __future__ import annotations

from typing import Any

from attnkata.strategies import st

from attnkata import Claim, Fake, Kata, Misconception, Prediction
from attnkata.layouts import layout_check

from .common import device, dtype_names, kernel_check, torch_calls, torch_dtype

COLS = (1, 3, 16, 17, 40, 100, 1000)


def _matrix(shape: tuple[int, int], dtype: str, scale: float, seed: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    return x.to(dtype=torch_dtype(dtype), device=device())


@st.composite
def _inputs(draw: st.DrawFn) -> Any:
    rows = draw(st.sampled_from((1, 2, 5, 9)))
    cols = draw(st.sampled_from(COLS))
    return _matrix((rows, cols), draw(st.sampled_from(dtype_names())),
                   draw(st.sampled_from((1.0, 1.0, 10.0, 100.0))), draw(st.integers(0, 2**31 - 1)))


@kernel_check("matches the reference kernel on random shapes, fp32/fp16 and logits up to ±400")
def softmax_matches_reference(ctx):
    @ctx.given(max_examples=20, shrink=False, x=_inputs())
    def prop(x):
        ctx.expect("triton_softmax", x)

    prop()


@kernel_check("huge logits do not overflow: [1000, 999, 998] gives [0.665, 0.245, 0.090]")
def softmax_no_overflow(ctx):
    import torch

    x = torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1002.0]], device=device())
    y = ctx.expect("triton_softmax", x)
    ctx.expect("triton_softmax", _matrix((3, 17), "float32", 200.0, 7))
    if not torch.isfinite(y).all():
        ctx.fail("triton_softmax: NaN or inf for logits of ±1000: subtract the row max first")


@kernel_check("a row length that is not a power of two: padding lanes must not count")
def softmax_ragged_rows(ctx):
    for cols in (3, 17, 40):  # negative logits: a padding lane read as 0 would win the max
        x = _matrix((4, cols), "float32", 1.0, cols) - 5.0
        ctx.expect("triton_softmax", x)


@kernel_check("rows of a strided view (a column slice of a wider tensor) use the row stride")
def softmax_strided_rows(ctx):
    wide = _matrix((6, 64), "float32", 2.0, 3)
    ctx.expect("triton_softmax", wide[:, :40])
    ctx.expect("triton_softmax", wide[1:, 8:25])


@kernel_check("every row sums to 1; the kernel, not torch, computes the softmax")
def softmax_is_a_kernel(ctx):
    x = _matrix((5, 100), "float32", 3.0, 11)
    y, seen = torch_calls(ctx, "triton_softmax", (x,), {})
    used = sorted({fn for fn, _ in seen if fn in _TORCH_MATH})
    if used:
        ctx.fail(f"kata triton_softmax: refused — triton_softmax called torch `{used[0]}`. "
                 f"The exp, the max and the sum belong inside your Triton kernel.")
    ctx.expect("triton_softmax", x)
    sums = y.double().sum(-1)
    if not bool(((sums - 1).abs() < 1e-4).all()):
        ctx.fail(f"triton_softmax: rows must sum to 1, got sums {sums.tolist()}")


softmax_views = layout_check(
    "triton_softmax",
    lambda ctx: [((_matrix((5, 17), "float32", 2.0, 21),), {}),
                 ((_matrix((4, 40), "float16", 3.0, 22),), {})],
    "every other row of a wider buffer (NaN between rows) and a transposed view",
    id="softmax_views", layouts=("sliced", "transposed"), decorator=kernel_check)


_TORCH_MATH = ("softmax", "log_softmax", "special_softmax", "special_log_softmax", "exp", "exp2",
               "exp_", "logsumexp", "sigmoid", "special_expit")


# -- misconceptions: torch versions of what a buggy kernel computes --------------

def _no_max(x):
    import torch

    e = torch.exp(x.float())
    return (e / e.sum(-1, keepdim=True)).to(x.dtype)


def _pad_as_zero(x):
    import torch
    import torch.nn.functional as F

    n = x.shape[-1]
    width = 1 << max(n - 1, 0).bit_length()  # triton.next_power_of_2
    padded = F.pad(x.float(), (0, width - n), value=0.0)
    e = torch.exp(padded - padded.amax(-1, keepdim=True))
    return (e / e.sum(-1, keepdim=True))[:, :n].to(x.dtype)


def _stride_as_cols(x):
    import torch

    rows, n = x.shape
    dense = torch.as_strided(x, (rows, n), (n, 1), x.storage_offset()).float()
    e = torch.exp(dense - dense.amax(-1, keepdim=True))
    return (e / e.sum(-1, keepdim=True)).to(x.dtype)


def _torch_softmax(x):
    import torch

    return torch.softmax(x.float(), dim=-1).to(x.dtype)


TRITON_SOFTMAX = Kata(
    id="triton_softmax",
    level=5,
    title="A row softmax in one Triton kernel",
    path="level5/triton_softmax.py",
    entries=("triton_softmax",),
    checks=(softmax_matches_reference, softmax_no_overflow, softmax_ragged_rows,
            softmax_strided_rows, softmax_is_a_kernel, softmax_views),
    predictions=(
        Prediction("programs", "x is [1000, 300]: how many programs does the launcher start?",
                   1000, kind="exact", why="One program per row: the grid is (n_rows,)."),
        Prediction("block_size", "BLOCK_SIZE for rows of 300 columns", 512, kind="exact",
                   why="tl.arange needs a power of two: triton.next_power_of_2(300) = 512."),
        Prediction("masked_lanes", "lanes per row that the mask switches off when n_cols = 300",
                   212, kind="exact", why="512 − 300 = 212 lanes load the `other` value."),
        Prediction("fused_bytes", "bytes of DRAM traffic for a fused fp32 softmax of [4096, 4096] "
                   "(each element read once and written once)", 134_217_728, rel_tol=0.01,
                   why="2 · 4096 · 4096 · 4 bytes = 134,217,728 (128 MiB)."),
    ),
    misconceptions=(
        Misconception("no_max_subtraction", "exponentiated without subtracting the row maximum",
                      {"triton_softmax": _no_max},
                      "exp(100) already overflows float32 (max ≈ 3.4e38): inf/inf is NaN. "
                      "Subtract tl.max(x, axis=0) before tl.exp."),
        Misconception("masked_lanes_zero", "masked-off lanes loaded as 0 instead of -inf",
                      {"triton_softmax": _pad_as_zero},
                      "BLOCK_SIZE rounds n_cols up to a power of two; the extra lanes must load "
                      "other=-float('inf') so exp gives 0 there. With 0 they join the max and "
                      "add e^(0 − max) to the sum."),
        Misconception("row_stride_is_n_cols", "stepped to the next row by n_cols, not the row stride",
                      {"triton_softmax": _stride_as_cols},
                      "A row of a view need not start n_cols after the previous one: offset "
                      "the row pointer by row * stride_xm (and row * stride_ym for the output)."),
    ),
    claims=(
        Claim("fused-softmax-matches",
              "A one-kernel row softmax (one program per row, masked loads, the max subtracted "
              "in registers) equals the reference within the dtype's tolerance for any row "
              "length and row stride.",
              scope="exact", source="milakov-2018",
              not_claimed="No speed or bandwidth figure: this CPU run (Triton interpreter) shows "
                          "correctness only; GB/s on a GPU are measured by the bench plugin. "
                          "Rows must fit in one block. bf16 is checked only when compiled on a "
                          "GPU (Triton 3.9's interpreter misreads bf16)."),
    ),
    hints=(
        "row = tl.program_id(0); cols = tl.arange(0, BLOCK_SIZE); the row starts at "
        "X + row * stride_xm, and lanes with cols >= n_cols are outside the row.",
        "Load with mask=cols < n_cols and other=-float('inf'), upcast to float32, subtract "
        "tl.max(x, axis=0), exponentiate, divide by tl.sum(e, axis=0).",
        "tl.store(Y + row * stride_ym + cols, y.to(Y.dtype.element_ty), mask=cols < n_cols).",
    ),
    requires=("torch", "triton"),
    fakes=(Fake("torch_softmax", {"triton_softmax": _torch_softmax}),),
    bench={"kind": "softmax", "entry": "triton_softmax", "baseline": "torch.softmax",
           "shapes": [{"M": 4096, "N": n} for n in (256, 1024, 4096, 16384)],
           "dtypes": ["float32", "float16"], "metric": "GB/s",
           "bytes": "2 * M * N * element_size (read once, write once)"},
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): small inputs built on first use (torch is
# imported lazily) — logits of ±1000, negative logits in a row that is not a power of
# two long, column slices of a wider buffer, rows longer than any fixed block, several
# rows — and predicates on plain tensors in the judge.
# ---------------------------------------------------------------------------

from attnkata.diagnose import (Probe, Raised, all_of, along, attach, attempt,  # noqa: E402
                               check as _holds, close, nan_in, wrong_only_in)

_T32 = (1e-4, 1e-5)


def _in(shape: tuple, scale: float = 1.0, shift: float = 0.0, seed: int = 5) -> Any:
    return lambda: _matrix(shape, "float32", scale, seed) + shift


def _huge() -> Any:
    import torch

    return torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1002.0], [100.0, 99.0, 0.0]],
                        device=device())


def _view(rows: slice, cols: slice) -> Any:
    return lambda: _matrix((6, 64), "float32", 2.0, 3)[rows, cols]


def _run(make: Any) -> Any:
    return lambda ns: ns.triton_softmax(make())


def _pair(first: Any, second: Any) -> Any:
    return lambda ns: (attempt(lambda: _run(first)(ns)), attempt(lambda: _run(second)(ns)))


def _ok(g: Any, w: Any) -> bool:
    return not isinstance(g, Raised) and close(g, w, _T32)


def _bad(g: Any, w: Any) -> bool:
    return isinstance(g, Raised) or not close(g, w, _T32)


def _padded_softmax(make: Any) -> Any:
    """Softmax of each row with zeros appended up to the next power of two: what padding
    lanes loaded as 0 (or any finite value near 0) give."""
    def want(g, w):
        import torch

        x = make().double().cpu()
        n = x.shape[-1]
        width = 1 << max(n - 1, 0).bit_length()
        p = torch.nn.functional.pad(x, (0, width - n), value=0.0)
        return close(g, torch.softmax(p, -1)[:, :n], (1e-3, 1e-4)) and not close(g, w, _T32)
    return _holds(want)


def _first_columns_only(g: Any, w: Any, make: Any) -> bool:
    """The first B columns hold softmax(x[:, :B]) for some fixed block B < n_cols."""
    import torch

    if isinstance(g, Raised) or close(g, w, _T32):
        return False
    x = make().double().cpu()
    g = g.double().cpu()
    return any(close(g[:, :b], torch.softmax(x[:, :b], -1), (1e-3, 1e-5))
               for b in (16, 32, 64, 128) if b < x.shape[-1])


def _fixed_block(x):
    import torch

    y = torch.zeros_like(x)
    block = min(64, x.shape[-1])
    y[:, :block] = torch.softmax(x[:, :block].float(), -1).to(x.dtype)
    return y


def _one_program(x):
    import torch

    y = torch.zeros_like(x)
    y[:1] = torch.softmax(x[:1].float(), -1).to(x.dtype)
    return y


def _rows_right(rows: set) -> Any:
    """Right in exactly the rows ``rows``, wrong in every other."""
    def fn(g, w):
        if isinstance(g, Raised):
            return False
        good = {i for i in range(w.shape[0]) if close(g[i], w[i], _T32)}
        return good == rows
    return _holds(fn)


_R200 = _in((3, 200), 1.0, 0.0, 31)
_NEG17 = _in((4, 17), 1.0, -5.0, 17)
_NEG16 = _in((4, 16), 1.0, -5.0, 16)

TRITON_SOFTMAX = attach(
    TRITON_SOFTMAX,
    add=(
        # source: triton-lang/triton#1966 (why BLOCK_SIZE = next_power_of_2(n_cols));
        # bledden/triton-msl#6 (only the first BLOCK_N columns right, the rest zero)
        Misconception("block_smaller_than_row", "a fixed BLOCK_SIZE (64) shorter than the row: "
                      "only the first block of columns is read and written",
                      {"triton_softmax": _fixed_block},
                      "One program holds a whole row, so BLOCK_SIZE = "
                      "triton.next_power_of_2(n_cols) — a constexpr chosen per launch, not a "
                      "constant. Columns past BLOCK_SIZE are otherwise never touched."),
        # source: pytorch/helion#1251 (only the first request of a batch computed: the
        # launch grid and the program ids disagreed); triton-lang/triton-ascend#2292
        # (programs whose output cells were never written)
        Misconception("one_program_launched", "launched a grid of one program: only row 0 "
                      "is computed", {"triton_softmax": _one_program},
                      "The grid is the number of programs: one per row, "
                      "softmax_kernel[(n_rows,)](...), and each program finds its row from "
                      "tl.program_id(0)."),
    ),
    probes={
        # source: pytorch/pytorch#103963 and the Triton fused-softmax tutorial (the max is
        # subtracted first "for numerical stability")
        "no_max_subtraction": (
            Probe("logits of ±1 (right), then of ±1000", _pair(_in((3, 17)), _huge),
                  _holds(lambda g, w: _ok(g[0], w[0]) and not isinstance(g[1], Raised)
                         and nan_in()(g[1], w[1]))),
            Probe("rows [1000, 999, 998], [-1000, …], [100, 99, 0]: NaN or 0/0 where "
                  "exp overflows or underflows", _run(_huge), nan_in(), axes=("row", "column")),
        ),
        # source: Deep-Learning-Profiling-Tools/triton-viz#169 (other=-inf in the tutorial's
        # load); flagos-ai/FlagGems#3716 and sgl-project/sglang#27074 (masked loads whose
        # padding values enter reductions)
        "masked_lanes_zero": (
            Probe("negative logits: 16 columns (no padding), then 17 (15 padding lanes)",
                  _pair(_NEG16, _NEG17),
                  _holds(lambda g, w: _ok(g[0], w[0]) and _bad(g[1], w[1]))),
            Probe("negative logits, 17 columns: softmax as if zeros joined the row",
                  _run(_NEG17), _padded_softmax(_NEG17), axes=("row", "column")),
        ),
        # source: flagos-ai/FlagAttention#1 (a kernel assuming contiguous rows: strides
        # fixed by passing them); the tutorial passes input_row_stride
        "row_stride_is_n_cols": (
            Probe("a contiguous [5, 40] matrix, then columns 0:40 of a [6, 64] buffer",
                  _pair(_in((5, 40), 2.0), _view(slice(None), slice(0, 40))),
                  _holds(lambda g, w: _ok(g[0], w[0]) and _bad(g[1], w[1]))),
            Probe("rows 1: and columns 8:25 of a [6, 64] buffer: row 0 right, later rows wrong",
                  _run(_view(slice(1, None), slice(8, 25))),
                  all_of(wrong_only_in(along(0, slice(1, None))),
                         _holds(lambda g, w: not isinstance(g, Raised)
                                and not close(g[-1], w[-1], _T32))),
                  axes=("row", "column")),
        ),
        "block_smaller_than_row": (
            Probe("16 columns (right), then 200", _pair(_in((3, 16)), _R200),
                  _holds(lambda g, w: _ok(g[0], w[0]) and _bad(g[1], w[1]))),
            Probe("200 columns: the first block of columns is a softmax of those alone",
                  _run(_R200), _holds(lambda g, w: _first_columns_only(g, w, _R200)),
                  axes=("row", "column")),
        ),
        "one_program_launched": (
            Probe("one row (right), then four", _pair(_in((1, 17)), _in((4, 17))),
                  _holds(lambda g, w: _ok(g[0], w[0]) and not isinstance(g[1], Raised)
                         and _ok(g[1][:1], w[1][:1]) and not close(g[1][1:], w[1][1:], _T32))),
            Probe("nine rows: row 0 right, every other row wrong", _run(_in((9, 17))),
                  _rows_right({0}), axes=("row", "column")),
        ),
    },
    diagnostics=(Probe("a [4, 40] matrix", _run(_in((4, 40), 2.0)), axes=("row", "column")),),
)


def _exp2_softmax(x):
    """Correct, written differently: a kernel that exponentiates in base 2 (exp2 of the
    scaled difference), one program per row, built on first use."""
    import torch

    kernel = _exp2_kernel()
    x = x if x.stride(1) == 1 else x.contiguous()
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if y.numel():
        import triton

        kernel[(x.shape[0],)](y, x, y.stride(0), x.stride(0), x.shape[1],
                              BLOCK=triton.next_power_of_2(x.shape[1]))
    return y


_EXP2: list = []


def _exp2_kernel() -> Any:
    if not _EXP2:
        import triton
        import triton.language as tl

        @triton.jit
        def softmax_exp2(Y, X, sy, sx, n, BLOCK: tl.constexpr):
            r = tl.program_id(0).to(tl.int64)
            c = tl.arange(0, BLOCK)
            x = tl.load(X + r * sx + c, mask=c < n, other=-float("inf")).to(tl.float32)
            e = tl.exp2((x - tl.max(x, axis=0)) * 1.4426950408889634)
            tl.store(Y + r * sy + c, (e / tl.sum(e, axis=0)).to(Y.dtype.element_ty), mask=c < n)

        _EXP2.append(softmax_exp2)
    return _EXP2[0]


TRITON_SOFTMAX = attach(TRITON_SOFTMAX, variants=(Fake("exp2_kernel", {"triton_softmax": _exp2_softmax}),))
