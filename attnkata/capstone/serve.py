"""``attnkata serve``: the shipped tiny model generates text on your katas.

The learner's katas run in supervised workers (one per kata), never in this process;
each of their calls is checked against the reference on the same inputs, and each
step's logits against the PyTorch model. The report: the text (streamed as it comes),
which kata ran each part and whose it was, tokens/s, TTFT and TPOT measured here, the KV
memory of the run (paged and contiguous, fp32 and int8), and the acceptance rate of
speculative decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

DEFAULT_PROMPT = "on monday the sun was warm. ada went to the market with a "


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="serve the shipped tiny model with your katas wired in",
        description="Generate text from the repository's tiny transformer with your katas: "
                    "RoPE, attention, GQA, KV cache, paged KV, sampling and speculative "
                    "decoding. Every step is checked against the reference model; a kata "
                    "that is not ready runs as the reference.")
    p.add_argument("--target", default="katas", metavar="katas|solutions|PATH",
                   help="whose katas (default: katas, yours)")
    p.add_argument("--use", default=None, metavar="KATA,...|all",
                   help="wire these katas even if not ready in the saved results (all: every "
                        "file that imports; a stub falls back to the reference)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="the text to continue (ASCII is best)")
    p.add_argument("--max-new-tokens", type=int, default=48, metavar="N",
                   help="tokens (bytes) to generate (default 48)")
    p.add_argument("--gamma", type=int, default=4,
                   help="draft tokens proposed per step; 0 turns speculative decoding off")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--kernels", choices=("auto", "cpu", "triton"), default="auto",
                   help="triton: your Triton katas for prefill and decode (auto: on a GPU); on a "
                        "CPU they run in Triton's interpreter, slowly")
    p.add_argument("--json", action="store_true", help="print one JSON document instead")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    import torch

    from attnkata.manager import load_registry
    from attnkata.target import TargetSpec

    from .engine import LOGIT_TOLERANCE, Engine, Sampling
    from .model import card, decode, encode, load
    from .wiring import LearnerFailed, build_kit

    root = Path(getattr(args, "root", None) or Path.cwd()).resolve()
    width = min(getattr(args, "width", None) or 80, 100)
    dtype = getattr(torch, args.dtype)
    model = load(dtype=dtype)
    prompt = encode(args.prompt)
    problem = _validate(args, len(prompt), model.cfg.context)
    if problem:
        print(f"attnkata serve: {problem}", file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available()
    kernels = ("triton" if cuda else "cpu") if args.kernels == "auto" else args.kernels
    _, registry = load_registry()
    target = TargetSpec.parse(args.target, root)
    kit, notes = build_kit(registry, target, root, args.use, kernels)
    engine = Engine(model, kit, Sampling(args.temperature, args.top_k, args.top_p, args.seed),
                    gamma=args.gamma, kernels=kernels, device="cuda" if cuda else "cpu")
    stream = None if args.json else Stream(width, args.prompt)
    failed = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster and steadier on a busy CPU
    try:
        result = engine.generate(prompt, args.max_new_tokens,
                                 stream.token if stream else lambda t, s: None)
    except LearnerFailed as exc:
        failed, result = exc, None
    except Exception as exc:  # a learner's wrong answer broke a later step: name it, else ours
        if not kit.order:
            raise
        failed, result = LearnerFailed(kit.order[0], exc), None
    finally:
        kit.close()
        torch.set_num_threads(threads)
    if stream:
        stream.end()
    report = build_report(args, model, kit, result, failed, notes, kernels,
                          LOGIT_TOLERANCE.get(dtype), card())
    report["text"] = decode(result.tokens) if result else ""
    report["streamed"] = bool(stream and stream.live)
    if args.json:
        print(json.dumps(_strict(report), indent=1, sort_keys=True, allow_nan=False))
    else:
        from attnkata.render import render, use_color

        from .report import renderables

        sys.stdout.write(render(renderables(report), color=use_color(sys.stdout.isatty()),
                                width=width))
    return 0 if report["ok"] else 1


def _strict(value: Any) -> Any:
    """JSON has no inf or NaN: an error that large is written as null."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _validate(args: argparse.Namespace, n_prompt: int, context: int) -> str:
    if n_prompt < 1:
        return "--prompt needs at least one character"
    if args.max_new_tokens < 1:
        return "--max-new-tokens must be at least 1"
    if n_prompt + args.max_new_tokens > context:
        return (f"the prompt ({n_prompt} bytes) plus --max-new-tokens ({args.max_new_tokens}) "
                f"exceeds the model's context of {context} positions (it was trained on "
                f"{context}); shorten one of them")
    if args.gamma < 0:
        return "--gamma must be 0 or more"
    if args.temperature <= 0:
        return "--temperature must be above 0 (the sampler divides by it)"
    return ""


class Stream:
    """Tokens as they come (a terminal only), a word at a time so that lines wrap at words:
    tokens the target accepted from the draft in cyan, the target's own plain."""

    def __init__(self, width: int, prompt: str):
        from rich.console import Console

        self.live = sys.stdout.isatty()
        self.console = Console(width=width, highlight=False, soft_wrap=True) if self.live else None
        self.width, self.col = width, 0
        self.word: list[tuple[str, str]] = []
        if self.live:
            for ch in prompt:
                self._add(ch, "bold")

    def token(self, token: int, source: str) -> None:
        if self.live:
            self._add(bytes([token]).decode("ascii", errors="replace"),
                      "cyan" if source == "draft" else "")

    def _add(self, ch: str, style: str) -> None:
        if ch in " \n":
            self._flush()
            if ch == "\n" or self.col >= self.width - 1:
                self.console.print("")
                self.col = 0
            else:
                self.console.print(" ", end="")
                self.col += 1
        else:
            self.word.append((ch, style))

    def _flush(self) -> None:
        if self.col and self.col + len(self.word) > self.width - 1:
            self.console.print("")
            self.col = 0
        for ch, style in self.word:
            self.console.print(ch, style=style, end="")
        self.col += len(self.word)
        self.word.clear()

    def end(self) -> None:
        if self.live:
            self._flush()
            self.console.print("\n")


def environment() -> dict[str, str]:
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "system": f"{platform.system()} {platform.machine()}",
            "processor": platform.processor() or "unknown", "cpu_count": str(os.cpu_count()),
            "torch_threads": "1",
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "load_average_1min": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"}


def kv_memory(cfg: Any, tokens: int, blocks: int, block_size: int, elem_bytes: int) -> dict[str, int]:
    """Bytes of the target's K and V after the run: contiguous (exactly the tokens, or a
    reservation for the whole context) and paged (whole blocks), fp32/fp64 and int8.

    int8 is computed, not run: one byte per element plus fp32 scales in the KIVI layout
    (one per key channel per layer and KV head — per block when paged — and one per value
    token per layer and KV head)."""
    L, H, D = cfg.n_layers, cfg.n_kv_heads, cfg.head_dim
    slots = blocks * block_size                  # token slots of all layers' blocks together

    def full(t: int) -> int:
        return 2 * L * t * H * D * elem_bytes

    def int8(t: int, key_groups: int) -> int:
        return 2 * L * t * H * D + key_groups * H * D * 4 + L * t * H * 4

    return {"contiguous": full(tokens), "contiguous_int8": int8(tokens, L),
            "reserved_context": full(cfg.context), "reserved_context_int8": int8(cfg.context, L),
            "paged": 2 * slots * H * D * elem_bytes,
            "paged_int8": 2 * slots * H * D + blocks * H * D * 4 + slots * H * 4}


def build_report(args, model, kit, result, failed, notes, kernels, tolerance, info) -> dict:
    from .engine import BLOCK_SIZE

    cfg = model.cfg
    wiring = []
    for slot in kit.slots.values():
        wiring.append({"kata": slot.kata, "file": slot.path, "source": slot.source,
                       "why": slot.why, "calls": slot.calls, "mismatch": slot.mismatch})
    culprit = kit.first_culprit()
    out: dict[str, Any] = {
        "target": args.target, "prompt": args.prompt, "dtype": args.dtype, "kernels": kernels,
        "gamma": args.gamma, "seed": args.seed, "wiring": wiring, "notes": notes,
        "model": {"layers": cfg.n_layers, "d_model": cfg.d_model, "heads": cfg.n_heads,
                  "kv_heads": cfg.n_kv_heads, "context": cfg.context, "vocab": cfg.vocab,
                  "val_loss": info.get("val_loss"), "draft": "self-speculative: block 0 + its own norm"},
        "logit_tolerance": tolerance, "divergence": None, "culprit": None, "failed": None,
    }
    if culprit is not None:
        out["culprit"] = {"kata": culprit.kata, "file": culprit.path, **culprit.mismatch}
    if failed is not None:
        out["failed"] = str(failed)
    if result is not None:
        n = len(result.tokens)
        serve_s = max(result.total_s - result.check_s, 1e-9)
        elem = 8 if args.dtype == "float64" else 4
        out.update({
            "tokens": n, "steps": result.steps, "divergence": result.divergence,
            "speculative": {"proposed": result.proposed, "accepted": result.accepted,
                            "acceptance_rate": (result.accepted / result.proposed
                                                if result.proposed else None),
                            "target_forwards": result.steps + 1,  # the prefill, then each step
                            "tokens_per_step": n / max(result.steps + 1, 1)},
            "measured": {"tokens_per_s": n / serve_s, "ttft_ms": 1e3 * result.ttft_s,
                         "tpot_ms": 1e3 * (serve_s - result.ttft_s) / max(n - 1, 1),
                         "wall_s": result.total_s, "checking_s": result.check_s,
                         "worker_calls": sum(s.calls for s in kit.slots.values()),
                         "environment": environment(),
                         "scope": "this machine, one sequence, reference checks excluded; "
                                  "the learner's katas answer through worker round trips"},
            "kv_bytes": kv_memory(cfg, len(result.prompt) + n - 1, result.blocks_used,
                                  BLOCK_SIZE, elem),
        })
    out["ok"] = failed is None and culprit is None and out["divergence"] is None
    return out
