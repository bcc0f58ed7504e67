"""Train the capstone's tiny model: ``python -m attnkata.capstone.train``.

Deterministic on one machine: fixed seeds, ``torch.use_deterministic_algorithms(True)``,
one CPU thread, batches drawn from a seeded ``torch.Generator``. (Another CPU, BLAS or
torch version may round differently, which is why the card records the environment.)

Data: ``data/corpus.txt`` (see ``corpus.py``), cut into a training split and a held-out
validation split (the last 10 %). Each step takes ``BATCH`` random windows of
``context + 1`` bytes from the training split. Loss: next-byte cross-entropy of the
target (both blocks) plus ``DRAFT_WEIGHT`` times that of the draft (the first block's
exit through its own norm), so one set of weights serves as target and draft — the
early-exit idea of LayerSkip (``elhoushi-2024-layerskip``). AdamW with warm-up then a
cosine decay.

Writes ``data/tiny.safetensors`` and ``data/tiny.json`` (config, validation losses in
nats per byte, steps, seconds, environment). ``--steps`` shortens a trial run; only
the default run's output is shipped.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch
import torch.nn.functional as F

from . import corpus
from .model import ModelConfig, TinyLM, encode, save

SEED = 0
STEPS = 900
BATCH = 32
LR = 3e-3
WARMUP = 30
WEIGHT_DECAY = 0.01
DRAFT_WEIGHT = 0.5


def tensors(text: str) -> torch.Tensor:
    return torch.tensor(encode(text), dtype=torch.long)


def batch(data: torch.Tensor, context: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(0, len(data) - context - 1, (BATCH,), generator=gen)
    windows = torch.stack([data[s:s + context + 1] for s in starts.tolist()])   # (B, T+1)
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def evaluate(model: TinyLM, data: torch.Tensor, context: int | None = None) -> dict[str, float]:
    """Mean next-byte loss (nats) over every non-overlapping window of the split."""
    context = context or model.cfg.context
    n = (len(data) - 1) // context
    x = data[:n * context].view(n, context)
    y = data[1:n * context + 1].view(n, context)
    total = {"target": 0.0, "draft": 0.0}
    for i in range(0, n, 64):
        target, draft = model.both(x[i:i + 64])
        for name, logits in (("target", target), ("draft", draft)):
            total[name] += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                           y[i:i + 64].reshape(-1), reduction="sum").item()
    return {name: value / y.numel() for name, value in total.items()}


def lr_at(step: int, steps: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(steps - WARMUP, 1)
    return LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def environment() -> dict[str, str]:
    import numpy

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "machine": platform.machine(),
            "processor": platform.processor() or "unknown", "system": platform.system(),
            "threads": str(torch.get_num_threads())}


def train(steps: int = STEPS, log_every: int = 50) -> tuple[TinyLM, dict]:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = ModelConfig()
    train_text, val_text = corpus.split(corpus.load())
    train_data, val_data = tensors(train_text), tensors(val_text)
    model = TinyLM(cfg)
    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": other, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        x, y = batch(train_data, cfg.context, gen)
        target, draft = model.both(x)
        loss = (F.cross_entropy(target.reshape(-1, cfg.vocab), y.reshape(-1))
                + DRAFT_WEIGHT * F.cross_entropy(draft.reshape(-1, cfg.vocab), y.reshape(-1)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {loss.item():.4f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    val = evaluate(model, val_data)
    info = {"val_loss": val["target"], "val_loss_draft": val["draft"],
            "val_bytes": len(val_data), "train_bytes": len(train_data),
            "steps": steps, "batch": BATCH, "seed": SEED, "lr": LR,
            "train_seconds": round(seconds, 1), "environment": environment(),
            "corpus": {"file": "corpus.txt", "seed": corpus.SEED,
                       "licence": "CC0-1.0 (generated by attnkata/capstone/corpus.py)"}}
    return model, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--no-save", action="store_true", help="train and report, write nothing")
    args = parser.parse_args(argv)
    model, info = train(args.steps)
    print(f"validation loss: target {info['val_loss']:.4f}, draft {info['val_loss_draft']:.4f} "
          f"nats/byte after {info['steps']} steps ({info['train_seconds']} s)")
    if not args.no_save:
        save(model, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
