"""How long a learner waits: one-kata runs and the whole ladder, against `import torch`.

    python benchmarks/loop_speed.py [--repeat 3] [--root DIR] [--python PYTHON]
                                    [--no-ladder] [--parallel] [--only TEXT]

Runs each command once to warm the bytecode caches, then ``--repeat`` rounds in a
checkout (default: this one) with the given interpreter.  In every round each run is
timed right after its own ``python -c "import torch"``, and the ratio of the two is
taken then: on a shared, busy machine both see the same load, so the ratio (median over
the rounds) is steadier than either time.  Prints the median wall times and ratios as a
Markdown table.  Every run checks the solutions (``--attnkata-target=solutions``), so
the numbers measure the framework, not a learner's code.  ``--no-ladder`` leaves out
the whole-ladder run; ``--parallel`` adds it with ``-n 2`` (xdist) and ``-n auto``.
A benchmark to read, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = {
    "import torch": ["-c", "import torch"],
    "level 0 softmax": ["-m", "pytest", "katas/level0/softmax.py"],
    "level 1 causal_mask (draws no examples)": ["-m", "pytest", "katas/level1/causal_mask.py"],
    "level 4 tiled_attention": ["-m", "pytest", "katas/level4/tiled_attention.py"],
    "level 5 flash_attention_forward": ["-m", "pytest", "katas/level5/flash_attention_forward.py"],
    "level 6 paged_attention_decode": ["-m", "pytest", "katas/level6/paged_attention_decode.py"],
    "level 7 ring_attention": ["-m", "pytest", "katas/level7/ring_attention.py"],
    "whole ladder (serial)": ["-m", "pytest"],
}
PARALLEL = {
    "whole ladder (-n 2)": ["-m", "pytest", "-n", "2"],
    "whole ladder (-n auto)": ["-m", "pytest", "-n", "auto"],
}
PYTEST_FLAGS = ["-q", "-p", "no:cacheprovider", "--attnkata-target=solutions", "--attnkata-no-report"]


def wall(python: str, args: list[str], root: Path) -> float:
    cmd = [python, *args] + (PYTEST_FLAGS if "pytest" in args else [])
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env={**env, "NO_COLOR": "1"})
    took = time.perf_counter() - start
    if proc.returncode not in (0,):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--no-ladder", action="store_true", help="leave out the whole ladder")
    parser.add_argument("--parallel", action="store_true", help="add the ladder with -n 2 and -n auto")
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="only the runs whose name contains TEXT (import torch always runs)")
    opts = parser.parse_args()
    runs = {name: args for name, args in RUNS.items()
            if not (opts.no_ladder and name.startswith("whole ladder"))}
    if opts.parallel:
        runs.update(PARALLEL)
    if opts.only:
        runs = {n: a for n, a in runs.items() if n == "import torch" or opts.only in n}
    base_args = runs.pop("import torch")
    for args in [base_args, *runs.values()]:  # warm: bytecode cached, as on a learner's second run
        wall(opts.python, args, opts.root)
    times: dict[str, list[float]] = {"import torch": []}
    ratios: dict[str, list[float]] = {}
    for _ in range(opts.repeat):
        for name, args in runs.items():
            base = wall(opts.python, base_args, opts.root)  # the same moment's import torch
            took = wall(opts.python, args, opts.root)
            times["import torch"].append(base)
            times.setdefault(name, []).append(took)
            ratios.setdefault(name, []).append(took / base)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.platform(terse=True)}, {os.cpu_count()} cores, load {load:.1f}, "
          f"median of {opts.repeat} rounds\n")
    print("| run | wall time | × import torch (same moment) |\n| --- | ---: | ---: |")
    print(f"| import torch | {statistics.median(times['import torch']):.2f} s | 1.00 |")
    for name in runs:
        print(f"| {name} | {statistics.median(times[name]):.2f} s | "
              f"{statistics.median(ratios[name]):.2f} |")


if __name__ == "__main__":
    main()
