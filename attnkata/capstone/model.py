"""The capstone's model: a tiny decoder-only transformer, and its byte tokenizer.

Shapes: ``B`` batch, ``T`` tokens, ``C`` = d_model, ``H`` query heads, ``H_kv`` key/value
heads (grouped-query attention, ``G = H / H_kv`` query heads per KV head), ``D`` head dim.

One block: ``x + attn(rmsnorm(x))`` then ``x + mlp(rmsnorm(x))`` (pre-norm, as in
GPT-2 and LLaMA); attention has RoPE on q and k with interleaved pairs, the convention
of the level-1 ``rope`` kata; the MLP is SwiGLU. The output head is the embedding
matrix transposed (tied). The draft model for speculative decoding is this same model
cut after its first block, with a norm of its own (``draft_norm``), trained jointly with
an early-exit loss, so the draft costs no extra weights beyond one vector.

The tokenizer is UTF-8 bytes: token id = byte value, vocabulary 256. Nothing to learn,
nothing to ship, and every string round-trips.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

DATA = Path(__file__).with_name("data")
WEIGHTS = DATA / "tiny.safetensors"
CARD = DATA / "tiny.json"


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------

def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode(tokens: list[int]) -> str:
    return bytes(tokens).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConfig:
    vocab: int = 256
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    d_ff: int = 256
    context: int = 128          # positions seen in training; serving stays within it
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate interleaved pairs ``(2i, 2i+1)`` of ``x`` ``[..., T, D]`` by ``pos · base^(−2i/D)``."""
    d = x.shape[-1]
    inv_freq = base ** (-2.0 * torch.arange(d // 2, dtype=torch.float64) / d)   # (D/2,)
    theta = positions.to(torch.float64)[:, None] * inv_freq                     # (T, D/2)
    cos, sin = theta.cos().to(x.dtype), theta.sin().to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x_even * cos - x_odd * sin
    out[..., 1::2] = x_even * sin + x_odd * cos
    return out


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C, D = cfg.d_model, cfg.head_dim
        self.attn_norm = nn.Parameter(torch.ones(C))
        self.wq = nn.Linear(C, cfg.n_heads * D, bias=False)
        self.wk = nn.Linear(C, cfg.n_kv_heads * D, bias=False)
        self.wv = nn.Linear(C, cfg.n_kv_heads * D, bias=False)
        self.wo = nn.Linear(cfg.n_heads * D, C, bias=False)
        self.mlp_norm = nn.Parameter(torch.ones(C))
        self.w_gate = nn.Linear(C, cfg.d_ff, bias=False)
        self.w_up = nn.Linear(C, cfg.d_ff, bias=False)
        self.w_down = nn.Linear(cfg.d_ff, C, bias=False)

    def qkv(self, h: torch.Tensor, positions: torch.Tensor, cfg: ModelConfig):
        """Normed input ``h`` (B, T, C) → q (B, H, T, D), k and v (B, H_kv, T, D), RoPE applied."""
        B, T, _ = h.shape
        D = cfg.head_dim
        q = self.wq(h).view(B, T, cfg.n_heads, D).transpose(1, 2)      # (B, H, T, D)
        k = self.wk(h).view(B, T, cfg.n_kv_heads, D).transpose(1, 2)   # (B, H_kv, T, D)
        v = self.wv(h).view(B, T, cfg.n_kv_heads, D).transpose(1, 2)
        return rope(q, positions, cfg.rope_base), rope(k, positions, cfg.rope_base), v

    def mlp(self, x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
        h = rms_norm(x, self.mlp_norm, cfg.norm_eps)
        return self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(rms_norm(x, self.attn_norm, cfg.norm_eps), positions, cfg)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # (B, H, T, D)
        x = x + self.wo(o.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(x, cfg)


class TinyLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Parameter(torch.randn(cfg.vocab, cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.Parameter(torch.ones(cfg.d_model))
        self.draft_norm = nn.Parameter(torch.ones(cfg.d_model))
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual outputs
            if name.endswith(("wo.weight", "w_down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))
            elif p.dim() == 2 and name != "embed":
                nn.init.normal_(p, std=0.02)

    def head(self, x: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, norm, self.cfg.norm_eps) @ self.embed.T          # (B, T, vocab)

    def forward(self, tokens: torch.Tensor, draft: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab) of the target, or of the 1-block draft when ``draft``."""
        x = self.embed[tokens]                                             # (B, T, C)
        positions = torch.arange(tokens.shape[1])
        for block in self.blocks[:1] if draft else self.blocks:
            x = block(x, positions, self.cfg)
        return self.head(x, self.draft_norm if draft else self.final_norm)

    def both(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(target logits, draft logits) in one pass: the draft is the first block's exit."""
        x = self.embed[tokens]
        positions = torch.arange(tokens.shape[1])
        x = self.blocks[0](x, positions, self.cfg)
        draft = self.head(x, self.draft_norm)
        for block in self.blocks[1:]:
            x = block(x, positions, self.cfg)
        return self.head(x, self.final_norm), draft


# ---------------------------------------------------------------------------
# Shipped weights
# ---------------------------------------------------------------------------

def card(path: Path = CARD) -> dict:
    """The JSON beside the weights: config, recorded validation loss, training environment."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load(weights: Path = WEIGHTS, card_path: Path = CARD, dtype: torch.dtype = torch.float32) -> TinyLM:
    """The shipped model, read through ``safetensors`` (no pickle, no download)."""
    from safetensors.torch import load_file

    cfg = ModelConfig(**card(card_path)["config"])
    model = TinyLM(cfg)
    state = load_file(str(weights))
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


def save(model: TinyLM, info: dict, weights: Path = WEIGHTS, card_path: Path = CARD) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"format": "pt"})
    info = {"config": asdict(model.cfg), **info}
    Path(card_path).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
