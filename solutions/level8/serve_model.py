"""Reference · serve_model: the capstone's generation loop — prefill the prompt once, then
decode one token at a time through a per-block KV cache, RoPE at each token's own
position, grouped-query attention, and a greedy or seeded sampler."""

import math

import numpy as np
import torch

PREDICTIONS = {
    "rows_with_cache": 39,           # 8 prompt rows + 31 decode steps of one row
    "rows_without_cache": 752,       # Σ_{i=0}^{31} (8 + i)
    "kv_bytes_128": 131072,          # 2 layers · 128 · 2 KV heads · 32 · 2 (K, V) · 4 bytes
    "kv_head_of_query_head_3": 1,    # G = 4 / 2 = 2; 3 // 2 = 1
}


# --- Given: the parts of a block that are not this kata's subject ----------------


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / rms(x) · weight over the last axis (RMSNorm)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate interleaved pairs (2i, 2i+1) of x [..., T, D] by positions[t] · base^(−2i/D)."""
    d = x.shape[-1]
    inv_freq = base ** (-2.0 * torch.arange(d // 2, dtype=torch.float64) / d)   # (D/2,)
    theta = positions.to(torch.float64)[:, None] * inv_freq                     # (T, D/2)
    cos, sin = theta.cos().to(x.dtype), theta.sin().to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x_even * cos - x_odd * sin
    out[..., 1::2] = x_even * sin + x_odd * cos
    return out


def mlp(x: torch.Tensor, weights: dict, layer: int, eps: float) -> torch.Tensor:
    """The block's SwiGLU MLP on its own RMSNorm: w_down(silu(w_gate h) · w_up h)."""
    p = f"blocks.{layer}."
    h = rms_norm(x, weights[p + "mlp_norm"], eps)
    gate = torch.nn.functional.silu(h @ weights[p + "w_gate.weight"].T)
    return (gate * (h @ weights[p + "w_up.weight"].T)) @ weights[p + "w_down.weight"].T


def choose(logits: torch.Tensor, temperature: float, rng) -> int:
    """Greedy at temperature 0; else the inverse-CDF draw from softmax(logits / T)."""
    if temperature == 0:
        return int(torch.argmax(logits))
    z = logits.detach().to(torch.float64).cpu().numpy() / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    u = rng.random()
    j = int(np.searchsorted(np.cumsum(p), u, side="right"))
    return min(j, p.size - 1)


# --- The kata --------------------------------------------------------------------


def generate(weights: dict, config: dict, prompt: list, max_new_tokens: int,
             temperature: float = 0.0, seed: int = 0) -> tuple:
    C, H, H_kv = config["d_model"], config["n_heads"], config["n_kv_heads"]
    D, G, eps, base = C // H, H // H_kv, config["norm_eps"], config["rope_base"]
    rng = np.random.default_rng(seed)
    cache = [[None, None] for _ in range(config["n_layers"])]      # per block: K, V (H_kv, L, D)

    def forward(tokens: list, start: int) -> torch.Tensor:
        """Run `tokens` (at positions start, start + 1, …) through the model, extending the
        cache; the logits of the last one."""
        T = len(tokens)
        pos = torch.arange(start, start + T)
        x = weights["embed"][torch.tensor(tokens)]                   # (T, C)
        for i in range(config["n_layers"]):
            p = f"blocks.{i}."
            h = rms_norm(x, weights[p + "attn_norm"], eps)
            q = (h @ weights[p + "wq.weight"].T).view(T, H, D).transpose(0, 1)       # (H, T, D)
            k = (h @ weights[p + "wk.weight"].T).view(T, H_kv, D).transpose(0, 1)    # (H_kv, T, D)
            v = (h @ weights[p + "wv.weight"].T).view(T, H_kv, D).transpose(0, 1)
            q, k = rope(q, pos, base), rope(k, pos, base)
            K, V = cache[i]                                           # append first: a token sees itself
            K = k if K is None else torch.cat([K, k], dim=1)          # (H_kv, L, D)
            V = v if V is None else torch.cat([V, v], dim=1)
            cache[i] = [K, V]
            L = K.shape[1]
            Kq, Vq = K.repeat_interleave(G, dim=0), V.repeat_interleave(G, dim=0)   # head h reads h // G
            s = q @ Kq.transpose(-1, -2) / math.sqrt(D)                # (H, T, L)
            seen = torch.arange(L)[None, :] <= pos[:, None]          # key j visible to query at pos t
            s = s.masked_fill(~seen, float("-inf"))
            o = torch.softmax(s, dim=-1) @ Vq                          # (H, T, D)
            x = x + o.transpose(0, 1).reshape(T, C) @ weights[p + "wo.weight"].T
            x = x + mlp(x, weights, i, eps)
        return rms_norm(x[-1], weights["final_norm"], eps) @ weights["embed"].T     # (V,)

    out_tokens, out_logits = [], []
    logits = forward(list(prompt), 0)                                 # prefill: the prompt at once
    for step in range(max_new_tokens):
        token = choose(logits, temperature, rng)
        out_tokens.append(token)
        out_logits.append(logits)
        if step + 1 < max_new_tokens:                                 # decode: one token, one row
            logits = forward([token], len(prompt) + step)
    return out_tokens, torch.stack(out_logits)
