"""CPU benchmark: a target's level-4 tiled attention against naive NumPy attention.

Opt-in, never part of a learner's run and never a timed assertion: the bench plugin calls
:func:`run_cpu_bench` when there is no GPU, and ``tests/test_level4_bench.py`` runs it.
The tiled forward is a :class:`~.learner.RemoteKernel`: the target's, in its worker
(``attnkata bench``), or the reference, here (the default).  For each N, on fresh inputs,
it is first judged here against naive attention computed in float64; only a correct one
is timed (in its worker, ``time.perf_counter`` per call after a warm-up, checked against
this process's wall clock) and its tracemalloc peak measured in a separate call (tracing
slows Python down, so it never overlaps the timing).  Naive attention, the baseline, runs
here.  A wrong, unfinished or crashing target ends the sweep with a row saying so.  The
result is a versioned JSON envelope — ``{"schema": "attnkata.bench-cpu/1", "environment":
{...}, "rows": [...]}`` — and :func:`cpu_bench_table` renders it: time and peak memory per N.

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


def reference_module() -> Any:
    """The level-4 reference module of the core pack's solutions (never learner code)."""
    from attnkata.target import load_module
    from attnkata_plugins.core import ROOT

    solutions = ROOT / "solutions"
    return load_module(solutions / "level4" / "tiled_attention.py", solutions)


def reference_tiled() -> Callable[..., Any]:
    """``tiled_attention`` from the core pack's solutions (the level-4 reference)."""
    return reference_module().tiled_attention


def environment() -> dict[str, Any]:
    import platform

    from attnkata.state import now

    from .env import cpu_name

    return {"created": now(), "python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(terse=True), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "load_average": load_average(),
            "timer": "tiled: time.perf_counter per call where it runs (the target's worker), after a "
                     "warm-up, median of at least `repeat` calls, checked against the bench's own wall clock "
                     "(void beyond 10%); naive: time.perf_counter here, median of repeats after one warm-up",
            "memory": "tracemalloc peak during one call, beyond what existed before it"}


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none): a busy machine's
    timings are noise, so the claim says how busy it was."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def spread(samples: list[float]) -> tuple[float, float]:
    """(p20, p80) of ``samples`` (both the one value when there is one)."""
    if len(samples) < 2:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=5, method="inclusive")
    return cuts[0], cuts[3]


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
                  seed: int = 0, tiled: Any = None, min_total_s: float = 0.05) -> dict[str, Any]:
    """Judge, then time and measure ``tiled`` (default: the reference, here) against naive
    attention at each N; write ``out_dir/bench-cpu.json`` when ``out_dir`` is given.
    Returns the JSON envelope (a dict); each row has a ``status`` (``ok`` when timed)."""
    from attnkata_plugins.core.level4.probe import peak_bytes

    from .learner import RemoteKernel

    tiled = tiled or RemoteKernel(reference_module(), "tiled_attention", "solutions:level4/tiled_attention.py")
    where = tiled.where()
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        q, k, v = (rng.standard_normal((n, d)).astype(dtype) for _ in range(3))
        row: dict[str, Any] = {"n": int(n), "d": int(d), "dtype": dtype, "block_q": block, "block_k": block,
                               "repeat": int(max(1, repeat)), "tiled_impl": where["impl"],
                               "tiled_file": where["file"], "status": "ok", "message": ""}
        rows.append(row)
        o_truth, lse_truth = naive_attention(*(x.astype(np.float64) for x in (q, k, v)))
        status, message = _judge_and_time(tiled, (q, k, v, block, block), (o_truth, lse_truth), repeat,
                                          min_total_s, row)
        if status != "ok":
            row.update(status=status, message=message)
            break  # wrong, unfinished or crashing: larger N would say the same, slower
        run_naive = lambda: naive_attention(q, k, v)      # noqa: E731
        t_naive = _times(run_naive, repeat)
        peak_naive, (o_naive, _) = peak_bytes(run_naive)
        naive_p20, naive_p80 = spread(t_naive)
        row.update(naive_median_s=statistics.median(t_naive), naive_min_s=min(t_naive),
                   naive_p20_s=naive_p20, naive_p80_s=naive_p80,
                   naive_peak_bytes=int(peak_naive),
                   max_abs_diff=float(np.abs(row.pop("_o").astype(np.float64) - o_naive).max()))
    env = environment()
    env["load_average_after"] = load_average()
    result = {"schema": SCHEMA, "environment": env, "rows": rows}
    if out_dir is not None:
        write_result(result, Path(out_dir))
    return result


def _judge_and_time(tiled: Any, args: tuple, truth: tuple, repeat: int, min_total_s: float,
                    row: dict) -> tuple[str, str]:
    """Fill ``row`` with the tiled forward's figures; ``(status, message)``."""
    from attnkata.remote import WorkerGone, probe

    from .learner import TimingVoid, first_line, not_started

    try:
        staged = tiled.stage(*args)
        wrong = _wrong(tiled.call(staged), truth)
        if wrong:
            return "incorrect", f"{wrong}: not timed"
        timed = tiled.time(staged, repeat=repeat, min_total_s=min_total_s)
        peak = probe(tiled.module, "attnkata.probes", "peak_call", tiled.entry, args, None, True)
    except TimingVoid as exc:
        return "void", str(exc)
    except WorkerGone as exc:
        return "error", first_line(exc)
    except Exception as exc:  # learner code: reported, never raised
        if not_started(exc):
            return "not started", first_line(exc)
        return "error", f"{type(exc).__name__}: {first_line(exc)}"
    samples = timed.timing
    row.update(tiled_median_s=samples.median_ms / 1e3, tiled_p20_s=samples.p20_ms / 1e3,
               tiled_p80_s=samples.p80_ms / 1e3, tiled_calls=timed.n, tiled_peak_bytes=int(peak["peak"]),
               cross_check=timed.as_dict()["cross_check"], _o=np.asarray(peak["value"][0]))
    return "ok", ""


def _wrong(out: Any, truth: tuple) -> str:
    """What is wrong with ``(o, lse)`` against the float64 truth ('' when nothing)."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return f"expected (o, lse), got {type(out).__name__}"
    for got, want, name in zip(out, truth, ("o", "lse")):
        got = np.asarray(got)
        if got.shape != want.shape:
            return f"{name}: expected shape {want.shape}, got {got.shape}"
        if not np.isfinite(got).all():
            return f"{name}: contains NaN or inf"
        err = float(np.abs(got.astype(np.float64) - want).max())
        tol = 1e-4 * (1.0 + float(np.abs(want).max()))
        if err > tol:
            return f"{name}: max error {err:.3g} > tolerance {tol:.3g}"
    return ""


def write_result(result: dict[str, Any], out_dir: Path) -> Path:
    """Write ``result`` atomically to ``out_dir/bench-cpu.json``; returns the path."""
    from attnkata.state import JsonStore

    path = Path(out_dir) / FILENAME
    JsonStore(path, SCHEMA).write(result)
    return path


def cpu_bench_table(result: dict[str, Any]) -> Any:
    """A rich Table: per N, both times and both peaks, and their ratios (or why not timed)."""
    from rich.table import Table

    env = result.get("environment", {})
    who = result.get("target", "reference")
    table = Table(title=f"CPU bench — tiled ({who}) vs naive attention ({env.get('cpu', 'CPU')}, "
                        f"numpy {env.get('numpy', '?')})",
                  caption="median wall-clock time of a NumPy forward (p80/p20: the spread of the "
                          "wider side); tracemalloc peak. Host CPU only: says nothing about GPU "
                          "kernels." + _load_note(env))
    for header in ("N", "d", "tiled time", "naive time", "tiled / naive time", "p80/p20",
                   "tiled peak", "naive peak", "naive / tiled peak"):
        table.add_column(header, justify="right")
    from .cpu_path import timing_spread
    for row in result.get("rows", []):
        if row.get("status", "ok") != "ok":
            table.add_row(str(row["n"]), str(row["d"]), row["status"], "", "", "", "", "", "")
            continue
        t_ratio = row["tiled_median_s"] / row["naive_median_s"] if row["naive_median_s"] else float("nan")
        m_ratio = row["naive_peak_bytes"] / max(row["tiled_peak_bytes"], 1)
        table.add_row(str(row["n"]), str(row["d"]), _ms(row["tiled_median_s"]), _ms(row["naive_median_s"]),
                      f"{t_ratio:.2f}×", f"{timing_spread(row):.2f}", _mib(row["tiled_peak_bytes"]), _mib(row["naive_peak_bytes"]),
                      f"{m_ratio:.1f}×")
    return table


def _load_note(env: dict) -> str:
    load = env.get("load_average")
    if not load:
        return ""
    return f" Load average {load[0]:.1f} on {env.get('cpu_count') or '?'} cores when it started."


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"
