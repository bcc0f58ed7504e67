"""Running a benchmark: the target's kernels, the sweep, and the files it leaves.

Plain functions shared by ``pytest --attnkata-bench`` and ``attnkata bench``.  On CUDA
each shape gets fresh inputs from the framework; every candidate is checked against the
float32 truth on them first and only a correct one is timed.  Without CUDA it says so
("no GPU: correctness only") and times the CPU katas instead (level 4, ``cpu``).
Either way a JSON document in the ``attnkata.bench/1`` envelope is written.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any, Callable

from attnkata.remote import WorkerGone

from .cases import KINDS, Case, Candidate, Unsupported
from .learner import TimingVoid, first_line, not_started
from .options import BenchOptions
from .outcome import BenchRun


TARGET_TIMER = ("in the target's worker: CUDA events per call (L2 flushed between calls when cold), "
                "checked against the bench's own wall clock over the same calls (void beyond 10%)")


# -- the target's kernels ----------------------------------------------------------

def bench_specs(kata: Any) -> list[tuple[str, str]]:
    """``(kind, entry)`` pairs a kata's ``bench=`` declares; tolerant of its exact form."""
    raw = kata.bench
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out = []
    for item in items:
        if item is None or item is False:
            continue
        kind = entry = None
        if isinstance(item, dict):
            kind, entry = item.get("kind"), item.get("entry")
        elif isinstance(item, str):
            kind, entry = (item, None) if _kind(item) else (None, item)
        declared = kind
        kind = _kind(kind or "") or _kind(entry or "") or _kind(kata.id)
        if kind is None:
            out.append((str(declared), entry or ""))  # a kind this bench does not time: reported
            continue
        entry = entry or _entry_for(kind, kata.entries)
        out.append((kind, entry))
    return out


def _kind(name: str) -> str | None:
    name = name.lower()
    if name in KINDS:
        return name
    if "backward" in name or "bwd" in name:
        return "flash_bwd"
    if "paged" in name or "decode" in name:
        return "paged_decode"
    if "forward" in name or "fwd" in name or "flash" in name:
        return "flash_fwd"
    return None


def _entry_for(kind: str, entries: tuple[str, ...]) -> str:
    prefer = {"flash_fwd": ("forward",), "flash_bwd": ("backward",), "paged_decode": ("triton", "decode")}[kind]
    for word in prefer:
        for entry in entries:
            if word in entry:
                return entry
    return entries[0]


def target_kernels(registry: Any, target: Any, kernels: Any,
                   flush_bytes: int = 0) -> tuple[dict[str, Candidate], dict[str, str], list[str]]:
    """The target's kernel per kind (in its worker, :class:`~.learner.LearnerKernels`),
    the kata id per kind, and notes on what was not found or not started."""
    from .cases import remote_candidate
    from .learner import first_line, not_started

    found: dict[str, Candidate] = {}
    katas: dict[str, str] = {}
    notes: list[str] = []
    for kata in registry.katas:
        for kind, entry in bench_specs(kata):
            if kind not in KINDS:
                notes.append(f"{kata.id}: bench kind {kind!r} is not one this bench times ({', '.join(KINDS)})")
                continue
            if kind in found:
                continue
            try:
                kernel = kernels.kernel(kata, entry)
            except BaseException as exc:  # learner code: report, never crash the bench
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                why = ("not started (a stub)" if not_started(exc)
                       else f"could not be loaded ({type(exc).__name__}: {first_line(exc)})")
                notes.append(f"{kind}: target {kata.id} {why}; timing the baselines only")
                continue
            found[kind] = remote_candidate("target", kind, kernel, flush_bytes)
            katas[kind] = kata.id
    for kind in KINDS:
        if kind == "flash_fwdbwd" and kind not in found:
            notes.append(f"{kind}: forward + backward is timed for the reference kernels and SDPA only (a kata's "
                         f"forward and backward run in separate workers: see their own rows)")
        elif kind not in found and not any(n.startswith(f"{kind}:") for n in notes):
            notes.append(f"{kind}: no kata declares bench kind {kind!r}; timing the reference kernel and SDPA only")
    return found, katas, notes


# -- the sweep -----------------------------------------------------------------------

def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _free(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def base_row(case: Case, candidate: Candidate) -> dict[str, Any]:
    shape = {k: v for k, v in case.as_dict().items() if k not in ("kind", "dtype")}
    row = {"kind": case.kind, "candidate": candidate.name, "impl": candidate.impl,
           "sdpa_backend": candidate.sdpa_backend, "dtype": case.dtype, "shape": shape,
           "flops": case.flops, "bytes": case.kv_bytes, "status": "ok", "message": ""}
    if candidate.label:
        row["label"] = candidate.label
    return row


def measure(case: Case, candidate: Candidate, inputs: dict, exact: tuple, drift: tuple,
            timer: Callable, device: Any) -> dict:
    """One row: check the candidate on the case's inputs, then (only if correct) time it."""
    import torch

    from .cases import OUTPUT_NAMES, autotune_choice
    from .oracle import checksum, compare

    row = base_row(case, candidate)
    tensors = [t for t in inputs.values() if isinstance(t, torch.Tensor)]
    try:
        prepared = candidate.prepare(case, inputs)
        before = checksum(tensors)
        if prepared.setup is not None:
            prepared.setup()
        outputs = prepared.outputs(prepared.run())
        _sync(device)
        row["autotune"] = autotune_choice(candidate)
        if checksum(tensors) != before:
            row.update(status="incorrect", message="it changed its inputs (mutation): not timed")
            return row
        verdict = compare(outputs, exact, drift, OUTPUT_NAMES[case.kind])
        row.update(max_abs_err=verdict.max_abs_err, tol=verdict.tol)
        if not verdict.ok:
            row.update(status="incorrect", message=f"{verdict.message}: not timed")
            return row
        info = {"case": case, "candidate": candidate.name, "sdpa_backend": candidate.sdpa_backend}
        row["ms"] = (prepared.time() if prepared.time is not None
                     else timer(prepared.run, prepared.setup, info)).as_dict()
    except TimingVoid as exc:
        row.update(status="void", message=str(exc))
    except NotImplementedError as exc:
        row.update(status="not started", message=_first_line(exc))
    except Unsupported as exc:
        row.update(status="unsupported", message=str(exc))
    except torch.cuda.OutOfMemoryError:
        row.update(status="error", message="out of memory at this shape")
        _free(device)
    except WorkerGone as exc:  # the target's worker hung or crashed
        row.update(status="error", message=_first_line(exc))
    except Exception as exc:  # a failing candidate is reported, the sweep goes on
        if not_started(exc):  # a stub raising inside a Triton kernel arrives wrapped
            row.update(status="not started", message=_first_line(exc))
            return row
        row.update(status="error", message=f"{type(exc).__name__}: {_first_line(exc)}"[:300])
    return row


def _first_line(exc: BaseException) -> str:
    return first_line(exc)


def run_sweep(cases: list[Case], candidates: dict[str, list[Candidate]], *, timer: Callable, device: Any,
              seed: int, echo: Callable[[str], Any], budget_s: float | None = None,
              clock: Callable[[], float] = time.monotonic, started: float | None = None) -> list[dict]:
    """Every candidate at every case, in order; fresh inputs per case from ``seed``.

    With ``budget_s``, a candidate not started within that many seconds of ``started``
    (default: now) is skipped, and its row says so: ``--quick`` stays within its 5 minutes."""
    from .cases import make_inputs, truth

    rows = []
    start = clock() if started is None else started
    message = f"skipped: the time budget ({budget_s:g} s) ran out before this" if budget_s is not None else ""

    def over() -> bool:
        return budget_s is not None and clock() - start > budget_s

    for i, case in enumerate(cases):
        if over():
            rows += [base_row(case, c) | {"status": "skipped", "message": message + " shape"}
                     for c in candidates.get(case.kind, [])]
            echo(_wrap(f"  {case.label()}: {message} shape"))
            continue
        try:
            inputs = make_inputs(case, device, seed + i)
            exact, drift = truth(case, inputs)
        except Exception as exc:  # e.g. out of memory for the float32 truth: skip the shape, say why
            message = f"no inputs or truth at this shape: {type(exc).__name__}: {_first_line(exc)}"
            for candidate in candidates.get(case.kind, []):
                rows.append(base_row(case, candidate) | {"status": "error", "message": message})
            echo(f"  {case.label()}: {message}")
            _free(device)
            continue
        line = []
        for candidate in candidates.get(case.kind, []):
            if over():
                rows.append(base_row(case, candidate) | {"status": "skipped", "message": message + " candidate"})
                line.append(f"{candidate.name} skipped (time budget)")
                continue
            row = measure(case, candidate, inputs, exact, drift, timer, device)
            rows.append(row)
            line.append(f"{candidate.name} {row['ms']['median_ms']:.3g} ms" if row["status"] == "ok"
                        else f"{candidate.name} {row['status']}")
        echo(_wrap(f"  {case.label()}: " + ", ".join(line)))
        del inputs, exact, drift
        _free(device)
    return rows


def _wrap(line: str, width: int = 80) -> str:
    return textwrap.fill(line, width, subsequent_indent="      ", break_on_hyphens=False)


def run_bench(opts: BenchOptions, *, registry: Any, target: Any, learner_root: Path, rootdir: Path,
              echo: Callable[[str], Any] = print, gpu: Any = None, timer: Callable | None = None,
              device: Any = None, worker_config: Any = None) -> BenchRun:
    """Run the benchmark and write its JSON (and plots).

    The target's kernels run in their workers (:mod:`.learner`), never in this process;
    the baselines (reference kernels, SDPA, naive attention) run here.

    :param gpu: a :class:`~env.DeviceInfo`; default: the CUDA device, or the CPU path without one.
    :param timer: default :class:`~timing.CudaEventTimer`; the tests inject a fake.
    :param device: where tensors live (default ``cuda``; the tests run the GPU path on ``cpu``).
    :param worker_config: the learner's sandbox (default: what ``pytest`` gives this target).
    """
    from attnkata.hardware import ensure_triton_mode
    from attnkata.state import state_dir

    ensure_triton_mode()
    started = time.monotonic()  # --quick's budget counts from here
    import torch

    out_dir = Path(opts.out) if opts.out else state_dir(rootdir) / "bench"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    from .learner import LearnerKernels

    with LearnerKernels(registry, target, learner_root, rootdir, worker_config) as kernels:
        if gpu is None and not torch.cuda.is_available():
            from .cpu_path import QUICK_NEEDS_GPU, run_cpu

            if opts.quick:
                echo(textwrap.fill(QUICK_NEEDS_GPU, 80))
            run = run_cpu(opts, out_dir, stamp, target, echo, registry=registry, kernels=kernels,
                          explained=opts.quick)  # QUICK_NEEDS_GPU said it already
            if opts.quick:
                run.refused = QUICK_NEEDS_GPU
            return run
        return _run_gpu(opts, registry, target, kernels, out_dir, stamp, echo, gpu, timer, device, started)


def _run_gpu(opts: BenchOptions, registry: Any, target: Any, kernels: Any, out_dir: Path, stamp: str,
             echo: Callable[[str], Any], gpu: Any, timer: Callable | None, device: Any,
             started: float | None = None) -> BenchRun:
    from . import results as res
    from .cases import baseline_candidates
    from .env import describe_device, environment
    from .timing import CudaEventTimer

    from .env import clocks as read_clocks
    from .env import sdpa_info
    from .targets import evaluate, target_claims, targets_table

    gpu = gpu or describe_device()
    device = device or "cuda"
    on_cuda = str(device).startswith("cuda")
    sampled = {"before": read_clocks(gpu.smi_id).get("sampled", {}) if on_cuda else "not sampled (no CUDA)"}
    timer = timer or CudaEventTimer(cold_l2=opts.cold_l2, warmup_ms=opts.warmup_ms, rep_ms=opts.rep_ms,
                                    l2_bytes=gpu.l2_bytes)
    cases = opts.cases()
    flush = max(2 * gpu.l2_bytes, 256 * 2**20) if opts.cold_l2 else 0
    mine, katas, notes = target_kernels(registry, target, kernels, flush)
    timed_kinds = {c.kind for c in cases}
    notes = [n for n in notes if n.split(":", 1)[0] not in KINDS or n.split(":", 1)[0] in timed_kinds]
    candidates = {kind: ([mine[kind]] if kind in mine else []) + baseline_candidates(kind) for kind in opts.kinds}
    dtypes = sorted({c.dtype for c in cases}) or list(opts.dtypes)
    shapes = ("quick: " + "; ".join(c.label() for c in cases) if opts.quick else
              f"N {','.join(map(str, opts.sizes))}; d {','.join(map(str, opts.head_dims))}; "
              f"causal {'/'.join(map(str, opts.causal))}; kinds {','.join(opts.kinds)}")
    env = environment(gpu, created=res.now(), dtype=",".join(dtypes), dtypes=dtypes, shapes=shapes,
                      sdpa=sdpa_info() if on_cuda else sdpa_info(probe=lambda b: "not probed (tensors on CPU)"),
                      clocks_sampled=sampled, quick=opts.quick,
                      cases=[c.as_dict() for c in cases], seed=opts.seed, target=target.name,
                      sdpa_backend="pinned per row (sdpa_kernel)", autotune="per row (reference kernels)",
                      target_timer=TARGET_TIMER,
                      **getattr(timer, "describe", lambda: {"timer": "injected"})())
    echo(f"attnkata bench: {gpu.name} ({gpu.form_factor}), {len(cases)} shapes x "
         f"{max(len(c) for c in candidates.values())} candidates; target={target.name}")
    rows = run_sweep(cases, candidates, timer=timer, device=device, seed=opts.seed, echo=echo,
                     budget_s=opts.budget_s, started=started)
    if on_cuda:
        sampled["after"] = read_clocks(gpu.smi_id).get("sampled", {})
    res.add_metrics(rows, {dt: gpu.peak_tflops(dt) for dt in dtypes}, gpu.peak_gbps())
    summary = res.summarise(rows)
    claims = res.gpu_claims(summary, rows, env, katas)
    targets = evaluate(rows, env)
    claims += target_claims(targets, env)
    if gpu.peak is None:
        notes.append(f"unknown peak: {gpu.name!r} is not in the peak table, so no % of peak")
    data = res.envelope("cuda", env, rows, summary, claims, notes, extra={"targets": targets})
    run = _finish(data, claims, out_dir, stamp, opts, echo)
    width = 80
    run.renderables = ([targets_table(data, width)] if opts.quick else
                       [res.summary_table(data), targets_table(data, width)]) + [res.notes_text(data)]
    return run


def _finish(data: dict, claims: list, out_dir: Path, stamp: str, opts: BenchOptions,
            echo: Callable[[str], Any]) -> BenchRun:
    from . import results as res
    from .plot import plot

    plots: list[Path] = []
    if opts.plot and data["rows"]:
        plots, message = plot(data, out_dir, stamp, kinds=not opts.quick)
        if message:
            echo(message)
            data["notes"].append(message)
    data["files"] = {"plots": [str(p) for p in plots]}
    path = res.save(data, out_dir, stamp)
    run = BenchRun(data, path, claims, plots)
    if data["mode"] == "cuda":
        run.renderables = [res.summary_table(data), res.notes_text(data)]
    echo(f"attnkata bench: wrote {path}" + (f" and {len(plots)} plot(s)" if plots else ""))
    return run
