"""``attnkata compile-gate``: build Triton kernels for sm_90 and sm_80 without a GPU.

The gate itself lives in :mod:`attnkata.compilegate`; this plugin only adds the command.
By default it checks the reference kernels; a pack names its own kernel modules (each
defines ``gate_cases(arch)``, see docs/KERNELS.md).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from attnkata import hookimpl


def cmd_compile_gate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from attnkata import compilegate
    modules, wrong = compilegate.module_names(args.modules or compilegate.DEFAULT_MODULES)
    for line in wrong:
        print(f"compile-gate: {line}")
    if wrong:
        return 2
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in compilegate.SHARED_LIMIT]
    if unknown:
        print(f"unknown target(s) {', '.join(unknown)}; known: "
              f"{', '.join(compilegate.SHARED_LIMIT)}")
        return 2
    result = compilegate.run_parallel(modules, targets, jobs=args.jobs)
    console = Console()
    from attnkata.render import Fitted  # rows stacked when a kernel name would be cut
    console.print(Fitted(compilegate.table(result.rows, per_case=args.all)))
    console.print(f"{len(result.rows)} compiles ({', '.join(targets)}) in "
                  f"{result.seconds:.0f} s with {args.jobs} "
                  f"process{'' if args.jobs == 1 else 'es'}")
    if args.json:
        import dataclasses
        import json
        with open(args.json, "w") as f:
            json.dump({"targets": targets, "seconds": result.seconds,
                       "total_jobs": result.total_jobs, "uncovered": result.uncovered,
                       "summary": compilegate.summary(result.rows),
                       "rows": [dataclasses.asdict(r) for r in result.rows]}, f, indent=1)
    problems = result.problems()
    for line in problems:
        console.print(line, markup=False, highlight=False)
    console.print("compile gate: FAILED" if problems else "compile gate: passed")
    return 1 if problems else 0


@hookimpl
def attnkata_cli_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compile-gate",
        help="compile the Triton kernels for sm_90 and sm_80 (no GPU needed); fail on "
             "spills, compile errors or shared memory over the limit")
    p.add_argument("modules", nargs="*",
                   help="kernel modules with gate_cases(arch), as module names (kernels.paged_decode) "
                        "or files (kernels/paged_decode.py) (default: the reference kernels)")
    p.add_argument("--targets", default="sm_90,sm_80", help="comma-separated (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="compile processes at once (default: %(default)s)")
    p.add_argument("--all", action="store_true", help="one line per compile, not per config")
    p.add_argument("--json", metavar="PATH", help="also write every compile's row to PATH")
    p.set_defaults(func=cmd_compile_gate)
