"""Level 6 · paged_kv_cache — block tables over a shared pool, forks by reference, copy-on-write."""

from __future__ import annotations

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check
from attnkata.layouts import LAYOUTS, covers

from .cache_model import CacheDriver, CacheMachine, cdiv, tokens_kv
from .stateful import outcome, run_machine, wrong_class

# ---------------------------------------------------------------------------
# Scenarios: short stories; each returns only what any correct cache agrees on
# ---------------------------------------------------------------------------


def _gather(cache, sid):
    """The sequence's keys and values, read through its block table: ``[n, H, d]`` each."""
    import torch

    table = torch.tensor([int(b) for b in cache.block_table(sid)], dtype=torch.long)
    pos = torch.arange(cache.seq_len(sid))
    bs = cache.k_pages.shape[1]
    return cache.k_pages[table[pos // bs], pos % bs], cache.v_pages[table[pos // bs], pos % bs]


def _put(cache, sid, first, count):
    k, v = tokens_kv(list(range(first, first + count)))
    cache.append(sid, k, v)


@check("a fork shares every block of its parent: same block table, same tokens")
def fork_shares_blocks(ctx):
    def story(ns):
        c = ns.PagedKVCache(8, 4, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, 5)
        f = c.fork(s)
        return {"block_table(f) == block_table(s)": c.block_table(f) == c.block_table(s),
                "seq_len(f)": c.seq_len(f), "f's keys and values": _gather(c, f)}

    ctx.expect_scenario(story, "block size 4: append 5 tokens to s, f = fork(s)")


@check("appending into a shared, partly filled block copies it first (copy-on-write); "
       "neither sequence sees the other's tokens")
def copy_on_write(ctx):
    def story(ns):
        c = ns.PagedKVCache(8, 4, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, 5)
        f = c.fork(s)
        _put(c, f, 10, 1)
        _put(c, s, 20, 1)
        ts, tf = c.block_table(s), c.block_table(f)
        return {"first (full) block still shared": tf[0] == ts[0],
                "second block: f has its own copy": tf[1] != ts[1],
                "s's keys and values": _gather(c, s), "f's keys and values": _gather(c, f)}

    ctx.expect_scenario(story, "block size 4: s has 5 tokens, f = fork(s); f appends one token, "
                               "then s appends one")


@check("appending to a fork whose last block is full allocates a new block and copies nothing")
def fork_of_full_blocks(ctx):
    def story(ns):
        c = ns.PagedKVCache(8, 4, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, 8)
        before = c.block_table(s)
        f = c.fork(s)
        _put(c, f, 10, 1)
        ts, tf = c.block_table(s), c.block_table(f)
        return {"s's block table unchanged": ts == before, "f's first two blocks are s's": tf[:2] == ts,
                "len(block_table(f))": len(tf), "f's third block is new": tf[-1] not in ts,
                "s's keys and values": _gather(c, s), "f's keys and values": _gather(c, f)}

    ctx.expect_scenario(story, "block size 4: s has 8 tokens (two full blocks), f = fork(s), "
                               "f appends one token")


@check("an append that does not fit raises RuntimeError and changes nothing; freed blocks "
       "are then usable")
def out_of_blocks_changes_nothing(ctx):
    def story(ns):
        c = ns.PagedKVCache(4, 2, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, 5)
        f = c.add_sequence()
        seen = {"appending 3 tokens to f (2 blocks needed, 1 free)": outcome(lambda: _put(c, f, 10, 3)),
                "after it, seq_len(f)": c.seq_len(f), "after it, block_table(f)": c.block_table(f),
                "after it, seq_len(s)": c.seq_len(s),
                "after it, len(block_table(s))": len(c.block_table(s))}
        c.free_sequence(s)
        seen["after free_sequence(s), appending 6 tokens to f"] = outcome(lambda: _put(c, f, 20, 6))
        seen["then seq_len(f)"] = c.seq_len(f)
        seen["f's keys and values"] = _gather(c, f)
        return seen

    ctx.expect_scenario(story, "4 blocks of 2: s takes 3 blocks (5 tokens); a new sequence f "
                               "appends 3 tokens (needs 2 blocks); then free s and append 6 to f")


@check("free_sequence gives every block back to the pool")
def free_returns_blocks(ctx):
    def story(ns):
        c = ns.PagedKVCache(2, 2, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, 4)
        c.free_sequence(s)
        t = c.add_sequence()
        return {"appending 4 tokens to a new sequence t": outcome(lambda: _put(c, t, 10, 4)),
                "seq_len(t)": c.seq_len(t), "t's keys and values": _gather(c, t)}

    ctx.expect_scenario(story, "2 blocks of 2: fill them with s, free s, fill them again with t")


@check("a fork keeps its blocks when its parent is freed")
def fork_outlives_parent(ctx):
    def story(ns):
        c = ns.PagedKVCache(2, 2, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, 4)
        f = outcome(lambda: c.fork(s))
        rest = ("appending 2 tokens to t (f still holds both blocks)", "f's keys and values", "seq_len(t)")
        if isinstance(f, str):  # a fork that needs blocks fails here: the pool is full
            return {"fork(s) with every block in use": f, **{key: "(fork failed)" for key in rest}}
        c.free_sequence(s)
        t = c.add_sequence()
        appended = outcome(lambda: _put(c, t, 10, 2))
        return {"fork(s) with every block in use": "no error",
                **dict(zip(rest, (appended, _gather(c, f), c.seq_len(t))))}

    ctx.expect_scenario(story, "2 blocks of 2: s fills both, f = fork(s), free s; a new sequence "
                               "t appends 2 tokens")


@check("pages are [num_blocks, block_size, n_heads, head_dim] in the cache's dtype; "
       "a new sequence is empty")
def pages_layout(ctx):
    def story(ns):
        import torch

        c = ns.PagedKVCache(3, 4, 2, 3, dtype=torch.float64)
        s = c.add_sequence()
        seen = {"(seq_len, block_table) of a new sequence": (c.seq_len(s), c.block_table(s))}
        _put(c, s, 0, 2)
        seen.update({"k_pages shape": tuple(c.k_pages.shape), "k_pages dtype": str(c.k_pages.dtype),
                     "v_pages shape": tuple(c.v_pages.shape), "v_pages dtype": str(c.v_pages.dtype),
                     "s's keys and values": _gather(c, s)})
        return seen

    ctx.expect_scenario(story, "PagedKVCache(3, 4, n_heads=2, head_dim=3, dtype=torch.float64), "
                               "append 2 float32 tokens")


@check("random interleavings of add, append, fork, free and filling the pool agree with a "
       "model (hypothesis stateful testing): no block leaked or freed twice, sharing exact, "
       "no write visible to another sequence")
def cache_model(ctx):
    run_machine(ctx, CacheMachine, CacheDriver, steps=16)


# ---------------------------------------------------------------------------
# Misconceptions and fakes: the reference cache with one method done wrong
# ---------------------------------------------------------------------------


def _append_with(self, seq_id, k, v, *, copy_on_write=True, check_first=True):
    table, n, t, bs = self._tables[seq_id], self._lens[seq_id], k.shape[0], self.block_size
    if t == 0:
        return
    shared_tail = copy_on_write and n % bs != 0 and self.allocator.refcount(table[-1]) > 1
    if check_first and cdiv(n + t, bs) - len(table) + int(shared_tail) > self.allocator.num_free:
        raise RuntimeError("out of KV blocks")
    if shared_tail:
        old, new = table[-1], self.allocator.allocate()
        self.k_pages[new], self.v_pages[new] = self.k_pages[old], self.v_pages[old]
        self.allocator.free(old)
        table[-1] = new
    while len(table) * bs < n + t:
        table.append(self.allocator.allocate())  # raises halfway when unchecked
    for i in range(t):
        block, row = table[(n + i) // bs], (n + i) % bs
        self.k_pages[block, row], self.v_pages[block, row] = k[i], v[i]
    self._lens[seq_id] = n + t


class _CopyingFork:
    def fork(self, seq_id):
        child = self.add_sequence()
        for block in self._tables[seq_id]:
            copy = self.allocator.allocate()
            self.k_pages[copy], self.v_pages[copy] = self.k_pages[block], self.v_pages[block]
            self._tables[child].append(copy)
        self._lens[child] = self._lens[seq_id]
        return child


class _NoCopyOnWrite:
    def append(self, seq_id, k, v):
        _append_with(self, seq_id, k, v, copy_on_write=False)


class _ForkWithoutIncref:
    def fork(self, seq_id):
        child = self.add_sequence()
        self._tables[child] = list(self._tables[seq_id])
        self._lens[child] = self._lens[seq_id]
        return child


class _LeakyFree:
    def free_sequence(self, seq_id):
        del self._tables[seq_id], self._lens[seq_id]


class _PartialAllocation:
    def append(self, seq_id, k, v):
        _append_with(self, seq_id, k, v, check_first=False)


class _ForkEmpty:
    def fork(self, seq_id):
        return self.add_sequence()


class _FreeNothing:
    def free_sequence(self, seq_id):
        pass


def _impl(mixin):
    return {"PagedKVCache": wrong_class("paged_kv_cache.py", "PagedKVCache", mixin)}



@covers("noncontiguous")
@check("tokens appended as transposed and sliced views land in the pages by value")
def appends_of_views(ctx):
    for layout in ("transposed", "sliced"):
        def story(ns, layout=layout):
            c = ns.PagedKVCache(8, 4, 2, 3)
            s = c.add_sequence()
            for first, count in ((0, 3), (3, 1), (4, 6)):
                k, v = tokens_kv(list(range(first, first + count)))
                c.append(s, LAYOUTS[layout](k), LAYOUTS[layout](v))
            return {"seq_len(s)": c.seq_len(s), "s's keys and values": _gather(c, s)}

        ctx.expect_scenario(story, f"block size 4: 3, 1 and 6 tokens appended to s as "
                                   f"{layout} views of [n, H, d] tensors")


PAGED_KV_CACHE = Kata(
    id="paged_kv_cache",
    level=6,
    title="A paged KV cache: block tables, forks that share, copy-on-write",
    path="level6/paged_kv_cache.py",
    entries=("PagedKVCache",),
    checks=(fork_shares_blocks, copy_on_write, fork_of_full_blocks, out_of_blocks_changes_nothing,
            free_returns_blocks, fork_outlives_parent, pages_layout, cache_model,
            appends_of_views),
    predictions=(
        Prediction("blocks_after_fork", "block size 16: a sequence of 1000 tokens, then one fork. "
                   "How many physical blocks do the two use together?", 63, kind="exact",
                   why="⌈1000/16⌉ = 63 blocks, and the fork shares all of them."),
        Prediction("blocks_after_fork_appends", "…then the fork appends one token. How many "
                   "blocks are in use now?", 64, kind="exact",
                   why="1000 = 62·16 + 8: the last block is partly filled and shared, so the fork "
                       "copies it (copy-on-write) and writes its token there: 62 shared + 2."),
        Prediction("tokens_copied_on_write", "…and how many tokens' keys and values did that "
                   "copy-on-write copy?", 8, kind="exact",
                   why="Only the filled rows of the shared last block: 1000 − 62·16 = 8."),
        Prediction("blocks_after_fork_appends_full", "Same, but the sequence had 1008 tokens "
                   "(63 full blocks) when forked. Blocks in use after the fork appends one token?",
                   64, kind="exact",
                   why="Nothing to copy: the last block is full, so the new token goes into a "
                       "fresh block of the fork's own. 63 shared + 1."),
    ),
    misconceptions=(
        Misconception("copying_fork", "fork copies every block instead of sharing it",
                      _impl(_CopyingFork),
                      "A fork only adds an owner: the child's block table is a copy of the "
                      "parent's list of ids, and each of those blocks gets incref. Copying "
                      "the data is what paging is meant to avoid (beam search would copy the "
                      "whole prompt for every beam)."),
        Misconception("no_copy_on_write", "appends into a shared block in place (no copy-on-write)",
                      _impl(_NoCopyOnWrite),
                      "Before writing into the last block, check: partly filled and refcount > 1? "
                      "Then allocate a new block, copy the filled rows, free (decref) the old one "
                      "and point your block table at the copy."),
        Misconception("fork_without_incref", "fork shares the block table but never increfs "
                      "the blocks", _impl(_ForkWithoutIncref),
                      "Every shared block has one more owner after a fork. Without incref, "
                      "freeing either sequence returns blocks the other still reads, and "
                      "copy-on-write never sees a refcount above 1."),
        Misconception("leaky_free", "free_sequence forgets the blocks (never frees them)",
                      _impl(_LeakyFree),
                      "Free (decref) every block in the sequence's table; the last owner's "
                      "free returns it to the pool. Otherwise the pool shrinks for good."),
        Misconception("partial_allocation", "an append that runs out of blocks keeps the blocks "
                      "it already took", _impl(_PartialAllocation),
                      "Count the blocks the append needs (new blocks, plus one for a "
                      "copy-on-write) and compare with num_free before allocating anything: "
                      "an append that cannot finish must change nothing."),
    ),
    fakes=(Fake("fork_is_empty", _impl(_ForkEmpty)), Fake("free_does_nothing", _impl(_FreeNothing))),
    generic_fakes=(),
    claims=(
        Claim("fork-shares-until-written", "A fork shares its parent's blocks until one of them "
              "writes: then only the shared, partly filled last block is copied, and neither "
              "sequence ever sees the other's tokens.", scope="exact", source="kwon-2023-paged",
              evidence=("fork_shares_blocks", "copy_on_write", "fork_of_full_blocks", "cache_model"),
              not_claimed="Nothing about prefix caching across unrelated requests, eviction, "
                          "swapping to CPU memory or a scheduler."),
        Claim("paged-cache-bookkeeping", "Under random interleavings of add, append, fork and "
              "free, no block leaks or is freed twice, and an append that does not fit changes "
              "nothing.", scope="exact", source="kwon-2023-paged",
              evidence=("out_of_blocks_changes_nothing", "free_returns_blocks",
                        "fork_outlives_parent", "cache_model"),
              not_claimed="Checked on small pools (≤ 6 blocks) and short random stories, not "
                          "proved for every history."),
    ),
    hints=(
        "Keep, per sequence, a Python list of block ids (its block table) and its length; token "
        "t lives in block table[t // block_size] at row t % block_size.",
        "fork: new id, table = list(parent's table), incref every block. free_sequence: free "
        "every block of its table. append: first count the blocks you will need and raise "
        "RuntimeError if more than num_free.",
        "Copy-on-write happens once per append, before writing: if length % block_size != 0 and "
        "refcount(table[-1]) > 1, allocate a block, copy k_pages/v_pages rows, free the old "
        "block, table[-1] = new.",
    ),
    requires=("torch",),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): short stories read through the public API only
# (block_table, seq_len, the pages), so any bookkeeping a learner chose is judged by
# what it does: shares or copies at a fork, copies before a write into a shared block,
# returns blocks on free, keeps none after a failed append.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds  # noqa: E402


def _tag_of(cache, sid, pos):
    """The tag of the token at ``pos`` of ``sid`` (token_kv encodes it in the keys)."""
    k, _ = _gather(cache, sid)
    return int(k[pos, 0, 0].item()) // 6


def _fork_tables(ns):
    c = ns.PagedKVCache(8, 4, 2, 3)
    s = c.add_sequence()
    _put(c, s, 0, 5)
    f = c.fork(s)
    ts, tf = c.block_table(s), c.block_table(f)
    return {"blocks shared": len(set(ts) & set(tf)), "f's blocks": len(tf),
            "f's tokens": [_tag_of(c, f, p) for p in range(c.seq_len(f))]}


def _fork_full_pool(ns):
    c = ns.PagedKVCache(2, 2, 2, 3)
    s = c.add_sequence()
    _put(c, s, 0, 4)
    done = outcome(lambda: c.fork(s))
    return "no error" if not isinstance(done, str) else done


def _writes_cross(child_first, bs, n, free_after=False):
    """s has n tokens, f = fork(s); f and s each append one (in the order given).
    Returns (does one sequence read the other's new token, then free both and fill the
    pool with a new sequence: its outcome)."""
    def run(ns):
        c = ns.PagedKVCache(4, bs, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, n)
        f = c.fork(s)
        first, second = (f, s) if child_first else (s, f)
        _put(c, first, 100, 1)
        _put(c, second, 200, 1)
        crossed = _tag_of(c, first, n) != 100
        if not free_after:
            return crossed
        c.free_sequence(s)
        c.free_sequence(f)
        t = c.add_sequence()
        filled = outcome(lambda: _put(c, t, 300, 4 * bs))
        return crossed, "no error" if not isinstance(filled, str) else filled
    return run


def _parent_freed(ns):
    """2 blocks of 2: s fills both, f = fork(s), free s, a new t appends 2 tokens."""
    c = ns.PagedKVCache(2, 2, 2, 3)
    s = c.add_sequence()
    _put(c, s, 0, 4)
    f = c.fork(s)
    c.free_sequence(s)
    t = c.add_sequence()
    done = outcome(lambda: _put(c, t, 10, 2))
    return ("no error" if not isinstance(done, str) else done,
            [_tag_of(c, f, p) for p in range(c.seq_len(f))])


def _child_freed(ns):
    """bs 4, 3 blocks: s has 5 tokens, f = fork(s), free f, a new t appends 12 tokens
    (three blocks: more than are free while s holds two)."""
    c = ns.PagedKVCache(3, 4, 2, 3)
    s = c.add_sequence()
    _put(c, s, 0, 5)
    f = c.fork(s)
    c.free_sequence(f)
    t = c.add_sequence()
    outcome(lambda: _put(c, t, 50, 12))
    return [_tag_of(c, s, p) for p in range(c.seq_len(s))]


def _refill_after_free(ns):
    """2 blocks of 2: fill with s, free s, then a new t appends 4 tokens."""
    c = ns.PagedKVCache(2, 2, 2, 3)
    s = c.add_sequence()
    _put(c, s, 0, 4)
    c.free_sequence(s)
    t = c.add_sequence()
    done = outcome(lambda: _put(c, t, 10, 4))
    return "no error" if not isinstance(done, str) else done


def _refill_after_fork_free(ns):
    """4 blocks of 2: s has 3 tokens, f = fork(s), free s and f, a new t appends 8."""
    c = ns.PagedKVCache(4, 2, 2, 3)
    s = c.add_sequence()
    _put(c, s, 0, 3)
    f = c.fork(s)
    c.free_sequence(s)
    c.free_sequence(f)
    t = c.add_sequence()
    done = outcome(lambda: _put(c, t, 10, 8))
    return "no error" if not isinstance(done, str) else done


def _failed_append(blocks, bs, first, more, new_seq):
    """A pool of ``blocks`` of ``bs``; s appends ``first`` tokens; then ``more`` tokens go to
    a new sequence (``new_seq``) or to s, which does not fit. Returns (outcome, blocks the
    target sequence holds, blocks its length needs)."""
    def run(ns):
        c = ns.PagedKVCache(blocks, bs, 2, 3)
        s = c.add_sequence()
        _put(c, s, 0, first)
        target = c.add_sequence() if new_seq else s
        done = outcome(lambda: _put(c, target, 40, more))
        return ("no error" if not isinstance(done, str) else done,
                len(c.block_table(target)), cdiv(c.seq_len(target), bs))
    return run


def _kept_blocks(g, w):
    return g[0] != "no error" and w[0] != "no error" and g[1] > g[2]


def _three_sequences(ns):
    """Diagnostics: the token tags of s, f = fork(s) and g = fork(f), by position."""
    import numpy as np

    c = ns.PagedKVCache(8, 4, 2, 3)
    s = c.add_sequence()
    _put(c, s, 0, 5)
    f = c.fork(s)
    _put(c, f, 10, 2)
    _put(c, s, 20, 1)
    g = c.fork(f)
    _put(c, g, 30, 3)
    _put(c, f, 40, 1)
    out = np.full((3, 10), -1.0)
    for i, sid in enumerate((s, f, g)):
        for p in range(c.seq_len(sid)):
            out[i, p] = _tag_of(c, sid, p)
    return out


PAGED_KV_CACHE = attach(PAGED_KV_CACHE, probes={
    # source: vllm-project/vllm#3347 (fork only increfs the parent's blocks; beam search
    # copying the prompt for every beam is what paging avoids)
    "copying_fork": (
        Probe("block size 4: s has 5 tokens, f = fork(s): blocks shared", _fork_tables,
              _holds(lambda g, w: g["blocks shared"] == 0 and g["f's blocks"] > 0
                     and g["f's tokens"] == w["f's tokens"])),
        Probe("2 blocks of 2, both used by s: fork(s)", _fork_full_pool,
              _holds(lambda g, w: g != "no error" and w == "no error")),
    ),
    # source: lm-sys/FastChat and vLLM's copy-on-write notes: a beam that writes into a
    # shared, partly filled block changes its siblings' tokens (vllm-project/vllm#3347)
    "no_copy_on_write": (
        Probe("block size 4: s has 5 tokens, f = fork(s); f appends, then s: does f read "
              "s's token?", _writes_cross(True, 4, 5), _holds(lambda g, w: g is True and not w)),
        Probe("block size 2: s has 3 tokens, f = fork(s); s appends, then f; then both are "
              "freed and a new sequence fills the pool", _writes_cross(False, 2, 3, True),
              _holds(lambda g, w: g[0] is True and g[1] == "no error" and w == (False, "no error"))),
    ),
    # source: vllm-project/vllm#3347 (a shared block's refcount must count every owner,
    # or freeing one sequence returns blocks another still reads)
    "fork_without_incref": (
        Probe("2 blocks of 2: s fills both, f = fork(s), free s, a new sequence appends 2",
              _parent_freed, _holds(lambda g, w: g[0] == "no error" and w[0] != "no error"
                                    and g[1] != w[1])),
        Probe("3 blocks of 4: s has 5 tokens, f = fork(s), free f, a new sequence appends "
              "12: s's tokens", _child_freed,
              _holds(lambda g, w: isinstance(g, list) and len(g) == len(w) and g != w)),
    ),
    # source: kekzl/imp#1115 and jjang-ai/vmlx#68 (a finished request whose blocks never
    # reach the free list: allocation fails after enough requests)
    "leaky_free": (
        Probe("2 blocks of 2: fill with s, free s, a new sequence appends 4", _refill_after_free,
              _holds(lambda g, w: g != "no error" and w == "no error")),
        Probe("4 blocks of 2: s has 3 tokens, f = fork(s), free both, a new sequence appends 8",
              _refill_after_fork_free, _holds(lambda g, w: g != "no error" and w == "no error")),
    ),
    # source: inference-sim/inference-sim#200 (blocks taken before the pool ran dry are
    # kept: no transactional rollback) and vllm-project/vllm#17834 (can_allocate and
    # allocate disagreeing)
    "partial_allocation": (
        Probe("4 blocks of 2: s has 5 tokens; a new sequence appends 3 (2 blocks, 1 free)",
              _failed_append(4, 2, 5, 3, True), _holds(_kept_blocks)),
        Probe("3 blocks of 2: s has 2 tokens, then appends 6 more (3 blocks, 2 free)",
              _failed_append(3, 2, 2, 6, False), _holds(_kept_blocks)),
    ),
}, diagnostics=(
    Probe("block size 4: s (5 tokens), f = fork(s) +2, s +1, g = fork(f) +3, f +1 — the "
          "token at each position of each sequence", _three_sequences,
          axes=("sequence (s, f, g)", "position")),
))


class _CopyWholeBlock:
    """Correct, other way: copy-on-write copies the whole shared block (rows past the
    sequence's end are never read), and blocks are taken one append at a time."""

    def append(self, seq_id, k, v):
        table, n, bs = self._tables[seq_id], self._lens[seq_id], self.block_size
        if n % bs and k.shape[0] and self.allocator.refcount(table[-1]) > 1:
            if cdiv(n + k.shape[0], bs) - len(table) + 1 > self.allocator.num_free:
                raise RuntimeError("out of KV blocks")
            new = self.allocator.allocate()
            self.k_pages[new] = self.k_pages[table[-1]].clone()
            self.v_pages[new] = self.v_pages[table[-1]].clone()
            self.allocator.free(table[-1])
            table[-1] = new
        super().append(seq_id, k, v)


PAGED_KV_CACHE = attach(PAGED_KV_CACHE, variants=(Fake("cow_copies_whole_block", _impl(_CopyWholeBlock)),))
