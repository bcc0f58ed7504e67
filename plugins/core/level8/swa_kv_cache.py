"""Level 8 · swa_kv_cache — a ring buffer of the last W tokens: windowed decoding, constant memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check
from attnkata.layouts import LAYOUTS, covers
from attnkata.strategies import FLOAT_DTYPES, seeds, sizes

from ..level6.stateful import wrong_class


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


@st.composite
def _streams(draw):
    h, d, window = draw(sizes(1, 4)), draw(sizes(1, 8)), draw(st.integers(1, 9))
    chunks = draw(st.lists(st.one_of(st.just(1), st.integers(1, window), st.integers(1, 2 * window + 3)),
                           min_size=1, max_size=10))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    in_dtype = draw(st.sampled_from((dtype, np.float64)))
    return h, d, window, dtype, in_dtype, chunks, draw(seeds())


def stream(h, d, n, dtype, seed):
    """q, k, v [H, n, d] of one generated sequence."""
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((h, n, d)).astype(dtype) for _ in range(3))


def _drive(ns, h, d, window, dtype, in_dtype, chunks, seed):
    """Append the chunks; after each: (len, tokens_seen, keys, values)."""
    _, k, v = stream(h, d, sum(chunks), in_dtype, seed)
    cache = ns.SlidingWindowKVCache(h, d, window, dtype=dtype)
    seen, at = [], 0
    for t in chunks:
        cache.append(k[:, at:at + t], v[:, at:at + t])
        at += t
        seen.append((len(cache), cache.tokens_seen, np.array(cache.keys), np.array(cache.values)))
    return seen


@check("after every append (chunks of 1 to 2W + 3 tokens, windows 1 … 9): len, tokens_seen and "
       "the keys and values held, oldest first, match the reference")
def window_matches_reference(ctx):
    @ctx.given(case=_streams())
    def prop(case):
        h, d, window, dtype, in_dtype, chunks, _ = case
        ctx.expect_scenario(lambda ns: _drive(ns, *case),
                            f"SlidingWindowKVCache(n_heads={h}, head_dim={d}, window={window}, "
                            f"dtype={np.dtype(dtype).name}) fed {np.dtype(in_dtype).name} chunks "
                            f"of {chunks} tokens")

    straddle = (2, 3, 5, np.float32, np.float32, [3, 4, 1, 7, 2, 3], 11)
    ctx.expect_scenario(lambda ns: _drive(ns, *straddle), "SlidingWindowKVCache(2, 3, window=5) "
                        "fed chunks of [3, 4, 1, 7, 2, 3] tokens (chunks that straddle the window's end)")
    prop()


@check("the worked example: W = 4, keys equal to positions; after 7 tokens keys = [3, 4, 5, 6]")
def worked_example(ctx):
    def story(ns):
        c = ns.SlidingWindowKVCache(1, 1, 4, dtype=np.float64)
        seen = []
        for chunk in ([0, 1, 2], [3], [4], [5, 6]):
            x = np.array(chunk, dtype=np.float64).reshape(1, -1, 1)
            c.append(x, -x)
            seen.append(np.array(c.keys).ravel().tolist())
        return {"keys after appends of [0,1,2], [3], [4], [5,6]": seen, "len": len(c),
                "tokens_seen": c.tokens_seen, "values": np.array(c.values).ravel().tolist()}

    ctx.expect_scenario(story, "SlidingWindowKVCache(1, 1, window=4), keys = positions")


def attend(q_t, k, v):
    """Softmax attention of q_t [H, 1, d] over k, v [H, n, d], in float64."""
    q_t, k, v = (np.asarray(x, dtype=np.float64) for x in (q_t, k, v))
    s = q_t @ np.swapaxes(k, -1, -2) / np.sqrt(q_t.shape[-1])
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def windowed_attention(q, k, v, window):
    """Full attention with the window mask (query p sees keys p − W + 1 … p): [H, N, d]."""
    n = q.shape[1]
    p = np.arange(n)
    mask = (p[None, :] <= p[:, None]) & (p[None, :] > p[:, None] - window)
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64) / np.sqrt(q.shape[-1])
    s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v.astype(np.float64)


def _decode(ns, h, d, window, q, k, v):
    """Token by token: append token p, then attend with q_p over the cache's keys and values."""
    cache = ns.SlidingWindowKVCache(h, d, window, dtype=np.float64)
    outs = []
    for p in range(q.shape[1]):
        cache.append(k[:, p:p + 1], v[:, p:p + 1])
        outs.append(attend(q[:, p:p + 1], cache.keys, cache.values))
    return np.concatenate(outs, axis=1)


@check("decoding token by token over the cache equals full attention under the window mask "
       "(query p sees keys p − W + 1 … p, itself included)")
def decode_equals_windowed_attention(ctx):
    for h, d, window, n in ((2, 4, 3, 11), (1, 8, 1, 5), (3, 5, 6, 20), (2, 3, 16, 9)):
        q, k, v = stream(h, d, n, np.float64, int(ctx.rng.integers(2**31)))
        got = ctx.run(lambda: _decode(ctx.target, h, d, window, q, k, v),
                      f"decoding {n} tokens through SlidingWindowKVCache({h}, {d}, window={window})")
        ctx.match(got, windowed_attention(q, k, v, window),
                  f"decode over SlidingWindowKVCache(window={window}), {n} tokens, vs windowed "
                  f"attention", rerun=lambda ns: _decode(ns, h, d, window, q, k, v))


# ---------------------------------------------------------------------------
# Constant memory, witnessed by size: bytes the cache keeps, at several lengths
# ---------------------------------------------------------------------------

MEM_HEADS, MEM_DIM, MEM_WINDOW = 2, 8, 16
MEM_LENGTHS = (32, 256, 2048)


def retained_bytes(ns, n_heads, head_dim, window, lengths):
    """Probe: for each length N, ``(N, kept, peak)`` — bytes the cache still holds after N
    one-token appends and the peak during them (tracemalloc, in the learner's process)."""
    k = np.ones((n_heads, 1, head_dim))
    v = np.zeros((n_heads, 1, head_dim))
    out = []
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        for n in lengths:
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            cache = ns.SlidingWindowKVCache(n_heads, head_dim, window, dtype=np.float64)
            for _ in range(n):
                cache.append(k, v)
            gc.collect()
            kept, peak = tracemalloc.get_traced_memory()
            out.append((n, int(kept - base), int(peak - base)))
            del cache
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return out


@check(f"memory does not grow with the sequence: the bytes the cache keeps, and its peak, after "
       f"{', '.join(map(str, MEM_LENGTHS))} tokens (W = {MEM_WINDOW}) have a slope under 5 % of one "
       f"token's K and V (tracemalloc)")
def memory_constant_in_length(ctx):
    rows = ctx.probe(__name__, "retained_bytes", MEM_HEADS, MEM_DIM, MEM_WINDOW, MEM_LENGTHS,
                     what=f"appending up to {MEM_LENGTHS[-1]} tokens one by one")
    per_token = 2 * MEM_HEADS * MEM_DIM * 8
    (n0, kept0, peak0), (n1, kept1, peak1) = rows[0], rows[-1]
    slope, peak_slope = (kept1 - kept0) / (n1 - n0), (peak1 - peak0) / (n1 - n0)
    ctx.record("bytes kept (peak) after N tokens (W = 16, 2 heads, d = 8, float64): "
               + ", ".join(f"N={n}: {kept} ({peak})" for n, kept, peak in rows)
               + f"; slope {slope:.2f} B/token, peak slope {peak_slope:.2f} B/token (a full "
               f"cache: {per_token} B/token); tracemalloc, numpy {np.__version__}")
    if max(slope, peak_slope) > 0.05 * per_token:
        worst = max(slope, peak_slope)
        ctx.fail(f"SlidingWindowKVCache uses more memory the longer the sequence: "
                 + ", ".join(f"{kept} B kept ({peak} B at the peak) after {n} tokens"
                             for n, kept, peak in rows)
                 + f" — {worst:.0f} bytes per token, about {worst / per_token:.0%} of a token's "
                 f"keys and values. Tokens that left the window must be overwritten, not kept",
                 misconception="grows_buffer")


# ---------------------------------------------------------------------------
# Misconceptions: the reference ring with one thing done wrong
# ---------------------------------------------------------------------------


def _wrong(mixin):
    return {"SlidingWindowKVCache": wrong_class("swa_kv_cache.py", "SlidingWindowKVCache", mixin, level="level8")}


# Source note: Longformer counts w tokens on each side; reading "window W" as W past tokens
# plus the current one keeps W + 1 keys (level 1's window_plus_one, at decode time).
class _WindowPlusOne:
    def __init__(self, n_heads, head_dim, window, dtype=np.float32):
        super().__init__(n_heads, head_dim, window + 1, dtype)


# Source note: a write pointer that stops at the end instead of wrapping (`min(p, W - 1)`)
# keeps the first W − 1 tokens forever and overwrites only the last slot.
class _NotWrapped:
    def append(self, k, v):
        for i in range(k.shape[1]):
            slot = min(self._seen, self.window - 1)
            self._k[:, slot], self._v[:, slot] = k[:, i], v[:, i]
            self._seen += 1

    def _ordered(self, ring):
        return ring[:, :len(self)]


# Source note: handing out the ring in slot order — harmless for attention (a set of keys),
# wrong for anything positional that reads the cache (RoPE on read, ALiBi, a debugger).
class _SlotOrder:
    def _ordered(self, ring):
        return ring[:, :len(self)]


# Source note: the ring's unfilled slots read before it is full: zero keys score 0 and take
# softmax weight from the real tokens.
class _WholeRing:
    def _ordered(self, ring):
        return ring if self._seen < self.window else super()._ordered(ring)


# Source note: "sliding window" done as a growing list sliced to its last W tokens: right
# answers, but the memory grows with the conversation — the one thing the ring is for.
class _GrowsBuffer:
    def __init__(self, n_heads, head_dim, window, dtype=np.float32):
        super().__init__(n_heads, head_dim, window, dtype)
        self._all_k = np.zeros((n_heads, 0, head_dim), dtype)
        self._all_v = np.zeros((n_heads, 0, head_dim), dtype)

    def append(self, k, v):
        self._all_k = np.concatenate([self._all_k, k.astype(self._all_k.dtype)], axis=1)
        self._all_v = np.concatenate([self._all_v, v.astype(self._all_v.dtype)], axis=1)
        self._seen += k.shape[1]

    def _ordered(self, ring):
        full = self._all_k if ring is self._k else self._all_v
        return full[:, max(0, self._seen - self.window):]


# Source note: evicting before writing by the chunk's size: a chunk of t tokens drops the t
# oldest tokens even when only part of it overflows, so the window runs short after a prompt.
class _EvictsChunk:
    def __init__(self, n_heads, head_dim, window, dtype=np.float32):
        self.window, self._seen = window, 0
        self._held_k = np.zeros((n_heads, 0, head_dim), dtype)
        self._held_v = np.zeros((n_heads, 0, head_dim), dtype)

    def __len__(self):
        return self._held_k.shape[1]

    def append(self, k, v):
        t, hk, hv = k.shape[1], self._held_k, self._held_v
        if hk.shape[1] + t > self.window:
            hk, hv = hk[:, t:], hv[:, t:]
        self._held_k = np.concatenate([hk, k.astype(hk.dtype)], axis=1)[:, -self.window:]
        self._held_v = np.concatenate([hv, v.astype(hv.dtype)], axis=1)[:, -self.window:]
        self._seen += t

    keys = property(lambda self: self._held_k)
    values = property(lambda self: self._held_v)


class _ZerosFake:
    @property
    def keys(self):
        return np.zeros_like(self._ordered(self._k))

    @property
    def values(self):
        return np.zeros_like(self._ordered(self._v))


class _KeepsEverything(_GrowsBuffer):
    def __len__(self):
        return self._seen

    def _ordered(self, ring):
        return self._all_k if ring is self._k else self._all_v



def _drive_views(ns, layout, window=4):
    """Chunks appended as ``layout`` views (transposed, sliced, Fortran-ordered)."""
    _, k, v = stream(2, 3, 11, np.float64, 23)
    cache = ns.SlidingWindowKVCache(2, 3, window, dtype=np.float32)
    seen, at = [], 0
    for t in (3, 1, 5, 2):
        view = LAYOUTS[layout]
        cache.append(view(np.ascontiguousarray(k[:, at:at + t])),
                     view(np.ascontiguousarray(v[:, at:at + t])))
        at += t
        seen.append((len(cache), cache.tokens_seen, np.array(cache.keys), np.array(cache.values)))
    return seen


@covers("noncontiguous")
@check("chunks appended as transposed, sliced and Fortran-ordered views are stored by value")
def window_strided_appends(ctx):
    for layout in ("transposed", "sliced", "fortran"):
        ctx.expect_scenario(lambda ns, layout=layout: _drive_views(ns, layout),
                            f"SlidingWindowKVCache(2, 3, window=4, dtype=float32) fed {layout} "
                            f"views of chunks of [3, 1, 5, 2] tokens")


def _drive_far(ns, window):
    """One chunk of 999,998 tokens, then three single tokens: positions past 10⁶."""
    _, k, v = stream(1, 2, 1_000_001, np.float32, 31)
    cache = ns.SlidingWindowKVCache(1, 2, window, dtype=np.float32)
    cache.append(k[:, :999_998], v[:, :999_998])
    seen = [(len(cache), cache.tokens_seen, np.array(cache.keys), np.array(cache.values))]
    for p in range(999_998, 1_000_001):
        cache.append(k[:, p:p + 1], v[:, p:p + 1])
        seen.append((len(cache), cache.tokens_seen, np.array(cache.keys), np.array(cache.values)))
    return seen


@covers("large_positions")
@check("float32 at positions past 10⁶ (one chunk of 999,998 tokens, then single tokens): the "
       "last W tokens, oldest first")
def window_large_positions(ctx):
    # positions are Python ints (exact); what fails here is a ring slot computed from a
    # float32 position, or a copy of every token seen before trimming to the window
    for window in (5, 4096):
        ctx.expect_scenario(lambda ns, window=window: _drive_far(ns, window),
                            f"SlidingWindowKVCache(1, 2, window={window}, dtype=float32) fed "
                            f"999,998 tokens at once, then 3 more")


SWA_KV_CACHE = Kata(
    id="swa_kv_cache", level=8, title="A sliding-window KV cache as a ring buffer",
    path="level8/swa_kv_cache.py", entries=("SlidingWindowKVCache",),
    checks=(window_matches_reference, worked_example, decode_equals_windowed_attention,
            memory_constant_in_length,
            window_strided_appends, window_large_positions),
    predictions=(
        Prediction("mistral_cache_mib", "Mistral-7B-like (32 layers, 8 KV heads, d = 128, fp16), "
                   "window 4096, batch 1: the cache after 32,768 tokens, in MiB", 512, rel_tol=0.01,
                   why="Only W = 4096 tokens are held: 32·4096·8·128·2 (K and V)·2 bytes = 512 MiB, "
                       "an eighth of the 4 GiB a full cache of 32,768 tokens would take."),
        Prediction("slot_of_position_20", "W = 6: the ring slot of the token at position 20", 2,
                   kind="exact", why="20 mod 6 = 2."),
        Prediction("oldest_position", "W = 6, tokens 0 … 20 appended: the position of keys[:, 0]",
                   15, kind="exact", why="21 tokens seen, 6 held: positions 15 … 20."),
    ),
    misconceptions=(
        Misconception("window_plus_one", "keeps W + 1 tokens (the window counted without the "
                      "current token)", _wrong(_WindowPlusOne),
                      "Here the window includes the current token, as in level 1: after the new "
                      "token is appended the cache holds exactly W tokens, positions P − W … P − 1."),
        Misconception("ring_not_wrapped", "the write index stops at the last slot instead of "
                      "wrapping (slot = min(p, W − 1))", _wrong(_NotWrapped),
                      "Token p goes to slot p % W: once the ring is full, each token overwrites "
                      "the oldest one, slot by slot around the ring."),
        Misconception("slot_order", "keys and values come out in ring-slot order, not oldest "
                      "first", _wrong(_SlotOrder),
                      "Attention alone would not notice (it treats keys as a set), but the "
                      "contract is oldest first: unroll from the oldest token's slot, "
                      "tokens_seen % W, with ring[:, s:] followed by ring[:, :s]."),
        Misconception("whole_ring_before_full", "keys and values include the unfilled slots "
                      "before the ring is full", _wrong(_WholeRing),
                      "Until W tokens have arrived only the first tokens_seen slots hold "
                      "tokens; the rest are zeros that would take softmax weight."),
        Misconception("grows_buffer", "keeps every token and slices the last W (memory grows "
                      "with the sequence)", _wrong(_GrowsBuffer),
                      "The point of the window is constant memory: allocate W slots per head "
                      "once and overwrite, never concatenate."),
        Misconception("evicts_whole_chunk", "evicts as many old tokens as a chunk brings, not "
                      "just the overflow", _wrong(_EvictsChunk),
                      "Appending t tokens to a cache holding n drops only max(0, n + t − W) of "
                      "the oldest; writing token by token into slot p % W does this by itself."),
    ),
    fakes=(Fake("zero_keys", _wrong(_ZerosFake)), Fake("keeps_everything", _wrong(_KeepsEverything))),
    generic_fakes=(),
    claims=(
        Claim("swa-decode-equals-windowed", "Decoding over a W-slot ring buffer gives exactly the "
              "rows of attention under the sliding-window mask (window W including the current "
              "token).", scope="exact", source="beltagy-2020",
              evidence=("decode_equals_windowed_attention", "window_matches_reference"),
              not_claimed="No RoPE or positions inside the cache (keys are cached after RoPE); "
                          "nothing about model quality with a window, or about attention sinks."),
        Claim("swa-memory-constant", "The ring buffer's memory does not grow with the sequence: "
              "the bytes it keeps (and its peak) after 32, 256 and 2048 tokens have a slope under "
              "5 % of one token's K and V.", scope="toy", source="jiang-2023-mistral",
              evidence=("memory_constant_in_length",),
              not_claimed="tracemalloc on NumPy buffers in this process, at W = 16; not GPU "
                          "memory, not a paged or batched implementation."),
    ),
    hints=(
        "Allocate the ring once in __init__: two arrays [n_heads, window, head_dim] in `dtype`, "
        "and a counter of tokens seen. Token p lives in slot p % window.",
        "append: for each new token (or with an index array (seen + arange(t)) % window) write "
        "k[:, i] into that slot, then count it. A chunk longer than the window keeps only its "
        "last `window` tokens.",
        "keys: before the ring is full, ring[:, :seen]; after, start = seen % window and "
        "np.concatenate([ring[:, start:], ring[:, :start]], axis=1). len is min(seen, window).",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): keys equal to their positions (1 head, d = 1), so
# what the cache holds after each append reads as a list of positions; memory measured
# at several lengths and judged by its log-log slope.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds, loglog_slope, measure  # noqa: E402


def _positions(window, chunks):
    """After each append: (len(cache), tokens_seen, the positions the keys hold)."""
    def run(ns):
        cache = ns.SlidingWindowKVCache(1, 1, window, dtype=np.float64)
        out, at = [], 0
        for t in chunks:
            pos = np.arange(at, at + t, dtype=np.float64).reshape(1, t, 1)
            cache.append(pos, -pos)
            at += t
            out.append((len(cache), cache.tokens_seen,
                        [int(round(x)) for x in np.asarray(cache.keys)[0, :, 0].tolist()]))
        return out
    return run


def _final(pred):
    """``pred(len, seen, positions, want_positions)`` on the state after the last append."""
    return _holds(lambda g, w: g != w and pred(g[-1][0], g[-1][1], g[-1][2], w[-1][2]))


def _kept(window):
    return lambda n, seen, pos, want: pos == list(range(max(0, seen - window), seen))


_MEM_SIZES = (64, 512, 4096)


def _memory(ns):
    rows = measure(ns, __name__, "retained_bytes", MEM_HEADS, MEM_DIM, MEM_WINDOW, _MEM_SIZES)
    return [kept for _, kept, _ in rows], [peak for _, _, peak in rows]


SWA_KV_CACHE = attach(SWA_KV_CACHE, probes={
    # source: Longformer's window of w tokens on each side vs Mistral's W past tokens
    # (mistralai/mistral-src sliding_window): W + 1 kept is the fencepost between them
    "window_plus_one": (
        Probe("W = 4, seven one-token appends: positions held", _positions(4, [1] * 7),
              _final(lambda n, s, pos, want: n == 5 and _kept(5)(n, s, pos, want))),
        Probe("W = 2, one chunk of 6: positions held", _positions(2, [6]),
              _final(lambda n, s, pos, want: n == 3 and _kept(3)(n, s, pos, want))),
    ),
    # source: no thread found; a teaching note — a write index clamped to the last slot
    # (min(p, W − 1)) instead of taken modulo W
    "ring_not_wrapped": (
        Probe("W = 4, seven one-token appends: positions held", _positions(4, [1] * 7),
              _final(lambda n, s, pos, want: pos[:3] == [0, 1, 2] and pos[-1] == 6)),
        Probe("W = 3, chunks of 2, 2, 2: positions held", _positions(3, [2, 2, 2]),
              _final(lambda n, s, pos, want: pos[:2] == [0, 1] and pos[-1] == 5)),
    ),
    # source: the ring buffer of mistralai/mistral-src's RotatingBufferCache: slots are
    # unrotated (oldest first) before positional use
    "slot_order": (
        Probe("W = 4, six one-token appends: positions held", _positions(4, [1] * 6),
              _final(lambda n, s, pos, want: sorted(pos) == sorted(want) and pos != want)),
        Probe("W = 3, chunks of 3 and 1: positions held", _positions(3, [3, 1]),
              _final(lambda n, s, pos, want: sorted(pos) == sorted(want) and pos != want)),
    ),
    # source: no thread found; a teaching note — reading the whole preallocated ring before
    # it is full hands out zero keys that take softmax weight
    "whole_ring_before_full": (
        Probe("W = 4, two one-token appends: keys held against len(cache)", _positions(4, [1, 1]),
              _final(lambda n, s, pos, want: len(pos) == 4 and n == 2)),
        Probe("W = 3, one token: keys held against len(cache)", _positions(3, [1]),
              _final(lambda n, s, pos, want: len(pos) == 3 and n == 1)),
    ),
    # source: huggingface/transformers' DynamicCache with sliding windows grew with the
    # conversation until SlidingWindowCache; a list sliced to its last W tokens keeps it all
    "grows_buffer": (
        Probe(f"one-token appends to N = {', '.join(map(str, _MEM_SIZES))}: bytes kept against N",
              _memory, _holds(lambda g, w: loglog_slope(_MEM_SIZES, g[0]) >= 0.5)),
        Probe(f"one-token appends to N = {', '.join(map(str, _MEM_SIZES))}: peak bytes against N",
              _memory, _holds(lambda g, w: loglog_slope(_MEM_SIZES, g[1]) >= 0.5)),
    ),
    # source: no thread found; a teaching note — evicting by the chunk's size before writing
    "evicts_whole_chunk": (
        Probe("W = 5, chunks of 3 and 4: positions held", _positions(5, [3, 4]),
              _final(lambda n, s, pos, want: 0 < n < 5 and pos == want[-n:])),
        Probe("W = 5, chunks of 4 and 2: positions held", _positions(5, [4, 2]),
              _final(lambda n, s, pos, want: 0 < n < 5 and pos == want[-n:])),
    ),
}, diagnostics=(
    Probe("W = 4, chunks of 1, 3, 1, 6, 2: after each append (len, tokens_seen, positions)",
          _positions(4, [1, 3, 1, 6, 2])),
))


class _DequeWindow:
    """Correct, other way: a deque(maxlen=W) of token rows, stacked on read."""

    def __init__(self, n_heads, head_dim, window, dtype=np.float32):
        from collections import deque

        self.window, self._dtype, self._seen = window, np.dtype(dtype), 0
        self._shape = (n_heads, head_dim)
        self._rows = deque(maxlen=window)

    def __len__(self):
        return len(self._rows)

    @property
    def tokens_seen(self):
        return self._seen

    def append(self, k, v):
        for i in range(k.shape[1]):
            self._rows.append((np.array(k[:, i], self._dtype), np.array(v[:, i], self._dtype)))
            self._seen += 1

    def _stack(self, j):
        h, d = self._shape
        if not self._rows:
            return np.zeros((h, 0, d), self._dtype)
        return np.stack([r[j] for r in self._rows], axis=1)

    keys = property(lambda self: self._stack(0))
    values = property(lambda self: self._stack(1))


SWA_KV_CACHE = attach(SWA_KV_CACHE, variants=(Fake("deque_window", {"SlidingWindowKVCache": _DequeWindow}),))
