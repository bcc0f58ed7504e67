"""Issue 14, levels 6-8: for every kata, mistakes written *here*, differently from the
modelled wrong implementations in plugins/core/levelN/<kata>.py, are named by the
diagnosis (probes, raises, shapes); a correct way of writing each kata names nothing.

Each variant is code a learner could write: another data structure, another indexing,
another spelling of the same slip. Classes subclass the reference and redo one method
their own way (a learner's whole class would differ everywhere; the slip is what is
tested). Ring attention starts real gloo processes: three variants only, on small shards.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from attnkata.runner import FAILED

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


from variants import assert_named, assert_silent, kata_and_ref, verdicts  # noqa: E402


CASES: list[tuple[int, str, str, str, object]] = []   # level, kata, expected, label, make impls
CORRECT: list[tuple[int, str, str, object]] = []


def mistake(level, kata, expected, label, make):
    CASES.append((level, kata, expected, label, make))


def correct(level, kata, label, make):
    CORRECT.append((level, kata, label, make))


_KATAS: dict = {}


def _kata(level, name):
    if (level, name) not in _KATAS:
        _KATAS[level, name] = kata_and_ref(level, name)
    return _KATAS[level, name]


def subclass(entry, **methods):
    """impls whose ``entry`` is the reference class with ``methods`` replaced."""
    def make(ref):
        return {entry: type(f"Learner{entry}", (getattr(ref, entry),), methods)}
    return make


def funcs(**fns):
    return lambda ref: dict(fns)


# ---------------------------------------------------------------------------
# Level 6 · block_allocator
# ---------------------------------------------------------------------------

def _free_clamped(self, block):
    """Double free "handled" by clamping the count at zero."""
    rc = self._refcounts[block]
    self._refcounts[block] = max(0, rc - 1)
    if rc == 1:
        self._free.append(block)


def _free_early_return(self, block):
    """A free block is quietly skipped, as if freeing twice were harmless."""
    if not 0 <= block < self.num_blocks or self._refcounts[block] <= 0:
        return
    self._refcounts[block] -= 1
    if not self._refcounts[block]:
        self._free.append(block)


mistake(6, "block_allocator", "double_free_allowed", "clamped_at_zero",
        subclass("BlockAllocator", free=_free_clamped))
mistake(6, "block_allocator", "double_free_allowed", "early_return",
        subclass("BlockAllocator", free=_free_early_return))


class _SetAllocator:
    """Correct, from scratch: a set of free ids, the smallest handed out first."""

    def __init__(self, num_blocks, block_size):
        if num_blocks < 0 or block_size < 1:
            raise ValueError("bad sizes")
        self.num_blocks, self.block_size = num_blocks, block_size
        self._rc = {}
        self._free_ids = set(range(num_blocks))

    @property
    def num_free(self):
        return len(self._free_ids)

    def allocate(self):
        if not self._free_ids:
            raise RuntimeError("out of KV blocks")
        b = min(self._free_ids)
        self._free_ids.discard(b)
        self._rc[b] = 1
        return b

    def _owned(self, block):
        if self._rc.get(block, 0) <= 0:
            raise ValueError(f"block {block} is not allocated")

    def incref(self, block):
        self._owned(block)
        self._rc[block] += 1

    def free(self, block):
        self._owned(block)
        self._rc[block] -= 1
        if self._rc[block] == 0:
            self._free_ids.add(block)

    def refcount(self, block):
        if not 0 <= block < self.num_blocks:
            raise IndexError(block)
        return self._rc.get(block, 0)


correct(6, "block_allocator", "set_of_free_ids", lambda ref: {"BlockAllocator": _SetAllocator})


# ---------------------------------------------------------------------------
# Level 6 · paged_kv_cache: free_sequence that leaks part of the table
# ---------------------------------------------------------------------------

def _free_all_but_last(self, seq_id):
    table = self._tables.pop(seq_id)
    for b in table[:-1]:          # off by one: the last block is never released
        self.allocator.free(b)
    del self._lens[seq_id]


def _free_first_only(self, seq_id):
    table = self._tables.pop(seq_id)
    if table:
        self.allocator.free(table[0])
    del self._lens[seq_id]


mistake(6, "paged_kv_cache", "leaky_free", "all_but_last_block",
        subclass("PagedKVCache", free_sequence=_free_all_but_last))
mistake(6, "paged_kv_cache", "leaky_free", "first_block_only",
        subclass("PagedKVCache", free_sequence=_free_first_only))


def _append_token_by_token(self, seq_id, k, v):
    """Correct: checks the whole append first, then writes token by token."""
    table, n, bs = self._tables[seq_id], self._lens[seq_id], self.block_size
    t = k.shape[0]
    if t == 0:
        return
    cow = n % bs != 0 and self.allocator.refcount(table[-1]) > 1
    if -(-(n + t) // bs) - len(table) + cow > self.allocator.num_free:
        raise RuntimeError("out of blocks")
    for i in range(t):
        pos = n + i
        if pos // bs == len(table):
            table.append(self.allocator.allocate())
        elif i == 0 and cow:
            new = self.allocator.allocate()
            self.k_pages[new] = self.k_pages[table[-1]]
            self.v_pages[new] = self.v_pages[table[-1]]
            self.allocator.free(table[-1])
            table[-1] = new
        self.k_pages[table[pos // bs], pos % bs] = k[i].to(self.k_pages.dtype)
        self.v_pages[table[pos // bs], pos % bs] = v[i].to(self.v_pages.dtype)
    self._lens[seq_id] = n + t


correct(6, "paged_kv_cache", "token_by_token", subclass("PagedKVCache", append=_append_token_by_token))


# ---------------------------------------------------------------------------
# Level 6 · waste
# ---------------------------------------------------------------------------

def _reserved(seq_lens, max_len):
    lens = np.asarray(seq_lens, dtype=np.int64)
    return float(1 - lens.sum() / (lens.size * max_len)) if lens.size else 0.0


def _paged_int_div(seq_lens, block_size):
    lens = [int(n) for n in seq_lens]
    slots = sum(int(n / block_size) * block_size for n in lens)
    return 1.0 - sum(lens) / slots if slots else 0.0


def _paged_np_floor(seq_lens, block_size):
    lens = np.asarray(seq_lens, dtype=np.float64)
    slots = float((np.floor(lens / block_size) * block_size).sum())
    return float(1.0 - lens.sum() / slots)


def _paged_np_ceil(seq_lens, block_size):
    lens = np.asarray(seq_lens, dtype=np.float64)
    slots = float((np.ceil(lens / block_size) * block_size).sum())
    return float(1.0 - lens.sum() / slots) if slots else 0.0


mistake(6, "waste", "floor_blocks", "int_of_division",
        funcs(reserved_waste=_reserved, paged_waste=_paged_int_div))
mistake(6, "waste", "floor_blocks", "np_floor", funcs(reserved_waste=_reserved, paged_waste=_paged_np_floor))
correct(6, "waste", "np_ceil", funcs(reserved_waste=_reserved, paged_waste=_paged_np_ceil))


# ---------------------------------------------------------------------------
# Level 6 · paged_attention_decode (torch) and its Triton kata (a torch learner entry)
# ---------------------------------------------------------------------------

def _decode(q, k_pages, v_pages, block_tables, seq_lens, *, length=None, scale=None):
    import torch

    S, H_q, d = q.shape
    B, H_kv = k_pages.shape[1], k_pages.shape[2]
    outs = []
    for s in range(S):
        n = int(seq_lens[s])
        nb = -(-n // B)
        k = k_pages[block_tables[s, :nb].long()].reshape(nb * B, H_kv, d)
        v = v_pages[block_tables[s, :nb].long()].reshape(nb * B, H_kv, d)
        upto = length(n, B) if length else n
        k, v = k[:upto].double(), v[:upto].double()
        k = k.repeat_interleave(H_q // H_kv, dim=1).transpose(0, 1)   # [H_q, n, d]
        v = v.repeat_interleave(H_q // H_kv, dim=1).transpose(0, 1)
        w = torch.softmax(q[s].double()[:, None, :] @ k.transpose(1, 2) * (scale or d ** -0.5), -1)
        outs.append((w @ v)[:, 0])
    return torch.stack(outs).to(q.dtype)


def _whole_blocks_reshape(*a):
    """Gathers every slot of the sequence's blocks: reshape, no slice to seq_len."""
    return _decode(*a, length=lambda n, B: -(-n // B) * B)


def _whole_blocks_ceil(*a):
    return _decode(*a, length=lambda n, B: math.ceil(n / B) * B)


def _scale_one_over_d(q, *rest):
    return _decode(q, *rest, scale=1.0 / q.shape[-1])


def _scale_none(q, *rest):
    return _decode(q, *rest, scale=1.0)


mistake(6, "paged_attention_decode", "reads_whole_last_block", "reshape_whole_blocks",
        funcs(paged_attention_decode=_whole_blocks_reshape))
mistake(6, "paged_attention_decode", "reads_whole_last_block", "ceil_times_block",
        funcs(paged_attention_decode=_whole_blocks_ceil))
correct(6, "paged_attention_decode", "reshape_then_slice", funcs(paged_attention_decode=_decode))

mistake(6, "paged_attention_decode_triton", "forgot_scale", "divided_by_d",
        funcs(paged_attention_decode_triton=_scale_one_over_d))
mistake(6, "paged_attention_decode_triton", "forgot_scale", "scale_one",
        funcs(paged_attention_decode_triton=_scale_none))
correct(6, "paged_attention_decode_triton", "torch_gather", funcs(paged_attention_decode_triton=_decode))


# ---------------------------------------------------------------------------
# Level 7 · ring_attention_sim: a simulator written from scratch, merge switched
# ---------------------------------------------------------------------------

def _positions(rank, P, n, layout):
    import torch

    if layout == "contiguous":
        return torch.arange(rank * n, rank * n + n)
    c = n // 2
    return torch.cat([torch.arange(rank * c, rank * c + c),
                      torch.arange((2 * P - 1 - rank) * c, (2 * P - rank) * c)])


def _block(q, k, v, mask):
    import torch

    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, -math.inf)
    lse = torch.logsumexp(s, -1)
    o = torch.exp(s - lse[..., None]) @ v.double()
    return torch.nan_to_num(o), lse        # a row with no visible key: 0, weight e^−inf = 0


def _sim(merge):
    def ring_attention_sim(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
        P, n = len(q_shards), q_shards[0].shape[-2]
        out = []
        for r in range(P):
            parts = []
            for t in range(P):
                j = (r - t) % P
                mask = None
                if causal:
                    mask = _positions(j, P, n, layout)[None, :] <= _positions(r, P, n, layout)[:, None]
                    if not mask.any():
                        continue
                parts.append(_block(q_shards[r], k_shards[j], v_shards[j], mask))
            out.append(merge(parts).to(q_shards[r].dtype))
        return out
    return ring_attention_sim


def _running_average(parts):
    o = parts[0][0]
    for p, _ in parts[1:]:
        o = (o + p) / 2
    return o


def _mean_over_blocks(parts):
    import torch

    return torch.stack([p for p, _ in parts]).mean(0)


def _lse_merge(parts):
    import torch

    lse = torch.logsumexp(torch.stack([l for _, l in parts]), 0)
    return sum(torch.nan_to_num(torch.exp(l - lse))[..., None] * o for o, l in parts)


def _schedule(world_size):
    return [[(r - t) % world_size for r in range(world_size)] for t in range(world_size)]


mistake(7, "ring_attention_sim", "averaged_partials", "running_average",
        funcs(ring_attention_sim=_sim(_running_average), rotation_schedule=_schedule))
mistake(7, "ring_attention_sim", "averaged_partials", "mean_of_block_outputs",
        funcs(ring_attention_sim=_sim(_mean_over_blocks), rotation_schedule=_schedule))
correct(7, "ring_attention_sim", "collect_then_lse_merge",
        funcs(ring_attention_sim=_sim(_lse_merge), rotation_schedule=_schedule))


# ---------------------------------------------------------------------------
# Level 7 · zigzag_shards
# ---------------------------------------------------------------------------

def _checked(x, P, dim):
    if x.shape[dim] % (2 * P):
        raise ValueError("not divisible by 2·world_size")


def _zz_chunk(x, world_size, dim):
    _checked(x, world_size, dim)
    return list(x.chunk(world_size, dim=dim))


def _zz_index_ranges(x, world_size, dim):
    import torch

    _checked(x, world_size, dim)
    n = x.shape[dim] // world_size
    return [x.index_select(dim, torch.arange(r * n, r * n + n)) for r in range(world_size)]


def _zz_index_pairs(x, world_size, dim):
    import torch

    _checked(x, world_size, dim)
    c = x.shape[dim] // (2 * world_size)
    out = []
    for r in range(world_size):
        idx = torch.cat([torch.arange(r * c, r * c + c),
                         torch.arange((2 * world_size - 1 - r) * c, (2 * world_size - r) * c)])
        out.append(x.index_select(dim, idx))
    return out


mistake(7, "zigzag_shards", "contiguous_split", "torch_chunk", funcs(zigzag_shards=_zz_chunk))
mistake(7, "zigzag_shards", "contiguous_split", "index_ranges", funcs(zigzag_shards=_zz_index_ranges))
correct(7, "zigzag_shards", "index_pairs", funcs(zigzag_shards=_zz_index_pairs))


# ---------------------------------------------------------------------------
# Level 7 · ring_overlap
# ---------------------------------------------------------------------------

def _overlap(flops_per_pair):
    def block_flops(block_tokens, d):
        return flops_per_pair * block_tokens ** 2 * d

    def block_bytes(block_tokens, d, dtype_bytes=2):
        return 2 * block_tokens * d * dtype_bytes

    def overlap_hidden(block_tokens, d, flops_per_s, bytes_per_s, dtype_bytes=2):
        return (block_flops(block_tokens, d) * bytes_per_s
                >= block_bytes(block_tokens, d, dtype_bytes) * flops_per_s)

    def min_block_tokens(flops_per_s, bytes_per_s, dtype_bytes=2):
        num, den = 2 * flops_per_s * dtype_bytes, flops_per_pair * bytes_per_s
        return max(1, -(-num // den))

    return dict(block_flops=block_flops, block_bytes=block_bytes, overlap_hidden=overlap_hidden,
                min_block_tokens=min_block_tokens)


mistake(7, "ring_overlap", "forgot_pv", "two_flops_per_pair", lambda ref: _overlap(2))


def _one_matmul_module(ref):
    fns = _overlap(4)

    def block_flops(block_tokens, d):      # "a c×d by d×c matmul": 2·c·c·d, and that is all
        return 2 * block_tokens * d * block_tokens

    def overlap_hidden(block_tokens, d, flops_per_s, bytes_per_s, dtype_bytes=2):
        return block_flops(block_tokens, d) / flops_per_s >= \
            fns["block_bytes"](block_tokens, d, dtype_bytes) / bytes_per_s

    def min_block_tokens(flops_per_s, bytes_per_s, dtype_bytes=2):
        from fractions import Fraction
        return max(1, math.ceil(Fraction(flops_per_s * dtype_bytes, bytes_per_s)))

    return dict(fns, block_flops=block_flops, overlap_hidden=overlap_hidden,
                min_block_tokens=min_block_tokens)


mistake(7, "ring_overlap", "forgot_pv", "one_matmul_counted", _one_matmul_module)
correct(7, "ring_overlap", "integer_cross_multiplied", lambda ref: _overlap(4))


# ---------------------------------------------------------------------------
# Level 7 · ring_attention on gloo ranks: one ring written here, merge switched
# ---------------------------------------------------------------------------

def _ring(merge):
    def ring_attention(q, k, v, causal=False, group=None, layout="contiguous"):
        import torch
        import torch.distributed as dist

        P, r = dist.get_world_size(group), dist.get_rank(group)

        def peer(i):
            return i if group is None else dist.get_global_rank(group, i)

        n = q.shape[-2]
        k_cur, v_cur = k.clone(), v.clone()
        parts = []
        for t in range(P):
            reqs = []
            if t < P - 1:
                k_in, v_in = torch.empty_like(k_cur), torch.empty_like(v_cur)
                reqs = dist.batch_isend_irecv([
                    dist.P2POp(dist.isend, k_cur, peer((r + 1) % P), group),
                    dist.P2POp(dist.isend, v_cur, peer((r + 1) % P), group),
                    dist.P2POp(dist.irecv, k_in, peer((r - 1) % P), group),
                    dist.P2POp(dist.irecv, v_in, peer((r - 1) % P), group)])
            j = (r - t) % P
            mask = None
            if causal:
                mask = _positions(j, P, n, layout)[None, :] <= _positions(r, P, n, layout)[:, None]
            if mask is None or mask.any():
                parts.append(_block(q, k_cur, v_cur, mask))
            for req in reqs:
                req.wait()
            if t < P - 1:
                k_cur, v_cur = k_in, v_in
        return merge(parts).to(q.dtype)
    return ring_attention


mistake(7, "ring_attention", "averaged_partials", "running_average",
        funcs(ring_attention=_ring(_running_average)))
mistake(7, "ring_attention", "averaged_partials", "mean_of_block_outputs",
        funcs(ring_attention=_ring(_mean_over_blocks)))
correct(7, "ring_attention", "collect_then_lse_merge", funcs(ring_attention=_ring(_lse_merge)))


# ---------------------------------------------------------------------------
# Level 8 · kv_quantize: rounding toward zero, two other spellings
# ---------------------------------------------------------------------------

def _quant(x, axis, rounding):
    scale = np.abs(x).max(axis=axis, keepdims=True) / 127
    safe = np.where(scale == 0, 1, scale).astype(x.dtype)
    return rounding(np.clip(x / safe, -127, 127)), scale.astype(x.dtype)


def _astype_int8(y):
    return y.astype(np.int8)


def _np_fix(y):
    return np.fix(y).astype(np.int8)


def _np_round(y):
    return np.round(y).astype(np.int8)


def _kv_module(rounding):
    def int8_kv_bytes(tokens, kv_heads, head_dim, group, scale_bytes=2):
        return (2 * tokens * kv_heads * head_dim
                + math.ceil(tokens / group) * kv_heads * head_dim * scale_bytes
                + tokens * kv_heads * scale_bytes)

    return lambda ref: dict(quantize_keys=lambda k: _quant(k, -2, rounding),
                            quantize_values=lambda v: _quant(v, -1, rounding),
                            dequantize=ref.dequantize, int8_kv_bytes=int8_kv_bytes)


mistake(8, "kv_quantize", "truncates", "astype_after_clip", _kv_module(_astype_int8))
mistake(8, "kv_quantize", "truncates", "np_fix", _kv_module(_np_fix))
correct(8, "kv_quantize", "np_round", _kv_module(_np_round))


# ---------------------------------------------------------------------------
# Level 8 · swa_kv_cache: caches written from scratch, one keeping W + 1
# ---------------------------------------------------------------------------

def _swa(extra=0, use_deque=False):
    class SlidingWindowKVCache:
        def __init__(self, n_heads, head_dim, window, dtype=np.float32):
            self.window, self.dtype, self._seen = window, np.dtype(dtype), 0
            self._keep = window + extra
            self._k = deque(maxlen=self._keep) if use_deque else []
            self._v = deque(maxlen=self._keep) if use_deque else []
            self._shape = (n_heads, head_dim)

        def __len__(self):
            return len(self._k)

        @property
        def tokens_seen(self):
            return self._seen

        def append(self, k, v):
            for i in range(k.shape[1]):
                self._k.append(np.array(k[:, i], dtype=self.dtype))
                self._v.append(np.array(v[:, i], dtype=self.dtype))
                self._seen += 1
            if not use_deque:
                del self._k[:-self._keep], self._v[:-self._keep]

        def _stack(self, rows):
            h, d = self._shape
            return np.stack(list(rows), axis=1) if rows else np.zeros((h, 0, d), self.dtype)

        @property
        def keys(self):
            return self._stack(self._k)

        @property
        def values(self):
            return self._stack(self._v)

    return lambda ref: {"SlidingWindowKVCache": SlidingWindowKVCache}


mistake(8, "swa_kv_cache", "window_plus_one", "deque_maxlen_w_plus_1", _swa(extra=1, use_deque=True))
mistake(8, "swa_kv_cache", "window_plus_one", "list_trimmed_to_w_plus_1", _swa(extra=1))
correct(8, "swa_kv_cache", "deque_maxlen_w", _swa(use_deque=True))


# ---------------------------------------------------------------------------
# Level 8 · prefix_cache: a block's key from its own tokens only
# ---------------------------------------------------------------------------

def _hash_tuples(self, tokens):
    bs = self.block_size
    return [tuple(tokens[i:i + bs]) for i in range(0, len(tokens) - bs + 1, bs)]


def _hash_strings(self, tokens):
    bs = self.block_size
    return [",".join(map(str, tokens[j * bs:j * bs + bs])) for j in range(len(tokens) // bs)]


def _hash_chain_strings(self, tokens):
    """Correct: the key of a block is the text of the whole prefix up to its end."""
    bs = self.block_size
    return [",".join(map(str, tokens[:(j + 1) * bs])) for j in range(len(tokens) // bs)]


mistake(8, "prefix_cache", "hash_block_only", "tuple_of_block", subclass("PrefixCache", _hashes=_hash_tuples))
mistake(8, "prefix_cache", "hash_block_only", "string_of_block", subclass("PrefixCache", _hashes=_hash_strings))
correct(8, "prefix_cache", "whole_prefix_as_text", subclass("PrefixCache", _hashes=_hash_chain_strings))


# ---------------------------------------------------------------------------
# Level 8 · continuous_batching: EOS missed, two ways
# ---------------------------------------------------------------------------

def _update_with(stop):
    def update(self, new_tokens):
        finished = []
        for rid in self._batch:
            r = self._reqs[rid]
            r["out"].append(int(new_tokens[rid]))
            if stop(self, r):
                self._free.extend(r["blocks"])
                r["blocks"], r["status"] = [], "finished"
                self._running.remove(rid)
                finished.append(rid)
        self._batch = []
        return finished
    return update


def _stop_one_late(self, r):       # looks at the token before the newest
    return (len(r["out"]) > 1 and r["out"][-2] == self.eos_token) or len(r["out"]) >= r["max"]


def _stop_on_eos_string(self, r):  # compares with the EOS as text: never equal to an int
    return str(self.eos_token) == r["out"][-1] or len(r["out"]) == r["max"]


def _stop_any(self, r):
    return self.eos_token in r["out"][-1:] or len(r["out"]) >= r["max"]


mistake(8, "continuous_batching", "eos_ignored", "checks_previous_token",
        subclass("Scheduler", update=_update_with(_stop_one_late)))
mistake(8, "continuous_batching", "eos_ignored", "eos_compared_as_text",
        subclass("Scheduler", update=_update_with(_stop_on_eos_string)))
correct(8, "continuous_batching", "last_token_slice", subclass("Scheduler", update=_update_with(_stop_any)))


# ---------------------------------------------------------------------------
# Level 8 · speculative_decoding: the replacement drawn from the target
# ---------------------------------------------------------------------------

def _spec(replacement):
    def speculative_step(target_probs, draft_probs, draft_tokens, accept_u, resample_u):
        p, q = np.asarray(target_probs, float), np.asarray(draft_probs, float)
        out = []
        for i, x in enumerate(int(t) for t in draft_tokens):
            if accept_u[i] * q[i, x] < p[i, x]:
                out.append(x)
                continue
            out.append(replacement(p[i], q[i], resample_u))
            return out
        out.append(_draw(p[len(out)], resample_u))
        return out
    return speculative_step


def _draw(probs, u):
    cdf = np.cumsum(probs) / np.sum(probs)
    j = int(np.argmax(cdf > u)) if (cdf > u).any() else len(probs) - 1
    while probs[j] <= 0:
        j -= 1
    return j


def _from_target_searchsorted(p, q, u):
    return min(int(np.searchsorted(np.cumsum(p), u, side="right")), p.size - 1)


def _from_target_argmax_cdf(p, q, u):
    return _draw(p, u)


def _from_residual(p, q, u):
    return _draw(np.clip(p - q, 0, None), u)


def _spec_module(replacement):
    def acceptance_rate(p, q):
        return float(1 - 0.5 * np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())

    def expected_tokens_per_step(alpha, gamma):
        return float(sum(alpha ** i for i in range(gamma + 1)))

    return funcs(speculative_step=_spec(replacement), acceptance_rate=acceptance_rate,
                 expected_tokens_per_step=expected_tokens_per_step)


mistake(8, "speculative_decoding", "resample_from_target", "searchsorted_on_p",
        _spec_module(_from_target_searchsorted))
mistake(8, "speculative_decoding", "resample_from_target", "cdf_scan_on_p", _spec_module(_from_target_argmax_cdf))
correct(8, "speculative_decoding", "residual_by_cdf_scan", _spec_module(_from_residual))


# ---------------------------------------------------------------------------
# Level 8 · serving_latency: TPOT over every token
# ---------------------------------------------------------------------------

def _metrics_with(tpot):
    def latency_metrics(arrival_ms, output_lens, first_token_ms, finish_ms, ttft_slo_ms, tpot_slo_ms):
        a, n = np.asarray(arrival_ms, float), np.asarray(output_lens, float)
        f, e = np.asarray(first_token_ms, float), np.asarray(finish_ms, float)
        ttft, per = f - a, tpot(n, f, e)
        ok = (ttft <= ttft_slo_ms) & (per <= tpot_slo_ms)
        return {"ttft_ms": ttft, "tpot_ms": per, "e2e_ms": e - a, "slo_ok": ok,
                "p50_ttft_ms": float(np.percentile(ttft, 50)), "p99_ttft_ms": float(np.percentile(ttft, 99)),
                "p50_tpot_ms": float(np.percentile(per, 50)), "p99_tpot_ms": float(np.percentile(per, 99)),
                "slo_attainment": float(np.mean(ok))}
    return latency_metrics


def _tpot_mean_rate(n, f, e):      # "time per output token": decode time over the tokens
    return (e - f) / n


def _tpot_rate_inverse(n, f, e):    # decode time times the reciprocal of the token count
    return (e - f) * np.reciprocal(n)


def _tpot_gaps(n, f, e):
    return np.divide(e - f, n - 1, out=np.zeros_like(e), where=n > 1)


def _serving(tpot):
    return lambda ref: dict(serve_trace=ref.serve_trace, latency_metrics=_metrics_with(tpot))


mistake(8, "serving_latency", "tpot_over_all_tokens", "decode_time_over_n", _serving(_tpot_mean_rate))
mistake(8, "serving_latency", "tpot_over_all_tokens", "times_reciprocal_of_n", _serving(_tpot_rate_inverse))
correct(8, "serving_latency", "divide_where_gaps", _serving(_tpot_gaps))


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

LEVEL_6_TO_8 = (
    (6, "block_allocator"), (6, "paged_kv_cache"), (6, "waste"), (6, "paged_attention_decode"),
    (6, "paged_attention_decode_triton"), (7, "ring_attention_sim"), (7, "zigzag_shards"),
    (7, "ring_overlap"), (7, "ring_attention"), (8, "kv_quantize"), (8, "swa_kv_cache"),
    (8, "prefix_cache"), (8, "continuous_batching"), (8, "speculative_decoding"),
    (8, "serving_latency"))


@pytest.mark.parametrize("level, kata, expected, label, make", CASES,
                         ids=[f"{c[1]}-{c[2]}-{c[3]}" for c in CASES])
def test_variant_of_a_mistake_is_named(level, kata, expected, label, make):
    k, ref = _kata(level, kata)
    assert expected in {m.id for m in k.misconceptions}
    assert_named(verdicts(k, ref, make(ref)), expected)


@pytest.mark.parametrize("level, kata, label, make", CORRECT, ids=[f"{c[1]}-{c[2]}" for c in CORRECT])
def test_correct_variant_names_nothing(level, kata, label, make):
    k, ref = _kata(level, kata)
    assert_silent(verdicts(k, ref, make(ref)))


def test_every_kata_of_levels_6_to_8_has_two_named_variants_and_a_correct_one():
    for lv, name in LEVEL_6_TO_8:
        per: dict = {}
        for c in CASES:
            if (c[0], c[1]) == (lv, name):
                per.setdefault(c[2], []).append(c[3])
        assert any(len(v) >= 2 for v in per.values()), (name, per)
        assert any((c[0], c[1]) == (lv, name) for c in CORRECT), name


def test_every_misconception_of_levels_6_to_8_has_two_probes():
    for lv, name in LEVEL_6_TO_8:
        k, _ = _kata(lv, name)
        assert len(k.misconceptions) >= 5, name
        thin = [m.id for m in k.misconceptions if len(m.probes) < 2]
        assert not thin, (name, thin)


# ---------------------------------------------------------------------------
# A mistake no misconception models: nothing is named, and the failure says where in
# the kata's terms (which sequence and head; which step of a story)
# ---------------------------------------------------------------------------

def _first_length_for_all(q, k_pages, v_pages, block_tables, seq_lens):
    """Unmodelled: every sequence read with the batch's first length (seq_lens[0])."""
    import torch

    first = torch.full_like(seq_lens, int(seq_lens[0]))
    return _decode(q, k_pages, v_pages, block_tables, torch.minimum(first, seq_lens.new_tensor(
        [block_tables.shape[1] * k_pages.shape[1]])))


def test_unmodelled_decode_mistake_says_which_sequence():
    k, ref = _kata(6, "paged_attention_decode")
    results = verdicts(k, ref, {"paged_attention_decode": _first_length_for_all})
    failed = [r for r in results if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    # the diagnostics' batch has lengths 1, 4, 6, 9: sequence 0 is right, 1–3 are wrong
    assert any("Where it goes wrong" in r.message and "— sequence 1–3 of 0–3" in r.message
               for r in failed), failed[0].message


def _free_returns_lifo_but_forgets_refcount(self, block):
    """Unmodelled: free checks ownership, returns the block, but leaves its refcount at 1
    (so the next allocate hands out a block whose refcount reads 2 after incref)."""
    self._check_owned(block, "free")
    if self._refcounts[block] == 1:
        self._free.appendleft(block)
    else:
        self._refcounts[block] -= 1


def test_unmodelled_allocator_mistake_says_which_step():
    k, ref = _kata(6, "block_allocator")
    make = subclass("BlockAllocator", free=_free_returns_lifo_but_forgets_refcount)
    results = verdicts(k, ref, make(ref))
    failed = [r for r in results if r.outcome == FAILED]
    assert failed and not any(r.misconception_ids for r in failed)
    assert any("Where it goes wrong" in r.message and "— step (0-based) 4" in r.message
               for r in failed), failed[0].message
