"""Level 8 · serve_model — the capstone kata: the learner's own generation loop serves the
shipped tiny model (prefill, KV-cached decode, RoPE positions, GQA, greedy or seeded
sampling), checked step by step against the PyTorch model of attnkata/capstone/model.py.

torch is imported inside functions: collecting the ladder must not pay for it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from attnkata.strategies import st

from attnkata import Claim, Fake, Kata, Misconception, Prediction, check
from attnkata.diagnose import Probe, attach
from attnkata.diagnose import check as holds
from attnkata.layouts import covers
from attnkata.strategies import seeds

PROMPT = "she had three apples and found two more, so she had "
NEW_TOKENS = 32
# (rtol, atol) for logits: a KV-cached loop adds in another order than the full forward
F32 = (1e-4, 2e-3)
F64 = (1e-9, 1e-8)


# ---------------------------------------------------------------------------
# Models: the shipped one, random small ones, and the reference loop (no cache)
# ---------------------------------------------------------------------------


def config(**kw) -> dict:
    from dataclasses import asdict

    from attnkata.capstone.model import ModelConfig

    return asdict(ModelConfig(**kw))


@lru_cache(maxsize=4)
def _shipped(dtype_name: str) -> tuple:
    import torch

    from attnkata.capstone.model import load

    from dataclasses import asdict

    model = load(dtype=getattr(torch, dtype_name))
    return {k: v.detach() for k, v in model.state_dict().items()}, asdict(model.cfg)


def shipped(dtype_name: str = "float32") -> tuple:
    """(weights, config) of the shipped model, as generate receives them (fresh copies)."""
    w, cfg = _shipped(dtype_name)
    return {k: v.clone() for k, v in w.items()}, dict(cfg)


def random_weights(cfg: dict, seed: int, dtype_name: str = "float64", zero=()) -> dict:
    """Weights for ``TinyLM(cfg)`` drawn at scales that make attention sharp and logits
    spread (so a wrong cache, position or head shows); ``zero`` names parts set to 0:
    ``"wq"``, ``"wv"``, or ``"rope_pair0"`` (the q/k rows RoPE turns fastest)."""
    import torch

    from attnkata.capstone.model import ModelConfig, TinyLM

    g = torch.Generator().manual_seed(seed)
    C = cfg["d_model"]
    model = TinyLM(ModelConfig(**cfg))
    w = {}
    for name, p in model.state_dict().items():
        if p.dim() == 1:   # the final norm small: logits of a few units, so sampling varies
            t = 1.0 + 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            t = t * 0.3 if name == "final_norm" else t
        elif name == "embed":
            t = torch.randn(p.shape, generator=g, dtype=torch.float64)
        else:
            fan_in = p.shape[1]
            # sharp attention; an MLP as loud as the embedding, so a token need not predict itself
            sharp = {"wq": 2.5, "wk": 2.5, "w_down": 3.0}.get(name.split(".")[-2], 1.0)
            t = torch.randn(p.shape, generator=g, dtype=torch.float64) * sharp / math.sqrt(fan_in)
        w[name] = t
    D = C // cfg["n_heads"]
    for name in w:
        if "wq" in zero and name.endswith("wq.weight"):
            w[name] = torch.zeros_like(w[name])
        if "wv" in zero and name.endswith("wv.weight"):
            w[name] = torch.zeros_like(w[name])
        if "rope_pair0" in zero and name.endswith(("wq.weight", "wk.weight")):
            rows = w[name].clone().view(-1, D, C)
            rows[:, 0:2] = 0.0
            w[name] = rows.view(-1, C)
    return {k: v.to(getattr(torch, dtype_name)) for k, v in w.items()}


def draw(logits, temperature: float, rng) -> int:
    """The sampler of the contract: argmax at T = 0, else the inverse-CDF draw (one
    ``rng.random()``) from softmax(logits / T) computed in float64."""
    import torch

    if temperature == 0:
        return int(torch.argmax(logits))
    z = logits.detach().to(torch.float64).cpu().numpy() / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return min(int(np.searchsorted(np.cumsum(p), rng.random(), side="right")), p.size - 1)


_RUNS: dict = {}


def expected(weights_key: tuple, weights: dict, cfg: dict, prompt: list, n: int,
             temperature: float = 0.0, seed: int = 0) -> tuple:
    """``model_run``, remembered under ``weights_key`` (how the weights were made): a check
    runs the same inputs against many targets (selfcheck), the model once."""
    key = (weights_key, tuple(sorted(cfg.items())), tuple(prompt), n, temperature, seed)
    if key not in _RUNS:
        _RUNS[key] = model_run(weights, cfg, prompt, n, temperature, seed)
    tokens, logits = _RUNS[key]
    return list(tokens), logits.clone()


def model_run(weights: dict, cfg: dict, prompt: list, n: int, temperature: float = 0.0,
              seed: int = 0) -> tuple:
    """The reference: the PyTorch model (no cache) run on the whole sequence at every
    step, the last row's logits, the contract's sampler. ``(tokens, logits [n, V])``."""
    import torch

    from attnkata.capstone.model import ModelConfig, TinyLM

    model = TinyLM(ModelConfig(**cfg)).to(next(iter(weights.values())).dtype)
    model.load_state_dict({k: v.contiguous() for k, v in weights.items()})
    rng = np.random.default_rng(seed)
    seq, tokens, rows = list(prompt), [], []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([seq]))[0, -1]
            tokens.append(draw(logits, temperature, rng))
            rows.append(logits)
            seq.append(tokens[-1])
    return tokens, torch.stack(rows)


# ---------------------------------------------------------------------------
# Misconceptions: one loop with a switch per mistake
# ---------------------------------------------------------------------------


def _loop(weights, cfg, prompt, n, temperature=0.0, seed=0, *, bug=None):
    import torch

    C, H, H_kv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    D, G, eps, base = C // H, H // H_kv, cfg["norm_eps"], cfg["rope_base"]
    from attnkata.capstone.model import rms_norm, rope

    rng = np.random.default_rng(seed)
    cache = [[None, None] for _ in range(cfg["n_layers"])]

    def forward(tokens, start):
        T = len(tokens)
        pos = torch.arange(start, start + T)
        turn = torch.arange(T) if bug == "rope_positions_restart" else pos
        x = weights["embed"][torch.tensor(tokens)]
        for i in range(cfg["n_layers"]):
            p = f"blocks.{i}."
            h = rms_norm(x, weights[p + "attn_norm"], eps)
            q = (h @ weights[p + "wq.weight"].T).view(T, H, D).transpose(0, 1)
            k = (h @ weights[p + "wk.weight"].T).view(T, H_kv, D).transpose(0, 1)
            v = (h @ weights[p + "wv.weight"].T).view(T, H_kv, D).transpose(0, 1)
            q, k = rope(q, turn, base), rope(k, turn, base)
            K0, V0 = cache[i]
            K = k if K0 is None else torch.cat([K0, k], dim=1)
            V = v if V0 is None else torch.cat([V0, v], dim=1)
            cache[i] = [K, V]
            keys_pos = torch.arange(K.shape[1])
            if bug == "append_after_attention" and K0 is not None:
                K, V, keys_pos = K0, V0, keys_pos[:-T]       # attends before its own key is in
            if bug == "gqa_head_modulo":
                Kq, Vq = K.repeat(G, 1, 1), V.repeat(G, 1, 1)   # head h reads KV head h % H_kv
            else:
                Kq, Vq = K.repeat_interleave(G, 0), V.repeat_interleave(G, 0)
            s = q @ Kq.transpose(-1, -2) / math.sqrt(D)
            s = s.masked_fill(~(keys_pos[None, :] <= pos[:, None]), float("-inf"))
            o = torch.softmax(s, dim=-1) @ Vq
            x = x + o.transpose(0, 1).reshape(T, C) @ weights[p + "wo.weight"].T
            hm = rms_norm(x, weights[p + "mlp_norm"], eps)
            gate = torch.nn.functional.silu(hm @ weights[p + "w_gate.weight"].T)
            x = x + (gate * (hm @ weights[p + "w_up.weight"].T)) @ weights[p + "w_down.weight"].T
        return rms_norm(x[-1], weights["final_norm"], eps) @ weights["embed"].T

    temp = 1.0 if bug == "temperature_ignored" and temperature > 0 else temperature
    tokens, rows = [], []
    logits = forward(list(prompt), 0)
    for step in range(n):
        tokens.append(draw(logits, temp, rng))
        rows.append(logits)
        if step + 1 == n:
            break
        if bug == "no_kv_cache":
            for c in cache:
                c[:] = [None, None]
            logits = forward(list(prompt) + tokens, 0)
        elif bug == "last_prompt_token_twice":
            fed = prompt[-1] if step == 0 else tokens[step - 1]
            logits = forward([fed], len(prompt) + step)
        else:
            logits = forward([tokens[-1]], len(prompt) + step)
    return tokens, torch.stack(rows)


def _with(bug: str):
    def generate(weights, config, prompt, max_new_tokens, temperature=0.0, seed=0):
        return _loop(weights, config, prompt, max_new_tokens, temperature, seed, bug=bug)

    generate.__name__ = f"generate_{bug}"
    return {"generate": generate}


# ---------------------------------------------------------------------------
# Judging one run: the first step that diverges, in words, then the comparison
# ---------------------------------------------------------------------------


def _text(tokens) -> str:
    from attnkata.capstone.model import decode

    try:
        return repr(decode([int(t) % 256 for t in tokens]))
    except (TypeError, ValueError):
        return "(not a list of token ids)"


def _first_divergence(got, want, tol) -> str:
    """Where a run leaves the reference: the first step whose logits or token differ."""
    import torch

    try:
        tokens, logits = got
        for i, (w_tok, w_row) in enumerate(zip(want[0], want[1])):
            row = logits[i]
            if not (isinstance(row, torch.Tensor) and row.shape == w_row.shape
                    and torch.allclose(row.to(w_row.dtype), w_row, rtol=tol[0], atol=tol[1])):
                err = (row.to(torch.float64) - w_row.to(torch.float64)).abs().max()
                where = "the prompt's last position" if i == 0 else f"decode step {i}"
                return (f"step {i} is the first whose logits diverge ({where}: max |Δ| = "
                        f"{float(err):.3g})")
            if int(tokens[i]) != int(w_tok):
                return (f"step {i} is the first whose token differs (token {int(tokens[i])}, "
                        f"expected {int(w_tok)}) while its logits match")
    except Exception:  # a malformed answer: compare() below says what is wrong with it
        return "the answer is not (tokens, logits) of the expected form"
    return "every step matches"


def judge(ctx, args: tuple, kwargs: dict, want, what: str, tol) -> None:
    """The learner's ``generate(*args, **kwargs)`` against ``want`` (the model's run)."""
    import copy

    got = ctx.call("generate", *args, **kwargs)

    def rerun(ns):
        a, kw = copy.deepcopy((args, kwargs))
        return ns.generate(*a, **kw)

    where = _first_divergence(got, want, tol)
    if where != "every step matches":
        mine = got[0] if isinstance(got, (tuple, list)) and got else []
        what += f" — {where}. Text generated: {_text(mine)}; the model's: {_text(want[0])}"
    ctx.match(got, want, what, rerun=rerun, tol=tol)


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


@check(f"the shipped model, float32, greedy: {NEW_TOKENS} tokens after {PROMPT!r}; every step's "
       f"logits match the PyTorch model's run on the same sequence (|Δ| ≤ 2e-3 + 1e-4·|logit|) "
       f"and the text is the model's")
def shipped_model_greedy(ctx):
    from attnkata.capstone.model import encode

    weights, cfg = shipped("float32")
    prompt = encode(PROMPT)
    want = expected(("shipped", "float32"), weights, cfg, prompt, NEW_TOKENS)
    judge(ctx, (weights, cfg, prompt, NEW_TOKENS), {}, want,
          f"generate(shipped weights float32, prompt {PROMPT!r}, {NEW_TOKENS} new tokens, greedy)",
          F32)


@check("the shipped model, float64, seeded sampling (T = 1.3, seed 7): 24 tokens; the logits "
       "match at every step and each token is the contract's inverse-CDF draw")
def shipped_model_sampled(ctx):
    from attnkata.capstone.model import encode

    weights, cfg = shipped("float64")
    prompt = encode("on friday ")
    want = expected(("shipped", "float64"), weights, cfg, prompt, 24, 1.3, 7)
    judge(ctx, (weights, cfg, prompt, 24), {"temperature": 1.3, "seed": 7}, want,
          "generate(shipped weights float64, prompt 'on friday ', 24 new tokens, temperature=1.3, "
          "seed=7)", F64)


@st.composite
def models(draw):
    H_kv = draw(st.sampled_from((1, 2)))
    H = H_kv * draw(st.sampled_from((1, 2, 3)))
    D = draw(st.sampled_from((2, 4, 8)))
    cfg = config(vocab=draw(st.integers(8, 40)), d_model=H * D, n_layers=draw(st.integers(1, 3)),
                 n_heads=H, n_kv_heads=H_kv, d_ff=draw(st.sampled_from((8, 24))),
                 rope_base=draw(st.sampled_from((10000.0, 50.0))))
    prompt = draw(st.lists(st.integers(0, cfg["vocab"] - 1), min_size=1, max_size=9))
    n = draw(st.one_of(st.just(1), st.integers(2, 8)))
    temperature = draw(st.sampled_from((0.0, 0.0, 0.7, 1.3)))
    return cfg, draw(seeds()), prompt, n, temperature, draw(st.integers(0, 2**16))


@check("random small models, float64 (1–3 blocks, MHA, GQA and MQA, head dims 2–8, prompts of "
       "1–9 tokens, 1–8 new tokens, greedy and sampled): logits and tokens match the model's "
       "run at every step")
def random_models(ctx):
    @ctx.given(case=models(), max_examples=12)
    def prop(case):
        cfg, wseed, prompt, n, temperature, seed = case
        weights = random_weights(cfg, wseed)
        want = expected(("random", wseed), weights, cfg, prompt, n, temperature, seed)
        judge(ctx, (weights, cfg, prompt, n), {"temperature": temperature, "seed": seed}, want,
              f"generate(random model: {cfg['n_layers']} block{'s' * (cfg['n_layers'] > 1)}, d_model {cfg['d_model']}, "
              f"{cfg['n_heads']} query / {cfg['n_kv_heads']} KV heads, vocab {cfg['vocab']}, "
              f"rope_base {cfg['rope_base']:g}; prompt {prompt}, {n} new tokens, "
              f"temperature={temperature}, seed={seed})", F64)

    prop()


def _strided(t):
    """The same values in other strides: a matrix stored transposed, a vector sliced."""
    import torch

    if t.dim() == 2:
        return t.t().contiguous().t()
    wide = torch.zeros(t.shape[0], 2, dtype=t.dtype)
    wide[:, 0] = t
    return wide[:, 0]


@covers("noncontiguous")
@check("weights given as non-contiguous views (matrices stored transposed, vectors strided): "
       "the same run as with contiguous weights")
def strided_weights(ctx):
    cfg = config(vocab=24, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=24)
    weights = random_weights(cfg, 5)
    want = expected(("random", 5), weights, cfg, [3, 1, 4, 1, 5], 6)
    views = {k: _strided(v) for k, v in weights.items()}
    judge(ctx, (views, cfg, [3, 1, 4, 1, 5], 6), {}, want,
          "generate(random model whose weights are non-contiguous views, prompt [3, 1, 4, 1, 5], "
          "6 new tokens, greedy)", F64)


# ---------------------------------------------------------------------------
# The cache is used: rows projected per generated token, witnessed by counting
# ---------------------------------------------------------------------------

ROWS_PROMPT = 8
ROWS_LENGTHS = (1, 9, 17, 33)


def _ptr(t) -> int:
    return t.untyped_storage().data_ptr()


def _tensors(x):
    import torch

    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for y in x:
            yield from _tensors(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _tensors(y)


def projected_rows(module, weights, cfg, prompt, lengths):
    """Probe, in the learner's process: for each ``n`` in ``lengths``, the token rows that went
    through the blocks' W_q, W_k and W_v while ``generate(..., n)`` ran (greedy).

    A TorchFunctionMode watches every torch call. A result with as many elements as the
    weights it was made from (a cast, a copy, a concatenation such as a fused QKV) is
    followed as a weight; any other result of a call that read a weight is a projection,
    and counts ``numel / output features`` rows."""
    import torch
    from torch.overrides import TorchFunctionMode

    counts = []
    for n in lengths:
        tracked = {}
        for i in range(cfg["n_layers"]):
            for part in ("wq", "wk", "wv"):
                w = weights[f"blocks.{i}.{part}.weight"]
                tracked[_ptr(w)] = (w.shape[0], w.numel(), w)
        rows = [0.0]

        class Counter(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
                out = func(*args, **(kwargs or {}))
                seen, hits = set(), []
                for t in _tensors((args, kwargs)):
                    p = _ptr(t) if t.numel() else None
                    if p in tracked and p not in seen:
                        seen.add(p)
                        hits.append(tracked[p])
                if hits:
                    feats, size = sum(h[0] for h in hits), sum(h[1] for h in hits)
                    for o in _tensors(out):
                        if o.numel() in (size, *(h[1] for h in hits)):
                            # a weight's copy: followed, and kept alive so its address is not reused
                            one = next((h[:2] for h in hits if h[1] == o.numel()), (feats, size))
                            tracked[_ptr(o)] = (*((feats, size) if o.numel() == size else one), o)
                        elif o.numel():
                            rows[0] += o.numel() / feats
                return out

        with Counter():
            module.generate(weights, cfg, list(prompt), n)
        counts.append(rows[0])
    return counts


def rows_per_token(counts, prompt_len=ROWS_PROMPT, lengths=ROWS_LENGTHS):
    """Rows projected per generated token in each window of lengths, over the rows per prompt
    token of the prefill (1.0: one row per new token, as with a cache)."""
    per_prompt = counts[0] / prompt_len
    return [((b - a) / (nb - na)) / per_prompt
            for (na, a), (nb, b) in zip(zip(lengths, counts), zip(lengths[1:], counts[1:]))]


@check(f"the KV cache is used: after a {ROWS_PROMPT}-token prompt, each generated token sends one "
       f"row through W_q, W_k and W_v (as many per token as the prefill per prompt token), at "
       f"n = {', '.join(map(str, ROWS_LENGTHS))} new tokens — counted by a TorchFunctionMode, "
       f"not timed")
def cache_is_used(ctx):
    from attnkata.capstone.model import encode

    weights, cfg = shipped("float32")
    prompt = encode("on monday")[:ROWS_PROMPT]
    counts = ctx.probe(__name__, "projected_rows", weights, cfg, prompt, ROWS_LENGTHS,
                       what=f"generating up to {ROWS_LENGTHS[-1]} tokens under a torch call counter")
    if not counts[0]:
        ctx.fail("no torch call read the blocks' W_q, W_k or W_v while generate ran, so the "
                 "check cannot see your projections. Compute with torch on the tensors you are "
                 "given (h @ w.T, F.linear, einsum; casts and fused QKV are followed), not on "
                 "NumPy copies.")
    ratios = rows_per_token(counts)
    ctx.record(f"rows through W_q, W_k, W_v (all blocks) for n = "
               + ", ".join(f"{n}: {c:g}" for n, c in zip(ROWS_LENGTHS, counts))
               + f" after an {ROWS_PROMPT}-token prompt; per generated token over per prompt "
               f"token: " + ", ".join(f"{r:.2f}" for r in ratios)
               + " (1 with a cache; the reference loop: 1.00 in every window)")
    if max(ratios) > 1.5:
        windows = [f"{a}→{b}" for a, b in zip(ROWS_LENGTHS, ROWS_LENGTHS[1:])]
        ctx.fail("generate projects more rows for each new token than it did for each prompt "
                 "token, and more the longer the sequence: rows through W_q/W_k/W_v per new token "
                 "(relative to the prefill's per prompt token) were "
                 + ", ".join(f"{r:.1f} for n {w}" for r, w in zip(ratios, windows))
                 + ". With a KV cache each decode step feeds only the newest token (one row) and "
                 "reads the keys and values of the others from the cache.",
                 misconception="no_kv_cache")


# ---------------------------------------------------------------------------
# Fakes (must be rejected) and a correct variant (must pass, firing no probe)
# ---------------------------------------------------------------------------


def _greedy_always(weights, config, prompt, max_new_tokens, temperature=0.0, seed=0):
    return _loop(weights, config, prompt, max_new_tokens, 0.0, seed)


def _zero_logits(weights, config, prompt, max_new_tokens, temperature=0.0, seed=0):
    import torch

    tokens, logits = _loop(weights, config, prompt, max_new_tokens, temperature, seed)
    return tokens, torch.zeros_like(logits)


def _shipped_file(weights, config, prompt, max_new_tokens, temperature=0.0, seed=0):
    """Ignores the weights it is given and serves the model read from the shipped file."""
    w, cfg = shipped(str(next(iter(weights.values())).dtype).replace("torch.", ""))
    return _loop(w, cfg, prompt, max_new_tokens, temperature, seed)


def _fused_preallocated(weights, config, prompt, max_new_tokens, temperature=0.0, seed=0):
    """Correct, written otherwise: a fused QKV weight, a cache allocated once for the whole
    sequence, the prompt fed one token at a time, PyTorch's SDPA with enable_gqa."""
    import torch
    import torch.nn.functional as F

    from attnkata.capstone.model import rms_norm, rope

    C, H, H_kv, L = config["d_model"], config["n_heads"], config["n_kv_heads"], config["n_layers"]
    D, eps, base = C // H, config["norm_eps"], config["rope_base"]
    dtype, total = weights["embed"].dtype, len(prompt) + max_new_tokens
    K = torch.zeros(L, H_kv, total, D, dtype=dtype)
    V = torch.zeros(L, H_kv, total, D, dtype=dtype)
    qkv_w = [torch.cat([weights[f"blocks.{i}.{n}.weight"] for n in ("wq", "wk", "wv")]) for i in range(L)]
    rng = np.random.default_rng(seed)

    def step(token, pos):
        x = weights["embed"][token][None]                                   # (1, C)
        at = torch.tensor([pos])
        for i in range(L):
            p = f"blocks.{i}."
            qkv = rms_norm(x, weights[p + "attn_norm"], eps) @ qkv_w[i].T
            q, k, v = qkv.split([H * D, H_kv * D, H_kv * D], dim=-1)
            q = rope(q.view(1, H, D).transpose(0, 1), at, base)            # (H, 1, D)
            K[i, :, pos] = rope(k.view(1, H_kv, D).transpose(0, 1), at, base)[:, 0]
            V[i, :, pos] = v.view(H_kv, D)
            o = F.scaled_dot_product_attention(q[None], K[i, :, :pos + 1][None],
                                               V[i, :, :pos + 1][None], enable_gqa=True)[0]
            x = x + o.transpose(0, 1).reshape(1, C) @ weights[p + "wo.weight"].T
            hm = rms_norm(x, weights[p + "mlp_norm"], eps)
            x = x + (F.silu(hm @ weights[p + "w_gate.weight"].T) * (hm @ weights[p + "w_up.weight"].T)) \
                @ weights[p + "w_down.weight"].T
        return (rms_norm(x, weights["final_norm"], eps) @ weights["embed"].T)[0]

    for pos, token in enumerate(prompt):
        logits = step(int(token), pos)
    tokens, rows = [], []
    for s in range(max_new_tokens):
        tokens.append(draw(logits, temperature, rng))
        rows.append(logits)
        if s + 1 < max_new_tokens:
            logits = step(tokens[-1], len(prompt) + s)
    return tokens, torch.stack(rows)


SERVE_MODEL = Kata(
    id="serve_model", level=8, title="Capstone: serve the tiny model with your own generation loop",
    path="level8/serve_model.py", entries=("generate",),
    checks=(shipped_model_greedy, shipped_model_sampled, random_models, strided_weights,
            cache_is_used),
    predictions=(
        Prediction("rows_with_cache", "an 8-token prompt, 32 new tokens, with a KV cache: how many "
                   "query rows does one head of one block compute in all?", 39, kind="exact",
                   why="The prefill computes the 8 prompt rows at once and gives the first new "
                       "token; each of the other 31 tokens is fed once, one row: 8 + 31 = 39."),
        Prediction("rows_without_cache", "the same generation recomputing the whole sequence at "
                   "every step (no cache): how many query rows per head and block?", 752,
                   kind="exact",
                   why="Step i runs all 8 + i tokens: Σ_{i=0}^{31} (8 + i) = 32·8 + 496 = 752, "
                       "19 times as many — and the gap grows with the length."),
        Prediction("kv_bytes_128", "the shipped model (2 blocks, 2 KV heads, head dim 32) in "
                   "float32: bytes of its KV cache holding 128 tokens", 131072, kind="exact",
                   why="2 blocks · 128 tokens · 2 KV heads · 32 · 2 (K and V) · 4 bytes = "
                       "131,072 bytes = 128 KiB; 1 KiB per token."),
        Prediction("kv_head_of_query_head_3", "the shipped model has 4 query heads and 2 KV heads: "
                   "which KV head does query head 3 read?", 1, kind="exact",
                   why="G = 4 / 2 = 2 query heads per KV head, in order: 3 // 2 = 1."),
    ),
    misconceptions=(
        # source: karpathy/nanoGPT model.py `generate` (and minGPT's) run the whole context
        # through the model at every step: the loop learners copy first has no cache
        Misconception("no_kv_cache", "recomputes the whole sequence at every step instead of "
                      "feeding one token through the cache", _with("no_kv_cache"),
                      "The logits are right, the cost is not: step i redoes all P + i tokens. "
                      "Keep each block's keys and values and feed only the newest token."),
        # source: huggingface/transformers PR #15751 (positions built from the new inputs
        # alone, ignoring past_key_values_length, broke generation with use_cache=True);
        # skyzh/tiny-llm PR #46 (a wrong offset for RoPE in a KV-cached generate)
        Misconception("rope_positions_restart", "the decoded token is rotated at position 0 "
                      "(positions restart for each chunk fed)", _with("rope_positions_restart"),
                      "The token fed at decode step s sits at position P + s − 1: RoPE must turn "
                      "its query and key by that position, not by its index in the chunk."),
        # source: harvard-edge/cs249r_book PR #1953 ("cached generation step excludes
        # current token from self-attention": the step attended over the cache's history only)
        Misconception("append_after_attention", "attends over the cache before appending the "
                      "new token's key and value (the token does not see itself)",
                      _with("append_after_attention"),
                      "Causal attention includes the diagonal: append k_t, v_t first, then attend "
                      "over all L + 1 keys."),
        # source: onnx/onnx PR #7274 (GQA's KV heads were tiled, [h0, h1, h0, h1], where
        # torch repeats each in place); apple/axlearn PR #842 (the same two orders)
        Misconception("gqa_head_modulo", "query head h reads KV head h % H_kv (KV heads tiled) "
                      "instead of h // G (each KV head serving G consecutive query heads)",
                      _with("gqa_head_modulo"),
                      "The model was trained with query heads 0 … G − 1 on KV head 0, G … 2G − 1 "
                      "on KV head 1: repeat_interleave(G), not repeat(G)."),
        # source: oobabooga/textgen PR #4145 (an off-by-one in the caching logic "doubled
        # up" the most recent token: the model saw "a a" where the prompt was "a")
        Misconception("last_prompt_token_twice", "after the prefill, feeds the prompt's last "
                      "token again instead of the token just sampled (every later token one step "
                      "late)", _with("last_prompt_token_twice"),
                      "The prefill already put every prompt token in the cache and gave the "
                      "first new token; the first decode step feeds that new token, at position P."),
        # source: vllm-project/vllm issue #15241 and pguso/agents-from-scratch issue #6
        # (temperature silently ignored: the same distribution whatever T)
        Misconception("temperature_ignored", "samples from softmax(logits), ignoring the "
                      "temperature", _with("temperature_ignored"),
                      "Divide the logits by T before the softmax: T < 1 sharpens, T > 1 flattens; "
                      "T = 0 is the argmax."),
    ),
    fakes=(Fake("greedy_always", {"generate": _greedy_always}),
           Fake("zero_logits", {"generate": _zero_logits}),
           Fake("ignores_given_weights", {"generate": _shipped_file})),
    variants=(Fake("fused_qkv_preallocated_sdpa", {"generate": _fused_preallocated}),),
    generic_fakes=("zeros", "echo", "constant", "random"),
    claims=(
        Claim("serve-cache-equals-model", "A loop that prefills the prompt once and then feeds one "
              "token per step through a per-block KV cache gives, at every step, the logits of the "
              "full model run on the whole sequence (|Δ| ≤ atol + rtol·|logit|, float64: 1e-8 and "
              "1e-9, float32: 2e-3 and 1e-4), and the same text.", scope="exact", source="shazeer-2019-mqa",
              evidence=("shipped_model_greedy", "shipped_model_sampled", "random_models",
                        "strided_weights"),
              not_claimed="Batch 1, no padding, no paged or quantised cache, no context past the "
                          "model's 128 positions."),
        Claim("serve-one-row-per-token", "With the cache, each generated token sends one row "
              "through every block's W_q, W_k and W_v, as each prompt token did, whatever the "
              "length; recomputing without a cache sends P + i rows at step i.", scope="toy",
              source="shazeer-2019-mqa", evidence=("cache_is_used",),
              not_claimed="Counted torch calls on the shipped model (8-token prompt, up to 33 new "
                          "tokens), not time or memory; the attention over the cache still grows "
                          "with the length, linearly."),
    ),
    hints=(
        "Write one function forward(tokens, start) that runs a chunk of tokens at positions "
        "start, start + 1, … through every block, appending each block's new k and v to its "
        "cache, and returns the last position's logits. The prefill is forward(prompt, 0); each "
        "decode step is forward([token], P + s).",
        "In a block: h = rms_norm(x, attn_norm); q = h @ wq.T viewed as (T, H, D) then "
        "(H, T, D); the same for k, v with H_kv; rope(q, positions), rope(k, positions); "
        "K = cat([K, k], dim=1) BEFORE attending; repeat_interleave(G) along the head axis; "
        "query at position t sees keys 0 … t.",
        "Sampling: at T = 0 argmax; else p = softmax(logits.double() / T) as NumPy, "
        "u = rng.random() from ONE np.random.default_rng(seed) made per call, token = "
        "searchsorted(cumsum(p), u, side='right'). Record the logits each token was chosen from.",
    ),
    requires=("torch",),
    timeout=120.0,
)


# ---------------------------------------------------------------------------
# Probes: small models in which one part is switched off, to tell the mistakes apart
# ---------------------------------------------------------------------------

PROBE_PROMPT = [5, 9, 2, 14, 7]


@lru_cache(maxsize=8)
def _probe_model(kind: str) -> tuple:
    """(weights, config) of a small float64 model: ``plain`` (4 query / 2 KV heads), ``mqa``,
    ``mha``, ``rope_off`` (base 1e30 and the fastest pair's q/k rows zero: RoPE turns
    nothing), ``q_zero`` (W_q = 0: uniform attention, positions cannot matter), ``v_zero``
    (W_v = 0: attention adds nothing, each token's logits depend on that token alone)."""
    kv = {"mqa": 1, "mha": 4}.get(kind, 2)
    cfg = config(vocab=24, d_model=16, n_layers=2, n_heads=4, n_kv_heads=kv, d_ff=24,
                 rope_base=1e30 if kind == "rope_off" else 10000.0)
    zero = {"rope_off": ("rope_pair0",), "q_zero": ("wq",), "v_zero": ("wv",)}.get(kind, ())
    weights = random_weights(cfg, 11, zero=zero)
    if kind == "v_zero":   # a token's own embedding dominates its logits: flip the head so
        weights["final_norm"] = -weights["final_norm"]   # the next token is not the one fed
    return weights, cfg


def _gen(ns, kind, n=5, temperature=0.0, seed=0):
    w, cfg = _probe_model(kind)
    return ns.generate({k: v.clone() for k, v in w.items()}, dict(cfg), list(PROBE_PROMPT), n,
                       temperature=temperature, seed=seed)


def _runs(*specs):
    return lambda ns: tuple(_gen(ns, *s) if isinstance(s, tuple) else _gen(ns, s) for s in specs)


def _rows_close(a, b) -> bool:
    import torch

    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and bool(torch.allclose(a.to(torch.float64), b.to(torch.float64), rtol=1e-6, atol=1e-7)))


def _ok(g, w) -> bool:
    return [int(t) for t in g[0]] == list(w[0]) and _rows_close(g[1], w[1])


def _row0(g, w) -> bool:
    return _rows_close(g[1][0], w[1][0])


def _decode_wrong(g, w) -> bool:
    """Right on the prompt (step 0), wrong later."""
    return _row0(g, w) and not _ok(g, w)


def _right_then(pred):
    """Right on the first run (a model where the mistake cannot show), ``pred`` on the second."""
    return holds(lambda g, w: _ok(g[0], w[0]) and pred(g[1], w[1]))


def _feeds_prompt_end_again(g, w) -> bool:
    """On the W_v = 0 model a step's logits depend on the token fed alone: step 1 repeating
    step 0's logits means the prompt's last token was fed again (the right token differs)."""
    return _rows_close(g[1][1], g[1][0]) and not _rows_close(w[1][1], w[1][0])


def _draws_at_one(g, w) -> bool:
    """The tokens are the contract's draws at temperature 1 from the learner's own logits."""
    rng = np.random.default_rng(3)
    return [int(t) for t in g[0]] == [draw(row, 1.0, rng) for row in g[1]] and not _ok(g, w)


_SAMPLED = ("plain", 6, 0.3, 3)

SERVE_MODEL = attach(SERVE_MODEL, probes={
    "rope_positions_restart": (
        Probe("a model whose RoPE turns nothing (right), then the plain model: right on the "
              "prompt, wrong at decode", _runs("rope_off", "plain"), _right_then(_decode_wrong)),
        Probe("a model with W_q = 0, where positions cannot matter (right), then the plain "
              "model: right on the prompt, wrong at decode", _runs("q_zero", "plain"),
              _right_then(_decode_wrong)),
    ),
    "append_after_attention": (
        Probe("a model with W_v = 0, where attention adds nothing (right), then the plain "
              "model: right on the prompt, wrong at decode", _runs("v_zero", "plain"),
              _right_then(_decode_wrong)),
        Probe("a model whose RoPE turns nothing: right on the prompt, wrong at decode",
              _runs("rope_off"), holds(lambda g, w: _decode_wrong(g[0], w[0]))),
    ),
    "gqa_head_modulo": (
        Probe("one KV head (MQA: the mapping cannot matter, right), then 4 query / 2 KV heads: "
              "wrong already on the prompt", _runs("mqa", "plain"),
              _right_then(lambda g, w: not _row0(g, w))),
        Probe("4 KV heads (MHA: right), then 4 query / 2 KV heads: wrong already on the prompt",
              _runs("mha", "plain"), _right_then(lambda g, w: not _row0(g, w))),
    ),
    "last_prompt_token_twice": (
        Probe("a model with W_v = 0 (each step's logits depend on the token fed alone): right "
              "on the prompt, wrong at decode", _runs("v_zero"),
              holds(lambda g, w: _decode_wrong(g[0], w[0]))),
        Probe("the same model: step 1's logits equal step 0's (the prompt's last token fed "
              "again)", _runs("v_zero"), holds(lambda g, w: _feeds_prompt_end_again(g[0], w[0]))),
    ),
    "temperature_ignored": (
        Probe("sampling at T = 1 (right), then at T = 0.3 with the same seed: right logits on "
              "the prompt, other tokens", _runs(("plain", 6, 1.0, 3), _SAMPLED),
              _right_then(lambda g, w: _row0(g, w) and [int(t) for t in g[0]] != list(w[0]))),
        Probe("sampling at T = 0.3, seed 3: each token is the draw at T = 1 from the run's own "
              "logits", _runs(_SAMPLED), holds(lambda g, w: _draws_at_one(g[0], w[0]))),
    ),
})
