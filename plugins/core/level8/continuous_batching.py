"""Level 8 · continuous_batching — iteration-level scheduling over KV blocks, preempting by recompute.

The judge keeps its own model of the policy (:class:`Policy`, with switches for the known
mistakes).  A hypothesis state machine adds requests and runs iterations; after every step
the learner's scheduler must agree with the model (the batch, the blocks each sequence holds,
the free pool, the preemptions, who finished), and at the end every request must have
finished with the tokens it would get decoded alone.
"""

from __future__ import annotations

from collections import deque

from attnkata.strategies import st
from attnkata.strategies import RuleBasedStateMachine, initialize, precondition, rule

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check

from ..level6.stateful import Driver, outcome, run_machine

# ---------------------------------------------------------------------------
# The toy model: a deterministic function of the whole prefix
# ---------------------------------------------------------------------------

VOCAB, EOS = 11, 0


def toy_model(tokens) -> int:
    """The next token after ``tokens`` (greedy decoding of a made-up model); 0 is EOS."""
    return (7 * sum((i + 1) * t for i, t in enumerate(tokens)) + 3 * len(tokens)) % VOCAB


def decode_alone(prompt, max_new: int) -> list[int]:
    out: list[int] = []
    while len(out) < max_new:
        out.append(toy_model(list(prompt) + out))
        if out[-1] == EOS:
            break
    return out


# ---------------------------------------------------------------------------
# The judge's model of the policy, with switches for the mistakes
# ---------------------------------------------------------------------------


class Policy:
    """The scheduler the stub specifies; class attributes switch one rule off at a time."""

    grow = True                # running sequences take a block when they cross a boundary
    victim = "newest"          # whom to preempt when no block is free
    requeue = "front"          # where a preempted sequence waits
    keep_output = True         # recompute prompt + output (False: restart from the prompt)
    free_on_finish = True
    stop_on_eos = True
    iteration_level = True     # False: admit only when the running batch has drained
    overcommit = False         # fake: invent a block when the pool is empty

    def __init__(self, num_blocks: int, block_size: int, eos_token: int):
        if num_blocks < 1 or block_size < 1:
            raise ValueError("need num_blocks >= 1 and block_size >= 1")
        self.num_blocks, self.block_size, self.eos_token = num_blocks, block_size, eos_token
        self._free = deque(range(num_blocks))
        self._extra = num_blocks
        self._reqs: dict = {}
        self._waiting: deque = deque()
        self._running: list = []
        self._batch: list = []
        self.num_preemptions = 0

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def need(self, rid) -> int:
        r = self._reqs[rid]
        return -(-(len(r["prompt"]) + len(r["out"])) // self.block_size)

    def tokens(self, rid) -> list[int]:
        r = self._reqs[rid]
        return r["prompt"] + r["out"]

    def add_request(self, req_id, prompt, max_new_tokens) -> None:
        prompt = [int(t) for t in prompt]
        longest = len(prompt) + max_new_tokens - 1
        if req_id in self._reqs or not prompt or max_new_tokens < 1 \
                or -(-longest // self.block_size) > self.num_blocks:
            raise ValueError(f"request {req_id} refused")
        self._reqs[req_id] = {"prompt": prompt, "out": [], "max": max_new_tokens, "blocks": [],
                              "status": "waiting"}
        self._waiting.append(req_id)

    def _take(self) -> int:
        if not self._free and self.overcommit:
            self._extra += 1
            return self._extra - 1
        return self._free.popleft()

    def schedule(self) -> list:
        i = 0
        while self.grow and i < len(self._running):
            rid = self._running[i]
            r = self._reqs[rid]
            while len(r["blocks"]) < self.need(rid):
                if self._free or self.overcommit:
                    r["blocks"].append(self._take())
                else:
                    self._preempt(self._running[-1] if self.victim == "newest" else self._running[0])
                    if r["status"] != "running":
                        break
            if r["status"] == "running":
                i += 1
        if self.iteration_level or not self._running:
            while self._waiting and self.need(self._waiting[0]) <= len(self._free):
                rid = self._waiting.popleft()
                r = self._reqs[rid]
                r["blocks"] = [self._take() for _ in range(self.need(rid))]
                r["status"] = "running"
                self._running.append(rid)
        self._batch = list(self._running)
        return list(self._batch)

    def _preempt(self, rid) -> None:
        r = self._reqs[rid]
        self._free.extend(r["blocks"])
        r["blocks"], r["status"] = [], "waiting"
        if not self.keep_output:
            r["out"] = []
        self._running.remove(rid)
        (self._waiting.appendleft if self.requeue == "front" else self._waiting.append)(rid)
        self.num_preemptions += 1

    def update(self, new_tokens) -> list:
        finished = []
        for rid in self._batch:
            r = self._reqs[rid]
            r["out"].append(int(new_tokens[rid]))
            if (self.stop_on_eos and r["out"][-1] == self.eos_token) or len(r["out"]) == r["max"]:
                if self.free_on_finish:
                    self._free.extend(r["blocks"])
                r["blocks"], r["status"] = [], "finished"
                self._running.remove(rid)
                finished.append(rid)
        self._batch = []
        return finished

    def output(self, req_id) -> list:
        return list(self._reqs[req_id]["out"])

    def block_table(self, req_id) -> list:
        return list(self._reqs[req_id]["blocks"])

    def status(self, req_id) -> str:
        return self._reqs[req_id]["status"]


def _variant(name: str, **switches) -> type:
    return type(name, (Policy,), switches)


# ---------------------------------------------------------------------------
# The model check
# ---------------------------------------------------------------------------


def _ints(value, what: str, fail) -> list[int]:
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError):
        fail(("type", what), f"{what} returned {value!r:.60}; expected a list of ints.")
    return out


class SchedulerDriver(Driver):
    entry = "Scheduler"

    def __init__(self, ns, caller):
        super().__init__(ns, caller)
        self.model: Policy | None = None
        self.obj = None
        self.prompts: dict = {}
        self.failed = False

    def fail(self, key: tuple, problem: str) -> None:
        self.failed = True  # the teardown must not drain past the first discrepancy
        super().fail(key, problem)

    def step(self, op: tuple) -> None:
        kind = op[0]
        if kind == "init":
            _, n, bs = op
            self.model = Policy(n, bs, EOS)
            _, self.obj = self.call(lambda: self.ns.Scheduler(n, bs, EOS), f"Scheduler({n}, {bs}, {EOS})",
                                    line=f"s = Scheduler(num_blocks={n}, block_size={bs}, eos_token={EOS})",
                                    show=False)
        elif kind == "add":
            _, rid, prompt, max_new = op
            try:
                self.model.add_request(rid, prompt, max_new)
                expect = None
            except ValueError:
                expect = ValueError
            line = (f"add_request({rid}, prompt of {len(prompt)} token{'' if len(prompt) == 1 else 's'}, "
                    f"max_new_tokens={max_new})")
            hint = "" if expect else ""
            if expect:
                longest = len(prompt) + max_new - 1
                hint = (f"It needs ⌈{longest}/{self.model.block_size}⌉ = "
                        f"{-(-longest // self.model.block_size)} blocks at its longest; the pool has "
                        f"{self.model.num_blocks}, so it could never run.")
            self.call(lambda: self.obj.add_request(rid, list(prompt), max_new), line, expect=expect,
                      hint=hint)
            if not expect:
                self.prompts[rid] = (list(prompt), max_new)
        elif kind == "step":
            self._iteration()
        elif kind == "drain":
            limit = sum(m for _, m in self.prompts.values()) + 2
            for _ in range(limit):
                if all(self.model.status(r) == "finished" for r in self.prompts):
                    break
                self._iteration()
            self._finished_alone()

    def _iteration(self) -> None:
        m = self.model
        want = m.schedule()
        _, got = self.call(self.obj.schedule, "schedule()", line="schedule()")
        got = _ints(got, "schedule()", self.fail)
        if got != want:
            self.fail(("batch", tuple(got)), f"schedule() returned the batch {got}; the policy gives {want}. "
                                  f"{_why(m, want)}")
        self._check_blocks(want)
        tokens = {rid: toy_model(m.tokens(rid)) for rid in want}
        done = m.update(tokens)
        _, got = self.call(lambda: self.obj.update(dict(tokens)), f"update({tokens})",
                           line=f"update({tokens})")
        got = _ints(got, "update(...)", self.fail)
        if got != done:
            eos = [r for r in want if tokens[r] == EOS]
            self.fail(("finished", tuple(got)), f"update returned {got} as finished; expected {done}"
                      + (f" (requests {eos} drew the EOS token {EOS})" if eos else "") + ".")
        for rid in done:
            out = self.read(lambda: self.obj.output(rid), f"output({rid})")
            alone = decode_alone(*self.prompts[rid])
            if _ints(out, f"output({rid})", self.fail) != alone:
                self.fail(("output",), f"output({rid}) is {list(out)} but decoding request {rid} alone "
                                       f"gives {alone}.")

    def _check_blocks(self, batch) -> None:
        seen: dict = {}
        for rid in batch:
            table = _ints(self.read(lambda: self.obj.block_table(rid), f"block_table({rid})"),
                          f"block_table({rid})", self.fail)
            need = self.model.need(rid)
            bad = [b for b in table if not 0 <= b < self.model.num_blocks]
            if bad:
                self.fail(("block range",), f"block_table({rid}) holds block {bad[0]}, outside the pool "
                                            f"0 … {self.model.num_blocks - 1}: the block budget is exceeded.")
            twice = [b for b in table if b in seen or table.count(b) > 1]
            if twice:
                self.fail(("block shared",), f"block {twice[0]} is held by request {rid} and by request "
                                             f"{seen.get(twice[0], rid)} at once.")
            seen.update({b: rid for b in table})
            if len(table) != need:
                n = len(self.model.tokens(rid))
                self.fail(("blocks held", len(table) < need),
                          f"request {rid} runs with {len(table)} block{'' if len(table) == 1 else 's'}; with n = {n} tokens to store "
                          f"it needs ⌈{n}/{self.model.block_size}⌉ = {need}.")

    def _finished_alone(self) -> None:
        for rid, (prompt, max_new) in self.prompts.items():
            status = self.read(lambda: self.obj.status(rid), f"status({rid})")
            if status != "finished":
                self.fail(("unfinished",), f"after every request should have finished, request {rid} "
                                           f"is {status!r}.")
            out = _ints(self.read(lambda: self.obj.output(rid), f"output({rid})"), f"output({rid})",
                        self.fail)
            if out != decode_alone(prompt, max_new):
                self.fail(("output",), f"output({rid}) is {out}; decoded alone it is "
                                       f"{decode_alone(prompt, max_new)}.")

    def check(self) -> None:
        if self.obj is None:
            return
        free = self.read(lambda: self.obj.num_free_blocks, "num_free_blocks")
        if free != self.model.num_free_blocks:
            self.fail(("num_free", free),
                      f"num_free_blocks is {free!r}, expected {self.model.num_free_blocks}"
                      + ("" if not isinstance(free, int) or free > self.model.num_free_blocks else
                         ": blocks of a finished or preempted request never went back to the pool") + ".")
        pre = self.read(lambda: self.obj.num_preemptions, "num_preemptions")
        if pre != self.model.num_preemptions:
            self.fail(("preemptions", pre), f"num_preemptions is {pre!r}, expected {self.model.num_preemptions}.")


def _why(m: Policy, want: list) -> str:
    waiting = list(m._waiting)
    text = f"After it: running {want}, waiting {waiting} (head first), {m.num_free_blocks} block{'' if m.num_free_blocks == 1 else 's'} free."
    if m.num_preemptions:
        text += f" Preemptions so far: {m.num_preemptions} (the newest running sequence is the victim)."
    return text


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self, driver: SchedulerDriver):
        super().__init__()
        self.d = driver
        self.next_id = 0

    @initialize(num_blocks=st.integers(2, 8), block_size=st.integers(1, 4))
    def init(self, num_blocks, block_size):
        self.d.apply(("init", num_blocks, block_size))

    @precondition(lambda self: self.next_id < 7)
    @rule(prompt=st.lists(st.integers(1, VOCAB - 1), min_size=1, max_size=9), max_new=st.integers(1, 8))
    def add(self, prompt, max_new):
        self.d.apply(("add", self.next_id, tuple(prompt), max_new))
        self.next_id += 1

    @rule()
    def step(self):
        self.d.apply(("step",))

    def teardown(self):
        if self.d.obj is not None and not self.d.failed:
            self.d.apply(("drain",))


@check("random arrivals and iterations agree with the policy step by step: the batch, blocks "
       "within budget, preemptions, finishes; every request finishes with its tokens decoded "
       "alone (hypothesis stateful testing)")
def batching_model(ctx):
    run_machine(ctx, SchedulerMachine, SchedulerDriver, steps=24)


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


ITERATIONS = 40


def _run(ns, num_blocks, block_size, requests, eos=EOS, tokens=None):
    """Drive ``ns.Scheduler`` to the end; what each iteration did."""
    s = ns.Scheduler(num_blocks, block_size, eos)
    seqs = {}
    for rid, prompt, max_new in requests:
        s.add_request(rid, list(prompt), max_new)
        seqs[rid] = list(prompt)
    story = []
    for _ in range(ITERATIONS):
        batch = list(s.schedule())
        if not batch:
            break
        new = {rid: (tokens(seqs[rid]) if tokens else toy_model(seqs[rid])) for rid in batch}
        for rid in batch:
            seqs[rid].append(new[rid])
        done = list(s.update(new))
        story.append({"batch": batch, "finished": done, "free": s.num_free_blocks,
                      "preemptions": s.num_preemptions})
    outputs = {rid: list(s.output(rid)) for rid, _, _ in requests}
    story += ["(nothing left to run)"] * (ITERATIONS - len(story))  # same length: compare per iteration
    return {"iterations": story, "outputs": outputs,
            "status": {rid: s.status(rid) for rid, _, _ in requests}}


@check("the worked example: 4 blocks of 2, three requests, one preemption by recompute")
def batching_worked_example(ctx):
    ctx.expect_scenario(lambda ns: _run(ns, 4, 2, [(0, [5, 6, 7], 3), (1, [8], 4), (2, [9, 9, 9], 3)],
                                        tokens=lambda seq: 1),
                        "Scheduler(4, 2, eos_token=0) with requests 0 (3 + 3), 1 (1 + 4), 2 (3 + 3), "
                        "no EOS drawn")


@check("pressure: six requests on a small pool (several preemptions); EOS and max_new_tokens "
       "both end requests")
def batching_pressure(ctx):
    reqs = [(0, [3, 1, 4, 1, 5], 6), (1, [9, 2, 6], 8), (2, [5, 3, 5, 8, 9, 7], 4), (3, [9], 8),
            (4, [3, 2, 3, 8], 5), (5, [4, 6, 2, 6, 4, 3, 3], 3)]
    ctx.expect_scenario(lambda ns: _run(ns, 6, 2, reqs),
                        "Scheduler(6, 2, eos_token=0), six requests under the toy model")
    ctx.expect_scenario(lambda ns: _run(ns, 5, 3, reqs, eos=-1),
                        "Scheduler(5, 3, eos_token=-1) (EOS never drawn), the same requests")


@check("add_request refuses a request that could never fit, a duplicate id, an empty prompt "
       "and max_new_tokens < 1 (ValueError), and accepts one that exactly fits")
def batching_validation(ctx):
    def story(ns):
        s = ns.Scheduler(3, 4, EOS)
        return {"prompt 8 + max 5 (12 tokens stored: 3 blocks)": outcome(lambda: s.add_request(0, [1] * 8, 5)),
                "prompt 8 + max 6 (13 stored: 4 blocks)": outcome(lambda: s.add_request(1, [1] * 8, 6)),
                "id 0 again": outcome(lambda: s.add_request(0, [1], 1)),
                "empty prompt": outcome(lambda: s.add_request(2, [], 3)),
                "max_new_tokens 0": outcome(lambda: s.add_request(3, [1], 0)),
                "status(0)": s.status(0), "num_free_blocks": s.num_free_blocks}

    ctx.expect_scenario(story, "Scheduler(3, 4, eos_token=0).add_request(...) at the limits")


# ---------------------------------------------------------------------------
# Misconceptions and fakes: the policy with one rule broken
# ---------------------------------------------------------------------------

SCHEDULER_KATA_MISCONCEPTIONS = (
    # Source note: learners coming from static KV reservation size a sequence's blocks once,
    # at admission, and forget that decoding keeps writing keys (vLLM allocates on demand).
    Misconception("blocks_at_admission_only", "gave a sequence its blocks at admission and never "
                  "grew them", {"Scheduler": _variant("BlocksAtAdmissionOnly", grow=False)},
                  "Every iteration stores one more token: before running a sequence, make it hold "
                  "⌈n / B⌉ blocks, taking a new block when n crosses a block boundary."),
    # Source note: "evict the oldest" is the LRU habit from caches; vLLM preempts the most
    # recently admitted sequence so the oldest keeps making progress.
    Misconception("preempt_oldest", "preempted the oldest running sequence instead of the newest",
                  {"Scheduler": _variant("PreemptOldest", victim="oldest")},
                  "The victim is the LAST admitted running sequence (possibly the one asking): the "
                  "oldest then always progresses, so every request finishes."),
    # Source note: preemption is often pictured as "abort and retry"; recompute keeps the
    # generated tokens and prefills prompt + output together (vLLM's RECOMPUTE mode).
    Misconception("preempt_drops_output", "threw away a preempted sequence's generated tokens",
                  {"Scheduler": _variant("PreemptDropsOutput", keep_output=False)},
                  "Recompute keeps the output: when the request is admitted again it needs blocks "
                  "for prompt + output, which its recompute prefill fills in one pass."),
    # Source note: a queue's natural put is at the back; a preempted request then loses its
    # place to later arrivals and can starve.
    Misconception("preempted_to_back", "sent a preempted sequence to the back of the queue",
                  {"Scheduler": _variant("PreemptedToBack", requeue="back")},
                  "It arrived before everyone still waiting: put it back at the FRONT."),
    # Source note: forgetting to release resources on the finish path is the classic leak.
    Misconception("finished_keeps_blocks", "never returned a finished sequence's blocks",
                  {"Scheduler": _variant("FinishedKeepsBlocks", free_on_finish=False)},
                  "When a request finishes, all its blocks go back to the pool at once."),
    # Source note: stop conditions are easy to drop; only the length limit gets tested by hand.
    Misconception("eos_ignored", "kept generating after the EOS token, up to max_new_tokens",
                  {"Scheduler": _variant("EosIgnored", stop_on_eos=False)},
                  "A sequence finishes on EOS OR at max_new_tokens, whichever comes first."),
    # Source note: request-level (static) batching is what Orca's iteration-level scheduling
    # replaces; learners who batch once per request reproduce it.
    Misconception("static_batching", "admitted new requests only once the whole batch had finished",
                  {"Scheduler": _variant("StaticBatching", iteration_level=False)},
                  "Continuous batching admits between iterations: whenever the queue's head fits, "
                  "it joins the running sequences at once."),
)

CONTINUOUS_BATCHING = Kata(
    id="continuous_batching", level=8,
    title="Continuous batching: iteration-level scheduling over KV blocks, preempting by recompute",
    path="level8/continuous_batching.py", entries=("Scheduler",),
    checks=(batching_worked_example, batching_pressure, batching_validation, batching_model),
    predictions=(
        Prediction("blocks_to_run", "block size 4: a sequence with a 10-token prompt and 7 generated "
                   "tokens is about to run again; blocks it must hold", 5, kind="exact",
                   why="n = 10 + 7 = 17 tokens to store: ⌈17 / 4⌉ = 5."),
        Prediction("longest_request", "num_blocks 8, block_size 16: the largest len(prompt) + "
                   "max_new_tokens add_request accepts", 129, kind="exact",
                   why="The last token's keys are never stored: ⌈(L − 1)/16⌉ ≤ 8 means L − 1 ≤ 128."),
        Prediction("tokens_recomputed", "that 10-token prompt with 7 generated tokens is preempted; "
                   "tokens its recompute prefill processes when readmitted", 17, kind="exact",
                   why="Recompute keeps the output and prefills prompt + output: 10 + 7."),
    ),
    misconceptions=SCHEDULER_KATA_MISCONCEPTIONS,
    fakes=(Fake("overcommits_blocks", {"Scheduler": _variant("Overcommit", overcommit=True)}),
           Fake("one_at_a_time", {"Scheduler": _variant("OneAtATime", iteration_level=False,
                                                        victim="oldest")})),
    generic_fakes=(),
    claims=(
        Claim("iteration-level-batching", "An iteration-level scheduler never holds more blocks than "
              "the pool, and every request it accepts finishes with exactly the tokens it would get "
              "decoded alone, preemptions by recompute included.", scope="exact", source="yu-2022-orca",
              evidence=("batching_model", "batching_pressure"),
              not_claimed="Checked on random traces of up to 7 requests and pools of up to 32 token "
                          "slots with a toy deterministic model; no throughput or latency figures."),
        Claim("preempt-by-recompute", "When the pool runs dry, preempting the newest sequence and "
              "recomputing it later keeps the oldest progressing, so the schedule never deadlocks.",
              scope="toy", source="kwon-2023-paged", evidence=("batching_model", "batching_worked_example"),
              not_claimed="No swapping to CPU, no priorities, no chunked prefill, no cost of recompute."),
    ),
    hints=(
        "Keep a deque of free block ids, a deque `waiting` (FCFS) and a list `running` (admission "
        "order), and per request its prompt, output, max_new_tokens, block list and status.",
        "schedule(): first loop over running (index-based: the list can shrink) and top each up to "
        "⌈(len(prompt) + len(output)) / B⌉ blocks, preempting running[-1] when the pool is empty; "
        "then admit from waiting[0] while it fits; return list(running).",
        "Preempt = free its blocks, status 'waiting', waiting.appendleft(rid), count it; keep its "
        "output. update(): append each token; finish on EOS or len(output) == max_new_tokens, "
        "freeing blocks.",
    ),
    requires=("numpy", "hypothesis"),
)


# ---------------------------------------------------------------------------
# Diagnosis by behaviour (issue 14): short traces whose iteration records (batch,
# finished, free blocks, preemptions) show each rule broken, whichever way it was coded:
# free blocks that never fall as a sequence grows; the first preemption's victim; a
# preempted request running more iterations than it has tokens; a later arrival admitted
# ahead of a preempted one; blocks not back after the last request; tokens after EOS;
# joins only into an empty batch.
# ---------------------------------------------------------------------------

from attnkata.diagnose import Probe, attach, check as _holds  # noqa: E402

_WORKED = (4, 2, [(0, [5, 6, 7], 3), (1, [8], 4), (2, [9, 9, 9], 3)])
_PRESSURE = (6, 2, [(0, [3, 1, 4, 1, 5], 6), (1, [9, 2, 6], 8), (2, [5, 3, 5, 8, 9, 7], 4), (3, [9], 8),
                    (4, [3, 2, 3, 8], 5), (5, [4, 6, 2, 6, 4, 3, 3], 3)])


def _no_eos(seq):
    return 1


def _trace(blocks, bs, reqs, tokens=_no_eos, eos=EOS):
    return lambda ns: _run(ns, blocks, bs, reqs, eos=eos, tokens=tokens)


def _its(g):
    return [it for it in g["iterations"] if isinstance(it, dict)]


def _free_never_falls(g, w):
    gf, wf = [it["free"] for it in _its(g)], [it["free"] for it in _its(w)]
    return len(gf) > 2 and len(set(gf[:-1])) == 1 and len(set(wf[:-1])) > 1


def _first_victim(trace):
    its = _its(trace)
    for i in range(1, len(its)):
        if its[i]["preemptions"] > its[i - 1]["preemptions"]:
            prev = [r for r in its[i - 1]["batch"] if r not in its[i - 1]["finished"]]
            gone = [r for r in prev if r not in its[i]["batch"]]
            return prev, gone
    return None


def _victim_is_oldest(g, w):
    got, want = _first_victim(g), _first_victim(w)
    return bool(got and want and got[1] and got[1][0] == got[0][0] and want[1][0] == want[0][-1])


def _extra_runs(g, w):
    """Some request ran in more iterations than the tokens it produced (it started over)."""
    runs = {}
    for it in _its(g):
        for r in it["batch"]:
            runs[r] = runs.get(r, 0) + 1
    return any(n > len(g["outputs"].get(r, [])) for r, n in runs.items()) and g != w


def _jumped_queue(g, w):
    """After a preemption, a request that had never run is admitted before the victim is."""
    its = _its(g)
    seen = set()
    for i, it in enumerate(its):
        if i and it["preemptions"] > its[i - 1]["preemptions"]:
            victims = [r for r in its[i - 1]["batch"]
                       if r not in it["batch"] and r not in its[i - 1]["finished"]]
            for v in victims:
                for later in its[i:]:
                    if v in later["batch"]:
                        break
                    if any(r not in seen and r not in victims for r in later["batch"]):
                        return True
        seen.update(it["batch"])
    return False


def _blocks_not_back(g, w):
    its, wits = _its(g), _its(w)
    return bool(its and wits and its[-1]["free"] < wits[-1]["free"])


def _past_eos(g, w):
    return any(EOS in out[:-1] for out in g["outputs"].values())


def _joins_only_when_empty(g, w):
    def joins(trace):
        its, seen, out = _its(trace), set(), []
        for i, it in enumerate(its):
            new = [r for r in it["batch"] if r not in seen]
            if i and new:
                out.append(bool(set(it["batch"]) - set(new)))   # joined a non-empty batch
            seen.update(it["batch"])
        return out
    gj, wj = joins(g), joins(w)
    return bool(gj) and not any(gj) and any(wj)


def _eos_at(n):
    """Tokens: EOS once a sequence has grown ``n`` tokens past its prompt, else 1."""
    def tokens(seq, _n=n):
        return EOS if len(seq) % 5 == _n % 5 else 1
    return tokens


CONTINUOUS_BATCHING = attach(CONTINUOUS_BATCHING, probes={
    # source: kwon-2023-paged (blocks allocated on demand as decoding writes keys) and
    # EricLBuehler/mistral.rs#552 (positions past the block table when blocks do not grow)
    "blocks_at_admission_only": (
        Probe("8 blocks of 2, one request (1 + 6 tokens): free blocks per iteration",
              _trace(8, 2, [(0, [1], 6)]), _holds(_free_never_falls),
              axes=("iteration",)),
        Probe("9 blocks of 3, one request (2 + 8 tokens): free blocks per iteration",
              _trace(9, 3, [(0, [4, 4], 8)]), _holds(_free_never_falls)),
    ),
    # source: vllm-project/vllm's scheduler preempts the lowest-priority (latest) running
    # group; hw-native-sys/pypto-lib#274 picks the latest arrival as the victim
    "preempt_oldest": (
        Probe("the worked example: whom the first preemption removes", _trace(*_WORKED),
              _holds(_victim_is_oldest)),
        Probe("six requests on 6 blocks of 2: whom the first preemption removes", _trace(*_PRESSURE),
              _holds(_victim_is_oldest)),
    ),
    # source: hw-native-sys/pypto-lib#274 (preemption resets computed tokens) and
    # RedHeartSecretMan/vllm-oxide#40 (recompute must keep prompt plus completion)
    "preempt_drops_output": (
        Probe("the worked example: iterations each request ran against its tokens",
              _trace(*_WORKED), _holds(_extra_runs)),
        Probe("six requests on 6 blocks of 2: iterations each request ran against its tokens",
              _trace(*_PRESSURE), _holds(_extra_runs)),
    ),
    # source: HabanaAI/vllm-fork#2247 (preempted sequences and the queue they return to)
    # and GeeeekExplorer/nano-vllm#196 (resuming preempted requests first)
    "preempted_to_back": (
        Probe("six requests on 6 blocks of 2: admissions after a preemption", _trace(*_PRESSURE),
              _holds(_jumped_queue)),
        Probe("six requests on 5 blocks of 3: admissions after a preemption",
              _trace(5, 3, _PRESSURE[2]), _holds(_jumped_queue)),
    ),
    # source: jjang-ai/vmlx#68 (completed requests never release their blocks)
    "finished_keeps_blocks": (
        Probe("4 blocks of 2, one request (1 + 3): free blocks at the end", _trace(4, 2, [(0, [1], 3)]),
              _holds(_blocks_not_back)),
        Probe("the worked example: free blocks at the end", _trace(*_WORKED),
              _holds(_blocks_not_back)),
    ),
    # source: vllm-project/vllm#6865 (finished requests and the stop conditions that end them)
    "eos_ignored": (
        Probe("one request whose 3rd token is EOS (max 6)", _trace(8, 2, [(0, [1, 1], 6)], _eos_at(0)),
              _holds(_past_eos)),
        Probe("two requests that draw EOS early (max 8)",
              _trace(8, 2, [(0, [1], 8), (1, [2, 2, 2], 8)], _eos_at(3)), _holds(_past_eos)),
    ),
    # source: yu-2022-orca (iteration-level scheduling replaces request-level batching) and
    # pytorch/serve#3160 (continuous batching: new requests join a running batch)
    "static_batching": (
        Probe("2 blocks of 8: a long request, a one-token one, then a third that waits for "
              "a block", _trace(2, 8, [(0, [1] * 4, 4), (1, [2] * 4, 1), (2, [3] * 4, 2)]),
              _holds(_joins_only_when_empty)),
        Probe("3 blocks of 8: a long request, two short ones, then a fourth that waits",
              _trace(3, 8, [(0, [1] * 4, 5), (1, [2], 1), (2, [3], 2), (3, [4] * 3, 2)]),
              _holds(_joins_only_when_empty)),
    ),
}, diagnostics=(
    Probe("the worked example: free blocks after each iteration",
          lambda ns: __import__("numpy").array(
              [it["free"] for it in _its(_run(ns, *_WORKED, tokens=_no_eos))], dtype=float),
          axes=("iteration",)),
))
