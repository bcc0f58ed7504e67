"""How long `attnkata grade` takes: the 12-student fixture class of tests/test_grade.py,
serial and on a Dask LocalCluster, and four fully solved submissions (the whole ladder).

    python benchmarks/grade_speed.py [--workers 2]

A benchmark to read, not a test: it prints a Markdown table and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def grade(subs: Path, out: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "attnkata", "--root", str(REPO), "grade", str(subs), "--out",
           str(out), "--no-resume", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return took


def main() -> None:
    from test_grade import write_class

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="grade-bench-"))
    try:
        subs = tmp / "class"
        write_class(subs)
        for name in ("ada", "bea", "cyd", "dee"):  # four fully solved submissions
            shutil.copytree(REPO / "solutions", tmp / "solved" / name)
        level0 = ("--only", "katas/level0", "--timeout", "3")
        rows = [
            ("12 students, level 0, serial", grade(subs, tmp / "o1", *level0, "--serial")),
            (f"12 students, level 0, LocalCluster × {opts.workers}",
             grade(subs, tmp / "o2", *level0, "--workers", str(opts.workers))),
            ("4 fully solved submissions (whole ladder), serial",
             grade(tmp / "solved", tmp / "o3", "--serial")),
            (f"4 fully solved submissions (whole ladder), LocalCluster × {opts.workers}",
             grade(tmp / "solved", tmp / "o4", "--workers", str(opts.workers))),
        ]
        print(f"{platform.platform(terse=True)}, {os.cpu_count()} cores\n")
        print("| grading | wall time |\n| --- | ---: |")
        for name, t in rows:
            print(f"| {name} | {t:.1f} s |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
