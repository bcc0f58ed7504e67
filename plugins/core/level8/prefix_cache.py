"""Level 8 · prefix_cache — full blocks keyed by their whole prefix, shared by refcount, LRU eviction."""

from __future__ import annotations

import itertools
from collections import OrderedDict

from attnkata.strategies import st
from attnkata.strategies import RuleBasedStateMachine, initialize, precondition, rule

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check
from attnkata.harness import Namespace

from ..level6.stateful import Driver, outcome, run_machine, wrong_class

# ---------------------------------------------------------------------------
# Scenarios: each returns only what any correct cache agrees on (never raw block ids)
# ---------------------------------------------------------------------------


def _alloc(cache, tokens):
    table, cached = cache.allocate(list(tokens))
    return [int(b) for b in table], int(cached)


@check("a shared prefix reuses its full blocks (refcount 2); the partly filled last block is "
       "never shared")
def shared_prefix_hits(ctx):
    def story(ns):
        c = ns.PrefixCache(8, 2)
        a, a_hit = _alloc(c, [1, 2, 3, 4, 5])
        b, b_hit = _alloc(c, [1, 2, 3, 4, 9, 9])
        d, d_hit = _alloc(c, [1, 2, 3, 4, 5])
        return {"cached_tokens of a, b, d": (a_hit, b_hit, d_hit),
                "len of the tables": (len(a), len(b), len(d)),
                "b's first two blocks are a's": b[:2] == a[:2],
                "b's third block is its own": b[2] not in a,
                "d's partial last block is its own (not a's)": d[2] != a[2] and d[2] not in b,
                "refcounts of a's blocks": [c.refcount(x) for x in a],
                "num_free": c.num_free}

    ctx.expect_scenario(story, "block size 2: a = [1,2,3,4,5], b = [1,2,3,4,9,9], d = [1,2,3,4,5]")


@check("a block's key covers the whole prefix: the same tokens after a different prefix are a miss")
def key_covers_prefix(ctx):
    def story(ns):
        c = ns.PrefixCache(8, 2)
        a, _ = _alloc(c, [1, 2, 3, 4])
        b, b_hit = _alloc(c, [3, 4, 3, 4])
        d, d_hit = _alloc(c, [1, 2, 1, 2])
        return {"cached_tokens of [3,4,3,4] after [1,2,3,4]": b_hit,
                "cached_tokens of [1,2,1,2]": d_hit,
                "[1,2,1,2]: its second block is not its first": d[1] != d[0],
                "blocks shared with [1,2,3,4]": (len(set(a) & set(b)), len(set(a) & set(d))),
                "num_free": c.num_free}

    ctx.expect_scenario(story, "block size 2: [1,2,3,4], then [3,4,3,4] and [1,2,1,2]")


@check("freed full blocks stay cached; when a block is needed, an empty one goes first, then the "
       "least recently used cached one (a hit refreshes it)")
def lru_eviction(ctx):
    def story(ns):
        c = ns.PrefixCache(3, 2)
        for p in ([1, 1], [2, 2], [3, 3]):
            t, _ = _alloc(c, p)
            c.free(t)
        t, hit = _alloc(c, [1, 1])          # [1,1] is used again: now the most recent
        c.free(t)
        t, _ = _alloc(c, [4, 4])            # evicts the least recently used: [2,2]
        c.free(t)
        return {"[1,1] hit before the eviction": hit, "num_free": c.num_free,
                "then, cached_tokens of [1,1], [3,3], [4,4], [2,2]":
                    [_hit_and_free(c, p) for p in ([1, 1], [3, 3], [4, 4], [2, 2])]}

    ctx.expect_scenario(story, "3 blocks of 2: cache [1,1], [2,2], [3,3] (each freed), hit [1,1] "
                               "again, then [4,4] needs a block")


def _hit_and_free(c, tokens):
    t, hit = _alloc(c, tokens)
    c.free(t)
    return hit


@check("free releases a table from its last block to its first: a prompt's later blocks are "
       "evicted before the blocks they extend (and eviction stays LRU over unreferenced blocks)")
def free_last_block_first(ctx):
    def story(ns):
        c = ns.PrefixCache(3, 1)
        t, _ = _alloc(c, [1, 2])
        c.free(t)
        u, _ = _alloc(c, [5, 6])            # one empty block, then one eviction: block [1,2]
        c.free(u)
        seen = {"3 blocks of 1: [1,2] freed, [5,6] allocated and freed; cached_tokens of [1,2]":
                _hit_and_free(c, [1, 2])}
        c = ns.PrefixCache(4, 1)
        a, _ = _alloc(c, [8])               # held throughout
        t, _ = _alloc(c, [1, 2])
        c.free(t)
        u, _ = _alloc(c, [5, 6])
        seen["4 blocks of 1, [8] held: [5,6] took [8]'s block"] = a[0] in u
        c.free(u)
        seen["…then cached_tokens of [1,2]"] = _hit_and_free(c, [1, 2])
        c = ns.PrefixCache(3, 1)
        for p in ([7], [8], [9], [7]):      # the second [7] is a hit: [7] is now the most recent
            _hit_and_free(c, p)
        _hit_and_free(c, [6])               # evicts [8], the least recently used
        seen["3 blocks of 1: [7], [8], [9], [7] again, then [6]; cached_tokens of [7], [8]"] = (
            _hit_and_free(c, [7]), _hit_and_free(c, [8]))
        return seen

    ctx.expect_scenario(story, "three short stories of eviction order (block size 1)")


@check("a referenced block is never evicted; when nothing is free, allocate raises RuntimeError "
       "and changes nothing")
def referenced_never_evicted(ctx):
    def story(ns):
        c = ns.PrefixCache(2, 2)
        a, _ = _alloc(c, [1, 1])            # held
        b, _ = _alloc(c, [2, 2])
        c.free(b)                           # evictable
        d, _ = _alloc(c, [3, 3])            # must evict b's block, not a's
        seen = {"d took a's block": d == a, "refcount of a's block": c.refcount(a[0]),
                "num_free": c.num_free,
                "allocate([4, 4]) with both blocks referenced": outcome(lambda: _alloc(c, [4, 4])),
                "after it, num_free": c.num_free, "and refcount of a's block": c.refcount(a[0])}
        c.free(d)
        e = outcome(lambda: _alloc(c, [1, 1, 7]))   # hits a's block; evicts [3,3] for the rest
        seen.update({"after free(d), allocate([1, 1, 7]): (cached_tokens, its first block is a's)":
                         e if isinstance(e, str) else (e[1], e[0][0] == a[0]),
                     "refcount of a's block then": c.refcount(a[0]), "num_free then": c.num_free,
                     "then allocate([3, 3]) (it was evicted; nothing is free)":
                         outcome(lambda: _alloc(c, [3, 3])[1])})
        return seen

    ctx.expect_scenario(story, "2 blocks of 2: a = [1,1] held, b = [2,2] freed, then d = [3,3]; "
                               "[4,4] must not fit; free d, then [1,1,7] and [3,3]")


@check("free gives every owner's reference back: shared blocks drop to 0 once both tables are "
       "freed and become evictable; uncached blocks become empty")
def free_decrements(ctx):
    def story(ns):
        c = ns.PrefixCache(4, 2)
        a, _ = _alloc(c, [1, 2, 3])
        b, _ = _alloc(c, [1, 2, 4])
        seen = {"refcounts after a, b": [c.refcount(x) for x in sorted(set(a + b))],
                "num_free": c.num_free}
        c.free(a)
        seen["after free(a)"] = ([c.refcount(x) for x in sorted(set(a + b))], c.num_free)
        c.free(b)
        seen["after free(b)"] = ([c.refcount(x) for x in sorted(set(a + b))], c.num_free)
        seen["then allocate 4 fresh blocks"] = outcome(lambda: _alloc(c, [9, 9, 8, 8, 7, 7, 6]))
        return seen

    ctx.expect_scenario(story, "4 blocks of 2: a = [1,2,3], b = [1,2,4], free both, then a "
                               "7-token prompt")


# ---------------------------------------------------------------------------
# Traces: the prediction's trace, and a chat trace where eviction order matters
# ---------------------------------------------------------------------------


def system_trace(n_requests=4, system=12, own=6):
    shared = list(range(100, 100 + system))
    return [shared + [1000 + 10 * r + i for i in range(own)] for r in range(n_requests)]


def chat_trace():
    """24 requests cycling unevenly over 3 system prompts of 16 tokens, each with 5 tokens of
    its own; served one at a time (allocated, then freed)."""
    systems = [[s * 100 + i for i in range(16)] for s in (1, 2, 3)]
    order = [0, 1, 0, 2, 0, 1, 0, 0, 2, 1, 0, 2, 2, 0, 1, 0, 0, 1, 2, 0, 0, 1, 0, 2]
    return [systems[s] + [5000 + 7 * r + i for i in range(5)] for r, s in enumerate(order)]


def replay_trace(ns, num_blocks, block_size, trace, free_each):
    c = ns.PrefixCache(num_blocks, block_size)
    hits = []
    for tokens in trace:
        table, hit = _alloc(c, tokens)
        hits.append(hit)
        if free_each:
            c.free(table)
    return hits


@check("the prediction's trace (4 requests sharing a 12-token system prompt): cached tokens per "
       "request at block sizes 4 and 8")
def system_prompt_trace(ctx):
    trace = system_trace()
    total = sum(map(len, trace))
    for bs in (4, 8):
        got = ctx.run(lambda: replay_trace(ctx.target, 64, bs, trace, False),
                      f"the system-prompt trace at block size {bs}")
        ctx.match(got, replay_trace(ctx.ref, 64, bs, trace, False),
                  f"cached_tokens per request, system-prompt trace, block size {bs}",
                  rerun=lambda ns, bs=bs: replay_trace(ns, 64, bs, trace, False))
        ctx.record(f"system-prompt trace, block size {bs}: hit rate {sum(got) / total:.3f}")


CHAT_BLOCKS = 14


@check(f"a chat trace over 3 system prompts with {CHAT_BLOCKS} blocks of 4 (eviction needed): "
       f"cached tokens per request match the reference")
def chat_trace_hits(ctx):
    trace = chat_trace()
    got = ctx.run(lambda: replay_trace(ctx.target, CHAT_BLOCKS, 4, trace, True), "the chat trace")
    ctx.match(got, replay_trace(ctx.ref, CHAT_BLOCKS, 4, trace, True),
              f"cached_tokens per request, chat trace, {CHAT_BLOCKS} blocks of 4",
              rerun=lambda ns: replay_trace(ns, CHAT_BLOCKS, 4, trace, True))
    fifo = replay_trace(Namespace(ctx.ref, dict(_impl(_FifoEviction)), "fifo"), CHAT_BLOCKS, 4,
                        trace, True)
    total = sum(map(len, trace))
    ctx.record(f"chat trace (24 requests, 3 system prompts, {CHAT_BLOCKS} blocks of 4): hit rate "
               f"{sum(got) / total:.3f} (the reference's FIFO variant: {sum(fifo) / total:.3f})")


# ---------------------------------------------------------------------------
# The model check: random allocations of related prompts and frees (hypothesis stateful)
# ---------------------------------------------------------------------------

BASES = ((1, 2, 1, 2, 3, 1, 2, 3), (1, 2, 1, 2, 0, 0, 3, 3), (2, 2, 2, 2, 2, 2, 1, 1))


class PrefixDriver(Driver):
    """The model keys blocks by the learner's own ids; it checks every id the learner picks."""

    entry = "PrefixCache"

    def __init__(self, ns, caller):
        super().__init__(ns, caller)
        self.obj = None
        self.bs = 0
        self.rc: list[int] = []
        self.key: list[tuple | None] = []     # block -> the prefix (tokens) it ends, or None
        self.cached: dict[tuple, int] = {}    # prefix -> block
        self.lru: list[int] = []              # evictable blocks, least recently used first
        self.seqs: dict[str, list[int]] = {}
        self.created = 0

    def step(self, op: tuple) -> None:
        kind = op[0]
        if kind == "init":
            _, nb, bs = op
            self.bs, self.rc, self.key = bs, [0] * nb, [None] * nb
            _, self.obj = self.call(lambda: self.ns.PrefixCache(nb, bs), f"PrefixCache({nb}, {bs})",
                                    line=f"cache = PrefixCache(num_blocks={nb}, block_size={bs})",
                                    show=False)
        elif kind == "alloc":
            self._allocate(list(op[1]))
        elif kind == "free":
            name = list(self.seqs)[op[1] % len(self.seqs)]
            table = self.seqs.pop(name)
            self.call(lambda: self.obj.free(list(table)), f"free({table})", line=f"free({name})")
            for b in reversed(table):
                self.rc[b] -= 1
                if self.rc[b] == 0 and self.key[b] is not None:
                    self.lru.append(b)

    def _allocate(self, tokens: list[int]) -> None:
        bs, n = self.bs, len(tokens)
        keys = [tuple(tokens[:(i + 1) * bs]) for i in range(n // bs)]
        hits = []
        for key in keys:
            if key not in self.cached:
                break
            hits.append(self.cached[key])
        n_blocks = -(-n // bs)
        need = n_blocks - len(hits)
        free = sum(1 for r in self.rc if r == 0) - sum(1 for b in hits if self.rc[b] == 0)
        name = f"r{self.created}"
        what = f"allocate({tokens})"
        if need > free:
            self.call(lambda: self.obj.allocate(list(tokens)), what, expect=RuntimeError,
                      line=f"allocate({tokens}): needs {need} new blocks, {free} free",
                      hint="Only blocks with refcount 0 may be taken (blocks this prompt hits do "
                           "not count): succeeding means a referenced block was handed out again, "
                           "or a free forgot to count an owner.")
            return
        _, out = self.call(lambda: self.obj.allocate(list(tokens)), what,
                           line=f"{name} = allocate({tokens})",
                           hint=f"{need} new blocks are needed and {free} have refcount 0 (empty "
                                f"or evictable): it must fit. An out-of-blocks error here means "
                                f"blocks leaked (a free that did not decrement every refcount) "
                                f"or cached blocks were never evicted.")
        self.created += 1
        table, cached = self._parse(out, what)
        if cached != len(hits) * bs:
            self.fail(("cached", cached), self._cached_problem(tokens, cached, len(hits)))
        if len(table) != n_blocks:
            self.fail(("table_len", len(table)), f"{what} returned {len(table)} blocks, expected "
                                                 f"⌈{n}/{bs}⌉ = {n_blocks}.")
        if table[:len(hits)] != hits:
            self.fail(("hit blocks",), f"{what}: its first {len(hits)} blocks should be the cached "
                                       f"blocks {hits} of its prefix, got {table[:len(hits)]}.")
        self._check_fresh(what, table[len(hits):], hits)
        for b in hits:
            if self.rc[b] == 0:
                self.lru.remove(b)
            self.rc[b] += 1
        for i, b in enumerate(table[len(hits):], len(hits)):
            if self.key[b] is not None:       # evicted
                self.lru.remove(b)
                if self.cached.get(self.key[b]) == b:
                    del self.cached[self.key[b]]
            self.key[b] = keys[i] if i < len(keys) else None
            if self.key[b] is not None:
                self.cached[self.key[b]] = b
            self.rc[b] = 1
        self.seqs[name] = table

    def _parse(self, out, what):
        try:
            table, cached = out
            return [int(b) for b in table], int(cached)
        except (TypeError, ValueError):
            self.fail(("output type",), f"{what} returned {out!r:.60}; expected a tuple "
                                        f"(block_table: list of ints, cached_tokens: int).")

    def _cached_problem(self, tokens, got, hits) -> str:
        text = (f"allocate({tokens}) says {got} tokens were cached; the cache holds the first "
                f"{hits} full block{'s' if hits != 1 else ''} of this prompt, so {hits * self.bs}")
        if got > hits * self.bs:
            return text + (". A hit must match the whole prefix (each key chains its parent's "
                           "key), and only full blocks are shared.")
        return text + (". Freed full blocks stay cached until evicted, and eviction takes the "
                       "least recently used evictable block — or an empty block, first.")

    def _check_fresh(self, what, fresh, hits):
        nb = len(self.rc)
        for b in fresh:
            if not 0 <= b < nb:
                self.fail(("out of range",), f"{what} handed out block {b}, not a block of the "
                                             f"pool (0 … {nb - 1}).")
        if len(set(fresh)) != len(fresh) or set(fresh) & set(hits):
            self.fail(("repeated",), f"{what} used a block twice in one table: {hits + fresh}.")
        busy = [b for b in fresh if self.rc[b] > 0]
        if busy:
            owner = next(n for n, t in self.seqs.items() if busy[0] in t)
            self.fail(("took referenced",), f"{what} took block {busy[0]}, which {owner} still "
                                            f"holds (refcount {self.rc[busy[0]]}): a referenced "
                                            f"block is never evicted.")
        empties = [b for b in range(nb) if self.rc[b] == 0 and self.key[b] is None]
        lru = [b for b in self.lru if b not in hits]      # a hit takes a block out of the order
        evicted = {b for b in fresh if self.key[b] is not None}
        want = set(lru[:max(0, len(fresh) - len(empties))])
        if evicted != want:
            ranks = tuple(sorted(lru.index(b) for b in evicted))  # independent of block ids
            if len(fresh) <= len(empties):
                self.fail(("evicted early", ranks),
                          f"{what} evicted cached block(s) {sorted(evicted)} although empty "
                          f"blocks {empties} were free: take empty blocks first.")
            self.fail(("not LRU", ranks),
                      f"{what} evicted {sorted(evicted)}; the least recently used evictable "
                      f"blocks were {sorted(want)} (LRU order, oldest first: {lru}; free "
                      f"releases a table's last block first, and a hit makes a block the most "
                      f"recent).")

    def check(self) -> None:
        if self.obj is None:
            return
        for b, want in enumerate(self.rc):
            got = self.read(lambda b=b: self.obj.refcount(b), f"refcount({b})")
            if got != want:
                self.fail(("refcount", got, want),
                          f"refcount({b}) is {got!r}, expected {want} (the block tables "
                          f"holding it: {[n for n, t in self.seqs.items() if b in t] or 'none'}).")
        free = self.read(lambda: self.obj.num_free, "num_free")
        want = sum(1 for r in self.rc if r == 0)
        if free != want:
            self.fail(("num_free", free), f"num_free is {free!r}, expected {want} (blocks with "
                                          f"refcount 0, empty or evictable).")


class PrefixMachine(RuleBasedStateMachine):
    def __init__(self, driver: PrefixDriver):
        super().__init__()
        self.d = driver

    @initialize(num_blocks=st.integers(2, 7), block_size=st.integers(1, 3))
    def init(self, num_blocks, block_size):
        self.d.apply(("init", num_blocks, block_size))

    @precondition(lambda self: len(self.d.seqs) < 5)
    @rule(base=st.integers(0, len(BASES) - 1), cut=st.integers(0, 8),
          tail=st.lists(st.integers(0, 3), max_size=3))
    def allocate(self, base, cut, tail):
        tokens = list(BASES[base][:cut]) + tail
        self.d.apply(("alloc", tuple(tokens or [0])))

    @precondition(lambda self: self.d.seqs)
    @rule(i=st.integers(0, 7))
    def free(self, i):
        self.d.apply(("free", i))


@check("random allocations of related prompts and frees agree with a model (hypothesis "
       "stateful testing): refcounts, num_free, cached tokens, no referenced block evicted, "
       "empty blocks before LRU eviction")
def prefix_model(ctx):
    run_machine(ctx, PrefixMachine, PrefixDriver, steps=20)


# ---------------------------------------------------------------------------
# Misconceptions: the reference with one thing done wrong (source notes say where)
# ---------------------------------------------------------------------------


# Source note: "hash the block's tokens" is the first thing most people write; it finds the
# same tokens anywhere, giving hits whose KV was computed after another prefix (false hits).
class _BlockOnlyHash:
    def _hashes(self, tokens):
        bs = self.block_size
        return [hash(tuple(tokens[i * bs:(i + 1) * bs])) for i in range(len(tokens) // bs)]


# Source note: an LRU over every cached block (in use or not), as in a plain LRU cache;
# vLLM keeps only refcount-0 blocks in its free queue.
class _EvictsReferenced:
    def __init__(self, num_blocks, block_size):
        super().__init__(num_blocks, block_size)
        self._uses = OrderedDict()

    def allocate(self, tokens):
        table, cached = super().allocate(tokens)
        for b in table:
            if self._hash[b] is not None:
                self._uses[b] = None
                self._uses.move_to_end(b)
        return table, cached

    def _take(self):
        if self._empty:
            return self._empty.popleft()
        b = next(iter(self._uses))
        del self._uses[b]
        self._lru.pop(b, None)
        h, self._hash[b] = self._hash[b], None
        if self._cached.get(h) == b:
            del self._cached[h]
        return b


# Source note: eviction by age of insertion (a FIFO queue of cached blocks) — a hit does not
# refresh a block, so a hot system prompt is evicted as soon as it is the oldest.
class _FifoEviction:
    def __init__(self, num_blocks, block_size):
        super().__init__(num_blocks, block_size)
        self._born, self._clock = {}, itertools.count()

    def allocate(self, tokens):
        table, cached = super().allocate(tokens)
        for b in table[cached // self.block_size:]:
            self._born[b] = next(self._clock)
        return table, cached

    def free(self, block_table):
        super().free(block_table)
        self._lru = OrderedDict((b, None) for b in sorted(self._lru, key=self._born.get))


# Source note: caching the partial last block as well; its owner writes the next token into
# it, so a sharer would read (or overwrite) tokens that are not its own.
class _SharesPartial:
    def _hashes(self, tokens):
        out, bs = super()._hashes(tokens), self.block_size
        rest = len(tokens) % bs
        if rest:
            out.append(hash((out[-1] if out else None, tuple(tokens[-rest:]))))
        return out

    def allocate(self, tokens):
        table, cached = super().allocate(tokens)
        return table, min(cached, len(list(tokens)))


# Source note: free that returns a block only when its refcount is 1 and otherwise leaves
# the count alone: shared prefix blocks leak, the pool shrinks with every shared request.
class _NoDecref:
    def free(self, block_table):
        for b in reversed(list(block_table)):
            if self._refcount[b] == 1:
                self._refcount[b] = 0
                if self._hash[b] is None:
                    self._empty.append(b)
                else:
                    self._lru[b] = None


# Source note: freeing a table front to back makes the prefix's first block the oldest;
# LRU then evicts it first and orphans its still-cached children (unreachable: a lookup
# stops at the first miss). vLLM frees in reverse for this reason.
class _ForwardFree:
    def free(self, block_table):
        super().free(list(block_table)[::-1])


class _NeverCaches:
    def allocate(self, tokens):
        n = -(-len(list(tokens)) // self.block_size)
        if n > self.num_free:
            raise RuntimeError("out of blocks")
        table = [self._take() for _ in range(n)]
        for b in table:
            self._refcount[b] = 1
        return table, 0


class _NeverEvicts:
    @property
    def num_free(self):
        return len(self._empty)

    def _take(self):
        return self._empty.popleft()


def _impl(mixin):
    return {"PrefixCache": wrong_class("prefix_cache.py", "PrefixCache", mixin, level="level8")}


PREFIX_CACHE = Kata(
    id="prefix_cache", level=8, title="Prefix caching: shared prompt blocks by prefix hash, LRU eviction",
    path="level8/prefix_cache.py", entries=("PrefixCache",),
    checks=(shared_prefix_hits, key_covers_prefix, lru_eviction, free_last_block_first,
            referenced_never_evicted, free_decrements, system_prompt_trace, chat_trace_hits,
            prefix_model),
    predictions=(
        Prediction("hit_rate_bs4", "4 requests, each a shared 12-token system prompt + 6 tokens of "
                   "its own, block size 4: fraction of prompt tokens served from the cache", 0.5,
                   rel_tol=0.01, why="The first request hits nothing; each later one hits the 3 "
                   "full system blocks (12 tokens): 36 of 72 tokens."),
        Prediction("hit_rate_bs8", "the same trace at block size 8", 1 / 3, rel_tol=0.01,
                   why="Only one full block (8 tokens) is pure system prompt; the second block "
                       "mixes in each request's own tokens, so it never hits: 24 of 72."),
        Prediction("blocks_in_use", "block size 4, after the four requests: blocks with refcount "
                   "> 0", 11, kind="exact",
                   why="18 tokens = 4 full blocks + 1 partial. The first request takes 5; each "
                       "other shares the 3 system blocks and adds 2: 5 + 3·2 = 11 (instead of 20)."),
    ),
    misconceptions=(
        Misconception("hash_block_only", "keyed each block by its own tokens, without the prefix "
                      "(false hits)", _impl(_BlockOnlyHash),
                      "A block's KV depends on every token before it: key(i) = hash((key(i − 1), "
                      "tokens of block i)), so equal keys mean equal prefixes."),
        Misconception("frees_first_block_first", "free released the table front to back, so a "
                      "prefix's first block is evicted before its later blocks",
                      _impl(_ForwardFree),
                      "Release from the last block to the first: later blocks become older "
                      "and go first; evicting a parent strands its children (a lookup stops at "
                      "the first miss)."),
        Misconception("evicts_referenced", "evicted a block that a live request still references",
                      _impl(_EvictsReferenced),
                      "Only blocks with refcount 0 are evictable: keep the LRU order over "
                      "freed cached blocks only; a hit takes a block out of it."),
        Misconception("fifo_eviction", "evicted the oldest cached block (FIFO) instead of the "
                      "least recently used", _impl(_FifoEviction),
                      "A hit makes a block recently used: when it is freed again it goes to the "
                      "young end of the LRU order, so hot prefixes stay cached."),
        Misconception("shares_partial_block", "cached and shared the partly filled last block",
                      _impl(_SharesPartial),
                      "Only full blocks get a key: the owner of a partial block writes its next "
                      "tokens there. A prompt of n tokens can hit at most ⌊n/B⌋ blocks."),
        Misconception("free_without_decref", "free returned blocks with refcount 1 but did not "
                      "decrement shared ones", _impl(_NoDecref),
                      "free takes one owner off every block of the table (refcount − 1); the "
                      "block is released when the count reaches 0."),
    ),
    fakes=(Fake("never_caches", _impl(_NeverCaches)), Fake("never_evicts", _impl(_NeverEvicts))),
    generic_fakes=(),
    claims=(
        Claim("prefix-cache-sharing", "Prompts that share a prefix share its full KV blocks "
              "(refcounted), keyed by a hash chained over the whole prefix, so equal keys mean "
              "equal prefixes; the partial last block is never shared.", scope="exact",
              source="kwon-2023-paged",
              evidence=("shared_prefix_hits", "key_covers_prefix", "prefix_model"),
              not_claimed="Hash collisions are treated as impossible (Python's hash on small "
                          "traces); no KV tensors are stored or compared here, only block tables."),
        Claim("prefix-cache-lru", "Unreferenced cached blocks are evicted least recently used "
              "first, only when no empty block is left, and a referenced block is never evicted.",
              scope="exact", source="zheng-2024-sglang",
              evidence=("lru_eviction", "free_last_block_first", "referenced_never_evicted",
                        "prefix_model"),
              not_claimed="Checked on pools of ≤ 7 blocks and random stories of 20 steps; vLLM's "
                          "single free queue and SGLang's radix tree differ in details."),
        Claim("prefix-cache-hit-rate", "On the kata's system-prompt trace the hit rate is 0.5 at "
              "block size 4 and 1/3 at block size 8 (sharing is counted in whole blocks); on its chat "
              "trace with 14 blocks of 4 it is 0.492 with LRU eviction (FIFO would give 0.381).",
              scope="toy", source="kwon-2023-paged",
              evidence=("system_prompt_trace", "chat_trace_hits"),
              not_claimed="Hit rates of made-up traces, not of production workloads; nothing "
                          "about time saved in prefill."),
    ),
    hints=(
        "Keep: a refcount per block, a dict key -> block for cached full blocks, the key of "
        "each block (or None), a deque of empty blocks and an OrderedDict of evictable blocks "
        "(least recently used first).",
        "allocate: compute key(i) = hash((key(i−1), tuple(block i's tokens))) for the full "
        "blocks; hit while the key is in the dict; count the new blocks needed against "
        "num_free minus the evictable blocks you hit, and raise RuntimeError before changing "
        "anything.",
        "A new block: empty.popleft() if any, else lru.popitem(last=False) and delete its key. "
        "free: for b in reversed(table): refcount − 1; at 0, lru[b] = None if it has a key, "
        "else empty.append(b).",
    ),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): short stories read through allocate's cached_tokens,
# refcount and num_free (never raw block ids, except whether two tables share one).
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds  # noqa: E402


def _hit_after(first, second, bs=2, blocks=8):
    def run(ns):
        c = ns.PrefixCache(blocks, bs)
        _alloc(c, first)
        return _alloc(c, second)[1]
    return run


def _partial_shared(bs, prompt):
    def run(ns):
        c = ns.PrefixCache(8, bs)
        a, _ = _alloc(c, prompt)
        b, hit = _alloc(c, prompt)
        return {"the partial last block is shared": a[-1] == b[-1], "cached_tokens": hit}
    return run


def _shared_then_freed(ns):
    c = ns.PrefixCache(8, 2)
    a, _ = _alloc(c, [1, 2, 3])
    b, _ = _alloc(c, [1, 2, 4])
    c.free(a)
    c.free(b)
    return c.refcount(a[0])


def _refill_after_shared(ns):
    c = ns.PrefixCache(4, 2)
    a, _ = _alloc(c, [1, 2, 3])
    b, _ = _alloc(c, [1, 2, 4])
    c.free(a)
    c.free(b)
    done = outcome(lambda: _alloc(c, [9, 9, 8, 8, 7, 7, 6]))
    return done if isinstance(done, str) else "no error"


def _held_then_new(ns):
    c = ns.PrefixCache(2, 2)
    a, _ = _alloc(c, [1, 1])
    b, _ = _alloc(c, [2, 2])
    c.free(b)
    d, _ = _alloc(c, [3, 3])
    return {"the new prompt took the held block": d == a, "refcount of the held block": c.refcount(a[0])}


def _refreshed(bs, prompts, again, newcomer, ask):
    """Cache ``prompts`` (each freed), hit ``again`` (freed), then ``newcomer`` needs a block;
    is ``ask`` still cached? (its cached_tokens, read without allocating: a fresh lookup of
    the first block of ``ask`` in a 1-block request is avoided, so the count is exact)"""
    def run(ns):
        c = ns.PrefixCache(len(prompts), bs)
        for p in prompts:
            _hit_and_free(c, p)
        _hit_and_free(c, again)
        _hit_and_free(c, newcomer)
        return _hit_and_free(c, ask)
    return run


def _evicted_after_free(blocks, prompt):
    """Block size 1, ``blocks`` blocks: x = [5] cached first, then ``prompt`` allocated; free
    the prompt, then x; a new one-token prompt needs a block: cached_tokens of ``prompt``.
    Right: the prompt's tail goes first. Front-to-back free: its head. By age alone: x."""
    def run(ns):
        c = ns.PrefixCache(blocks, 1)
        x, _ = _alloc(c, [5])
        t, _ = _alloc(c, prompt)
        c.free(t)
        c.free(x)
        _hit_and_free(c, [9])
        return _hit_and_free(c, prompt)
    return run


def _held_taken(ns):
    """3 blocks of 1: a = [1] held; [2] and [3] cached and freed; then [4] needs a block."""
    c = ns.PrefixCache(3, 1)
    a, _ = _alloc(c, [1])
    _hit_and_free(c, [2])
    _hit_and_free(c, [3])
    d, _ = _alloc(c, [4])
    return d == a


PREFIX_CACHE = attach(PREFIX_CACHE, probes={
    # source: openvinotoolkit/openvino.genai#3722 and vllm-project/aibrix#2330 (a block's
    # key must identify the whole prefix, not only its own tokens)
    "hash_block_only": (
        Probe("block size 2: [1,2,3,4], then [3,4,3,4]: cached_tokens", _hit_after([1, 2, 3, 4], [3, 4, 3, 4]),
              _holds(lambda g, w: g > 0 and w == 0)),
        Probe("block size 2: [1,2,7,7], then [7,7,1,2]: cached_tokens", _hit_after([1, 2, 7, 7], [7, 7, 1, 2]),
              _holds(lambda g, w: g > 0 and w == 0)),
    ),
    # source: vllm-project/vllm's block pool frees a request's blocks in reverse order so a
    # prefix's tail is evicted before its head (jjang-ai/vmlx#68 discusses the free path)
    "frees_first_block_first": (
        Probe("3 blocks of 1: [5], then [1,2]; free [1,2], free [5]; [9] needs a block: "
              "cached_tokens of [1,2]", _evicted_after_free(3, [1, 2]),
              _holds(lambda g, w: g == 0 and w == 1)),
        Probe("4 blocks of 1: [5], then [1,2,3]; free [1,2,3], free [5]; [9] needs a block: "
              "cached_tokens of [1,2,3]", _evicted_after_free(4, [1, 2, 3]),
              _holds(lambda g, w: g == 0 and w == 2)),
    ),
    # source: jjang-ai/vmlx#68 ("blocks with ref_count > 0 can never enter the free LRU
    # queue"): only unreferenced blocks may be evicted
    "evicts_referenced": (
        Probe("2 blocks of 2: [1,1] held, [2,2] freed, then [3,3]", _held_then_new,
              _holds(lambda g, w: g["the new prompt took the held block"])),
        Probe("3 blocks of 1: [1] held, [2] and [3] cached and freed, then [4]", _held_taken,
              _holds(lambda g, w: g is True and w is False)),
    ),
    # source: vllm-project/vllm#49145 and kekzl/imp#1120 (cached blocks move to the free
    # queue when released; a hit takes them out again, refreshing their recency)
    "fifo_eviction": (
        Probe("3 blocks of 1: [7], [8], [9] cached, [7] hit again, then [6]: cached_tokens of [7]",
              _refreshed(1, ([7], [8], [9]), [7], [6], [7]), _holds(lambda g, w: g == 0 and w == 1)),
        Probe("2 blocks of 2: [1,1], [2,2] cached, [1,1] hit again, then [3,3]: cached_tokens "
              "of [1,1]", _refreshed(2, ([1, 1], [2, 2]), [1, 1], [3, 3], [1, 1]),
              _holds(lambda g, w: g == 0 and w == 2)),
    ),
    # source: pegainfer-project/pegainfer#291 (the partly filled last page is still being
    # written) and vLLM's rule that only full blocks are hashed
    "shares_partial_block": (
        Probe("block size 2: [1,2,3] twice", _partial_shared(2, [1, 2, 3]),
              _holds(lambda g, w: g["the partial last block is shared"])),
        Probe("block size 4: [5,6,7] twice", _partial_shared(4, [5, 6, 7]),
              _holds(lambda g, w: g["the partial last block is shared"])),
    ),
    # source: xLLM-AI/xllm#828 (a ref_count check that skips the decrement: shared blocks
    # leak and utilisation passes 100 %)
    "free_without_decref": (
        Probe("block size 2: [1,2,3] and [1,2,4] share a block; both freed: its refcount",
              _shared_then_freed, _holds(lambda g, w: g > 0 and w == 0)),
        Probe("4 blocks of 2: [1,2,3] and [1,2,4] freed, then a 7-token prompt", _refill_after_shared,
              _holds(lambda g, w: g != "no error" and w == "no error")),
    ),
})


class _PrefixTextKeys:
    """Correct, other way: a block's key is the text of the whole prefix up to its end."""

    def _hashes(self, tokens):
        bs = self.block_size
        return [" ".join(map(str, tokens[:(i + 1) * bs])) for i in range(len(tokens) // bs)]


PREFIX_CACHE = attach(PREFIX_CACHE, variants=(Fake("prefix_text_keys", _impl(_PrefixTextKeys)),))
