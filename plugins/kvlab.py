"""KV memory lab: ``attnkata kv`` — the KV cache of MHA, GQA and MQA side by side.

Predict first: the command asks for the GQA / MHA cache ratio before it shows the
table, then says whether the prediction was right.  The byte arithmetic is one
function, :func:`kv_cache_bytes`, shared with the level-2 spec (its prediction
answers); it is written here so the command never depends on a learner's code.

Scope: the formula only — no allocator, paging, metadata or fragmentation overhead.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from attnkata import hookimpl

FORMULA = "Mem_KV = B · N_layers · T · H_kv · d_head · 2 · bytes"


def kv_cache_bytes(batch: int, layers: int, tokens: int, kv_heads: int, head_dim: int,
                   bytes_per_elem: int = 2) -> int:
    """Bytes of a KV cache: ``B · N_layers · T · H_kv · d_head · 2 · bytes`` (2: K and V)."""
    return batch * layers * tokens * kv_heads * head_dim * 2 * bytes_per_elem


@dataclass(frozen=True)
class LabRow:
    scheme: str
    kv_heads: int
    per_token: int   # bytes per token, all layers (batch 1)
    total: int       # bytes for the whole batch and context
    ratio: float     # total / MHA's total


def lab_rows(batch: int, layers: int, tokens: int, q_heads: int, kv_heads: int,
             head_dim: int, bytes_per_elem: int = 2) -> list[LabRow]:
    """MHA (H_kv = H_q), GQA (the given H_kv) and MQA (H_kv = 1), in that order."""
    full = kv_cache_bytes(batch, layers, tokens, q_heads, head_dim, bytes_per_elem)
    rows = []
    for scheme, h in (("MHA", q_heads), ("GQA", kv_heads), ("MQA", 1)):
        total = kv_cache_bytes(batch, layers, tokens, h, head_dim, bytes_per_elem)
        rows.append(LabRow(scheme, h, kv_cache_bytes(1, layers, 1, h, head_dim, bytes_per_elem),
                           total, total / full))
    return rows


def human_bytes(n: int) -> str:
    """Binary units first, decimal in brackets: ``40.0 GiB (42.9 GB)``."""
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 4)
    binary = f"{n / 1024 ** exp:.4g} {('B', 'KiB', 'MiB', 'GiB', 'TiB')[exp]}"
    dexp = min(int(math.log10(n) // 3), 4)
    decimal = f"{n / 1000 ** dexp:.3g} {('B', 'kB', 'MB', 'GB', 'TB')[dexp]}"
    return f"{binary} ({decimal})"


def parse_ratio(text: str) -> float | None:
    """``0.125``, ``1/8`` or ``12.5%`` → 0.125; None when it is not a number."""
    text = text.strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "kv", help="KV memory lab: MHA, GQA and MQA cache sizes side by side (predict first)",
        description=f"KV memory lab. {FORMULA}. Predict the GQA / MHA ratio, then see the "
                    f"table. Defaults: the seed lab (B=4, T=32,768, 32 layers, d=128, fp16).")
    p.add_argument("--batch", type=int, default=4, help="sequences in the batch, B (default 4)")
    p.add_argument("--tokens", type=int, default=32768, help="context length T (default 32768)")
    p.add_argument("--layers", type=int, default=32, help="transformer layers (default 32)")
    p.add_argument("--q-heads", type=int, default=32, help="query heads H_q (default 32)")
    p.add_argument("--kv-heads", type=int, default=8, help="GQA's KV heads H_kv (default 8)")
    p.add_argument("--head-dim", type=int, default=128, help="d_head (default 128)")
    p.add_argument("--bytes", type=int, default=2, dest="bytes_per_elem",
                   help="bytes per number: 2 for fp16/bf16, 4 for fp32, 1 for fp8 (default 2)")
    p.add_argument("--no-predict", action="store_true",
                   help="show the table without asking for a prediction first")
    p.set_defaults(func=run)
    return p


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _problem(args: argparse.Namespace) -> str | None:
    options = {"batch": "--batch", "tokens": "--tokens", "layers": "--layers",
               "q_heads": "--q-heads", "kv_heads": "--kv-heads", "head_dim": "--head-dim",
               "bytes_per_elem": "--bytes"}
    for name, option in options.items():
        if getattr(args, name) < 1:
            return f"{option} must be at least 1"
    if args.q_heads % args.kv_heads:
        return (f"--kv-heads {args.kv_heads} must divide --q-heads {args.q_heads}: each KV head "
                f"serves a whole group of query heads")
    return None


def _ask_prediction(console: Any, args: argparse.Namespace) -> float | None:
    console.print(f"[bold]Predict first.[/] {args.q_heads} query heads share {args.kv_heads} "
                  f"KV heads (GQA). What fraction of MHA's KV cache does GQA keep?")
    try:
        answer = input("Your prediction (e.g. 0.5, 1/2 or 50%): ")
    except (EOFError, KeyboardInterrupt):
        answer = ""
    value = parse_ratio(answer) if answer.strip() else None
    if value is None:
        console.print("No prediction recorded." if not answer.strip()
                      else f"Could not read {answer.strip()!r} as a number; no prediction recorded.")
    return value


def run(args: argparse.Namespace) -> int:
    """``attnkata kv``: returns the exit status (0, or 2 for impossible settings)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    problem = _problem(args)
    if problem:
        Console(stderr=True, highlight=False).print(f"attnkata kv: {problem}")
        return 2
    guess = None
    if not args.no_predict and stdin_is_terminal():
        guess = _ask_prediction(console, args)

    rows = lab_rows(args.batch, args.layers, args.tokens, args.q_heads, args.kv_heads,
                    args.head_dim, args.bytes_per_elem)
    table = Table(title=f"KV cache: B={args.batch}, T={args.tokens:,}, {args.layers} layers, "
                        f"d_head={args.head_dim}, {args.bytes_per_elem} bytes/number")
    for column in ("scheme", "KV heads", "per token (all layers)", "whole cache", "vs MHA"):
        table.add_column(column, justify="left" if column == "scheme" else "right")
    for r in rows:
        share = Fraction(r.kv_heads, args.q_heads)
        table.add_row(r.scheme, str(r.kv_heads), human_bytes(r.per_token), human_bytes(r.total),
                      "1×" if share == 1 else f"{share} = {r.ratio:.4g}×",
                      style="cyan" if r.scheme == "GQA" else None)
    console.print(table)
    console.print(f"{FORMULA}  (formula only: no allocator, paging or metadata overhead)")

    truth = args.kv_heads / args.q_heads
    if guess is not None:
        right = math.isclose(guess, truth, rel_tol=0.02)
        verdict = "[bold green]right[/]" if right else "[bold yellow]not quite[/]"
        console.print(f"Your prediction {guess:.4g}: {verdict}. GQA keeps H_kv / H_q = "
                      f"{args.kv_heads}/{args.q_heads} = {truth:.4g} of MHA's cache: only the "
                      f"KV-head count changes, every other factor is the same.")
    return 0


@hookimpl
def attnkata_cli_commands(subparsers: Any) -> None:
    add_parser(subparsers)
