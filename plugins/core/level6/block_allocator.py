"""Level 6 · block_allocator — fixed-size blocks handed out by id, with reference counts."""

from __future__ import annotations

from attnkata.strategies import st
from attnkata.strategies import RuleBasedStateMachine, initialize, precondition, rule

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check

from .stateful import Driver, outcome, run_machine, wrong_class

# ---------------------------------------------------------------------------
# The model check: random interleavings of allocate, incref, free and double free
# ---------------------------------------------------------------------------


class AllocatorDriver(Driver):
    """Model: one record per allocation (a *handle*), with its block id and refcount."""

    entry = "BlockAllocator"

    def __init__(self, ns, caller):
        super().__init__(ns, caller)
        self.num_blocks = 0
        self.handles: list[dict] = []  # {"id": block, "rc": owners, "name": "a"}
        self.obj = None

    def live(self) -> list[dict]:
        return [h for h in self.handles if h["rc"] > 0]

    def free_ids(self) -> list[int]:
        held = {h["id"] for h in self.live()}
        return [b for b in range(self.num_blocks) if b not in held]

    def step(self, op: tuple) -> None:
        kind = op[0]
        if kind == "init":
            _, n, bs = op
            self.num_blocks = n
            _, self.obj = self.call(lambda: self.ns.BlockAllocator(n, bs), f"BlockAllocator({n}, {bs})",
                                    line=f"allocator = BlockAllocator(num_blocks={n}, block_size={bs})", show=False)
        elif kind == "allocate":
            self._allocate()
        elif kind in ("incref", "free"):
            h = self.live()[op[1] % len(self.live())]
            method = getattr(self.obj, kind)
            self.call(lambda: method(h["id"]), f"{kind}({h['id']})", line=f"{kind}({h['name']})")
            h["rc"] += 1 if kind == "incref" else -1
        elif kind == "free_free":
            ids = self.free_ids()
            block = ids[op[1] % len(ids)]
            self.call(lambda: self.obj.free(block), f"free({block})", expect=ValueError,
                      line=f"free({block}), a block nobody owns")

    def _allocate(self) -> None:
        name = chr(ord("a") + len(self.handles) % 26) + ("" if len(self.handles) < 26 else str(len(self.handles)))
        if not self.free_ids():
            self.call(self.obj.allocate, "allocate()", expect=RuntimeError,
                      line="allocate() with every block in use")
            return
        _, block = self.call(self.obj.allocate, "allocate()", line=f"{name} = allocate()")
        if not isinstance(block, int) or isinstance(block, bool) or not 0 <= block < self.num_blocks:
            self.fail(("allocate returned", repr(block)[:20]),
                      f"allocate() returned {block!r}; a block id is an int in "
                      f"0 … {self.num_blocks - 1} (it indexes the page pool).")
        holder = next((h for h in self.live() if h["id"] == block), None)
        if holder is not None:
            self.fail(("allocate in use",),
                      f"allocate() returned block {block}, which `{holder['name']}` still owns "
                      f"(refcount {holder['rc']}): only a block whose refcount is 0 may be handed out.")
        self.handles.append({"id": block, "rc": 1, "name": name})

    def check(self) -> None:
        if self.obj is None:
            return
        for i, h in enumerate(self.handles):
            if h["rc"] == 0 and any(g["id"] == h["id"] for g in self.live()):
                continue  # its block was handed out again: that handle speaks for it
            got = self.read(lambda: self.obj.refcount(h["id"]), f"refcount({h['id']})")
            if got != h["rc"]:
                self.fail(("refcount", i, got), _refcount_problem(h, got))
        free = self.read(lambda: self.obj.num_free, "num_free")
        want = len(self.free_ids())
        if free != want:
            why = ("more blocks are free than are unowned: a block went back to the pool while "
                   "someone still owned it, or went back twice" if isinstance(free, int) and free > want
                   else "a block whose last owner freed it never went back to the pool (a leak)")
            self.fail(("num_free", free), f"num_free is {free!r}, expected {want}: {why}.")


def _refcount_problem(h: dict, got) -> str:
    want = h["rc"]
    text = f"refcount({h['name']} = block {h['id']}) is {got!r}, expected {want}"
    if want == 0:
        return text + ": every owner has freed it."
    return text + f": {want} owner{'s' if want > 1 else ''} still hold{'' if want > 1 else 's'} it."


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self, driver: AllocatorDriver):
        super().__init__()
        self.d = driver

    @initialize(num_blocks=st.integers(1, 4), block_size=st.integers(1, 4))
    def init(self, num_blocks, block_size):
        self.d.apply(("init", num_blocks, block_size))

    @rule()
    def allocate(self):
        self.d.apply(("allocate",))

    @precondition(lambda self: self.d.live())
    @rule(i=st.integers(0, 7))
    def incref(self, i):
        self.d.apply(("incref", i))

    @precondition(lambda self: self.d.live())
    @rule(i=st.integers(0, 7))
    def free(self, i):
        self.d.apply(("free", i))

    @precondition(lambda self: self.d.obj is not None and self.d.free_ids())
    @rule(i=st.integers(0, 7))
    def double_free(self, i):
        self.d.apply(("free_free", i))


@check("random interleavings of allocate, incref, free and double free agree with a model "
       "(hypothesis stateful testing)")
def allocator_model(ctx):
    run_machine(ctx, AllocatorMachine, AllocatorDriver, steps=20)


# ---------------------------------------------------------------------------
# Scenarios: short stories every misconception gets wrong
# ---------------------------------------------------------------------------


@check("hands out every block once, then raises RuntimeError and changes nothing")
def allocator_runs_out(ctx):
    def story(ns):
        a = ns.BlockAllocator(3, 16)
        ids = [a.allocate() for _ in range(3)]
        return {"sorted ids of three allocate()": sorted(ids),
                "num_free then": a.num_free,
                "a 4th allocate()": outcome(a.allocate),
                "num_free after it": a.num_free,
                "refcounts of the three": [a.refcount(b) for b in ids]}

    ctx.expect_scenario(story, "allocate three blocks of a 3-block pool, then a fourth")


@check("a shared block returns to the pool only when its last owner frees it; then "
       "freeing it again raises ValueError")
def allocator_shared_block(ctx):
    def story(ns):
        a = ns.BlockAllocator(4, 16)
        x, y = a.allocate(), a.allocate()
        a.incref(x)
        seen = {"after incref(x): (refcount(x), num_free)": (a.refcount(x), a.num_free)}
        for nth in ("1st", "2nd", "3rd"):
            done = outcome(lambda: a.free(x))
            seen[f"{nth} free(x): (raised, refcount(x), num_free)"] = (
                done if isinstance(done, str) else "no error", a.refcount(x), a.num_free)
        seen["refcount(y), never freed"] = a.refcount(y)
        return seen

    ctx.expect_scenario(story, "BlockAllocator(4, 16): x, y = allocate(), allocate(); incref(x); "
                               "free(x) three times")


@check("a freed block can be allocated again")
def allocator_reuses(ctx):
    def story(ns):
        a = ns.BlockAllocator(1, 8)
        x = a.allocate()
        freed = outcome(lambda: a.free(x))
        y = outcome(a.allocate)
        return {"free(x)": freed if isinstance(freed, str) else "no error",
                "allocate() again": "the same block" if y == x else y,
                "its refcount": a.refcount(x), "num_free": a.num_free,
                "one more allocate()": outcome(a.allocate)}

    ctx.expect_scenario(story, "BlockAllocator(1, 8): x = allocate(); free(x); allocate(); allocate()")


# ---------------------------------------------------------------------------
# Misconceptions and fakes: the reference with one method done wrong
# ---------------------------------------------------------------------------


class _FreeIgnoresRefcount:
    def free(self, block):
        self._check_owned(block, "free")
        self._refcounts[block] = 0
        self._free.append(block)


class _FreeNeverReturns:
    def free(self, block):
        self._check_owned(block, "free")
        self._refcounts[block] -= 1


class _DoubleFreeIgnored:
    def free(self, block):
        if self._refcounts[block] > 0:
            self._refcounts[block] -= 1
            if self._refcounts[block] == 0:
                self._free.append(block)


class _OutOfBlocksIndexError:
    def allocate(self):
        block = self._free.popleft()  # IndexError on an empty pool
        self._refcounts[block] = 1
        return block


class _OutOfBlocksMinusOne:
    def allocate(self):
        if not self._free:
            return -1
        block = self._free.popleft()
        self._refcounts[block] = 1
        return block


class _AlwaysBlockZero:
    def allocate(self):
        if not self._free:
            raise RuntimeError("out of blocks")
        self._free.popleft()
        self._refcounts[0] += 1
        return 0


class _NoRefcounts:
    def incref(self, block):
        self._check_owned(block, "incref")

    def refcount(self, block):
        return int(self._refcounts[block] > 0)


def _impl(mixin):
    return {"BlockAllocator": wrong_class("block_allocator.py", "BlockAllocator", mixin)}


BLOCK_ALLOCATOR = Kata(
    id="block_allocator",
    level=6,
    title="A block allocator with reference counts: the page table's free list",
    path="level6/block_allocator.py",
    entries=("BlockAllocator",),
    checks=(allocator_runs_out, allocator_shared_block, allocator_reuses, allocator_model),
    predictions=(
        Prediction("num_free_after_shared_free", "BlockAllocator(4, 16): a = allocate(); "
                   "b = allocate(); incref(a); free(a). What is num_free now?", 2, kind="exact",
                   why="a had two owners; one free leaves one, so a stays out of the pool: 4 − 2 = 2."),
        Prediction("refcount_after_shared_free", "…and refcount(a)?", 1, kind="exact",
                   why="incref made it 2, free made it 1."),
        Prediction("double_free_error", "free(a) once more (refcount 0, back in the pool), then "
                   "free(a) again: what happens? (ValueError, RuntimeError, nothing)", "ValueError",
                   kind="choice", choices=("ValueError", "RuntimeError", "nothing"),
                   why="Freeing a free block is a bug in the caller; a silent double free would "
                       "let the block be handed out twice."),
    ),
    misconceptions=(
        Misconception("free_ignores_refcount", "free returns the block to the pool at once, "
                      "whatever its refcount", _impl(_FreeIgnoresRefcount),
                      "free drops ONE owner: decrement the refcount and return the block only "
                      "when it reaches 0 — a forked sequence may still be reading it."),
        Misconception("free_never_returns", "free decrements the refcount but never puts the block "
                      "back (a leak)", _impl(_FreeNeverReturns),
                      "When the refcount reaches 0 the block is free again: append it to the free list."),
        Misconception("double_free_allowed", "freeing a free block is silently accepted",
                      _impl(_DoubleFreeIgnored),
                      "A free of a block with refcount 0 is a caller bug: raise ValueError so it "
                      "is found, instead of letting the pool's bookkeeping drift."),
        Misconception("out_of_blocks_index_error", "running out raises IndexError from the empty "
                      "free list, not a clear RuntimeError", _impl(_OutOfBlocksIndexError),
                      "Check the pool before popping and raise RuntimeError('out of KV blocks…'): "
                      "the cache (next kata) and a scheduler rely on that error to preempt."),
        Misconception("out_of_blocks_sentinel", "running out returns -1 instead of raising",
                      _impl(_OutOfBlocksMinusOne),
                      "-1 is a valid Python index (the last block!): a caller that forgets to "
                      "test it silently overwrites someone else's keys. Raise RuntimeError."),
    ),
    fakes=(Fake("always_block_zero", _impl(_AlwaysBlockZero)), Fake("no_refcounts", _impl(_NoRefcounts))),
    generic_fakes=(),
    claims=(
        Claim("refcounted-blocks", "A block returns to the pool exactly when its last owner frees "
              "it; running out or freeing a free block raises and changes nothing.", scope="exact",
              source="kwon-2023-paged",
              not_claimed="Nothing about eviction, swapping to CPU or fragmentation of real GPU memory."),
    ),
    hints=(
        "Keep a list (or deque) of free block ids and a list of refcounts, one per block.",
        "allocate: raise RuntimeError if the free list is empty, else pop one and set its refcount "
        "to 1. free: raise ValueError if the refcount is already 0, else decrement it.",
        "Only when free brings a refcount to 0 does the block go back on the free list; incref of "
        "a free block is a bug too (ValueError).",
    ),
    requires=("torch",),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): short stories whose outcome tells each mistake's
# family apart, wherever the learner wrote it (a deque or a list, ids in any order).
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds  # noqa: E402

_LOOKUP_ERRORS = {"IndexError", "KeyError", "StopIteration", "ValueError", "AttributeError"}


def _shared_free(ns):
    """2 blocks: x = allocate(); incref(x); free(x); then allocate() twice."""
    a = ns.BlockAllocator(2, 4)
    x = a.allocate()
    a.incref(x)
    a.free(x)
    after = a.num_free
    got = [outcome(a.allocate), outcome(a.allocate)]
    return {"num_free after one free of a shared block": after,
            "x handed out again while still owned": x in got}


def _shared_refcount(ns):
    """4 blocks: x with three owners, freed once: (refcount(x), num_free)."""
    a = ns.BlockAllocator(4, 4)
    x = a.allocate()
    a.incref(x)
    a.incref(x)
    a.free(x)
    return a.num_free


def _reuse_one(ns):
    """1 block: x = allocate(); free(x); then allocate() again."""
    a = ns.BlockAllocator(1, 8)
    x = a.allocate()
    a.free(x)
    return a.num_free, outcome(a.allocate)


def _free_all(ns):
    """3 blocks: allocate all, free all: num_free."""
    a = ns.BlockAllocator(3, 4)
    ids = [a.allocate() for _ in range(3)]
    for b in ids:
        a.free(b)
    return a.num_free


def _double_free(ns):
    a = ns.BlockAllocator(2, 4)
    x = a.allocate()
    a.free(x)
    done = outcome(lambda: a.free(x))
    return "no error" if not isinstance(done, str) else done


def _free_never_allocated(ns):
    a = ns.BlockAllocator(3, 4)
    x = a.allocate()
    done = outcome(lambda: a.free(1 if x != 1 else 2))
    return "no error" if not isinstance(done, str) else done


def _run_out(n, churn=False):
    def run(ns):
        a = ns.BlockAllocator(n, 4)
        ids = [a.allocate() for _ in range(n)]
        if churn:
            a.free(ids[0])
            a.allocate()
        extra = outcome(a.allocate)
        return extra, a.num_free
    return run


def _is_sentinel(value):
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value < 0)


def _steps(ns):
    """Diagnostics: after each step of a 10-step story, (num_free, refcount of blocks 0, 1
    and 2); NaN where a step raised."""
    import math

    a = ns.BlockAllocator(3, 4)
    out, held = [], {}

    def step(thunk):
        done = outcome(thunk)
        row = [float(a.num_free)] + [float(outcome(lambda b=b: a.refcount(b))) if not isinstance(
            outcome(lambda b=b: a.refcount(b)), str) else math.nan for b in range(3)]
        out.append(row if not isinstance(done, str) else [math.nan] * 4)
        return done

    held["a"] = step(a.allocate)
    held["b"] = step(a.allocate)
    step(lambda: a.incref(held["a"]))
    step(lambda: a.free(held["a"]))
    step(lambda: a.free(held["b"]))
    held["c"] = step(a.allocate)
    step(lambda: a.free(held["a"]))
    step(a.allocate)
    step(a.allocate)
    step(a.allocate)
    import numpy as np
    return np.array(out)


BLOCK_ALLOCATOR = attach(BLOCK_ALLOCATOR, probes={
    # source: vllm-project/vllm#3347 (fork increfs, and a free that drops one owner must
    # not return a block another sequence still reads: the "double free" of vllm#1556)
    "free_ignores_refcount": (
        Probe("2 blocks: x shared by two owners, freed once, then allocate() twice",
              _shared_free, _holds(lambda g, w: g["x handed out again while still owned"]
                                   and not w["x handed out again while still owned"])),
        Probe("4 blocks: x with three owners, freed once: num_free", _shared_refcount,
              _holds(lambda g, w: g == w + 1)),
    ),
    # source: kekzl/imp#1115 and jjang-ai/vmlx#68 (blocks of finished requests never
    # reach the free list: "Cannot allocate block" after enough requests)
    "free_never_returns": (
        Probe("1 block: allocate, free, allocate again", _reuse_one,
              _holds(lambda g, w: g[0] == 0 and w[0] == 1 and isinstance(g[1], str))),
        Probe("3 blocks: allocate all three, free all three: num_free", _free_all,
              _holds(lambda g, w: g == 0 and w == 3)),
    ),
    # source: vllm-project/vllm#1556 via #3347 (a double free that went unnoticed until
    # the pool's bookkeeping drifted)
    "double_free_allowed": (
        Probe("x = allocate(); free(x); free(x) again", _double_free,
              _holds(lambda g, w: g == "no error")),
        Probe("free() of a block never allocated", _free_never_allocated,
              _holds(lambda g, w: g == "no error")),
    ),
    # source: vllm-project/vllm#11168 (the scheduler catches a named out-of-blocks error,
    # NoFreeBlocksError; a bare lookup error from the free list is not it)
    "out_of_blocks_index_error": (
        Probe("1 block: allocate twice", _run_out(1),
              _holds(lambda g, w: g[0] in _LOOKUP_ERRORS)),
        Probe("3 blocks: allocate three, free one, allocate, then one more", _run_out(3, True),
              _holds(lambda g, w: g[0] in _LOOKUP_ERRORS)),
    ),
    # source: microsoft/onnxruntime#32391 (a -1 block id read as "unmapped" by some paths
    # and indexed by others)
    "out_of_blocks_sentinel": (
        Probe("1 block: allocate twice", _run_out(1),
              _holds(lambda g, w: _is_sentinel(g[0]))),
        Probe("3 blocks: allocate three, free one, allocate, then one more", _run_out(3, True),
              _holds(lambda g, w: _is_sentinel(g[0]) and g[1] == 0)),
    ),
}, diagnostics=(
    Probe("BlockAllocator(3, 4): a, b = allocate(); incref(a); free(a); free(b); c = "
          "allocate(); free(a); allocate() ×3 — num_free and refcounts after each step", _steps,
          axes=("step (0-based)", "num_free / refcount(0) / refcount(1) / refcount(2)")),
))


class _HighestIdFirst:
    """Correct, other order: hands out the highest free id first (a stack, not a queue)."""

    def allocate(self):
        if not self._free:
            raise RuntimeError(f"out of KV blocks: all {self.num_blocks} are in use")
        block = max(self._free)
        self._free.remove(block)
        self._refcounts[block] = 1
        return block


BLOCK_ALLOCATOR = attach(BLOCK_ALLOCATOR, variants=(Fake("highest_id_first", _impl(_HighestIdFirst)),))
