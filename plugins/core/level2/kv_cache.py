"""Level 2 — KVCache: a cache that grows in amortised O(1) per token, read through views."""

from __future__ import annotations

import tracemalloc

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check
from attnkata.layouts import LAYOUTS, covers
from attnkata.diagnose import loglog_slope
from attnkata.strategies import FLOAT_DTYPES, seeds, sizes
from attnkata_plugins.kvlab import kv_cache_bytes as lab_bytes

GiB = 2**30

# ---------------------------------------------------------------------------
# KVCache
# ---------------------------------------------------------------------------


@st.composite
def _appends(draw):
    n_heads, head_dim = draw(sizes(1, 5)), draw(sizes(1, 9))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    chunks = draw(st.lists(st.one_of(st.just(1), sizes(1, 40)), min_size=1, max_size=8))
    return n_heads, head_dim, dtype, chunks, draw(seeds())


def _drive(ns, n_heads, head_dim, dtype, chunks, seed, in_dtype=None):
    """Append chunks of tokens; after each, record (len, keys copy, values copy)."""
    rng = np.random.default_rng(seed)
    cache = ns.KVCache(n_heads, head_dim, dtype=dtype)
    seen = [(len(cache), np.array(cache.keys), np.array(cache.values))]
    for t in chunks:
        k = rng.standard_normal((n_heads, t, head_dim)).astype(in_dtype or dtype)
        v = rng.standard_normal((n_heads, t, head_dim)).astype(in_dtype or dtype)
        cache.append(k, v)
        seen.append((len(cache), np.array(cache.keys), np.array(cache.values)))
    return seen


@check("after every append, len, keys and values match the reference (chunks of 1 to 40 tokens)")
def cache_matches_reference(ctx):
    @ctx.given(case=_appends())
    def prop(case):
        ctx.expect_scenario(lambda ns: _drive(ns, *case), f"KVCache{case[:2]} appends {case[3]}")

    prop()


@check("stores in the cache's dtype, whatever the dtype of what is appended")
def cache_keeps_its_dtype(ctx):
    ctx.expect_scenario(lambda ns: _drive(ns, 2, 3, np.float32, [2, 1, 5], 7, np.float64),
                        "KVCache(2, 3, dtype=float32) fed float64 chunks")
    ctx.expect_scenario(lambda ns: _drive(ns, 3, 4, np.float64, [1, 3], 8),
                        "KVCache(3, 4, dtype=float64)")


@check("keys and values are exactly the filled part, [n_heads, len(cache), head_dim], never the capacity")
def cache_shape_is_filled_part(ctx):
    def fill(ns):
        cache = ns.KVCache(2, 4, dtype=np.float64)
        seen = []
        for t in (3, 1, 1, 9, 20):
            cache.append(np.full((2, t, 4), 1.0), np.full((2, t, 4), 2.0))
            seen.append((tuple(cache.keys.shape), tuple(cache.values.shape)))
        return seen

    seen = ctx.run(lambda: fill(ctx.target), "KVCache(2, 4) after appends of 3, 1, 1, 9, 20 tokens")
    for T, (ks, vs) in zip((3, 4, 5, 14, 34), seen):
        if ks != (2, T, 4) or vs != (2, T, 4):
            roomy = len(ks) == 3 and len(vs) == 3 and ks[1] > T and vs[1] > T
            ctx.fail(f"KVCache(2, 4) holding {T} tokens: keys is {list(ks)} and values {list(vs)}, "
                     f"expected [2, {T}, 4] each", misconception="whole_capacity" if roomy else None)


def _filled_cache(ns):
    cache = ns.KVCache(2, 4, dtype=np.float32)
    for _ in range(3):
        cache.append(np.ones((2, 2, 4), np.float32), np.zeros((2, 2, 4), np.float32))
    return cache


def reads_share_memory(ns):
    """Probe (runs next to the learner's code): do two reads of ``keys`` (and of ``values``)
    return arrays sharing memory?  ``{"keys": bool, "values": bool}``."""
    cache = _filled_cache(ns)
    seen = {}
    for name in ("keys", "values"):
        a, b = getattr(cache, name), getattr(cache, name)
        seen[name] = bool(isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                          and np.shares_memory(a, b))
    return seen


@check("keys and values are views of one stored buffer, not fresh copies on every read")
def cache_returns_views(ctx):
    shared = ctx.probe(__name__, "reads_share_memory", what="KVCache(2, 4).keys read twice")
    ctx.expect_scenario(lambda ns: np.array(_filled_cache(ns).keys), "KVCache(2, 4).keys")
    for name in ("keys", "values"):
        if shared.get(name) is not True:
            ctx.fail(f"KVCache.{name}: two reads returned arrays that share no memory, so each "
                     f"read built a new [n_heads, T, head_dim] array (a copy of all T tokens, every "
                     f"decode step)", misconception="copies_on_read")


# A fixed chunk c copies T²/(2c) tokens: quadratic once T ≫ c.  Measured over T = 256…4096
# (this machine, tracemalloc, construction included): chunks of 16/64/100/128 tokens read
# 1.87/1.67/1.52/1.57, np.append on every append 1.99, the reference 1.02, growth by any
# factor from 1.25× to 4× from an initial capacity of 1 to 1000 tokens 0.84–1.27.  A chunk
# of 200 tokens reads 1.34 and passes: the check sees fixed chunks up to ~T_max/32.
GROWTH_SIZES, GROWTH_BOUND, MAX_SLOPE = (256, 512, 1024, 2048, 4096), 32, 1.4
GROWTH_TOKENS = GROWTH_SIZES[-1]


def growth_allocations(ns, n_heads, head_dim, tokens, trace=False):
    """Probe: ``(bytes, len)`` — what building the cache allocated plus the sum over
    ``tokens`` one-token appends of what each allocated at its peak (tracemalloc, in the
    learner's process), and len(cache) after; ``trace=True`` returns the list of
    per-append bytes instead of the total."""
    k = np.ones((n_heads, 1, head_dim))
    v = np.zeros((n_heads, 1, head_dim))
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    each = []
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        cache = ns.KVCache(n_heads, head_dim, dtype=np.float64)
        built = max(0, tracemalloc.get_traced_memory()[1] - before)
        for _ in range(tokens):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            cache.append(k, v)
            each.append(max(0, tracemalloc.get_traced_memory()[1] - before))
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return (each if trace else built + int(sum(each))), len(cache)


def growth_over_sizes(ns, n_heads, head_dim, sizes):
    """Probe: ``[(bytes, len)]``, :func:`growth_allocations` for each size in ``sizes``."""
    return [growth_allocations(ns, n_heads, head_dim, t) for t in sizes]


@check(f"growth is amortised O(1): total allocation over T one-token appends grows linearly "
       f"in T (log-log slope < {MAX_SLOPE} over T = {', '.join(map(str, GROWTH_SIZES))}) and "
       f"stays within {GROWTH_BOUND}× the final K+V size (tracemalloc)")
def cache_growth_amortised(ctx):
    n_heads, head_dim = 2, 16
    runs = ctx.probe(__name__, "growth_over_sizes", n_heads, head_dim, GROWTH_SIZES,
                     what=f"one-token appends to KVCache(2, 16), T = {GROWTH_SIZES}")
    for T, (_, n) in zip(GROWTH_SIZES, runs):
        if n != T:
            ctx.fail(f"KVCache: after {T} one-token appends len(cache) is {n!r}")
    totals = [total for total, _ in runs]
    final = 2 * n_heads * head_dim * 8 * GROWTH_TOKENS
    slope = loglog_slope(GROWTH_SIZES, totals)
    ratios = ", ".join(f"{t / (2 * n_heads * head_dim * 8 * T):.1f}×"
                       for T, t in zip(GROWTH_SIZES, totals))
    ctx.record(f"one-token appends at T = {', '.join(map(str, GROWTH_SIZES))} allocated {ratios} "
               f"the final cache size (log-log slope {slope:.2f}, tracemalloc)")
    if slope >= MAX_SLOPE or totals[-1] > GROWTH_BOUND * final:
        ctx.fail(f"KVCache.append: T one-token appends allocated {ratios} the final cache size "
                 f"at T = {', '.join(map(str, GROWTH_SIZES))}: the total grows like "
                 f"T^{slope:.2f} (amortised O(1) growth gives T^1, under {MAX_SLOPE}; at most "
                 f"{GROWTH_BOUND}× at T = {GROWTH_TOKENS}). The buffer is copied too often: "
                 f"O(T) per token, O(T²) in all", diagnose=True)


class _Concatenating:
    def __init__(self, n_heads, head_dim, dtype=np.float32):
        self._k = np.zeros((n_heads, 0, head_dim), dtype)
        self._v = np.zeros((n_heads, 0, head_dim), dtype)

    def __len__(self):
        return self._k.shape[1]

    def append(self, k, v):
        self._k = np.concatenate([self._k, k.astype(self._k.dtype)], axis=1)
        self._v = np.concatenate([self._v, v.astype(self._v.dtype)], axis=1)

    keys = property(lambda self: self._k)
    values = property(lambda self: self._v)


class _WholeCapacity(_Concatenating):
    """Doubles correctly but hands out the whole buffer, unfilled slots included."""

    def __init__(self, n_heads, head_dim, dtype=np.float32):
        self._k = np.zeros((n_heads, 16, head_dim), dtype)
        self._v = np.zeros((n_heads, 16, head_dim), dtype)
        self._n = 0

    def __len__(self):
        return self._n

    def append(self, k, v):
        end = self._n + k.shape[1]
        while end > self._k.shape[1]:
            self._k = np.concatenate([self._k, np.zeros_like(self._k)], axis=1)
            self._v = np.concatenate([self._v, np.zeros_like(self._v)], axis=1)
        self._k[:, self._n:end], self._v[:, self._n:end] = k, v
        self._n = end


class _TokenMajor(_WholeCapacity):
    """Stores [cap, H, d] and converts with reshape where a transpose is needed."""

    def __init__(self, n_heads, head_dim, dtype=np.float32):
        super().__init__(n_heads, head_dim, dtype)
        self._k = np.swapaxes(self._k, 0, 1).copy()  # (cap, H, d)
        self._v = np.swapaxes(self._v, 0, 1).copy()
        self._shape = (n_heads, head_dim)

    def append(self, k, v):
        t, end = k.shape[1], self._n + k.shape[1]
        while end > self._k.shape[0]:
            self._k = np.concatenate([self._k, np.zeros_like(self._k)], axis=0)
            self._v = np.concatenate([self._v, np.zeros_like(self._v)], axis=0)
        h, d = self._shape
        self._k[self._n:end], self._v[self._n:end] = k.reshape(t, h, d), v.reshape(t, h, d)
        self._n = end

    keys = property(lambda self: self._k[:self._n].reshape(self._shape[0], self._n, self._shape[1]))
    values = property(lambda self: self._v[:self._n].reshape(self._shape[0], self._n, self._shape[1]))


class _CountsAppends(_WholeCapacity):
    def __init__(self, n_heads, head_dim, dtype=np.float32):
        super().__init__(n_heads, head_dim, dtype)
        self._calls = 0

    def append(self, k, v):
        super().append(k, v)
        self._calls += 1

    def __len__(self):
        return self._calls

    keys = property(lambda self: self._k[:, :self._n])
    values = property(lambda self: self._v[:, :self._n])


class _Chunks:
    """O(1) appends to a list, but every read concatenates all T tokens anew."""

    def __init__(self, n_heads, head_dim, dtype=np.float32):
        self._empty = np.zeros((n_heads, 0, head_dim), dtype)
        self._k, self._v = [], []

    def __len__(self):
        return sum(c.shape[1] for c in self._k)

    def append(self, k, v):
        self._k.append(np.array(k, dtype=self._empty.dtype))
        self._v.append(np.array(v, dtype=self._empty.dtype))

    keys = property(lambda self: np.concatenate([self._empty, *self._k], axis=1))
    values = property(lambda self: np.concatenate([self._empty, *self._v], axis=1))


class _ZerosFake(_Chunks):
    keys = property(lambda self: np.zeros_like(_Chunks.keys.fget(self)))
    values = property(lambda self: np.zeros_like(_Chunks.values.fget(self)))


class _KeysForValues(_Chunks):
    values = property(lambda self: _Chunks.keys.fget(self))


class _KeepsInputDtype(_Chunks):
    def append(self, k, v):
        self._k.append(np.array(k))
        self._v.append(np.array(v))

    keys = property(lambda self: np.concatenate(self._k or [self._empty], axis=1))
    values = property(lambda self: np.concatenate(self._v or [self._empty], axis=1))



def _drive_views(ns, layout):
    """Chunks appended as ``layout`` views; after each, (len, keys, values)."""
    rng = np.random.default_rng(41)
    cache = ns.KVCache(3, 4, dtype=np.float32)
    seen = []
    for t in (2, 1, 6):
        k, v = (LAYOUTS[layout](rng.standard_normal((3, t, 4))) for _ in range(2))
        cache.append(k, v)
        seen.append((len(cache), np.array(cache.keys), np.array(cache.values)))
    return seen


@covers("noncontiguous")
@check("chunks appended as transposed, sliced and Fortran-ordered views are stored by value")
def cache_strided_appends(ctx):
    for layout in ("transposed", "sliced", "fortran"):
        ctx.expect_scenario(lambda ns, layout=layout: _drive_views(ns, layout),
                            f"KVCache(3, 4, dtype=float32) fed {layout} views of chunks of "
                            f"[2, 1, 6] tokens")


KV_CACHE = Kata(
    id="kv_cache", level=2, title="A KV cache that grows in amortised O(1)",
    path="level2/kv_cache.py", entries=("KVCache",),
    checks=(cache_matches_reference, cache_shape_is_filled_part, cache_keeps_its_dtype,
            cache_returns_views, cache_growth_amortised,
            cache_strided_appends),
    predictions=(
        Prediction("double_t_factor", "the context doubles from T to 2T: by what factor does the "
                   "KV cache grow?", 2, rel_tol=1e-9, why="Every factor but T is fixed: linear in T."),
        Prediction("llama70b_128k_gib", "the Llama-3-70B-like model (80 layers, 8 KV heads, d=128, "
                   "fp16) at 131,072 tokens, batch 1: the KV cache in GiB (2^30 bytes)",
                   lab_bytes(1, 80, 131072, 8, 128) / GiB, rel_tol=0.01,
                   why="320 KiB per token × 131,072 tokens = 40 GiB (42.9 GB) for one request."),
        Prediction("doublings_to_1m", "a cache that starts with room for 1 token and doubles when "
                   "full: how many times does it reallocate to hold 1,000,000 tokens?", 20,
                   rel_tol=0.06, why="2^20 = 1,048,576 ≥ 10^6: 20 copies, whose sizes add up to "
                   "under 2 × 10^6 tokens — O(1) copies per token on average."),
    ),
    misconceptions=(
        Misconception("realloc_every_append", "reallocates (np.concatenate) on every append",
                      {"KVCache": _Concatenating},
                      "Concatenating copies all T cached tokens for every new one: O(T²) in all. "
                      "Keep spare capacity and double it when full, so each token is copied O(1) "
                      "times on average."),
        Misconception("whole_capacity", "keys/values return the whole buffer, unfilled capacity "
                      "included", {"KVCache": _WholeCapacity},
                      "Return only the filled part: buffer[:, :T] (a view, no copy)."),
        Misconception("wrong_axis", "stored tokens along the wrong axis (reshape where a "
                      "transpose is needed)", {"KVCache": _TokenMajor},
                      "k is [n_heads, t, head_dim]: tokens are axis 1. reshape never moves data "
                      "between axes; use np.swapaxes / transpose, or store [n_heads, cap, head_dim]."),
        Misconception("len_counts_appends", "len(cache) counts append calls, not tokens",
                      {"KVCache": _CountsAppends},
                      "One append may add t > 1 tokens (a prompt): len is the number of tokens T."),
        Misconception("copies_on_read", "keeps a list of chunks and concatenates them on every read",
                      {"KVCache": _Chunks},
                      "Each decode step reads the cache: rebuilding it copies all T tokens every "
                      "time. Keep one growing buffer and return a slice view of it."),
        Misconception("keeps_input_dtype", "stores what is appended in its own dtype, ignoring "
                      "the cache's dtype", {"KVCache": _KeepsInputDtype},
                      "The cache owns its dtype (fp16 caches halve memory): cast on the way in."),
    ),
    claims=(
        Claim("kv-cache-amortised-growth", "Appending one token to the cache costs amortised O(1) "
              "copies: total allocation over T appends stays within a constant times the cache.",
              scope="toy", source="kwon-2023-paged", evidence=("cache_growth_amortised",),
              not_claimed="Measured by allocation counting (tracemalloc) at T = 256 to 4096 "
                          "on this machine, as a log-log slope; says nothing about latency or "
                          "GPU allocators, and a fixed chunk above ~T/32 tokens is not told "
                          "from doubling at these sizes."),
    ),
    hints=(
        "Keep two arrays with spare room, [n_heads, capacity, head_dim], and a counter T of "
        "filled tokens; keys is then just a slice.",
        "When an append does not fit, allocate a new buffer of max(needed, 2 × capacity), copy "
        "the filled part over, and keep going: doubling makes the copies add up to O(T).",
        "append writes self._k[:, T:T + t] = k (tokens are axis 1); keys returns "
        "self._k[:, :T], a view; __len__ returns T.",
    ),
    fakes=(Fake("zeros_cache", {"KVCache": _ZerosFake}),
           Fake("keys_as_values", {"KVCache": _KeysForValues})),
)


# ---------------------------------------------------------------------------
# Where learners go wrong — a source note per misconception:
# - realloc_every_append: huggingface/transformers#30536 (torch.cat copied the whole
#   cache at every generated token, two full copies alive at the peak);
#   rasbt/LLMs-from-scratch#705 (a torch.cat cache chosen to avoid preallocating).
# - grows_by_fixed_chunk: the dynamic-table analysis (Cormen et al., Introduction to
#   Algorithms, §17.4); the periodic cat of transformers#30536 is a fixed-step scheme.
# - whole_capacity: a preallocated cache handed out at its full length makes attention
#   run over max-length tensors (huggingface/transformers#40328 on StaticCache).
# - wrong_axis: leaderj1001/Attention-Augmented-Conv2d#21 (reshape where a permute is
#   needed scrambles tokens and heads).
# - len_counts_appends: a prompt appends many tokens in one call; counting calls is the
#   off-by-a-prompt slip of caches written only for one-token decode.
# - copies_on_read: transformers#30536's list-of-tensors cache, concatenated on update.
# - keeps_input_dtype: a float32 activation appended to an fp16 cache silently keeps
#   float32 and doubles its memory (kwon-2023-paged counts cache bytes per dtype).
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Diagnosis by behaviour (docs/DIAGNOSIS.md): the growth check fails on the slope, and
# these probes tell "copies on every append" from "grows by a fixed chunk" by which
# appends allocate a new buffer (measured next to the learner's code).
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds, measure, spacing  # noqa: E402

CHUNK = 64
_TRACE_TOKENS, _TOKEN_BYTES = 600, 2 * 2 * 16 * 8   # one token of K and V, KVCache(2, 16) float64


class _FixedChunk(_WholeCapacity):
    """Grows the buffer by a constant CHUNK tokens whenever it is full.

    source: the dynamic-table analysis (cormen-2009, ch. 17): growing by a constant copies
    Θ(T²) elements over T appends, growing by a factor Θ(T); the same slip in caches that
    round up to a block of 64 or 128 tokens instead of doubling."""

    def __init__(self, n_heads, head_dim, dtype=np.float32):
        self._k = np.zeros((n_heads, 0, head_dim), dtype)
        self._v = np.zeros((n_heads, 0, head_dim), dtype)
        self._n = 0

    def append(self, k, v):
        end = self._n + k.shape[1]
        if end > self._k.shape[1]:
            cap = self._k.shape[1] + CHUNK * -(-(end - self._k.shape[1]) // CHUNK)
            grow = [(0, 0), (0, cap - self._k.shape[1]), (0, 0)]
            self._k, self._v = np.pad(self._k, grow), np.pad(self._v, grow)
        self._k[:, self._n:end], self._v[:, self._n:end] = k, v
        self._n = end

    keys = property(lambda self: self._k[:, :self._n])
    values = property(lambda self: self._v[:, :self._n])


def _events(got):
    """The appends (0-based) that allocated more than 8 tokens of K and V: a new buffer."""
    each, _ = got
    return [i for i, b in enumerate(each) if b > 8 * _TOKEN_BYTES]


_TRACE = Probe(f"{_TRACE_TOKENS} one-token appends to KVCache(2, 16): which of them allocate "
               f"a new buffer",
               lambda ns: measure(ns, __name__, "growth_allocations", 2, 16, _TRACE_TOKENS,
                                  trace=True))
_SLOPE = Probe(f"one-token appends at T = {', '.join(map(str, GROWTH_SIZES))}: total allocation "
               f"against T",
               lambda ns: [t for t, _ in measure(ns, __name__, "growth_over_sizes", 2, 16,
                                                 GROWTH_SIZES)],
               _holds(lambda g, w: loglog_slope(GROWTH_SIZES, g) >= MAX_SLOPE))

KV_CACHE = attach(
    KV_CACHE,
    add=(Misconception("grows_by_fixed_chunk", "grows the buffer by a fixed number of tokens "
                       "instead of by a factor", {"KVCache": _FixedChunk},
                       "Adding a constant c tokens of room each time copies the whole cache "
                       "every c appends: T²/(2c) token copies over T appends, still O(T²). "
                       "Grow by a factor (double the capacity), so the copies add up to under "
                       "2T."),),
    probes={
        "realloc_every_append": (
            Probe(_TRACE.what, _TRACE.run, _holds(
                lambda g, w: set(range(16, _TRACE_TOKENS)) <= set(_events(g)))),
            _SLOPE),
        "grows_by_fixed_chunk": (
            Probe(_TRACE.what, _TRACE.run, _holds(
                lambda g, w: len(_events(g)) >= 3 and (spacing(_events(g)[1:]) or 0) > 1)),
            _SLOPE),
    },
)


# Probes for the cache's other mistakes (each run drives a fresh cache; numbers are
# chosen so the misconceptions differ: distinct values expose reordering, chunked
# appends expose counting calls).

def read_allocation(ns, tokens=256):
    """Probe: bytes tracemalloc sees allocated by one read of ``keys`` after ``tokens``
    one-token appends to KVCache(2, 16) float64 (a view allocates almost nothing)."""
    cache = ns.KVCache(2, 16, dtype=np.float64)
    one = np.ones((2, 1, 16))
    for _ in range(tokens):
        cache.append(one, one)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        keys = cache.keys
        grew = max(0, tracemalloc.get_traced_memory()[1] - before)
    finally:
        if not was_tracing:
            tracemalloc.stop()
    del keys
    return int(grew)


def _filled(ns, chunks, dtype=np.float64, in_dtype=None, heads=2, dim=4):
    """A cache fed ``chunks`` tokens per append of distinct values; returns
    (len, keys as an array, keys dtype name)."""
    cache = ns.KVCache(heads, dim, dtype=dtype)
    start = 0
    for t in chunks:
        block = np.arange(start, start + heads * t * dim, dtype=np.float64).reshape(heads, t, dim)
        block = block.astype(in_dtype or dtype)
        cache.append(block, -block)
        start += heads * t * dim
    keys = cache.keys
    return len(cache), np.array(keys), str(np.asarray(keys).dtype)


def _longer_than_len(g, w):
    n, keys, _ = g
    return keys.ndim == 3 and keys.shape[1] > n == w[0] and np.array_equal(keys[:, :n], w[1])


def _reordered(g, w):
    _, keys, _ = g
    return (keys.shape == w[1].shape and not np.array_equal(keys, w[1])
            and np.array_equal(np.sort(keys, axis=None), np.sort(w[1], axis=None)))


KV_CACHE = attach(KV_CACHE, probes={
    "whole_capacity": (
        Probe("3 one-token appends: keys versus len(cache)", lambda ns: _filled(ns, [1, 1, 1]),
              _holds(_longer_than_len)),
        Probe("one append of 20 tokens: keys versus len(cache)", lambda ns: _filled(ns, [20]),
              _holds(_longer_than_len)),
    ),
    "wrong_axis": (
        Probe("three one-token appends with distinct values (2 heads, d = 4)",
              lambda ns: _filled(ns, [1, 1, 1]), _holds(_reordered)),
        Probe("appends of 2 then 5 tokens with distinct values",
              lambda ns: _filled(ns, [2, 5]), _holds(_reordered)),
    ),
    "len_counts_appends": (
        Probe("one append of 5 tokens: len(cache)", lambda ns: _filled(ns, [5]),
              _holds(lambda g, w: g[0] == 1 and w[0] == 5)),
        Probe("appends of 3 and 4 tokens: len(cache)", lambda ns: _filled(ns, [3, 4]),
              _holds(lambda g, w: g[0] == 2 and w[0] == 7)),
    ),
    "copies_on_read": (
        Probe("two reads of keys and of values: do they share memory?",
              lambda ns: measure(ns, __name__, "reads_share_memory"),
              _holds(lambda g, w: g.get("keys") is False and g.get("values") is False)),
        Probe("one read of keys after 256 tokens: bytes allocated",
              lambda ns: measure(ns, __name__, "read_allocation", 256),
              _holds(lambda g, w: g >= 2 * 256 * 16 * 8)),
    ),
    "keeps_input_dtype": (
        Probe("float64 tokens into a float32 cache: the dtype of keys",
              lambda ns: _filled(ns, [2, 1], np.float32, np.float64),
              _holds(lambda g, w: g[2] == "float64" and w[2] == "float32")),
        Probe("float16 tokens into a float64 cache: the dtype of keys",
              lambda ns: _filled(ns, [3], np.float64, np.float16),
              _holds(lambda g, w: g[2] == "float16" and w[2] == "float64")),
    ),
})


# == diagnosis by behaviour, levels 0-2 (issue 14) ==
# What the example above lacked: a "where" diagnostic (which head, which token position
# of the cache is wrong when no misconception is named) and a correct variant that
# stores tokens differently (token-major, growing ×1.5), so selfcheck proves no probe
# fires on a correct cache whose layout is not the reference's.

class _TokenMajorViews:
    """A correct variant: a [capacity, H, d] buffer grown ×1.5, read as transposed views."""

    def __init__(self, n_heads, head_dim, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self._k = np.empty((8, n_heads, head_dim), self.dtype)
        self._v = np.empty_like(self._k)
        self._n = 0

    def __len__(self):
        return self._n

    def append(self, k, v):
        t = k.shape[1]
        if self._n + t > self._k.shape[0]:
            cap = max(self._n + t, int(self._k.shape[0] * 1.5) + 1)
            for name in ("_k", "_v"):
                old = getattr(self, name)
                new = np.empty((cap, *old.shape[1:]), self.dtype)
                new[:self._n] = old[:self._n]
                setattr(self, name, new)
        self._k[self._n:self._n + t] = np.swapaxes(k, 0, 1)
        self._v[self._n:self._n + t] = np.swapaxes(v, 0, 1)
        self._n += t

    keys = property(lambda self: np.swapaxes(self._k[:self._n], 0, 1))
    values = property(lambda self: np.swapaxes(self._v[:self._n], 0, 1))


KV_CACHE = attach(
    KV_CACHE,
    diagnostics=(
        Probe("appends of 2, 1 and 3 tokens with distinct values (2 heads, d = 4): keys",
              lambda ns: _filled(ns, [2, 1, 3])[1], axes=("head", "token", "feature")),
    ),
    variants=(Fake("token_major_views", {"KVCache": _TokenMajorViews}),),
)
# == end of diagnosis by behaviour, levels 0-2 ==
