"""The bench without CUDA: say so plainly, time the CPU katas, and still write the JSON.

GPU kernels are only checked for correctness here (``pytest`` runs them on Triton's
interpreter); timing them on a CPU would say nothing about a GPU.  What a CPU can time
honestly is level 4: tiled attention against naive attention (``cpu``, written
with level 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

NO_GPU_EXPLAINED = ("no GPU: correctness only — CUDA is not available, so the Triton kernels are checked "
                    "(by pytest, on Triton's interpreter) but not timed. Timing the CPU katas instead "
                    "(level 4: tiled attention against naive attention).")


def run_cpu(opts: Any, out_dir: Path, stamp: str, target: Any, echo: Callable[[str], Any]) -> Any:
    from . import results as res
    from .env import environment
    from .outcome import NO_GPU, BenchRun

    echo(NO_GPU_EXPLAINED)
    env = environment(None, created=res.now(), dtype="float32", shapes=f"N {','.join(map(str, opts.cpu_sizes))}, d 64",
                      seed=opts.seed, target=target.name, timer="wall clock (CPU)")
    notes: list[str] = []
    renderables: list[Any] = []
    try:
        from .cpu import cpu_bench_table, run_cpu_bench
    except ImportError as exc:
        result: Any = {"error": f"the CPU bench is unavailable: {exc}"}
        notes.append(result["error"])
    else:
        try:
            result = run_cpu_bench(sizes=tuple(opts.cpu_sizes), d=64, repeat=opts.cpu_repeat, out_dir=Path(out_dir))
            renderables.append(cpu_bench_table(result))
        except Exception as exc:  # the CPU bench reports; it never crashes the run
            result = {"error": f"the CPU bench failed: {type(exc).__name__}: {exc}"}
            notes.append(result["error"])
    for note in notes:
        echo(note)
    claims = cpu_claims(result, env, notes)
    data = res.envelope("cpu", env, [], [], claims, notes, message=NO_GPU, extra={"cpu": result})
    path = res.save(data, Path(out_dir), stamp)
    echo(f"attnkata bench: wrote {path}")
    return BenchRun(data, path, claims, [], renderables)


def cpu_claims(result: Any, env: dict, notes: list[str]) -> list[Any]:
    """One measured claim from the largest N of the CPU bench: time and peak-memory ratios."""
    from . import results as res

    rows = result.get("rows") if isinstance(result, dict) else None
    if not rows:
        return []
    try:
        row = max(rows, key=lambda r: r["n"])
        time_ratio = row["tiled_median_s"] / row["naive_median_s"]
        memory_ratio = row["naive_peak_bytes"] / max(row["tiled_peak_bytes"], 1)
        sizes = ",".join(str(r["n"]) for r in rows)
        text = (f"on this CPU (NumPy, {row['dtype']}, N={row['n']}, d={row['d']}): tiled attention takes "
                f"{time_ratio:.3g}x naive attention's time and {1 / memory_ratio:.2g}x its peak memory")
        cpu_env = {**env, "dtype": row["dtype"], "shapes": f"N {sizes}, d {row['d']}, block {row.get('block_q')}"}
        return [res.measured_claim("bench-cpu-tiled-vs-naive", text, "dao-2022",
                                   res.claim_environment(cpu_env, row["dtype"], cpu_env["shapes"]),
                                   not_claimed="says nothing about GPU kernels; host CPU, NumPy and these sizes only",
                                   evidence=["attnkata bench (CPU): bench.cpu.run_cpu_bench"], kata="tiled_attention")]
    except (KeyError, TypeError, ValueError, ZeroDivisionError, res.MeasuredClaimRefused) as exc:
        notes.append(f"no CPU claim: {type(exc).__name__}: {exc}")
        return []
