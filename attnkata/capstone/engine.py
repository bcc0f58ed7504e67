"""Generation with the katas wired in, checked against the reference model at every step.

Who does what (each through :class:`~attnkata.capstone.wiring.Kit`, so each part is the
learner's kata when it is ready, else the reference):

- both models: ``rope`` on q and k; ``next_token_probs`` and ``sample_next`` choose tokens;
- the target (both blocks): the prompt through ``gqa_attention`` under ``causal_mask``;
  its keys and values in a ``PagedKVCache`` (one per block); every later token through
  ``paged_attention_decode`` over those pages (``--kernels triton``: the Triton katas);
- the draft (the first block with its own norm, see ``model.py``): the prompt through
  the level-1 ``attention`` (K/V heads repeated for each query head), its keys and values
  in a contiguous ``KVCache``, later tokens through ``decode_step``;
- speculative decoding: the draft proposes ``gamma`` tokens; the target scores them in one
  pass (``paged_attention_decode`` with one row per proposal over a fork of the
  sequence); the rule min(1, p/q) keeps a prefix and resamples from norm(max(0, p − q)).
  Freeing the fork undoes the rejected proposals; the draft's cache is rebuilt from its
  kept prefix (``KVCache`` has no truncate).

Each step's logits (target and draft) are compared with the PyTorch model of
``model.py`` fed the same tokens; the first step beyond the tolerance is the divergence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

from .model import TinyLM, rms_norm
from .wiring import Kit, LearnerFailed, max_error

BLOCK_SIZE = 16
LOGIT_TOLERANCE = {torch.float32: 2e-3, torch.float64: 1e-8}   # max |Δlogit| per run dtype


@dataclass
class Sampling:
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = 0.95
    seed: int = 0


@dataclass
class Result:
    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)      # "draft" (accepted) or "target"
    steps: int = 0
    proposed: int = 0
    accepted: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    check_s: float = 0.0
    divergence: dict | None = None
    stopped: str = ""
    blocks_used: int = 0                                  # target pages in use, all blocks


class Engine:
    """One sequence through the target and its draft, on the kit's katas."""

    def __init__(self, model: TinyLM, kit: Kit, sampling: Sampling, gamma: int = 4,
                 kernels: str = "cpu", device: str = "cpu"):
        self.model, self.kit, self.sampling, self.gamma = model, kit, sampling, gamma
        self.cfg = model.cfg
        self.dtype = model.embed.dtype
        self.kernels, self.device = kernels, device
        self.group = self.cfg.n_heads // self.cfg.n_kv_heads
        self.check_s = 0.0
        self.divergence: dict | None = None

    # -- caches --------------------------------------------------------------------------
    def _start_caches(self) -> None:
        cfg, kit = self.cfg, self.kit
        blocks = 2 * -(-(cfg.context + self.gamma + 1) // BLOCK_SIZE) + 2   # room for a fork
        self.paged, self.seqs, self.forks = [], [], {}
        empty_kv = torch.zeros(0, cfg.n_kv_heads, cfg.head_dim, dtype=self.dtype)
        self.mirror = [(empty_kv, empty_kv) for _ in range(cfg.n_layers)]   # K/V committed
        for li in range(cfg.n_layers):
            where = f"step 0, target block {li}"
            cache = kit.make("paged_kv_cache", where, blocks, BLOCK_SIZE, cfg.n_kv_heads,
                             cfg.head_dim, self.dtype)
            self.paged.append(cache)
            self.seqs.append(int(kit.method("paged_kv_cache", where, cache, "add_sequence")))
        np_dtype = np.float64 if self.dtype == torch.float64 else np.float32
        self.draft_cache = kit.make("kv_cache", "step 0, draft block 0", cfg.n_kv_heads,
                                    cfg.head_dim, np_dtype)
        empty = np.zeros((cfg.n_kv_heads, 0, cfg.head_dim), np_dtype)
        self.draft_hist = (empty, empty)

    # -- one forward pass ----------------------------------------------------------------
    @torch.no_grad()
    def forward(self, model: str, tokens: list[int], start: int, keep: bool = True) -> torch.Tensor:
        """Logits (n, vocab) of ``tokens`` at positions ``start…``. The target writes its
        K/V to the pages now when ``keep``, else to forks until :meth:`commit_target`."""
        x = self.model.embed[torch.tensor(tokens)]                         # (n, C)
        for li in range(self.cfg.n_layers if model == "target" else 1):
            where = f"step {self.kit.step}, {model} block {li}"
            q, k, v = self._qkv(li, x, start, where)
            if model == "target":
                o = self._target_attention(li, q, k, v, start, keep, where)
            else:
                o = self._draft_attention(q, k, v, start, where)
            x = self._finish_block(li, x, o)
        norm = self.model.final_norm if model == "target" else self.model.draft_norm
        return self.model.head(x, norm)

    def _qkv(self, li: int, x: torch.Tensor, start: int, where: str):
        """(q (H, n, D), k, v (H_kv, n, D)) as NumPy arrays, RoPE applied by the kit."""
        block, cfg, n = self.model.blocks[li], self.cfg, x.shape[0]
        h = rms_norm(x, block.attn_norm, cfg.norm_eps)

        def heads(w: torch.nn.Linear, count: int) -> np.ndarray:
            return w(h).view(n, count, cfg.head_dim).transpose(0, 1).contiguous().numpy()

        q = heads(block.wq, cfg.n_heads)
        k, v = heads(block.wk, cfg.n_kv_heads), heads(block.wv, cfg.n_kv_heads)
        positions = np.arange(start, start + n)
        q = np.asarray(self.kit.call("rope", f"{where}, q", q, positions, cfg.rope_base))
        k = np.asarray(self.kit.call("rope", f"{where}, k", k, positions, cfg.rope_base))
        return q, k, v

    def _finish_block(self, li: int, x: torch.Tensor, o: np.ndarray) -> torch.Tensor:
        block, n = self.model.blocks[li], x.shape[0]
        o_t = torch.as_tensor(np.ascontiguousarray(o), dtype=self.dtype)   # (H, n, D)
        x = x + block.wo(o_t.transpose(0, 1).reshape(n, self.cfg.d_model))
        return x + block.mlp(x, self.cfg)

    # -- the target: GQA prefill, paged decode -------------------------------------------
    def _target_attention(self, li, q, k, v, start, keep, where) -> np.ndarray:
        kit, cache, n = self.kit, self.paged[li], q.shape[1]
        k_t = torch.from_numpy(np.ascontiguousarray(k.transpose(1, 0, 2)))  # (n, H_kv, D)
        v_t = torch.from_numpy(np.ascontiguousarray(v.transpose(1, 0, 2)))
        if start == 0:  # the prompt attends over itself; its K/V go into the pages
            o = self._prefill_target(q, k, v, where)
            kit.method("paged_kv_cache", where, cache, "append", self.seqs[li], k_t, v_t)
            self.mirror[li] = (k_t, v_t)
            return o
        sid = self.seqs[li]
        if not keep:  # proposals go to a fork, freed by commit_target
            sid = int(kit.method("paged_kv_cache", where, cache, "fork", sid))
            self.forks[li] = (sid, k_t, v_t)
        kit.method("paged_kv_cache", where, cache, "append", sid, k_t, v_t)
        if keep:
            self.mirror[li] = (torch.cat([self.mirror[li][0], k_t]),
                               torch.cat([self.mirror[li][1], v_t]))
        table = [int(b) for b in kit.method("paged_kv_cache", where, cache, "block_table", sid)]
        k_pages = kit.attr("paged_kv_cache", where, cache, "k_pages")
        v_pages = kit.attr("paged_kv_cache", where, cache, "v_pages")
        self._check_pages(li, table, k_pages, v_pages, None if keep else (k_t, v_t), where)
        q_t = torch.from_numpy(np.ascontiguousarray(q.transpose(1, 0, 2)))  # (n, H, D)
        tables = torch.tensor([table] * n, dtype=torch.int32)
        lens = torch.arange(start + 1, start + n + 1, dtype=torch.int32)  # row i sees ≤ start + i
        args = (q_t, k_pages, v_pages, tables, lens)
        if self._triton("paged_attention_decode_triton"):
            expected = self.kit.slots["paged_attention_decode"].reference.paged_attention_decode(*args)
            o = kit.call("paged_attention_decode_triton", where,
                         *[a.to(self.device) for a in args], expected=expected)
        else:
            o = kit.call("paged_attention_decode", where, *args)
        return torch.as_tensor(o).cpu().numpy().transpose(1, 0, 2)           # (H, n, D)

    def _prefill_target(self, q, k, v, where) -> np.ndarray:
        n = q.shape[1]
        mask = np.asarray(self.kit.call("causal_mask", where, n, n), dtype=bool)
        if self._triton("flash_attention_forward"):
            expected = torch.from_numpy(self.kit.slots["gqa_attention"].reference.gqa_attention(
                q[None], k[None], v[None], mask))
            qkv = [torch.from_numpy(np.ascontiguousarray(a[None])).to(self.device) for a in (q, k, v)]
            o, _ = self.kit.call("flash_attention_forward", where, *qkv, causal=True,
                                 expected=expected)
            return torch.as_tensor(o).cpu()[0].numpy()
        return np.asarray(self.kit.call("gqa_attention", where, q[None], k[None], v[None], mask))[0]

    def _check_pages(self, li, table, k_pages, v_pages, proposed, where) -> None:
        """A learner's cache must hand back exactly the keys and values written to it."""
        if not self.kit.slots["paged_kv_cache"].yours:
            return
        start = time.perf_counter()
        want_k, want_v = self.mirror[li]
        if proposed is not None:
            want_k, want_v = torch.cat([want_k, proposed[0]]), torch.cat([want_v, proposed[1]])
        pos = torch.arange(want_k.shape[0])
        try:
            rows = (torch.tensor(table)[pos // BLOCK_SIZE], pos % BLOCK_SIZE)
            bad = (max_error(torch.as_tensor(k_pages)[rows], want_k) > 0
                   or max_error(torch.as_tensor(v_pages)[rows], want_v) > 0)
        except (IndexError, RuntimeError, TypeError):
            bad = True
        if bad:
            self.kit.flag("paged_kv_cache", where, "the pages its block_table names do not hold "
                          "the keys and values appended so far")
        self.check_s += time.perf_counter() - start

    def commit_target(self, keep: int) -> None:
        """After verification: free each fork, append the first ``keep`` proposed K/V."""
        for li, (sid, k_t, v_t) in sorted(self.forks.items()):
            where = f"step {self.kit.step}, target block {li}"
            cache = self.paged[li]
            self.kit.method("paged_kv_cache", where, cache, "free_sequence", sid)
            self.kit.method("paged_kv_cache", where, cache, "append", self.seqs[li],
                            k_t[:keep].contiguous(), v_t[:keep].contiguous())
            self.mirror[li] = (torch.cat([self.mirror[li][0], k_t[:keep]]),
                               torch.cat([self.mirror[li][1], v_t[:keep]]))
        self.forks.clear()

    # -- the draft: level-1 attention, contiguous KVCache, decode_step -------------------
    def _draft_attention(self, q, k, v, start, where) -> np.ndarray:
        kit, cache, n = self.kit, self.draft_cache, q.shape[1]
        kit.method("kv_cache", where, cache, "append", k, v)
        self.draft_hist = (np.concatenate([self.draft_hist[0], k], 1),
                           np.concatenate([self.draft_hist[1], v], 1))
        if start == 0:
            mask = np.asarray(kit.call("causal_mask", where, n, n), dtype=bool)
            k_all, v_all = np.repeat(k, self.group, 0), np.repeat(v, self.group, 0)
            return np.asarray(kit.call("attention", where, q, k_all, v_all, mask))
        keys = np.asarray(kit.attr("kv_cache", where, cache, "keys"))
        values = np.asarray(kit.attr("kv_cache", where, cache, "values"))
        if kit.slots["kv_cache"].yours and (max_error(keys, self.draft_hist[0]) > 0
                                            or max_error(values, self.draft_hist[1]) > 0):
            kit.flag("kv_cache", where, "keys/values differ from what was appended")
        view = SimpleNamespace(keys=np.repeat(keys, self.group, 0),      # (H, T, D): GQA by
                               values=np.repeat(values, self.group, 0))  # repeating KV heads
        return np.asarray(kit.call("decode_step", where, q, view))

    def truncate_draft(self, length: int) -> None:
        """A fresh draft cache holding the first ``length`` tokens' keys and values."""
        k = np.ascontiguousarray(self.draft_hist[0][:, :length])
        v = np.ascontiguousarray(self.draft_hist[1][:, :length])
        where = f"step {self.kit.step}, draft block 0"
        self.draft_cache = self.kit.make("kv_cache", where, self.cfg.n_kv_heads,
                                         self.cfg.head_dim, k.dtype)
        self.kit.method("kv_cache", where, self.draft_cache, "append", k, v)
        self.draft_hist = (k, v)

    def _triton(self, kata: str) -> bool:
        slot = self.kit.slots.get(kata)
        return self.kernels == "triton" and slot is not None and slot.yours

    # -- sampling ------------------------------------------------------------------------
    def probs(self, logits: torch.Tensor, where: str) -> np.ndarray:
        s = self.sampling
        p = self.kit.call("next_token_probs", where, logits.numpy(), s.temperature, s.top_k, s.top_p)
        return np.asarray(p, dtype=np.float64)

    def sample(self, logits: np.ndarray, draw: int, where: str, plain: bool = False) -> int:
        """``sample_next`` with a Generator seeded per draw (the worker gets a copy of it).
        ``plain``: ``logits`` are log-probabilities already; no temperature, no cut."""
        s = self.sampling
        knobs = (1.0, None, None) if plain else (s.temperature, s.top_k, s.top_p)
        rng = np.random.default_rng([s.seed, draw])
        ref = self.kit.slots["next_token_probs"].reference

        def check(token) -> str:
            if not isinstance(token, (int, np.integer)) or not 0 <= int(token) < logits.shape[-1]:
                return f"returned {token!r}, not a token id"
            p = ref.next_token_probs(logits, *knobs)
            return "" if p[int(token)] > 0 else f"drew token {int(token)}, whose probability is 0"

        return int(self.kit.call("sample_next", where, logits, rng, *knobs, check=check))

    def accept(self, drafts: list[int], qs: list[np.ndarray], ps: list[np.ndarray],
               lt: torch.Tensor, where: str) -> tuple[int, int]:
        """Leviathan et al.'s rule: keep d_i with probability min(1, p/q); at the first
        rejection draw from norm(max(0, p − q)); all kept: a bonus token from the last p.
        Returns (drafts kept, the token after them). The uniforms are seeded per step."""
        step = self.kit.step
        rng = np.random.default_rng([self.sampling.seed, 1 << 20, step])
        u, resample_u = rng.random(len(drafts)), float(rng.random())
        if self.kit.uses("speculative_decoding"):   # the level-8 kata (yours or the reference)
            out = self.kit.call("speculative_decoding", where, np.stack(ps), np.stack(qs),
                                list(drafts), u, resample_u)
            out = [int(t) for t in out]
            if not 1 <= len(out) <= len(drafts) + 1 or out[:-1] != list(drafts[:len(out) - 1]):
                self.kit.flag("speculative_decoding", where, f"returned {out} for drafts {drafts}")
                raise LearnerFailed("speculative_decoding", ValueError("not a kept prefix + 1"))
            return len(out) - 1, out[-1]
        for i, d in enumerate(drafts):               # a course without level 8: the rule here
            if qs[i][d] > 0 and u[i] < min(1.0, ps[i][d] / qs[i][d]):
                continue
            residual = np.maximum(ps[i] - qs[i], 0.0)
            if residual.sum() <= 0:
                residual = ps[i]
            with np.errstate(divide="ignore"):
                logp = np.log(residual / residual.sum()).astype(lt.numpy().dtype)
            return i, self.sample(logp, (step << 8) + 100 + i, where, plain=True)
        return len(drafts), self.sample(lt[len(drafts)].numpy(), (step << 8) + 99, where)

    # -- checks against the reference model ----------------------------------------------
    def _check_logits(self, tokens: list[int], rows: dict[str, tuple[int, torch.Tensor]]) -> None:
        """``rows[model] = (start, logits)``: compare with the PyTorch model on ``tokens``."""
        start_s = time.perf_counter()
        with torch.no_grad():
            ref_t, ref_d = self.model.both(torch.tensor([tokens]))
        tol = LOGIT_TOLERANCE.get(self.dtype, 2e-3)
        for model, (start, got) in rows.items():
            ref = (ref_t if model == "target" else ref_d)[0, start:start + got.shape[0]]
            errs = (got.double() - ref.double()).abs().amax(-1)
            errs = torch.nan_to_num(errs, nan=float("inf"))
            bad = (errs > tol).nonzero()
            if len(bad) and self.divergence is None:
                i = int(bad[0, 0])
                self.divergence = {"step": self.kit.step, "model": model, "position": start + i,
                                   "error": float(errs[i]), "tolerance": tol}
        self.check_s += time.perf_counter() - start_s

    # -- the loop ------------------------------------------------------------------------
    def generate(self, prompt: list[int], max_new: int,
                 on_token: Callable[[int, str], None] = lambda t, s: None) -> Result:
        res = Result(list(prompt))
        kit = self.kit
        kit.step = 0
        self.check_s = kit.check_s = 0.0
        t0 = time.perf_counter()
        self._start_caches()

        def emit(token: int, source: str) -> None:
            res.tokens.append(token)
            res.sources.append(source)
            on_token(token, source)

        P = len(prompt)
        lt = self.forward("target", prompt, 0)
        rows = {"target": (0, lt)}
        if self.gamma:
            rows["draft"] = (0, self.forward("draft", prompt, 0))
        self._check_logits(prompt, rows)
        pending = self.sample(lt[-1].numpy(), 0, "step 0, the first token")
        emit(pending, "target")
        res.ttft_s = time.perf_counter() - t0 - self.check_s - kit.check_s
        L = P                                   # tokens whose K/V are in the caches
        while len(res.tokens) < max_new:
            kit.step += 1
            where = f"step {kit.step}"
            history = prompt + res.tokens       # the last one is `pending`, not cached yet
            g = min(self.gamma, max_new - len(res.tokens) - 1)
            if g <= 0:                          # plain decoding: one target step
                lt = self.forward("target", [pending], L)
                self._check_logits(history, {"target": (L, lt)})
                pending = self.sample(lt[-1].numpy(), kit.step << 8, where)
                L += 1
                emit(pending, "target")
                continue
            toks, qs, dl = [pending], [], []
            for i in range(g):                  # the draft proposes g tokens
                ld = self.forward("draft", [toks[-1]], L + i)[-1]
                dl.append(ld)
                qs.append(self.probs(ld, f"{where}, draft"))
                toks.append(self.sample(ld.numpy(), (kit.step << 8) + 1 + i, f"{where}, draft"))
            lt = self.forward("target", toks, L, keep=False)   # (g + 1, V) in one pass
            ps = [self.probs(lt[i], f"{where}, target") for i in range(g + 1)]
            self._check_logits(prompt + res.tokens[:-1] + toks,
                               {"target": (L, lt), "draft": (L, torch.stack(dl))})
            j, nxt = self.accept(toks[1:], qs, ps, lt, f"{where}, verify")
            self.commit_target(j + 1)
            if j == g:                          # the draft never saw its last proposal
                self.forward("draft", [toks[-1]], L + g)
            else:
                self.truncate_draft(L + 1 + j)
            res.proposed += g
            res.accepted += j
            for d in toks[1:j + 1]:
                emit(d, "draft")
            emit(nxt, "target")
            L += j + 1
            pending = nxt
        res.steps = kit.step
        res.total_s = time.perf_counter() - t0
        res.check_s = self.check_s + kit.check_s
        res.divergence = self.divergence
        res.blocks_used = sum(len(self.kit.method("paged_kv_cache", "end", c, "block_table", s))
                              for c, s in zip(self.paged, self.seqs))
        return res
