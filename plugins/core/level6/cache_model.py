"""Level 6 · paged_kv_cache — the model check: random adds, appends, forks and frees.

The model knows, for every live sequence, its tokens and which of its logical blocks
must be *the same physical block* as which others (a fork shares every block; a
copy-on-write splits one off).  From that it predicts the pool's use exactly, so it
knows when an append must succeed and when it must raise out of blocks.  The subject
is read only through the public API: ``seq_len``, ``block_table``, ``k_pages``,
``v_pages``.  Token values encode who wrote them, so a write that leaks into another
sequence is reported by name.
"""

from __future__ import annotations

from attnkata.strategies import st
from attnkata.strategies import RuleBasedStateMachine, initialize, precondition, rule

from .stateful import Driver

N_HEADS, HEAD_DIM = 2, 3


def token_kv(tag: int, n_heads: int = N_HEADS, head_dim: int = HEAD_DIM):
    """The keys and values of token number ``tag``: distinct, exact in float32."""
    import torch

    k = torch.arange(n_heads * head_dim, dtype=torch.float32).reshape(n_heads, head_dim)
    k = k + tag * n_heads * head_dim
    return k, -k - 0.5


def tokens_kv(tags: list[int]):
    import torch

    pairs = [token_kv(t) for t in tags]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


class CacheDriver(Driver):
    entry = "PagedKVCache"

    def __init__(self, ns, caller):
        super().__init__(ns, caller)
        self.obj = None
        self.num_blocks = self.block_size = 0
        self.seqs: dict[str, dict] = {}   # name -> {"id", "index", "tokens", "classes"}
        self.rc: dict[int, int] = {}      # sharing class -> owners (= the block's refcount)
        self.split_from: dict[int, int] = {}  # class made by copy-on-write -> the class it copied
        self.writer: dict[int, str] = {}  # token tag -> the sequence that appended it
        self.created = 0
        self.next_tag = 0

    # -- the model ------------------------------------------------------------
    def live(self) -> list[str]:
        return list(self.seqs)

    def free_blocks(self) -> int:
        return self.num_blocks - sum(1 for c in self.rc.values() if c > 0)

    def needed(self, name: str, t: int) -> int:
        s = self.seqs[name]
        n, bs = len(s["tokens"]), self.block_size
        shared_tail = n % bs != 0 and self.rc[s["classes"][-1]] > 1
        return cdiv(n + t, bs) - len(s["classes"]) + int(shared_tail and t > 0)

    def _new_class(self, split_from: int | None = None) -> int:
        c = len(self.rc)
        self.rc[c] = 1
        if split_from is not None:
            self.split_from[c] = split_from
        return c

    # -- operations -------------------------------------------------------------
    def step(self, op: tuple) -> None:
        kind = op[0]
        if kind == "init":
            _, nb, bs = op
            self.num_blocks, self.block_size = nb, bs
            _, self.obj = self.call(lambda: self.ns.PagedKVCache(nb, bs, N_HEADS, HEAD_DIM),
                                    f"PagedKVCache({nb}, {bs}, {N_HEADS}, {HEAD_DIM})", show=False,
                                    line=f"cache = PagedKVCache(num_blocks={nb}, block_size={bs}, "
                                         f"n_heads={N_HEADS}, head_dim={HEAD_DIM})")
            return
        if kind == "add":
            name = f"s{self.created}"
            _, sid = self.call(self.obj.add_sequence, "add_sequence()", line=f"{name} = add_sequence()")
            self._adopt(name, sid, [], [])
            return
        name = self.live()[op[1] % len(self.live())]
        s = self.seqs[name]
        if kind == "append":
            self._append(name, op[2])
        elif kind == "fork":
            child = f"s{self.created}"
            _, sid = self.call(lambda: self.obj.fork(s["id"]), f"fork({s['id']!r})",
                               line=f"{child} = fork({name})")
            for c in s["classes"]:
                self.rc[c] += 1
            self._adopt(child, sid, list(s["tokens"]), list(s["classes"]))
        elif kind == "free":
            self.call(lambda: self.obj.free_sequence(s["id"]), f"free_sequence({s['id']!r})",
                      line=f"free_sequence({name})")
            for c in s["classes"]:
                self.rc[c] -= 1
            del self.seqs[name]

    def _adopt(self, name: str, sid, tokens: list[int], classes: list[int]) -> None:
        taken = {s["id"]: n for n, s in self.seqs.items()}
        try:
            clash = taken.get(sid)
        except TypeError:  # unhashable id
            self.fail(("seq id type",), f"the sequence id {sid!r} is not hashable; return an int.")
        if clash is not None:
            self.fail(("seq id reused",), f"{name} got the sequence id {sid!r}, which {clash} still uses.")
        self.seqs[name] = {"id": sid, "index": self.created, "tokens": tokens, "classes": classes}
        self.created += 1

    def _append(self, name: str, t: int) -> None:
        s = self.seqs[name]
        tags = list(range(self.next_tag, self.next_tag + t))
        self.next_tag += t
        k, v = tokens_kv(tags)
        need, free = self.needed(name, t), self.free_blocks()
        used = self.num_blocks - free
        what = f"append({name}, k, v)"
        line = f"append({name}, {t} token{'s' if t > 1 else ''})"
        if need > free:
            self.call(lambda: self.obj.append(s["id"], k, v), what, expect=RuntimeError,
                      line=f"{line}: needs {need} new block{'s' if need > 1 else ''}, {free} free",
                      hint=f"It needs {need} new blocks and only {free} of {self.num_blocks} are "
                           f"unused, so it must raise (and change nothing). Succeeding means more "
                           f"blocks were free than should be: one went back to the pool while a "
                           f"sequence still used it, or went back twice.")
            return
        self.call(lambda: self.obj.append(s["id"], k, v), what, line=line,
                  hint=f"Only {used} of {self.num_blocks} blocks are in use by live sequences and "
                       f"this append needs {need}: if that is an out-of-blocks error, blocks leaked "
                       f"(a free_sequence that does not free its blocks, or an earlier append that "
                       f"failed halfway and kept the blocks it had taken).")
        n, bs, classes = len(s["tokens"]), self.block_size, s["classes"]
        if n % bs and self.rc[classes[-1]] > 1:  # copy-on-write
            self.rc[classes[-1]] -= 1
            classes[-1] = self._new_class(split_from=classes[-1])
        while len(classes) * bs < n + t:
            classes.append(self._new_class())
        s["tokens"] += tags
        for tag in tags:
            self.writer[tag] = name

    # -- invariants ---------------------------------------------------------------
    def check(self) -> None:
        if self.obj is None:
            return
        tables = {name: self._table(name) for name in self.live()}
        self._check_sharing(tables)
        self._check_contents(tables)

    def _table(self, name: str) -> list[int]:
        s, bs = self.seqs[name], self.block_size
        n = self.read(lambda: self.obj.seq_len(s["id"]), f"seq_len({s['id']!r})")
        if n != len(s["tokens"]):
            self.fail(("seq_len", s["index"], n),
                      f"seq_len({name}) is {n!r}, expected {len(s['tokens'])}"
                      + (": a failed append must leave the sequence as it was." if self.lines
                         and "raised" in self.lines[-1] else "."))
        raw = self.read(lambda: self.obj.block_table(s["id"]), f"block_table({s['id']!r})")
        try:
            table = [int(b) for b in raw]
        except (TypeError, ValueError):
            self.fail(("table type",), f"block_table({name}) returned {raw!r:.60}; expected a list of ints.")
        if len(table) != cdiv(n, bs):
            self.fail(("table_len", s["index"], len(table)),
                      f"block_table({name}) has {len(table)} entries, expected ⌈{n}/{bs}⌉ = {cdiv(n, bs)}"
                      + (": a failed append must change nothing — check that there is room "
                         "before allocating anything." if len(table) > cdiv(n, bs) else "."))
        bad = [b for b in table if not 0 <= b < self.num_blocks]
        if bad:
            self.fail(("table_range",), f"block_table({name}) holds {bad[0]}, not a block of "
                                        f"the pool (0 … {self.num_blocks - 1}).")
        return table

    def _check_sharing(self, tables: dict[str, list[int]]) -> None:
        phys_of: dict[int, tuple[str, int, int]] = {}   # class -> (seq, logical block, block)
        class_of: dict[int, tuple[str, int, int]] = {}  # block -> (seq, logical block, class)
        for name, table in tables.items():
            s = self.seqs[name]
            for j, (block, c) in enumerate(zip(table, s["classes"])):
                if c in phys_of and phys_of[c][2] != block:
                    other, i, theirs = phys_of[c]
                    self.fail(("not shared", s["index"], j),
                              f"{name}'s logical block {j} is block {block}, but it should be the very "
                              f"block that {other}'s logical block {i} uses (block {theirs}): a fork "
                              f"shares every block with its parent (one more owner, no copy) until "
                              f"one of them writes into it.")
                if block in class_of and class_of[block][2] != c:
                    other, i, theirs = class_of[block]
                    self.fail(("wrongly shared", s["index"], j), self._wrongly_shared(
                        name, j, other, i, block, c, theirs))
                phys_of.setdefault(c, (name, j, block))
                class_of.setdefault(block, (name, j, c))

    def _wrongly_shared(self, name, j, other, i, block, c, theirs) -> str:
        head = (f"{name}'s logical block {j} and {other}'s logical block {i} are both block {block}, "
                f"but they hold different tokens")
        if self.split_from.get(c) == theirs or self.split_from.get(theirs) == c or (
                c in self.split_from and self.split_from.get(c) == self.split_from.get(theirs)):
            return (head + ": after one of them appended into that shared, partly filled block it "
                    "needed its own copy (copy-on-write: allocate a block, copy the filled rows, "
                    "drop one reference to the old block, write there). Without the copy each "
                    "one's writes land in the other's block.")
        return (head + ": a block went back to the pool while a sequence still used it, and was "
                "handed out again (a fork must incref every block it shares; free_sequence "
                "frees each block once).")

    def _check_contents(self, tables: dict[str, list[int]]) -> None:
        import torch

        pages = {"keys": self.read(lambda: self.obj.k_pages, "k_pages"),
                 "values": self.read(lambda: self.obj.v_pages, "v_pages")}
        bs = self.block_size
        for name, table in tables.items():
            tags = self.seqs[name]["tokens"]
            if not tags:
                continue
            want = dict(zip(("keys", "values"), tokens_kv(tags)))
            pos = torch.arange(len(tags))
            for which, pool in pages.items():
                try:
                    got = pool[torch.tensor(table)[pos // bs], pos % bs].float()
                except Exception as exc:  # noqa: BLE001 - not a tensor of the documented shape
                    self.fail(("pages unreadable", which),
                              f"indexing {'k_pages' if which == 'keys' else 'v_pages'} "
                              f"[block, row] failed ({type(exc).__name__}: {exc}); it must be a "
                              f"tensor [num_blocks, block_size, n_heads, head_dim].")
                if got.shape == want[which].shape and torch.equal(got, want[which]):
                    continue
                self.fail(("contents", self.seqs[name]["index"], which),
                          self._contents_problem(name, which, got, want[which], tags))

    def _contents_problem(self, name, which, got, want, tags) -> str:
        if got.shape != want.shape:
            return f"{name}'s {which} gathered through its block table have shape {list(got.shape)}, " \
                   f"expected {list(want.shape)}: k_pages/v_pages are [num_blocks, block_size, n_heads, head_dim]."
        t = int((got != want).flatten(1).any(1).nonzero()[0])
        found = got[t, 0, 0].item()
        tag = (found if which == "keys" else -found - 0.5) / (N_HEADS * HEAD_DIM)
        owner = self.writer.get(int(tag)) if float(tag).is_integer() else None
        text = f"{name}'s token {t} ({which}) is not the one appended to it"
        if owner is not None and owner != name and int(tag) not in tags:
            return text + f": it holds a token that {owner} appended — {owner}'s write is visible " \
                          f"in {name}. Sequences that share a block must not write into it."
        return text + f": expected {want[t, 0].tolist()}, found {got[t, 0].tolist()} (at [{t}, 0])."


class CacheMachine(RuleBasedStateMachine):
    def __init__(self, driver: CacheDriver):
        super().__init__()
        self.d = driver

    @initialize(num_blocks=st.integers(2, 6), block_size=st.integers(1, 4))
    def init(self, num_blocks, block_size):
        self.d.apply(("init", num_blocks, block_size))

    @precondition(lambda self: len(self.d.live()) < 5)
    @rule(t=st.integers(0, 6))
    def add(self, t):
        """A new sequence with ``t`` tokens."""
        self.d.apply(("add",))
        if t:
            self.d.apply(("append", len(self.d.live()) - 1, t))

    @precondition(lambda self: self.d.live())
    @rule(i=st.integers(0, 7), t=st.integers(1, 6))
    def append(self, i, t):
        self.d.apply(("append", i, t))

    @precondition(lambda self: self.d.live())
    @rule(i=st.integers(0, 7), t=st.integers(0, 3), child_writes=st.booleans())
    def fork(self, i, t, child_writes):
        """Fork a sequence; then the child or the parent appends ``t`` tokens."""
        parent = i % len(self.d.live())
        self.d.apply(("fork", parent))
        if t:
            self.d.apply(("append", len(self.d.live()) - 1 if child_writes else parent, t))

    @precondition(lambda self: self.d.live())
    @rule(i=st.integers(0, 7))
    def free(self, i):
        self.d.apply(("free", i))

    @rule()
    def fill_the_pool(self):
        """A new sequence takes exactly the free blocks; one more token must not fit."""
        self.d.apply(("add",))
        newest = len(self.d.live()) - 1
        free = self.d.free_blocks()
        if free:
            self.d.apply(("append", newest, free * self.d.block_size))
        self.d.apply(("append", newest, 1))
        self.d.apply(("free", newest))

    @precondition(lambda self: self.d.live())
    @rule(i=st.integers(0, 7))
    def overfill(self, i):
        """An append one block too big must fail and change nothing; then fill the pool."""
        name = self.d.live()[i % len(self.d.live())]
        want = self.d.free_blocks() + 1
        t = next(t for t in range(1, (want + 2) * self.d.block_size + 1) if self.d.needed(name, t) >= want)
        self.d.apply(("append", i, t))
        self.fill_the_pool()
