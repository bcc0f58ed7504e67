"""Issue 14, coverage: every tensor kata also receives non-contiguous inputs, and every
kata with positions is checked at large positions in its lowest supported precision.

The registry is the witness: a check built by ``attnkata.layouts.layout_check`` (or marked
``@covers(...)``) is recorded in ``layouts.COVERAGE``. A new kata that takes arrays fails
here until it has such a check, or is listed below with the reason it has none. Then
learner variants written for these tests (not copied from the katas' misconceptions)
show the checks fail, and name the mistake, where a stride or a position is mishandled.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from attnkata import layouts
from attnkata.manager import load_registry

#: katas without array or tensor inputs, and why (each must stay that way)
NO_ARRAYS = {
    "causal_mask": "takes two ints",
    "sliding_window_mask": "takes three ints",
    "kv_cache_bytes": "takes ints",
    "kv_head_for": "takes ints",
    "ring_overlap": "takes numbers",
    "block_allocator": "a class over block ids (ints)",
    "waste": "takes lists of lengths (ints)",
    "continuous_batching": "a scheduler over token lists (ints)",
    "prefix_cache": "a cache keyed by token lists (ints)",
}
#: tensor katas whose inputs are built where a view cannot be sent, and why
NOT_SENT = {
    "ring_attention": "each rank's shards are built inside its gloo process by the launcher "
                      "(level7/procs.py); ring_attention_sim checks the same algorithm on "
                      "strided shards",
}
#: katas with positions (the large-position check each must have)
POSITIONAL = ("rope", "causal_mask", "sliding_window_mask", "swa_kv_cache")


@pytest.fixture(scope="module")
def katas():
    _, registry = load_registry(entrypoints=False)
    return {k.id: k for k in registry.katas.values()} if isinstance(registry.katas, dict) else {
        k.id: k for k in registry.katas}


def _covered(kata, kind):
    return [c.id for c in kata.checks if c in layouts.COVERAGE[kind]]


def test_every_tensor_kata_gets_non_contiguous_inputs(katas):
    missing = [k for k in sorted(katas) if k not in NO_ARRAYS and k not in NOT_SENT
               and not _covered(katas[k], "noncontiguous")]
    assert not missing, f"katas taking arrays with no non-contiguous check: {missing}"


def test_every_kata_with_positions_is_checked_far_out(katas):
    missing = [k for k in POSITIONAL if not _covered(katas[k], "large_positions")]
    assert not missing, f"katas with positions and no large-position check: {missing}"


def test_the_exemptions_are_real_katas_without_array_inputs(katas):
    from tests.conftest import REPO

    assert set(NO_ARRAYS) | set(NOT_SENT) <= set(katas)
    for kid in NO_ARRAYS:  # an exempt kata's stub declares no array or tensor parameter
        text = (REPO / "katas" / katas[kid].path).read_text()
        params = " ".join(re.findall(r"def \w+\((.*?)\)\s*(?:->[^:]*)?:", text, re.S))
        assert "ndarray" not in params and "Tensor" not in params, kid


# ---------------------------------------------------------------------------
# The views themselves
# ---------------------------------------------------------------------------

def test_numpy_views_hold_the_same_values_in_other_layouts():
    x = np.arange(24.0).reshape(2, 3, 4)
    for name in ("transposed", "sliced", "fortran"):
        view = layouts.LAYOUTS[name](x)
        np.testing.assert_array_equal(view, x)
        assert not view.flags.c_contiguous, name
    base = layouts.sliced(x).base
    assert np.isnan(base).sum() == base.size - x.size   # what a view skips is NaN


torch = pytest.importorskip("torch")


def test_torch_views_and_the_stride_ignoring_reader():
    x = torch.arange(48.0).reshape(1, 2, 4, 6)
    for name in ("transposed", "sliced", "heads_interleaved"):
        view = layouts.LAYOUTS[name](x)
        assert torch.equal(view, x) and not view.is_contiguous(), name
    t = layouts.transposed(x)
    # rows read as if packed: the transposed storage, row by row
    assert torch.equal(layouts.row_stride_ignored(t).reshape(-1),
                       x.transpose(-1, -2).reshape(-1))
    assert torch.equal(layouts.row_stride_ignored(x), x)


# ---------------------------------------------------------------------------
# Learner variants the checks must fail, and name where a name exists
# ---------------------------------------------------------------------------

def _failure_text(result):
    return "\n".join(result.outlines)


def test_a_numpy_kata_reading_raw_memory_fails_on_fortran_order(project):
    project.solution("level0/qk_scores.py")
    path = project.root / "katas" / "level0" / "qk_scores.py"
    src = path.read_text()
    src = re.sub(r"def qk_scores\(.*", "def qk_scores(q, k):\n"
                 "    q, k = (np.frombuffer(a.tobytes(order='A'), a.dtype).reshape(a.shape)\n"
                 "            for a in (q, k))\n"
                 "    return q @ np.swapaxes(k, -1, -2)\n", src, flags=re.S)
    path.write_text(src)
    result = project.run("katas/level0/qk_scores.py", "-k", "qk_strided_inputs")
    out = _failure_text(result)
    assert result.ret != 0 and "fortran views" in out and "another memory layout" in out


def test_a_triton_softmax_stepping_rows_by_n_cols_is_named(project):
    project.solution("level5/triton_softmax.py")
    path = project.root / "katas" / "level5" / "triton_softmax.py"
    path.write_text(path.read_text().replace("row * stride_xm", "row * n_cols")
                    .replace("row * stride_ym", "row * n_cols"))
    result = project.run("katas/level5/triton_softmax.py", "-k", "softmax_views")
    out = _failure_text(result)
    assert result.ret != 0 and "[row_stride_is_n_cols]" in out and "sliced" in out


def test_a_paged_decode_flattening_with_view_is_named(project):
    project.solution("level6/paged_attention_decode.py")
    path = project.root / "katas" / "level6" / "paged_attention_decode.py"
    text = path.read_text()
    old = ("        k = k_pages[blocks, pos % block_size][:, kv_head]  # (n, H_q, d): logical order\n"
           "        v = v_pages[blocks, pos % block_size][:, kv_head]\n")
    assert old in text
    path.write_text(text.replace(old, "        flat = blocks * block_size + pos % block_size\n"
                                      "        k = k_pages.view(-1, H_kv, d)[flat][:, kv_head]\n"
                                      "        v = v_pages.view(-1, H_kv, d)[flat][:, kv_head]\n"))
    result = project.run("katas/level6/paged_attention_decode.py", "-k", "strided_inputs")
    out = _failure_text(result)
    assert result.ret != 0 and "[view_assumes_contiguous]" in out


FLASH_BODY = '''    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    z = off_hz // H_Q
    h = off_hz % H_Q
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    qb = Q + z * stride_qz + h * stride_qh
    kb = K + z * stride_kz + (h // GROUP) * stride_kh
    vb = V + z * stride_vz + (h // GROUP) * stride_vh
    ob = Out + z * stride_oz + h * stride_oh
    q = tl.load(qb + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=offs_m[:, None] < N,
                other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    for start_n in range(0, N, BLOCK_N):
        cols = start_n + offs_n
        k = tl.load(kb + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=cols[:, None] < N,
                    other=0.0)
        v = tl.load(vb + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=cols[:, None] < N,
                    other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * sm_scale
        ok = cols[None, :] < N
        if CAUSAL:
            ok = ok & (offs_m[:, None] >= cols[None, :])
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new
    tl.store(ob + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
             (acc / l_i[:, None]).to(Out.dtype.element_ty), mask=offs_m[:, None] < N)
    tl.store(LSE + off_hz * N + offs_m, m_i + tl.log(l_i), mask=offs_m < N)
'''


def test_a_flash_kernel_stepping_rows_by_head_dim_is_named(project):
    """A whole forward kernel written for this test: right on packed tensors, rows stepped
    by HEAD_DIM and features by 1 whatever strides it is given."""
    from tests.conftest import REPO

    text = (REPO / "katas" / "level5" / "flash_attention_forward.py").read_text()
    start = text.index('    raise NotImplementedError("kata flash_attention_forward: write the kernel')
    end = text.index("\n\n\ndef flash_attention_forward")
    text = text[:start] + FLASH_BODY + text[end:]
    answers = re.search(r"PREDICTIONS = \{.*?\n\}", (REPO / "solutions" / "level5" /
                                                     "flash_attention_forward.py").read_text(), re.S)
    text = re.sub(r"PREDICTIONS = \{.*?\n\}", lambda m: answers.group(0), text, count=1,
                  flags=re.S)
    project.write("level5/flash_attention_forward.py", text)
    result = project.run("katas/level5/flash_attention_forward.py", "-k",
                         "fwd_strided_inputs or fwd_gqa_groups")
    out = _failure_text(result)
    assert "[row_stride_ignored]" in out and "transposed" in out
    assert "1 failed, 1 passed" in out   # right on packed inputs: only the views expose it


def test_rope_with_float32_angles_fails_far_out_only(project):
    project.solution("level1/rope.py")
    path = project.root / "katas" / "level1" / "rope.py"
    text = path.read_text()
    old = "    theta = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq"
    assert old in text
    path.write_text(text.replace(old, "    theta = (np.asarray(positions).astype(np.float32)[:, None]"
                                      " * inv_freq.astype(np.float32))"))
    result = project.run("katas/level1/rope.py", "-k", "rope_large_positions or rope_worked")
    out = _failure_text(result)
    # named outright, or "closest to" when only part of the evidence fits this variant
    assert "1 failed, 1 passed" in out and "[angles_low_precision]" in out
