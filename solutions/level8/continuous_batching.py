"""Reference · continuous_batching: an iteration-level scheduler over a pool of KV blocks,
preempting the newest sequence by recompute when a block runs out."""

from collections import deque

PREDICTIONS = {
    "blocks_to_run": 5,
    "longest_request": 129,
    "tokens_recomputed": 17,
}


class Scheduler:
    """FCFS admission while blocks last; running sequences grow one block at a time."""

    def __init__(self, num_blocks: int, block_size: int, eos_token: int):
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need num_blocks >= 1 and block_size >= 1, got {num_blocks}, {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.eos_token = eos_token
        self._free = deque(range(num_blocks))
        self._reqs = {}            # req_id -> {"prompt", "out", "max", "blocks", "status"}
        self._waiting = deque()    # req_ids, FCFS (preempted ones go back to the front)
        self._running = []         # req_ids in admission order
        self._batch = []
        self.num_preemptions = 0

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def _need(self, r) -> int:
        n = len(r["prompt"]) + len(r["out"])          # tokens whose KV this iteration stores
        return -(-n // self.block_size)

    def add_request(self, req_id: int, prompt, max_new_tokens: int) -> None:
        prompt = [int(t) for t in prompt]
        if req_id in self._reqs:
            raise ValueError(f"request {req_id} already exists")
        if not prompt or max_new_tokens < 1:
            raise ValueError("a request needs a non-empty prompt and max_new_tokens >= 1")
        longest = len(prompt) + max_new_tokens - 1        # the last token's KV is never stored
        if -(-longest // self.block_size) > self.num_blocks:
            raise ValueError(f"request {req_id} needs {-(-longest // self.block_size)} blocks at its "
                             f"longest; the pool has {self.num_blocks}")
        self._reqs[req_id] = {"prompt": prompt, "out": [], "max": max_new_tokens, "blocks": [],
                              "status": "waiting"}
        self._waiting.append(req_id)

    def schedule(self) -> list:
        # 1. every running sequence must hold a block for each token it will store
        i = 0
        while i < len(self._running):
            rid = self._running[i]
            r = self._reqs[rid]
            while len(r["blocks"]) < self._need(r):
                if self._free:
                    r["blocks"].append(self._free.popleft())
                else:
                    self._preempt(self._running[-1])   # the newest gives its blocks back
                    if r["status"] != "running":       # ...and that was this very sequence
                        break
            if r["status"] == "running":
                i += 1
        # 2. admit from the head of the queue while its blocks fit (FCFS: no skipping)
        while self._waiting:
            r = self._reqs[self._waiting[0]]
            need = self._need(r)
            if need > len(self._free):
                break
            rid = self._waiting.popleft()
            r["blocks"] = [self._free.popleft() for _ in range(need)]
            r["status"] = "running"
            self._running.append(rid)
        self._batch = list(self._running)
        return list(self._batch)

    def _preempt(self, rid) -> None:
        r = self._reqs[rid]
        self._free.extend(r["blocks"])
        r["blocks"] = []
        r["status"] = "waiting"          # keeps its output: recompute prefills prompt + output
        self._running.remove(rid)
        self._waiting.appendleft(rid)
        self.num_preemptions += 1

    def update(self, new_tokens: dict) -> list:
        finished = []
        for rid in self._batch:
            r = self._reqs[rid]
            token = int(new_tokens[rid])
            r["out"].append(token)
            if token == self.eos_token or len(r["out"]) == r["max"]:
                self._free.extend(r["blocks"])
                r["blocks"] = []
                r["status"] = "finished"
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
