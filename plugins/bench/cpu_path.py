"""The bench without CUDA: say so plainly, time the CPU katas, and still write the JSON.

GPU kernels are only checked for correctness here (``pytest`` runs them on Triton's
interpreter); timing them on a CPU would say nothing about a GPU.  What a CPU can time
honestly is level 4: the target's tiled attention against naive attention (``cpu``),
through the same mechanism as the GPU path (:mod:`.learner`): the target's code runs in
its worker, is judged here on fresh inputs, and only then is timed there, with the
timing checked against this process's clock.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Callable

NO_GPU_EXPLAINED = ("no GPU: correctness only — CUDA is not available, so the Triton kernels are checked "
                    "(by pytest, on Triton's interpreter) but not timed. Timing the CPU katas instead "
                    "(level 4: the target's tiled attention against naive attention).")
TILED_KATA = "tiled_attention"
QUICK_NEEDS_GPU = ("attnkata bench --quick needs a CUDA GPU, and there is none here: it times the reference "
                   "Triton kernels against torch's SDPA backends on the GPU (the H100 targets), which a CPU "
                   "cannot stand in for. Without a GPU, `attnkata bench` times no GPU kernel (pytest checks "
                   "the Triton kernels on Triton's interpreter, for correctness only) and times the CPU kata "
                   "instead (level 4: the target's tiled attention against naive attention, a CPU toy "
                   "figure); that is what runs below. Exit status 3: no GPU figure was measured, and every "
                   "target stays unmeasured.")


def run_cpu(opts: Any, out_dir: Path, stamp: str, target: Any, echo: Callable[[str], Any], *,
            registry: Any, kernels: Any, explained: bool = False) -> Any:
    from . import results as res
    from .env import environment
    from .outcome import NO_GPU, BenchRun

    if not explained:
        echo(textwrap.fill(NO_GPU_EXPLAINED, 80))
    env = environment(None, created=res.now(), dtype="float32", shapes=f"N {','.join(map(str, opts.cpu_sizes))}, d 64",
                      seed=opts.seed, target=target.name,
                      timer="tiled: wall clock per call in the target's worker, checked against the bench's "
                            "(void beyond 10%); naive: wall clock here")
    notes: list[str] = []
    renderables: list[Any] = []
    result: Any = {"error": ""}
    try:
        from .cpu import cpu_bench_table, run_cpu_bench
    except ImportError as exc:
        result = {"error": f"the CPU bench is unavailable: {exc}"}
        notes.append(result["error"])
    else:
        tiled = _target_tiled(registry, kernels, target, notes)
        if tiled is not None:
            try:
                result = run_cpu_bench(sizes=tuple(opts.cpu_sizes), d=64, repeat=opts.cpu_repeat,
                                       out_dir=Path(out_dir), seed=opts.seed, tiled=tiled)
                result["target"] = target.name
                renderables.append(cpu_bench_table(result))
                notes += [f"tiled_attention at N={r['n']}: {r['status']} — {r['message']}"
                          for r in result["rows"] if r.get("status", "ok") != "ok"]
            except Exception as exc:  # the CPU bench reports; it never crashes the run
                result = {"error": f"the CPU bench failed: {type(exc).__name__}: {exc}"}
                notes.append(result["error"])
        else:
            result = {"error": notes[-1], "target": target.name, "rows": []}
    claims = cpu_claims(result, env, notes)  # may add why no claim was made
    for note in notes:
        echo(textwrap.fill(note, 80, subsequent_indent="  ", break_long_words=False,
                           break_on_hyphens=False))
    from .targets import unmeasured

    data = res.envelope("cpu", env, [], [], claims, notes, message=NO_GPU,
                        extra={"cpu": result, "targets": unmeasured("no GPU in this run")})
    path = res.save(data, Path(out_dir), stamp)
    echo(f"attnkata bench: wrote {path}")
    return BenchRun(data, path, claims, [], renderables)


def _target_tiled(registry: Any, kernels: Any, target: Any, notes: list[str]) -> Any:
    """The target's ``tiled_attention`` in its worker, or None with a note saying why not."""
    from .learner import first_line, not_started

    kata = next((k for k in registry.katas if k.id == TILED_KATA), None)
    if kata is None:
        notes.append(f"no kata {TILED_KATA!r} in this course: nothing to time on the CPU")
        return None
    try:
        return kernels.kernel(kata, TILED_KATA)
    except BaseException as exc:  # learner code: report, never crash the bench
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        why = ("is not started (a stub)" if not_started(exc)
               else f"could not be loaded ({type(exc).__name__}: {first_line(exc)})")
        notes.append(f"{TILED_KATA}: the target's ({target.name}) {why}: not timed, no claim")
        return None


SPREAD_LIMIT = 1.5
"""Widest p80/p20 of either side's timings that still supports a stated ratio."""


def busy(result: dict) -> str:
    """Why the machine was too busy for its timings to mean anything ('' when it was not):
    the load average, before or after, above the number of cores."""
    cpu_env = result.get("environment") or {}
    cores = cpu_env.get("cpu_count") or os.cpu_count() or 1
    loads = [la[0] for la in (cpu_env.get("load_average"), cpu_env.get("load_average_after"))
             if isinstance(la, (list, tuple)) and la]
    if loads and max(loads) > cores:
        return f"machine busy (load {max(loads):.1f} on {cores} cores)"
    return ""


def timing_spread(row: dict) -> float:
    """The wider p80/p20 of the tiled and the naive timings at one N (1.0: no spread known)."""
    ratios = [row[f"{side}_p80_s"] / row[f"{side}_p20_s"] for side in ("tiled", "naive")
              if row.get(f"{side}_p20_s") and row.get(f"{side}_p80_s")]
    return max(ratios, default=1.0)


def cpu_claims(result: Any, env: dict, notes: list[str]) -> list[Any]:
    """One measured claim from the largest N of the CPU bench: time and peak-memory ratios.

    None when the machine was busy (load average above its cores) or the timings spread
    wider than ``SPREAD_LIMIT`` (p80/p20 of either side): a note says which instead."""
    from . import results as res

    rows = [r for r in result.get("rows", []) if r.get("status", "ok") == "ok"] if isinstance(result, dict) else []
    if not rows:
        return []
    why = busy(result)
    if why:
        notes.append(f"tiled vs naive time: not measured: {why}; rerun on an idle machine")
        return []
    try:
        row = max(rows, key=lambda r: r["n"])
        wide = timing_spread(row)
        if wide > SPREAD_LIMIT:
            notes.append(f"tiled vs naive time at N={row['n']}: not measured: the timings spread "
                         f"too wide (p80/p20 = {wide:.2f} > {SPREAD_LIMIT}); rerun with more "
                         f"--cpu-repeat on an idle machine")
            return []
        time_ratio = row["tiled_median_s"] / row["naive_median_s"]
        memory_ratio = row["naive_peak_bytes"] / max(row["tiled_peak_bytes"], 1)
        sizes = ",".join(str(r["n"]) for r in rows)
        text = (f"on this CPU (NumPy, {row['dtype']}, N={row['n']}, d={row['d']}): your tiled attention "
                f"({result.get('target', 'reference')}) takes "
                f"{time_ratio:.3g}x naive attention's time and {1 / memory_ratio:.2g}x its peak memory")
        cpu_env = {**env, "dtype": row["dtype"], "shapes": f"N {sizes}, d {row['d']}, block {row.get('block_q')}"}
        measured = result.get("environment") or {}
        pinned = {**res.claim_environment(cpu_env, row["dtype"], cpu_env["shapes"]),
                  "cpu_count": measured.get("cpu_count"), "load_average": measured.get("load_average"),
                  "load_average_after": measured.get("load_average_after"),
                  "p80_over_p20": round(wide, 3), "repeat": row.get("repeat")}
        return [res.measured_claim("bench-cpu-target-tiled-vs-naive", text, "dao-2022", pinned,
                                   not_claimed="says nothing about GPU kernels; host CPU, NumPy and these sizes only",
                                   evidence=[f"attnkata bench (CPU): {row.get('tiled_impl', '?')} in "
                                             f"{row.get('tiled_file', '?')}"], kata=TILED_KATA)]
    except (KeyError, TypeError, ValueError, ZeroDivisionError, res.MeasuredClaimRefused) as exc:
        notes.append(f"no CPU claim: {type(exc).__name__}: {exc}")
        return []
