"""CPU benchmark: level 4's reference tiled attention against naive NumPy attention.

Opt-in, never part of a learner's run and never a timed assertion: the bench plugin calls
:func:`run_cpu_bench` when there is no GPU, and ``tests/test_level4_bench.py`` runs it.
For each N it times both forwards (``time.perf_counter``, one warm-up, median of
``repeat`` calls) and measures each one's tracemalloc peak in a separate call (tracing
slows Python down, so it never overlaps the timing). The result is a versioned JSON
envelope — ``{"schema": "attnkata.bench-cpu/1", "environment": {...}, "rows": [...]}`` —
and :func:`cpu_bench_table` renders it side by side: time and peak memory per N.

What the figures are: wall-clock time of a NumPy loop on this CPU, and host memory.
Tiled attention is *slower* here (a Python loop over tiles) and its memory flat in N;
naive attention's memory grows as N². Nothing here speaks for a GPU kernel.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

SCHEMA = "attnkata.bench-cpu/1"
FILENAME = "bench-cpu.json"


def naive_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q·kᵀ/√d)·v with the whole N×N score matrix in memory; returns (o, lse)."""
    s = (q @ np.swapaxes(k, -1, -2)) * q.shape[-1] ** -0.5   # (N_q, N_k)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    return (e / total) @ v, (m + np.log(total))[..., 0]


def reference_tiled() -> Callable[..., Any]:
    """``tiled_attention`` from the core pack's solutions (the level-4 reference)."""
    from attnkata.target import load_module
    from attnkata_plugins.core import ROOT

    solutions = ROOT / "solutions"
    return load_module(solutions / "level4" / "tiled_attention.py", solutions).tiled_attention


def environment() -> dict[str, Any]:
    import platform

    from attnkata.state import now

    from .env import cpu_name

    return {"created": now(), "python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(terse=True), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "timer": "time.perf_counter (wall clock), median of repeats after one warm-up",
            "memory": "tracemalloc peak during one call, beyond what existed before it"}


def _times(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm-up: first-call allocations, caches
    out = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def run_cpu_bench(sizes: tuple[int, ...] = (256, 512, 1024, 2048), d: int = 64, repeat: int = 5,
                  out_dir: Path | str | None = None, *, block: int = 64, dtype: str = "float32",
                  seed: int = 0) -> dict[str, Any]:
    """Time and measure tiled vs naive attention at each N; write ``out_dir/bench-cpu.json``
    when ``out_dir`` is given. Returns the JSON envelope (a dict)."""
    from attnkata_plugins.core.level4.probe import peak_bytes

    tiled = reference_tiled()
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        q, k, v = (rng.standard_normal((n, d)).astype(dtype) for _ in range(3))
        run_tiled = lambda: tiled(q, k, v, block, block)  # noqa: E731
        run_naive = lambda: naive_attention(q, k, v)      # noqa: E731
        t_tiled, t_naive = _times(run_tiled, repeat), _times(run_naive, repeat)
        peak_tiled, (o_tiled, _) = peak_bytes(run_tiled)
        peak_naive, (o_naive, _) = peak_bytes(run_naive)
        rows.append({
            "n": int(n), "d": int(d), "dtype": dtype, "block_q": block, "block_k": block,
            "repeat": int(max(1, repeat)),
            "tiled_median_s": statistics.median(t_tiled), "tiled_min_s": min(t_tiled),
            "naive_median_s": statistics.median(t_naive), "naive_min_s": min(t_naive),
            "tiled_peak_bytes": int(peak_tiled), "naive_peak_bytes": int(peak_naive),
            "max_abs_diff": float(np.abs(o_tiled.astype(np.float64) - o_naive).max()),
        })
    result = {"schema": SCHEMA, "environment": environment(), "rows": rows}
    if out_dir is not None:
        write_result(result, Path(out_dir))
    return result


def write_result(result: dict[str, Any], out_dir: Path) -> Path:
    """Write ``result`` atomically to ``out_dir/bench-cpu.json``; returns the path."""
    from attnkata.state import JsonStore

    path = Path(out_dir) / FILENAME
    JsonStore(path, SCHEMA).write(result)
    return path


def cpu_bench_table(result: dict[str, Any]) -> Any:
    """A rich Table: per N, both times and both peaks, and their ratios."""
    from rich.table import Table

    env = result.get("environment", {})
    table = Table(title=f"CPU bench — tiled vs naive attention ({env.get('cpu', 'CPU')}, "
                        f"numpy {env.get('numpy', '?')})",
                  caption="median wall-clock time of a NumPy forward; tracemalloc peak. "
                          "Host CPU only: says nothing about GPU kernels.")
    for header in ("N", "d", "tiled time", "naive time", "tiled / naive time",
                   "tiled peak", "naive peak", "naive / tiled peak"):
        table.add_column(header, justify="right")
    for row in result.get("rows", []):
        t_ratio = row["tiled_median_s"] / row["naive_median_s"] if row["naive_median_s"] else float("nan")
        m_ratio = row["naive_peak_bytes"] / max(row["tiled_peak_bytes"], 1)
        table.add_row(str(row["n"]), str(row["d"]), _ms(row["tiled_median_s"]), _ms(row["naive_median_s"]),
                      f"{t_ratio:.2f}×", _mib(row["tiled_peak_bytes"]), _mib(row["naive_peak_bytes"]),
                      f"{m_ratio:.1f}×")
    return table


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"
