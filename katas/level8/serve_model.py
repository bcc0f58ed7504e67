"""Level 8 · serve_model — the capstone: serve the shipped tiny model with your own loop.

Intuition
---------
A language model answers one question: given these tokens, how likely is each next
token? Generation asks it again and again, each time with one more token. Done
naively, step i runs the whole sequence (P prompt tokens plus i generated ones) through
every block, although only the newest token is new: every earlier token's key and
value in every block are exactly what they were one step before, because under a
causal mask no token can see what comes after it.

So a server splits the work in two phases. The *prefill* runs the whole prompt through
the model once, in parallel, keeping each block's keys and values (the KV cache); its
last position's logits give the first new token. Then each *decode* step feeds one
token — the one just chosen — at its own position: one row through each projection,
one query attending over the cache (its own key and value appended first, since a token
sees itself), one row of logits. The cache is an optimisation, never an
approximation: the logits are those of the full model on the whole sequence.

This is the loop `attnkata serve` runs for you with the references and your smaller
katas. Here you write it yourself, from the weights up, for the model that ships with
attnkata (docs/CAPSTONE.md): 2 pre-norm blocks, d_model 128, 4 query heads sharing 2
key/value heads (GQA), head dim 32, RoPE on interleaved pairs, SwiGLU MLP, a tied
output head, byte tokens (vocabulary 256).

The math
--------
For the token at position t (the prompt holds positions 0 … P − 1; the token fed at
decode step s ≥ 1 sits at position P + s − 1), in every block b:

    h      = RMSNorm(x_t; attn_norm)                         x_t: the residual stream, [C]
    q_t    = rope(W_q h, t)    k_t = rope(W_k h, t)    v_t = W_v h
    K_b    ← [K_b; k_t]        V_b ← [V_b; v_t]              append FIRST
    o_t^j  = softmax(q_t^j K_b^{g(j)ᵀ} / √D) V_b^{g(j)}      each query head j
    x_t    ← x_t + W_o [o_t^0; …; o_t^{H−1}]
    x_t    ← x_t + MLP(RMSNorm(x_t; mlp_norm))
    logits = RMSNorm(x_t; final_norm) · Eᵀ                   tied head: E is the embedding

- C : d_model (128);  H : query heads (4);  H_kv : key/value heads (2);  D = C / H (32)
- W_q [H·D, C], W_k and W_v [H_kv·D, C], W_o [C, H·D]: PyTorch Linear layout, y = h @ W.T
- q_t^j : query head j of q_t, a [D] slice;  K_b^{g}, V_b^{g} : KV head g of block b's
  cache, [L, D] for the L tokens cached so far (this one included)
- g(j) = j // G with G = H / H_kv: query heads 0 … G − 1 read KV head 0, and so on
- rope(·, t) : turns each pair (2i, 2i + 1) by the angle t · base^(−2i/D), base =
  config["rope_base"] (10 000); the given `rope` does it, you choose t
- E : the embedding [V, C]; x_t starts as E[token]
- the prefill does the same for all P prompt tokens at once, under a causal mask
  (the query at position t sees keys 0 … t)

Choosing a token from the last logits z ([V]), with temperature T:

    T = 0 :  argmax_j z_j                                    (the first maximum)
    T > 0 :  p = softmax(z / T) in float64;  u = rng.random();  token = the smallest j
             with p_0 + … + p_j > u                          (np.searchsorted(cumsum, u, "right"))

with ONE `rng = np.random.default_rng(seed)` per call of `generate`, one draw per
generated token (none at T = 0). The hidden tests replay exactly this sampler, so your
tokens must match draw for draw.

Worked example
--------------
Prompt "on monday": 9 bytes, tokens [111, 110, 32, 109, 111, 110, 100, 97, 121].
- Prefill: 9 rows through every projection; after it each block caches K and V of shape
  [2, 9, 32] (H_kv, L, D). Its last row of logits picks the first new token: greedily,
  " " (32); the shipped model goes on to " the sun".
- Decode step 1 feeds that " " (32) at position 9 (not at 0, and not the prompt's "y"
  again): 1 row per projection. Its key is appended first (L = 10), then each query
  head attends over 10 keys: head 3 reads KV head 3 // 2 = 1. RoPE turns its pair 0 by
  9 rad and its pair 1 by 9 · 10000^(−2/32) = 9 · 0.5623 = 5.06 rad.
- The cache grows by 2 blocks · 2 KV heads · 32 · 2 (K and V) · 4 bytes = 1 KiB per
  token in float32.
- Sampling from z = [2, 1, 0] with u = 0.7:
      T = 0.5: z / T = [4, 2, 0], p = [0.867, 0.117, 0.016], cumsum [0.867, 0.984, 1]:
               0.867 > 0.7, token 0
      T = 1  : p = [0.665, 0.245, 0.090], cumsum [0.665, 0.910, 1]: token 1
  (forgetting the temperature draws token 1 where token 0 was due).

What you are given, and what comes back
---------------------------------------
`generate(weights, config, prompt, max_new_tokens, temperature=0.0, seed=0)`

- `weights`: a dict of torch tensors named as in the shipped file
  attnkata/capstone/data/tiny.safetensors: "embed" [V, C]; for each block i,
  f"blocks.{i}.attn_norm" [C], f"blocks.{i}.wq.weight", "…wk.weight", "…wv.weight",
  "…wo.weight", f"blocks.{i}.mlp_norm" [C], "…w_gate.weight", "…w_up.weight",
  "…w_down.weight"; "final_norm" [C] (and "draft_norm", which you do not need). They may
  be float32 or float64, and need not be contiguous. Do not modify them.
- `config`: a dict — "vocab", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff",
  "context", "rope_base", "norm_eps". The hidden tests also pass small random models
  (1–3 blocks, MHA, GQA or MQA, other sizes): read every size from `config`.
- `prompt`: a list of at least one token id.
- Return `(tokens, logits)`: `tokens` a list of `max_new_tokens` Python ints; `logits`
  a tensor [max_new_tokens, V] in the weights' dtype, row i being the logits token i
  was chosen from (row 0: the prefill's last position).

`rms_norm`, `rope` and `mlp` below are given (the same as attnkata/capstone/model.py):
the exercise is the loop. Work in torch on the tensors you are given: one hidden check
counts, through PyTorch's function hooks, the token rows that go through W_q, W_k and
W_v, and expects one row per generated token (casts, transposes and a fused QKV weight
are followed; NumPy copies are not).

Watch it run: `attnkata serve` generates text from this model with your smaller katas
wired in (rope, attention, gqa_attention, kv_cache, decode_step, paged_kv_cache,
paged_attention_decode, next_token_probs, sample_next, speculative_decoding) and the
references for the rest, checking every step's logits; `attnkata serve --target
solutions` shows the reference loop. Serve's own loop is this one plus paging and
speculative decoding; it does not call your `generate`.
"""

import math  # noqa: F401  (for √D)

import numpy as np  # noqa: F401  (the sampler's generator)
import torch

# --- Predict first ------------------------------------------------------------
PREDICTIONS = {
    # An 8-token prompt and 32 new tokens, with a KV cache: how many query rows does
    # one head of one block compute over the whole generation? (an int)
    "rows_with_cache": ...,
    # The same 32 tokens recomputing the whole sequence at every step, no cache: how
    # many query rows per head and block? (an int)
    "rows_without_cache": ...,
    # The shipped model (2 blocks, 2 KV heads, head dim 32) in float32: how many bytes
    # does its KV cache take when it holds 128 tokens? (an int)
    "kv_bytes_128": ...,
    # 4 query heads, 2 KV heads: which KV head does query head 3 read? (an int)
    "kv_head_of_query_head_3": ...,
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


# --- The kata --------------------------------------------------------------------


def generate(weights: dict, config: dict, prompt: list, max_new_tokens: int,
             temperature: float = 0.0, seed: int = 0) -> tuple:
    """Prefill `prompt`, then decode `max_new_tokens` tokens one at a time through a
    per-block KV cache; return (tokens: list of ints, logits: [max_new_tokens, V])."""
    raise NotImplementedError("kata serve_model: prefill the prompt, then decode one token "
                              "at a time through a KV cache")
