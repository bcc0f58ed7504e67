"""``attnkata bench``: the same benchmark as ``pytest --attnkata-bench``, without the katas."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from .compare import FIELDS as COMPARE_FIELDS

DESCRIPTION = """\
Time the GPU katas' Triton kernels (the target's), the reference kernels and torch's
scaled_dot_product_attention (each backend pinned) over a sweep of shapes; each is checked
against a float32 truth on fresh inputs before it is timed (CUDA events, cold L2, median
with p20/p80, flagged when p80/p20 > 1.05; calls under 1 ms as CUDA-graph replays). The
target's code runs only in its sandboxed worker, where it is timed; this process checks
that timing against its own wall clock (void beyond 10%), and a measured claim is made
only for target code that was timed and passed. Reports TFLOP/s, GB/s, % of the device's
peak and speed-ups; writes JSON (attnkata.bench/1) and a PNG plot. Without a GPU:
correctness only, and the CPU katas (level 4: the target's tiled attention against naive
attention) are timed instead. Exit status 1 when the target's kernel gave a wrong answer.

--quick: one run of at most 5 minutes on one GPU (bf16, d 128: the forward causal and not
and paged decode at 1k and 4k tokens, one forward+backward at 4k) that judges the reference
kernels against their targets (forward >= 1x SDPA flash, causal forward >= 350 TFLOP/s,
forward+backward >= 0.75x SDPA flash, paged decode >= 70% of HBM bandwidth), each a
measured claim with its environment (clocks, driver, versions, SDPA's flash
implementation), and prints them in 80 columns; JSON and a PNG plot.  Without CUDA it says
so, times the CPU kata as above, and exits with status 3."""


def _paragraphs(text: str, width: int = 78) -> str:
    """``text``'s paragraphs refilled to ``width`` (the help fits an 80-column terminal)."""
    import textwrap

    return "\n\n".join(textwrap.fill(" ".join(par.split()), width, break_on_hyphens=False)
                       for par in text.split("\n\n"))


def add_command(subparsers: Any) -> argparse.ArgumentParser:
    from .options import add_options

    parser = subparsers.add_parser("bench", help="benchmark the GPU katas' kernels (or the CPU katas without CUDA)",
                                   description=_paragraphs(DESCRIPTION),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", dest="attnkata_bench_target", default="katas", metavar="katas|solutions|DIR",
                        help="whose kernels to time: the learner's katas (default), the solutions, or a folder")
    parser.add_argument("--seed", dest="attnkata_bench_seed", type=int, default=0, metavar="SEED",
                        help="seed of the generated inputs")
    add_options(parser.add_argument, "--")
    parser.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), default=None,
                        help="compare two saved results instead of running: only when their pinned "
                             "fields (device, driver, versions, dtype, shapes, causal, timing, clocks) "
                             "match; exit status 1 naming the fields that differ")
    parser.add_argument("--allow", action="append", default=[], metavar="FIELD",
                        choices=COMPARE_FIELDS,
                        help="with --compare: let this one field differ (repeat per field; each is "
                             f"said in the output); one of {', '.join(COMPARE_FIELDS)}")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    if getattr(args, "compare", None):
        from .compare import main as compare

        return compare(args)
    from attnkata.hardware import ensure_triton_mode

    ensure_triton_mode()  # before anything imports triton
    from rich.console import Group

    from attnkata.manager import load_registry
    from attnkata.render import render, use_color
    from attnkata.target import TargetSpec

    from .options import BenchOptions
    from .run import run_bench

    rootdir = Path(getattr(args, "root", None) or Path.cwd()).resolve()
    try:
        opts = BenchOptions.from_namespace(args, seed=args.attnkata_bench_seed)
    except ValueError as exc:
        print(f"attnkata bench: {exc}", file=sys.stderr)
        return 2
    _, registry = load_registry()
    for problem in registry.problems:
        print(f"attnkata: ⚠ {problem}", file=sys.stderr)
    target = TargetSpec.parse(args.attnkata_bench_target, rootdir)
    run = run_bench(opts, registry=registry, target=target, learner_root=rootdir / "katas", rootdir=rootdir,
                    echo=lambda line: print(line, flush=True))
    if run.renderables:
        width = getattr(args, "width", None) or shutil.get_terminal_size((120, 24)).columns
        if opts.quick:
            width = min(width, 80)  # --quick's table is for an 80-column terminal
        print(render(Group(*run.renderables), color=use_color(sys.stdout.isatty()), width=width), end="")
    return run.exit_code
