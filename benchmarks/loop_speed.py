"""How long a learner waits: one-kata runs and the whole ladder, against `import torch`.

    python benchmarks/loop_speed.py [--repeat 3] [--root DIR] [--python PYTHON]

Runs each command once to warm the bytecode caches, then ``--repeat`` times in a checkout (default: this one) with the given
interpreter and prints the median wall time and its ratio to ``python -c "import
torch"`` on the same machine, as a Markdown table.  Every run checks the solutions
(``--attnkata-target=solutions``), so the numbers measure the framework, not a
learner's code.  A benchmark to read, not a test: nothing here asserts a time.
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
    "level 4 tiled_attention": ["-m", "pytest", "katas/level4/tiled_attention.py"],
    "level 5 flash_attention_forward": ["-m", "pytest", "katas/level5/flash_attention_forward.py"],
    "level 7 ring_attention": ["-m", "pytest", "katas/level7/ring_attention.py"],
    "whole ladder (serial)": ["-m", "pytest"],
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
    opts = parser.parse_args()
    for args in RUNS.values():  # warm: bytecode cached, as on a learner's second run
        wall(opts.python, args, opts.root)
    times = {name: statistics.median(wall(opts.python, args, opts.root) for _ in range(opts.repeat))
             for name, args in RUNS.items()}
    base = times["import torch"]
    print(f"{platform.platform(terse=True)}, {os.cpu_count()} cores, median of {opts.repeat}\n")
    print("| run | wall time | × import torch |\n| --- | ---: | ---: |")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} s | {t / base:.2f} |")


if __name__ == "__main__":
    main()
