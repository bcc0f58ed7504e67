"""Level 6 · paged_attention_decode and paged_attention_decode_triton — one new token per
sequence, attending over keys and values scattered across the page pool."""

from __future__ import annotations

import math

from attnkata.strategies import st

from attnkata import Claim, Kata, Misconception, Prediction, check
from attnkata.layouts import layout_check
from attnkata.strategies import SCALES, seeds, sizes

# ---------------------------------------------------------------------------
# Inputs: pages filled with random values; each sequence owns random physical blocks
# ---------------------------------------------------------------------------


def build_case(lens, block_size, H_q, H_kv, d, dtype, scale, seed, spare=2):
    """``(q, k_pages, v_pages, block_tables, seq_lens)``; blocks no sequence owns hold noise."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n_blocks = [-(-n // block_size) for n in lens]
    num_blocks = sum(n_blocks) + spare
    k_pages = (torch.randn(num_blocks, block_size, H_kv, d, generator=g, dtype=torch.float64) * scale)
    v_pages = torch.randn(num_blocks, block_size, H_kv, d, generator=g, dtype=torch.float64)
    q = torch.randn(len(lens), H_q, d, generator=g, dtype=torch.float64) * scale
    owners = torch.randperm(num_blocks, generator=g)
    # entries past a sequence's blocks are padding: arbitrary (valid) ids that must not be read
    tables = torch.randint(0, num_blocks, (len(lens), max(n_blocks)), generator=g, dtype=torch.int32)
    start = 0
    for s, nb in enumerate(n_blocks):
        tables[s, :nb] = owners[start:start + nb]
        start += nb
    return (q.to(dtype), k_pages.to(dtype), v_pages.to(dtype), tables,
            torch.tensor(lens, dtype=torch.int32))


@st.composite
def paged_cases(draw, dims=None, block_sizes=None, groups=(1, 2, 3), dtypes=("float32", "float64"),
                max_seqs=4, max_len=13):
    import torch

    bs = draw(st.sampled_from(block_sizes) if block_sizes else sizes(1, 5))
    S = draw(st.integers(1, max_seqs))
    length = st.one_of(st.just(1), st.integers(1, 3).map(lambda m: m * bs), st.integers(1, max_len))
    lens = draw(st.lists(length, min_size=S, max_size=S))
    H_kv = draw(st.sampled_from((1, 2)))
    H_q = H_kv * draw(st.sampled_from(groups))
    d = draw(st.sampled_from(dims) if dims else sizes(1, 8))
    dtype = getattr(torch, draw(st.sampled_from(dtypes)))
    return build_case(lens, bs, H_q, H_kv, d, dtype, draw(st.sampled_from(SCALES)), draw(seeds()),
                      spare=draw(st.integers(0, 3)))


def contiguous_decode(q, ks, vs):
    """The level-2 answer, per sequence: softmax(q·Kᵀ/√d)·V over contiguous ``[n, H_kv, d]`` K, V."""
    import torch

    S, H_q, d = q.shape
    out = []
    for s in range(S):
        k, v = ks[s].double(), vs[s].double()
        kv = torch.arange(H_q) // (H_q // k.shape[1])
        p = torch.softmax(torch.einsum("hd,nhd->hn", q[s].double().cpu(), k[:, kv]) / math.sqrt(d), -1)
        out.append(torch.einsum("hn,nhd->hd", p, v[:, kv]))
    return torch.stack(out).to(q.dtype)


def scatter_to_pages(ks, vs, block_size, seed):
    """Write contiguous per-sequence K, V into random pages; return ``(k_pages, v_pages, tables)``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lens = [k.shape[0] for k in ks]
    n_blocks = [-(-n // block_size) for n in lens]
    num_blocks = sum(n_blocks) + 1
    k_pages = torch.randn(num_blocks, block_size, *ks[0].shape[1:], generator=g).to(ks[0].dtype) * 50
    v_pages = torch.randn(num_blocks, block_size, *ks[0].shape[1:], generator=g).to(ks[0].dtype) * 50
    owners = torch.randperm(num_blocks, generator=g)
    tables = torch.zeros(len(lens), max(n_blocks), dtype=torch.int32)
    start = 0
    for s, n in enumerate(lens):
        tables[s, :n_blocks[s]] = owners[start:start + n_blocks[s]]
        start += n_blocks[s]
        pos = torch.arange(n)
        blocks = tables[s].long()[pos // block_size]
        k_pages[blocks, pos % block_size] = ks[s]
        v_pages[blocks, pos % block_size] = vs[s]
    return k_pages, v_pages, tables


# ---------------------------------------------------------------------------
# Checks, shared by the torch kata and the Triton kata (``entry`` names which)
# ---------------------------------------------------------------------------


def kernel_device() -> str:
    """Where a Triton kernel's tensors must live: the GPU when Triton compiles, else the CPU."""
    import os

    import torch

    compiled = os.environ.get("TRITON_INTERPRET") != "1" and torch.cuda.is_available()
    return "cuda" if compiled else "cpu"


def make_checks(entry, *, dims=None, block_sizes=None, dtypes=("float32", "float64"), groups=(1, 2, 3),
                examples=None, max_seqs=4, max_len=13, d_fixed=5, bs_fixed=4, device=lambda: "cpu"):
    """The three checks of a paged decode kata; ``device()`` says where its inputs go."""

    def moved(args):
        dev = device()
        return tuple(a.to(dev) for a in args)

    @check("matches the reference on random block tables, lengths (1, multiples of the block "
           "size, and others), GQA groups, dtypes and scales", id="matches_reference")
    def matches_reference(ctx):
        @ctx.given(case=paged_cases(dims, block_sizes, groups, dtypes, max_seqs, max_len),
                   max_examples=examples)
        def prop(case):
            ctx.expect(entry, *moved(case))

        prop()

    @check("equals contiguous decode (level 2's decode step, with GQA) for lengths 1, B − 1, "
           "B, B + 1 and 2B", id="equals_contiguous_decode")
    def equals_contiguous_decode(ctx):
        import torch

        B, H_kv, H_q = bs_fixed, 2, 4
        lens = [1, B - 1 or 1, B, B + 1, 2 * B]
        g = torch.Generator().manual_seed(7)
        ks = [torch.randn(n, H_kv, d_fixed, generator=g) for n in lens]
        vs = [torch.randn(n, H_kv, d_fixed, generator=g) for n in lens]
        q = torch.randn(len(lens), H_q, d_fixed, generator=g)
        k_pages, v_pages, tables = scatter_to_pages(ks, vs, B, seed=11)
        args = moved((q, k_pages, v_pages, tables, torch.tensor(lens, dtype=torch.int32)))
        got = ctx.call(entry, *args)
        ctx.match(got, contiguous_decode(q, ks, vs),
                  f"{entry}(q [5, 4, {d_fixed}], pages of {B} tokens, H_kv = 2, seq_lens {lens})",
                  rerun=lambda ns: getattr(ns, entry)(*[a.clone() for a in args]), entries=(entry,))

    @check("where the blocks sit in the pool does not matter: permuting the physical blocks "
           "(and the block tables with them) leaves the output unchanged", id="placement_invariant")
    def placement_invariant(ctx):
        import torch

        q, k_pages, v_pages, tables, lens = build_case(
            [3, bs_fixed * 2, bs_fixed + 1], bs_fixed, 2, 1, d_fixed, torch.float32, 1.0, seed=3)
        first = ctx.call(entry, *moved((q, k_pages, v_pages, tables, lens)))
        perm = torch.randperm(k_pages.shape[0], generator=torch.Generator().manual_seed(5))
        placed = moved((q, torch.empty_like(k_pages).index_copy_(0, perm, k_pages),
                        torch.empty_like(v_pages).index_copy_(0, perm, v_pages),
                        perm[tables.long()].to(torch.int32), lens))
        second = ctx.call(entry, *placed)
        ctx.match(second, first, f"{entry} after moving every block b to perm[b] (block tables "
                                 f"renumbered to match), compared with the output before",
                  rerun=lambda ns: getattr(ns, entry)(*[a.clone() for a in placed]), entries=(entry,))

    def layout_cases(ctx):
        import torch

        for name in sorted(set(dtypes)):
            yield moved(build_case([3, bs_fixed * 2 + 1], bs_fixed, 4, 2, d_fixed,
                                   getattr(torch, name), 1.0, seed=13)), {}

    strided_inputs = layout_check(
        entry, layout_cases, "q and both page pools as transposed, sliced and head-interleaved "
        "views (the pools stored [blocks, H_kv, B, d])", id="strided_inputs",
        layouts=("transposed", "sliced", "heads_interleaved"))

    return matches_reference, equals_contiguous_decode, placement_invariant, strided_inputs


# ---------------------------------------------------------------------------
# Misconceptions (torch versions, used for both katas)
# ---------------------------------------------------------------------------


def _variant(q, k_pages, v_pages, block_tables, seq_lens, *, physical=None, length=None,
             kv_head=None, scale=True, empty_nan=False):
    import torch

    S, H_q, d = q.shape
    bs, H_kv = k_pages.shape[1], k_pages.shape[2]
    heads = torch.arange(H_q, device=q.device)
    kv = kv_head(heads, H_q, H_kv) if kv_head else heads // (H_q // H_kv)
    out = []
    for s in range(S):
        n = length(int(seq_lens[s]), bs) if length else int(seq_lens[s])
        pos = torch.arange(n, device=q.device)
        table = block_tables[s].long()
        blocks = physical(table, pos // bs) if physical else table[pos // bs]
        k = k_pages[blocks, pos % bs][:, kv].double()
        v = v_pages[blocks, pos % bs][:, kv].double()
        sc = torch.einsum("hd,nhd->hn", q[s].double(), k) / (math.sqrt(d) if scale else 1.0)
        o = torch.einsum("hn,nhd->hd", torch.softmax(sc, -1), v)  # no keys: zeros
        out.append(torch.full_like(o, math.nan) if empty_nan and n == 0 else o)  # a kernel's 0/0
    return torch.stack(out).to(q.dtype)


def _ignores_table(*a):
    return _variant(*a, physical=lambda table, logical: logical)


def _whole_last_block(*a):
    return _variant(*a, length=lambda n, bs: -(-n // bs) * bs)


def _floor_blocks(*a):
    return _variant(*a, length=lambda n, bs: n // bs * bs)


def _floor_blocks_kernel(*a):
    return _variant(*a, length=lambda n, bs: n // bs * bs, empty_nan=True)


def _wrong_gqa(*a):
    return _variant(*a, kv_head=lambda h, H_q, H_kv: h % H_kv)


def _no_scale(*a):
    return _variant(*a, scale=False)


def _flat_view(q, k_pages, v_pages, block_tables, seq_lens):
    """Flattens the pool with ``.view(-1, H_kv, d)``: fine on a packed pool, an error on a
    pool whose heads are interleaved with its rows."""
    num_blocks, bs, H_kv, d = k_pages.shape
    k_flat, v_flat = k_pages.view(-1, H_kv, d), v_pages.view(-1, H_kv, d)
    return _variant(q, k_flat.view(num_blocks, bs, H_kv, d), v_flat.view(num_blocks, bs, H_kv, d),
                    block_tables, seq_lens)


def _view_probe(entry, axes, what):
    """A pool with axes ``axes`` swapped in memory: .view(-1, H_kv, d) refuses it, while
    indexing reads it correctly."""
    from attnkata.diagnose import Probe, raises

    def run(ns):
        import torch

        q, k, v, tables, lens = build_case([3, 6], 4, 2, 2, 5, torch.float32, 1.0, seed=17)
        k, v = (t.transpose(*axes).contiguous().transpose(*axes) for t in (k, v))
        return getattr(ns, entry)(q, k, v, tables, lens)

    return Probe(what, run, raises("RuntimeError", r"view size is not compatible"))


def misconceptions(entry, kernel=False):
    """``kernel``: a sequence left with no keys gives NaN (acc / l = 0 / 0), as in a kernel."""
    return (
        Misconception("ignores_block_table", "read logical block j from physical block j "
                      "(ignored the block table)", {entry: _ignores_table},
                      "A sequence's blocks sit anywhere in the pool: logical block j is "
                      "k_pages[block_tables[s, j]], not k_pages[j]."),
        Misconception("reads_whole_last_block", "attended to every slot of the last block, "
                      "past seq_len", {entry: _whole_last_block},
                      "The last block is usually partly filled; rows past seq_len hold stale "
                      "data from an earlier owner. Only positions t < seq_lens[s] count."),
        Misconception("dropped_partial_block", "counted ⌊n / B⌋ blocks, dropping the partly filled last one",
                      {entry: _floor_blocks_kernel if kernel else _floor_blocks},
                      "A sequence of n tokens spans ⌈n / B⌉ blocks: (n + B − 1) // B."),
        Misconception("wrong_gqa_mapping", "query head h read KV head h % H_kv instead of h // group",
                      {entry: _wrong_gqa},
                      "Consecutive query heads share a KV head: h // (H_q // H_kv)."),
        Misconception("forgot_scale", "forgot the 1/√d scaling", {entry: _no_scale},
                      "Decode is still softmax(q·Kᵀ/√d)·V."),
    ) + (() if kernel else (
        # source: PyTorch forum and issue threads on "view size is not compatible with input
        # tensor's size and stride" after a transpose or permute
        Misconception("view_assumes_contiguous", "flattened the page pool with .view(), which "
                      "needs contiguous memory", {entry: _flat_view},
                      "A pool may be a view (stored [blocks, H_kv, B, d] and transposed): "
                      ".view can only merge axes whose memory is already adjacent. Index "
                      "k_pages[blocks, pos % B] directly, or use .reshape (it copies when it "
                      "must).", raises=(("RuntimeError", r"view size is not compatible"),),
                      probes=(_view_probe(entry, (0, 1), "a page pool stored with rows before "
                                                      "blocks ([B, blocks, H_kv, d] memory)"),
                              _view_probe(entry, (1, 2), "a page pool stored with heads before "
                                                      "rows ([blocks, H_kv, B, d] memory)"))),))


# ---------------------------------------------------------------------------
# The torch kata
# ---------------------------------------------------------------------------

PAGED_ATTENTION_DECODE = Kata(
    id="paged_attention_decode",
    level=6,
    title="Decoding over pages: one new token attends to a scattered cache",
    path="level6/paged_attention_decode.py",
    entries=("paged_attention_decode",),
    checks=make_checks("paged_attention_decode"),
    predictions=(
        Prediction("kv_head_of_query_head_5", "q is [3, 8, 64] and the pages hold H_kv = 2 heads: "
                   "which KV head does query head 5 read?", 1, kind="exact",
                   why="group = 8 / 2 = 4 query heads per KV head; 5 // 4 = 1."),
        Prediction("table_entries_read", "seq_len 33, block size 16: how many entries of the "
                   "sequence's block table are read?", 3, kind="exact",
                   why="⌈33 / 16⌉ = 3: two full blocks and one holding a single token."),
        Prediction("token_20_location", "block size 16: logical token 20 lives at (block table "
                   "index, row in block) = ?", (1, 4), kind="exact",
                   why="20 // 16 = 1 and 20 % 16 = 4: physical block block_tables[s, 1], row 4."),
    ),
    misconceptions=misconceptions("paged_attention_decode"),
    claims=(
        Claim("paged-decode-equals-contiguous", "Attention over a paged cache equals attention "
              "over the same keys and values stored contiguously, wherever the blocks sit.",
              scope="exact", source="kwon-2023-paged",
              evidence=("equals_contiguous_decode", "placement_invariant", "matches_reference"),
              not_claimed="Nothing about speed: this torch version gathers the pages first; "
                          "the Triton kata reads them in place."),
    ),
    hints=(
        "Loop over sequences: n = seq_lens[s]; positions t = 0 … n − 1 live in block "
        "block_tables[s, t // B], row t % B.",
        "Gather with advanced indexing: k = k_pages[blocks, pos % B] is [n, H_kv, d] in logical "
        "order; then pick each query head's KV head with k[:, h // group].",
        "With k, v gathered, it is level 2's decode step: softmax(q·kᵀ/√d) over the n keys, "
        "times v; einsum('hd,nhd->hn') and einsum('hn,nhd->hd') do it for all heads at once.",
    ),
    requires=("torch",),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14), shared by the torch and the Triton kata: each probe
# is a small paged batch whose output tells one mistake's family apart — right when the
# table is the identity but wrong when shuffled; wrong only in sequences whose last block
# is partial; wrong only in the query heads that h % H_kv and h // group disagree on.
# Sizes are Triton-friendly (d = 16, block sizes 2 and 4), small for its interpreter.
# ---------------------------------------------------------------------------

_D = 16


def _contig(lens, H_kv, seed, same_keys=False):
    import torch

    g = torch.Generator().manual_seed(seed)
    ks = [torch.randn(n, H_kv, _D, generator=g) for n in lens]
    if same_keys:
        ks = [k[:1].expand_as(k).clone() for k in ks]
    vs = [torch.randn(n, H_kv, _D, generator=g) for n in lens]
    return ks, vs


def _identity_pages(ks, vs, B, shift=0):
    """Blocks laid out in order (logical block j of the batch is physical block j + shift),
    with one spare block (first when ``shift``); rows past each sequence's end hold noise."""
    import torch

    g = torch.Generator().manual_seed(99)
    n_blocks = [-(-k.shape[0] // B) for k in ks]
    total = sum(n_blocks) + 1
    k_pages = torch.randn(total, B, *ks[0].shape[1:], generator=g) * 50
    v_pages = torch.randn(total, B, *ks[0].shape[1:], generator=g) * 50
    tables = torch.zeros(len(ks), max(n_blocks), dtype=torch.int32)
    start = shift
    for s, (k, v) in enumerate(zip(ks, vs)):
        tables[s, :n_blocks[s]] = torch.arange(start, start + n_blocks[s], dtype=torch.int32)
        pos = torch.arange(k.shape[0])
        blocks = tables[s].long()[pos // B]
        k_pages[blocks, pos % B], v_pages[blocks, pos % B] = k, v
        start += n_blocks[s]
    return k_pages, v_pages, tables


def _decode_case(lens, B, H_q, H_kv, seed, layout="shuffled", same_keys=False):
    import torch

    ks, vs = _contig(lens, H_kv, seed, same_keys)
    q = torch.randn(len(lens), H_q, _D, generator=torch.Generator().manual_seed(seed + 1))
    if layout in ("identity", "shifted"):
        k_pages, v_pages, tables = _identity_pages(ks, vs, B, shift=int(layout == "shifted"))
    else:
        k_pages, v_pages, tables = scatter_to_pages(ks, vs, B, seed=seed + 2)
    return q, k_pages, v_pages, tables, torch.tensor(lens, dtype=torch.int32)


def _call(entry, *case_args, **case_kw):
    def run(ns):
        args = _decode_case(*case_args, **case_kw)
        dev = kernel_device() if entry.endswith("triton") else "cpu"
        return getattr(ns, entry)(*(a.to(dev) for a in args)).cpu()
    return run


def _both(run1, run2):
    from attnkata.diagnose import attempt
    return lambda ns: (attempt(lambda: run1(ns)), attempt(lambda: run2(ns)))


def _right_then_wrong(g, w):
    from attnkata.diagnose import close
    return close(g[0], w[0]) and not close(g[1], w[1])


def _only_rows(rows, n):
    """Wrong in every sequence of ``rows`` (somewhere) and in no other."""
    import numpy as np

    from attnkata.diagnose import wrong

    def holds(g, w):
        mask = wrong(g, w)
        if mask is None or not mask.any():
            return False
        per = mask.reshape(n, -1).any(axis=1)
        return bool(np.array_equal(np.flatnonzero(per), np.array(rows)))
    return holds


def _only_heads(heads, n):
    """Wrong in every query head of ``heads`` (somewhere) and in no other."""
    import numpy as np

    from attnkata.diagnose import wrong

    def holds(g, w):
        mask = wrong(g, w)
        if mask is None or mask.ndim != 3 or mask.shape[1] != n:
            return False
        return bool(np.array_equal(np.flatnonzero(mask.any(axis=(0, 2))), np.array(heads)))
    return holds


def _one_token_is(kind):
    """One sequence of a single token (block size 4): its output is v of that token.
    ``kind`` "empty": the mistake reads no key (zeros, or NaN from 0/0); "more": it reads
    more keys than one (finite, wrong, not zero)."""
    import numpy as np

    from attnkata.diagnose import as_array, close

    def holds(g, w):
        g, w = as_array(g), as_array(w)
        if g is None or g.shape != w.shape or close(g, w):
            return False
        if kind == "empty":
            return bool(np.isnan(g).any() or np.allclose(g, 0))
        return bool(np.isfinite(g).all() and not np.allclose(g, 0))
    return holds


def _on_segment(g, w):
    """1 head, one sequence of two tokens: the output is p·v0 + (1 − p)·v1 for one weight
    p ≠ the right one — softmax over the right keys at another temperature."""
    import numpy as np

    from attnkata.diagnose import as_array
    _, _, v_pages, tables, _ = _decode_case([2], 2, 1, 1, 41)
    v = v_pages[tables[0, 0].long()][:, 0].double().numpy()   # [2, d]
    g, w = as_array(g), as_array(w)
    if g is None or g.shape != w.shape:
        return False
    diff = v[0] - v[1]
    p_got = float(np.dot(g.reshape(-1) - v[1], diff) / np.dot(diff, diff))
    p_want = float(np.dot(w.reshape(-1) - v[1], diff) / np.dot(diff, diff))
    on_line = np.allclose(g.reshape(-1), p_got * v[0] + (1 - p_got) * v[1], atol=1e-4)
    return bool(on_line and abs(p_got - p_want) > 1e-3 and -1e-6 <= p_got <= 1 + 1e-6)


def decode_probes(entry):
    """probes= and diagnostics= for ``attach`` (both decode katas)."""
    from attnkata.diagnose import Probe, check as holds

    return dict(probes={
        # source: DeepLink-org/dlinfer#4 ("fix block_table in paged_decode_attention") and
        # hw-native-sys/pypto#470 (consecutive logical blocks are not adjacent physical ones)
        "ignores_block_table": (
            Probe("one sequence of 6 in blocks of 2 at physical 0, 1, 2, then at 1, 2, 3",
                  _both(_call(entry, [6], 2, 2, 2, 31, layout="identity"),
                        _call(entry, [6], 2, 2, 2, 31, layout="shifted")), holds(_right_then_wrong)),
            Probe("one sequence of 8 in blocks of 4 at physical 0, 1, then at 1, 2",
                  _both(_call(entry, [8], 4, 2, 1, 32, layout="identity"),
                        _call(entry, [8], 4, 2, 1, 32, layout="shifted")), holds(_right_then_wrong)),
        ),
        # source: pegainfer-project/pegainfer#291 (attention reads a page past the sequence:
        # stale K/V of an earlier owner, hidden while the pool is fresh)
        "reads_whole_last_block": (
            Probe("block size 4, lengths 4, 6, 8, 3: only sequences 1 and 3 end in a partial "
                  "block", _call(entry, [4, 6, 8, 3], 4, 2, 2, 33),
                  holds(_only_rows([1, 3], 4)), axes=("sequence", "query head", "feature")),
            Probe("block size 4, one sequence of a single token", _call(entry, [1], 4, 2, 1, 34),
                  holds(_one_token_is("more"))),
        ),
        # source: EricLBuehler/mistral.rs#552 (block counts off at the boundary:
        # start_pos // block_size against the table's length)
        "dropped_partial_block": (
            Probe("block size 4, lengths 4, 6, 8, 3: only sequences 1 and 3 end in a partial "
                  "block", _call(entry, [4, 6, 8, 3], 4, 2, 2, 33),
                  holds(_only_rows([1, 3], 4)), axes=("sequence", "query head", "feature")),
            Probe("block size 4, one sequence of a single token", _call(entry, [1], 4, 2, 1, 34),
                  holds(_one_token_is("empty"))),
        ),
        # source: vllm-project/vllm#3586 (expand_heads: GQA by view/expand, where
        # .repeat tiles heads h % H_kv and repeat_interleave groups them h // group)
        "wrong_gqa_mapping": (
            Probe("H_q = H_kv = 2 (no groups), then H_q = 4 over H_kv = 2",
                  _both(_call(entry, [5, 3], 4, 2, 2, 35), _call(entry, [5, 3], 4, 4, 2, 35)),
                  holds(_right_then_wrong)),
            Probe("H_q = 4 over H_kv = 2: only query heads 1 and 2 read another KV head",
                  _call(entry, [5, 3], 4, 4, 2, 36),
                  holds(_only_heads([1, 2], 4)),
                  axes=("sequence", "query head", "feature")),
        ),
        # source: vllm-project/vllm#3586 (a reference written with and without the
        # 1/√d scale, compared to the kernel)
        "forgot_scale": (
            Probe("every key of a sequence equal (uniform weights), then random keys",
                  _both(_call(entry, [5, 3], 4, 2, 1, 37, same_keys=True),
                        _call(entry, [5, 3], 4, 2, 1, 37)), holds(_right_then_wrong)),
            Probe("one head, two tokens in one block: the output lies between v0 and v1 at "
                  "another weight", _call(entry, [2], 2, 1, 1, 41), holds(_on_segment)),
        ),
    }, diagnostics=(
        Probe("block size 4, lengths 1, 4, 6, 9 over 4 query heads and 2 KV heads",
              _call(entry, [1, 4, 6, 9], 4, 4, 2, 38), axes=("sequence", "query head", "feature")),
    ))


from attnkata.diagnose import attach  # noqa: E402

PAGED_ATTENTION_DECODE = attach(PAGED_ATTENTION_DECODE, **decode_probes("paged_attention_decode"))


def _blockwise_online(q, k_pages, v_pages, block_tables, seq_lens):
    """Correct, other way: walks the table block by block with an online softmax (as the
    kernel does), heads expanded with repeat_interleave."""
    import torch

    S, H_q, d = q.shape
    bs, H_kv = k_pages.shape[1], k_pages.shape[2]
    out = torch.empty(S, H_q, d, dtype=torch.float64)
    for s in range(S):
        n = int(seq_lens[s])
        m = torch.full((H_q,), -math.inf, dtype=torch.float64)
        l = torch.zeros(H_q, dtype=torch.float64)
        acc = torch.zeros(H_q, d, dtype=torch.float64)
        for j in range(-(-n // bs)):
            rows = min(bs, n - j * bs)
            b = int(block_tables[s, j])
            k = k_pages[b, :rows].double().repeat_interleave(H_q // H_kv, dim=1)
            v = v_pages[b, :rows].double().repeat_interleave(H_q // H_kv, dim=1)
            x = torch.einsum("hd,rhd->hr", q[s].double(), k) / math.sqrt(d)
            m_new = torch.maximum(m, x.max(-1).values)
            p = torch.exp(x - m_new[:, None])
            alpha = torch.exp(m - m_new)
            l = l * alpha + p.sum(-1)
            acc = acc * alpha[:, None] + torch.einsum("hr,rhd->hd", p, v)
            m = m_new
        out[s] = acc / l[:, None]
    return out.to(q.dtype)


from attnkata import Fake  # noqa: E402

PAGED_ATTENTION_DECODE = attach(PAGED_ATTENTION_DECODE, variants=(
    Fake("blockwise_online_softmax", {"paged_attention_decode": _blockwise_online}),))
