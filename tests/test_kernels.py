"""The reference Triton kernels against plain torch references, at small sizes.

Without a GPU the kernels run on Triton's CPU interpreter, which must be chosen before
the kernels are decorated -- hence the environment variable before any import of them.

Tolerances: each result is compared with a float64 reference. It may be off by a small
multiple of what the same torch reference computed in the kernel's own dtype is off by
(the dtype's inherent error), plus 16 fp32 ulps of the result's magnitude (for results
that both compute exactly, such as a gradient that is zero in exact arithmetic).
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from attnkata_kernels.flash_bwd import flash_bwd  # noqa: E402
from attnkata_kernels.flash_fwd import check_qkv, flash_fwd, flops  # noqa: E402
from attnkata_kernels.paged_decode import paged_decode  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
FP32_EPS = 2.0**-23

DTYPES = [
    torch.float32,
    torch.float16,
    pytest.param(torch.bfloat16, marks=pytest.mark.skipif(
        INTERPRET, reason="Triton's interpreter runs tl.dot on bf16 as raw uint16 bit patterns "
                          "(numpy has no bfloat16), so bf16 is checked on GPU only")),
]


def assert_close(out, ref64, ref_lowp, name=""):
    """``out`` within 4x the low-precision reference's error of float64, plus 16 fp32 ulps."""
    scale = ref64.abs().max().item() + 1.0
    bound = 4 * (ref_lowp.double() - ref64).abs().max().item() + 16 * FP32_EPS * scale
    err = (out.double() - ref64).abs().max().item()
    assert err <= bound, f"{name}: max error {err:.3g} > {bound:.3g} ({out.dtype})"


# ---------------------------------------------------------------- FlashAttention


def attention_ref(q, k, v, causal, sm_scale):
    """Softmax attention in q's dtype; K/V heads repeated for GQA (fine for a reference)."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)  # (B, H_q, N, d)
    s = (q @ k.transpose(-1, -2)).to(torch.promote_types(q.dtype, torch.float32))
    s = s * sm_scale  # (B, H_q, N, N), at least fp32
    if causal:
        N = q.shape[2]
        visible = torch.ones(N, N, dtype=torch.bool, device=q.device).tril()
        s = s.masked_fill(~visible, float("-inf"))
    p = torch.softmax(s, dim=-1).to(q.dtype)
    return p @ v, torch.logsumexp(s, dim=-1)


def make_qkv(B, H_q, H_kv, N, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, h, N, d, generator=g) for h in (H_q, H_kv, H_kv))
    return [t.to(device=DEVICE, dtype=dtype) for t in (q, k, v)]


@pytest.mark.parametrize("H_kv", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d", [16, 32])
@pytest.mark.parametrize("N", [1, 17, 40])
@pytest.mark.parametrize("dtype", DTYPES)
def test_flash_fwd(dtype, N, d, causal, H_kv):
    q, k, v = make_qkv(1, 4, H_kv, N, d, dtype)
    o, lse = flash_fwd(q, k, v, causal=causal)
    assert o.dtype == dtype and o.shape == q.shape
    assert lse.dtype == torch.float32 and lse.shape == q.shape[:3]
    o64, lse64 = attention_ref(*(t.double() for t in (q, k, v)), causal, d**-0.5)
    o_low, lse_low = attention_ref(q, k, v, causal, d**-0.5)
    assert_close(o, o64, o_low, "o")
    assert_close(lse, lse64, lse_low.float(), "lse")


def _grads_ref(q, k, v, do, causal, sm_scale):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    attention_ref(q, k, v, causal, sm_scale)[0].backward(do)
    return q.grad, k.grad, v.grad


@pytest.mark.parametrize("H_kv", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("N", [1, 17, 40])
@pytest.mark.parametrize("dtype", DTYPES)
def test_flash_bwd(dtype, N, causal, H_kv):
    d = 16 if H_kv == 2 else 32  # both head dims covered without doubling the run time
    q, k, v = make_qkv(1, 4, H_kv, N, d, dtype)
    do = make_qkv(1, 4, 4, N, d, dtype, seed=1)[0]
    o, lse = flash_fwd(q, k, v, causal=causal)
    grads = flash_bwd(q, k, v, o, lse, do, causal=causal)
    refs64 = _grads_ref(*(t.double() for t in (q, k, v, do)), causal, d**-0.5)
    refs_low = _grads_ref(q, k, v, do, causal, d**-0.5)
    for name, g, ref64, ref_low, x in zip("qkv", grads, refs64, refs_low, (q, k, v)):
        assert g.dtype == dtype and g.shape == x.shape
        assert_close(g, ref64, ref_low, f"d{name}")


def test_flash_strided_batched_inputs():
    """Non-contiguous [B, N, H, d] views, B > 1, GQA, custom scale: forward and backward."""
    B, N, d, scale = 2, 40, 32, 0.3
    g = torch.Generator().manual_seed(2)
    q, k, v, do = (torch.randn(B, N, h, d, generator=g).to(DEVICE).transpose(1, 2)
                   for h in (4, 2, 2, 4))  # (B, H, N, d), strided
    o, lse = flash_fwd(q, k, v, causal=True, sm_scale=scale)
    o64, lse64 = attention_ref(*(t.double() for t in (q, k, v)), True, scale)
    assert_close(o, o64, attention_ref(q, k, v, True, scale)[0], "o")
    grads = flash_bwd(q, k, v, o, lse, do, causal=True, sm_scale=scale)
    refs64 = _grads_ref(*(t.double() for t in (q, k, v, do)), True, scale)
    refs32 = _grads_ref(q, k, v, do, True, scale)
    for name, grad, ref64, ref32 in zip("qkv", grads, refs64, refs32):
        assert_close(grad, ref64, ref32, f"d{name}")


def test_flops():
    assert flops(2, 8, 1024, 64) == 4 * 2 * 8 * 1024 * 1024 * 64
    assert flops(2, 8, 1024, 64, causal=True) == flops(2, 8, 1024, 64) // 2


@pytest.mark.parametrize("shapes", [
    ((1, 4, 8, 16), (1, 3, 8, 16)),  # H_kv does not divide H_q
    ((1, 4, 8, 24), (1, 4, 8, 24)),  # unsupported head dim
    ((1, 4, 8, 16), (1, 4, 9, 16)),  # sequence lengths differ
])
def test_check_qkv_rejects(shapes):
    q, k = torch.empty(shapes[0]), torch.empty(shapes[1])
    with pytest.raises(ValueError):
        check_qkv(q, k, k)


# ---------------------------------------------------------------- paged decode

PAGE = 16
SEQ_LENS = [1, 16, 37]


def paged_ref(q, k_pages, v_pages, block_tables, seq_lens, sm_scale):
    """Gather each sequence's pages into contiguous K/V, then plain attention."""
    S, H_q, d = q.shape
    H_kv = k_pages.shape[2]
    out = []
    for s in range(S):
        n = int(seq_lens[s])
        pages = block_tables[s, : -(-n // PAGE)].long()
        k = k_pages[pages].reshape(-1, H_kv, d)[:n].transpose(0, 1)  # (H_kv, n, d)
        v = v_pages[pages].reshape(-1, H_kv, d)[:n].transpose(0, 1)
        o, _ = attention_ref(q[s, :, None][None], k[None], v[None], False, sm_scale)
        out.append(o[0, :, 0])  # (H_q, d)
    return torch.stack(out)


def make_paged(H_kv, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_pages = [-(-n // PAGE) for n in SEQ_LENS]
    num_blocks = sum(n_pages) + 3  # a few blocks no sequence owns
    k_pages = torch.randn(num_blocks, PAGE, H_kv, d, generator=g)
    v_pages = torch.randn(num_blocks, PAGE, H_kv, d, generator=g)
    q = torch.randn(len(SEQ_LENS), 4, d, generator=g)
    owners = torch.randperm(num_blocks, generator=g)
    tables = torch.full((len(SEQ_LENS), max(n_pages) + 1), -1, dtype=torch.int32)  # -1: padding
    start = 0
    for s, n in enumerate(n_pages):
        tables[s, :n] = owners[start:start + n]
        start += n
    seq_lens = torch.tensor(SEQ_LENS, dtype=torch.int32)
    return ([t.to(device=DEVICE, dtype=dtype) for t in (q, k_pages, v_pages)]
            + [tables.to(DEVICE), seq_lens.to(DEVICE)])


@pytest.mark.parametrize("num_splits", [1, 3])
@pytest.mark.parametrize("H_kv", [1, 2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_decode(dtype, H_kv, num_splits):
    d = 32
    q, k_pages, v_pages, tables, seq_lens = make_paged(H_kv, d, dtype)
    o = paged_decode(q, k_pages, v_pages, tables, seq_lens, num_splits=num_splits)
    assert o.dtype == dtype and o.shape == q.shape
    ref64 = paged_ref(q.double(), k_pages.double(), v_pages.double(), tables, seq_lens, d**-0.5)
    ref_low = paged_ref(q, k_pages, v_pages, tables, seq_lens, d**-0.5)
    assert_close(o, ref64, ref_low, "o")


def test_paged_decode_default_splits_and_scale():
    q, k_pages, v_pages, tables, seq_lens = make_paged(2, 16, torch.float32, seed=3)
    o = paged_decode(q, k_pages, v_pages, tables, seq_lens, sm_scale=0.5)
    ref64 = paged_ref(q.double(), k_pages.double(), v_pages.double(), tables, seq_lens, 0.5)
    assert_close(o, ref64, paged_ref(q, k_pages, v_pages, tables, seq_lens, 0.5), "o")


def test_paged_decode_matches_flash_last_row():
    """A decode step over pages equals the last row of causal attention over the sequence."""
    q, k_pages, v_pages, tables, seq_lens = make_paged(2, 32, torch.float32, seed=4)
    s, n = 2, SEQ_LENS[2]
    pages = tables[s, : -(-n // PAGE)].long()
    k = k_pages[pages].reshape(-1, 2, 32)[:n].transpose(0, 1)[None]  # (1, H_kv, n, d)
    v = v_pages[pages].reshape(-1, 2, 32)[:n].transpose(0, 1)[None]
    q_full = torch.zeros(1, 4, n, 32, device=DEVICE)
    q_full[0, :, -1] = q[s]
    o_flash, _ = flash_fwd(q_full, k, v, causal=True)
    o_paged = paged_decode(q, k_pages, v_pages, tables, seq_lens, num_splits=2)
    torch.testing.assert_close(o_paged[s], o_flash[0, :, -1], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- issue 12 additions

from attnkata_kernels import _tuning  # noqa: E402
from attnkata_kernels.flash_bwd import _attn_bwd  # noqa: E402
from attnkata_kernels.flash_fwd import _attn_fwd, _forward  # noqa: E402
from attnkata_kernels.paged_decode import _paged_decode_split, pick_num_splits  # noqa: E402


@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d", [64, 128])
def test_flash_fwd_bwd_wide_heads(d, causal, group):
    """The head dims the GPU targets (64, 128) at a small ragged N, GQA group 1 and 4."""
    N, H_q = 24, 4
    q, k, v = make_qkv(1, H_q, H_q // group, N, d, torch.float32, seed=d)
    do = make_qkv(1, H_q, H_q, N, d, torch.float32, seed=7)[0]
    o, lse = flash_fwd(q, k, v, causal=causal)
    o64, lse64 = attention_ref(*(t.double() for t in (q, k, v)), causal, d**-0.5)
    o32, lse32 = attention_ref(q, k, v, causal, d**-0.5)
    assert_close(o, o64, o32, "o")
    assert_close(lse, lse64, lse32, "lse")
    grads = flash_bwd(q, k, v, o, lse, do, causal=causal)
    refs64 = _grads_ref(*(t.double() for t in (q, k, v, do)), causal, d**-0.5)
    refs32 = _grads_ref(q, k, v, do, causal, d**-0.5)
    for name, g, ref64, ref32 in zip("qkv", grads, refs64, refs32):
        assert_close(g, ref64, ref32, f"d{name}")


@pytest.mark.skipif(not INTERPRET, reason="forces the TMA path where the GPU may lack it")
@pytest.mark.parametrize("N", [17, 40])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_fwd_tensor_descriptor_path(causal, N):
    """The TMA (tensor-descriptor) forward, run by the interpreter: same answer as pointers.

    The backward's descriptor path reduces dQ with a descriptor atomic, which the
    interpreter lacks; the compile gate builds it for sm_90 instead.
    """
    q, k, v = make_qkv(1, 4, 1, N, 32, torch.float32, seed=5)
    o, lse = _forward(q, k, v, causal, None, use_tma=True)
    o_ptr, lse_ptr = _forward(q, k, v, causal, None, use_tma=False)
    o64, _ = attention_ref(*(t.double() for t in (q, k, v)), causal, 32**-0.5)
    assert_close(o, o64, attention_ref(q, k, v, causal, 32**-0.5)[0], "o")
    torch.testing.assert_close(o, o_ptr, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lse, lse_ptr, rtol=1e-6, atol=1e-6)


def test_backward_dq_needs_no_second_kernel():
    """Five matmuls: dQ comes from the dK/dV program (atomics), not a second key loop."""
    import inspect

    import attnkata_kernels.flash_bwd as bwd
    def source(kernel):
        while hasattr(kernel, "fn"):  # autotuner -> jit function -> python function
            kernel = kernel.fn
        return inspect.getsource(kernel)

    tiles = source(bwd._attn_bwd_tiles)
    assert (source(_attn_bwd) + tiles).count("tl.dot(") == 5
    assert "atomic_add" in tiles
    assert not hasattr(bwd, "_attn_bwd_dq")


def test_autotune_keys_bucket_length_and_count_heads():
    for kernel in (_attn_fwd, _attn_bwd):
        assert {"N_BUCKET", "BH", "GROUP", "HEAD_DIM", "CAUSAL"} <= set(kernel.keys)
    assert {"SEQ_BUCKET", "GROUP"} <= set(_paged_decode_split.keys)
    assert [_tuning.bucket(n) for n in (1, 17, 3000, 4096, 4097)] == [1, 32, 4096, 4096, 8192]


TABLES_PROBE = """
import json
from attnkata_kernels.flash_bwd import BWD_TABLE
from attnkata_kernels.flash_fwd import FWD_TABLE
def tiles(table, d, arch):
    return sorted([*c.kwargs.values(), c.num_warps, c.num_stages] for c in table.select(d, arch))
print(json.dumps({f"{name} {d} {arch}": tiles(table, d, arch)
                  for name, table in (("fwd", FWD_TABLE), ("bwd", BWD_TABLE))
                  for d in (64, 128) for arch in (80, 90)}))
"""


def test_config_tables_drop_spilling_rows_by_head_dim():
    """The GPU tables (read in a child without the interpreter, which keeps one config)."""
    import json
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", TABLES_PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout
    tables = json.loads(out.strip().splitlines()[-1])
    assert [128, 64, 4, 3] in tables["fwd 64 90"]
    assert [128, 64, 4, 3] not in tables["fwd 128 90"]  # spills at d = 128
    assert [128, 128, 8, 3] in tables["fwd 128 90"]  # 224 KB of shared memory: Hopper only
    assert [128, 128, 8, 3] not in tables["fwd 128 80"]
    assert [128, 128, 8, 2] in tables["fwd 128 80"]
    assert [32, 128, 8, 2] in tables["bwd 64 80"] and [32, 128, 8, 2] not in tables["bwd 128 80"]


def test_split_count_fills_whole_waves():
    """256 programs on 132 SMs x 4: the old "four per SM" rule picked 3 splits, 768
    programs, 1.45 waves; whole waves need 2 (one wave of 512) -- same time as 4 or 8,
    fewer merges."""
    cpu = torch.device("cpu")
    resident = 132 * 4
    assert pick_num_splits(32, 8, 4096, cpu, resident=resident) == 2

    def time(splits, programs=256, tokens=4096):
        return -(-programs * splits // resident) * -(-tokens // splits)

    for S, H_kv, tokens in [(1, 8, 32768), (4, 8, 8192), (32, 8, 4096), (64, 8, 1024)]:
        best = pick_num_splits(S, H_kv, tokens, cpu, resident=resident)
        most = min(64, -(-tokens // 256))  # no split shorter than 256 tokens
        assert all(time(best, S * H_kv, tokens) <= time(s, S * H_kv, tokens)
                   for s in range(1, most + 1)), (S, H_kv, tokens, best)
    assert pick_num_splits(1, 8, 32768, cpu, resident=resident) == 64  # long, lone sequence
    assert pick_num_splits(128, 8, 4096, cpu, resident=resident) == 1  # already 2 waves
    assert pick_num_splits(32, 8, 4096, cpu) == 1  # no GPU, no resident count: one split
