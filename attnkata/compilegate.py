"""Compile gate: build Triton kernels for real GPUs ahead of time, on any machine.

No GPU is needed to know whether a kernel compiles for one. Triton lowers a kernel to PTX
and runs NVIDIA's ``ptxas`` (shipped inside the Triton wheel) for a named target such as
``sm_90``; ``ptxas -v`` reports the registers each thread uses and the bytes it spills to
local memory, and Triton's metadata records the shared memory a program needs. The gate
compiles every kernel of a module, at every autotune config its table allows, for every
target, and fails on:

* a compile error (Triton or ptxas),
* shared memory over the target's per-block limit (sm_90: 227 KB, sm_80: 163 KB),
* any register spill (spilled values round-trip through local memory, i.e. DRAM/L2:
  in an attention inner loop that costs more than a smaller tile would).

It also records whether ``tl.dot`` lowered to Hopper's warpgroup MMA (``wgmma`` in the
PTX) and whether tiles moved through TMA (``cp.async.bulk.tensor``).

Cases. A kernel module opts in with ``gate_cases(arch)``: it returns dicts
``{"kernel": <jit or autotuned fn>, "label": str, "args": {name: example value},
"configs": "all" | "first" | [configs]}``. ``args`` holds every parameter the autotune config does not
set, as the launcher would pass it: tensors (``device="meta"`` ones are fine: only dtype,
alignment and strides matter), ints, floats, bools and constexpr values. The gate
specialises them exactly as Triton's launcher does (an int equal to 1 becomes a
constant, a multiple of 16 carries a divisibility hint). ``configs="all"`` compiles every
config the kernel's ``early_config_prune`` keeps for the case; ``"first"`` only the first;
a list, exactly those (a table that depends on the GPU says which rows each target gets).
A ``@triton.jit`` function of the module that is never launched (a helper inlined into a
kernel) is listed in the module's ``GATE_HELPERS``; any other kernel without a case fails
the gate.

Triton reads ``TRITON_INTERPRET`` when a kernel is decorated, and attnkata sets it on
machines without CUDA; so the compiles run in a child process started without it
(:func:`run_gate`), and the module is imported fresh there.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterable, Sequence

SHARED_LIMIT = {"sm_90": 227 * 1024, "sm_80": 163 * 1024}
"""Largest dynamic shared memory one block may use (the opt-in maximum), bytes."""

TARGETS = ("sm_90", "sm_80")
DEFAULT_MODULES = ("attnkata_kernels.flash_fwd", "attnkata_kernels.flash_bwd",
                   "attnkata_kernels.paged_decode")

_PTXAS_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_REGS = re.compile(r"Used (\d+) registers")


@dataclasses.dataclass
class Row:
    """One compile: a kernel at one config, one case, one target."""

    module: str
    kernel: str
    config: str
    target: str
    case: str
    registers: int = 0
    spill_bytes: int = 0  # spill stores + spill loads, as ptxas -v reports them
    shared: int = 0  # bytes of shared memory per program
    wgmma: bool = False
    tma: bool = False
    seconds: float = 0.0
    error: str = ""

    def problems(self) -> list[str]:
        """Why this compile fails the gate (empty: it passes)."""
        where = f"{self.kernel} [{self.config}] {self.target} {self.case}"
        if self.error:
            return [f"{where}: does not compile: {self.error}"]
        out = []
        if self.spill_bytes:
            out.append(f"{where}: spills {self.spill_bytes} bytes ({self.registers} registers)")
        if self.shared > SHARED_LIMIT[self.target]:
            out.append(f"{where}: needs {self.shared} bytes of shared memory, over the "
                       f"{SHARED_LIMIT[self.target]} a block may have on {self.target}")
        return out


# ---------------------------------------------------------------- in the child process


def config_label(config: Any) -> str:
    """``128x64 w8 s3``: tile sizes in parameter order, then warps and stages."""
    if config is None:
        return "fixed"
    sizes = "x".join(str(v) for v in config.kwargs.values())
    return f"{sizes} w{config.num_warps} s{config.num_stages}"


def _jit_and_configs(kernel: Any) -> tuple[Any, list, Any]:
    """(the JITFunction, its autotune configs or ``[None]``, the config pruner or None)."""
    from triton.runtime.autotuner import Autotuner
    if isinstance(kernel, Autotuner):
        return kernel.fn, list(kernel.configs), kernel.early_config_prune
    return kernel, [None], None


def _specialise(fn: Any, args: dict, config: Any) -> tuple[dict, dict, dict]:
    """Signature, constexprs and attributes for ``fn``, as the launcher would make them."""
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import native_specialize_impl
    values = dict(args)
    if config is not None:
        values.update(config.kwargs)
    missing = [n for n in fn.arg_names if n not in values]
    if missing:
        raise ValueError(f"case gives no value for {', '.join(missing)}")
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, param) in enumerate(zip(fn.arg_names, fn.params)):
        value = values[name]
        if param.is_constexpr:
            signature[name], constexprs[name] = "constexpr", value
            continue
        kind, spec = native_specialize_impl(BaseBackend, value, False, True, True)
        signature[name] = kind
        if kind == "constexpr":  # an int equal to 1: Triton compiles it in
            constexprs[name] = spec
        elif spec:
            attrs[(i,)] = BaseBackend.parse_attr(spec)
    return signature, constexprs, attrs


def compile_one(module: str, kernel: Any, case: dict, config: Any, target: str) -> Row:
    """Compile ``kernel`` for ``target`` and read registers, spills and shared memory."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _jit_and_configs(kernel)[0]
    row = Row(module, fn.__name__, config_label(config), target, case["label"])
    options = {} if config is None else {"num_warps": config.num_warps,
                                         "num_stages": config.num_stages}
    options.update(case.get("options", {}))
    arch = int(target.removeprefix("sm_"))
    start = time.perf_counter()
    log = io.StringIO()
    try:
        signature, constexprs, attrs = _specialise(fn, case["args"], config)
        src = ASTSource(fn, signature, constexprs, attrs)
        knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas -v's report
        knobs.compilation.always_compile = True  # a cache hit would skip ptxas
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    except Exception as exc:  # the row records it; the gate fails on it
        row.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        row.seconds = time.perf_counter() - start
        return row
    row.seconds = time.perf_counter() - start
    report = log.getvalue()
    regs = _PTXAS_REGS.search(report)
    row.registers = int(regs.group(1)) if regs else -1
    row.spill_bytes = sum(int(a) + int(b) for a, b in _PTXAS_SPILL.findall(report))
    row.shared = int(compiled.metadata.shared)
    ptx = compiled.asm.get("ptx", "")
    row.wgmma = "wgmma.mma_async" in ptx
    row.tma = "cp.async.bulk.tensor" in ptx
    if regs is None:
        row.error = "no ptxas -v report to read registers and spills from"
    return row


def jit_functions(module: Any) -> dict[str, Any]:
    """The module's own ``@triton.jit`` functions (autotuned ones as their Autotuner)."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction
    found = {}
    for name, value in vars(module).items():
        if isinstance(value, Autotuner) and isinstance(value.fn, JITFunction):
            if value.fn.__module__ == module.__name__:
                found[value.fn.__name__] = value
        elif isinstance(value, JITFunction) and value.__module__ == module.__name__:
            found.setdefault(value.__name__, value)
    return found


def plan(module_name: str, targets: Sequence[str]) -> tuple[list[tuple], list[str]]:
    """Every (module, kernel, case, config, target) to compile, and the uncovered kernels."""
    module = importlib.import_module(module_name)
    cases_for = getattr(module, "gate_cases", None)
    kernels = jit_functions(module)
    helpers = set(getattr(module, "GATE_HELPERS", ()))
    covered: set[str] = set()
    jobs = []
    for target in targets:
        for case in (cases_for(int(target.removeprefix("sm_"))) if cases_for else ()):
            fn, configs, prune = _jit_and_configs(case["kernel"])
            covered.add(fn.__name__)
            chosen = case.get("configs", "all")
            if not isinstance(chosen, str):
                configs = list(chosen)
            elif prune is not None and configs[0] is not None:
                configs = prune(configs, {}, **case["args"])
            if chosen == "first":
                configs = configs[:1]
            jobs.extend((module_name, case["kernel"], case, c, target) for c in configs)
    uncovered = sorted(set(kernels) - covered - helpers)
    return jobs, uncovered


def _child(modules: Sequence[str], targets: Sequence[str], shard: int, shards: int) -> dict:
    import warnings
    warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")
    jobs, uncovered = [], []
    for name in modules:
        more, missing = plan(name, targets)
        jobs.extend(more)
        uncovered.extend(f"{name}.{k}" for k in missing)
    mine = jobs[shard::shards]
    rows = [dataclasses.asdict(compile_one(*job)) for job in mine]
    return {"rows": rows, "total_jobs": len(jobs), "uncovered": uncovered if shard == 0 else []}


# ---------------------------------------------------------------- in the caller


@dataclasses.dataclass
class GateResult:
    rows: list[Row]
    total_jobs: int
    uncovered: list[str]
    seconds: float

    def problems(self) -> list[str]:
        out = [f"{k}: a @triton.jit kernel with no gate case (add one to gate_cases, or "
               f"name it in GATE_HELPERS if only other kernels call it)" for k in self.uncovered]
        for row in self.rows:
            out.extend(row.problems())
        return out


def module_names(given: Iterable[str], cwd: str | None = None) -> tuple[list[str], list[str]]:
    """(dotted module names, one-line problems) for what a person typed: a dotted name
    (``kernels.paged_decode``) is kept; a file path (``kernels/paged_decode.py``) under the
    current folder becomes its dotted name (the child imports from there, as ``python -m``)."""
    import importlib.util
    from pathlib import Path

    here = Path(cwd or os.getcwd()).resolve()
    names, problems = [], []
    for arg in given:
        if arg.endswith(".py") or "/" in arg or os.sep in arg:
            path = Path(arg)
            path = (here / path if not path.is_absolute() else path).resolve()
            try:
                rel = path.with_suffix("").relative_to(here)
            except ValueError:
                rel = None
            if not path.is_file() or rel is None or not all(p.isidentifier() for p in rel.parts):
                problems.append(f"{arg}: not a kernel file under {here}; give a file there "
                                f"or a module name like kernels.paged_decode")
                continue
            names.append(".".join(rel.parts))
            continue
        try:
            found = importlib.util.find_spec(arg) is not None
        except (ImportError, ValueError):
            found = False
        if not found and not (here / Path(*arg.split("."))).with_suffix(".py").is_file():
            problems.append(f"{arg}: no module of that name; give a module name like "
                            f"kernels.paged_decode or its file, kernels/paged_decode.py")
            continue
        names.append(arg)
    return names, problems


def run_gate(modules: Iterable[str] = DEFAULT_MODULES, targets: Sequence[str] = TARGETS,
             shard: int = 0, shards: int = 1, timeout: float = 1800) -> GateResult:
    """Compile shard ``shard`` of ``shards`` of the modules' kernels in a child process.

    :param modules: importable names of modules that define ``gate_cases(arch)``.
    :param targets: ``"sm_90"``, ``"sm_80"`` (keys of :data:`SHARED_LIMIT`).
    :returns: the rows of this shard, with the total job count over all shards.
    """
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    modules = list(modules)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="attnkata-gate-") as cache:
        env["TRITON_CACHE_DIR"] = cache  # compiled binaries are thrown away afterwards
        cmd = [sys.executable, "-m", "attnkata.compilegate", "--child",
               "--targets", ",".join(targets), "--shard", f"{shard}/{shards}", *modules]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"compile gate child failed ({done.returncode}):\n"
                           f"{done.stderr[-4000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return GateResult([Row(**r) for r in out["rows"]], out["total_jobs"], out["uncovered"],
                      time.perf_counter() - start)


def run_parallel(modules: Iterable[str] = DEFAULT_MODULES, targets: Sequence[str] = TARGETS,
                 jobs: int = 2) -> GateResult:
    """The whole gate, ``jobs`` child processes at a time."""
    from concurrent.futures import ThreadPoolExecutor
    modules = list(modules)
    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        parts = list(pool.map(lambda i: run_gate(modules, targets, i, jobs), range(jobs)))
    rows = [r for p in parts for r in p.rows]
    return GateResult(rows, parts[0].total_jobs, [u for p in parts for u in p.uncovered],
                      time.perf_counter() - start)


def summary(rows: Sequence[Row]) -> list[dict]:
    """One line per (kernel, config, target): worst registers, spill, shared over cases."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault((row.kernel, row.config, row.target), []).append(row)
    out = []
    for (kernel, config, target), group in sorted(groups.items()):
        ok = [r for r in group if not r.error]
        out.append({
            "kernel": kernel, "config": config, "target": target, "cases": len(group),
            "errors": len(group) - len(ok),
            "registers": max((r.registers for r in ok), default=0),
            "spill_bytes": max((r.spill_bytes for r in ok), default=0),
            "shared_kb": round(max((r.shared for r in ok), default=0) / 1024, 1),
            "wgmma": "-" if target != "sm_90" else
                     ("all" if all(r.wgmma for r in ok) else
                      "some" if any(r.wgmma for r in ok) else "no"),
            "tma": "yes" if any(r.tma for r in ok) else "no",
            "seconds": round(sum(r.seconds for r in group), 1),
        })
    return out


def table(rows: Sequence[Row], per_case: bool = False):
    """A rich table of the gate (summary lines, or every compile with ``per_case``)."""
    from rich.table import Table
    t = Table(title="compile gate: registers / spills / shared memory per program")
    if per_case:
        for col in ("kernel", "config", "target", "case", "regs", "spill B", "smem KB",
                    "wgmma", "TMA"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(r.kernel, r.config, r.target, r.case,
                      "ERR" if r.error else str(r.registers), str(r.spill_bytes),
                      f"{r.shared / 1024:.1f}", "yes" if r.wgmma else "no",
                      "yes" if r.tma else "no")
        return t
    for col in ("kernel", "config", "target", "cases", "regs", "spill B", "smem KB",
                "wgmma", "TMA"):
        t.add_column(col, overflow="fold")
    for s in summary(rows):
        t.add_row(s["kernel"], s["config"], s["target"],
                  f"{s['cases']}" + (f" ({s['errors']} ERR)" if s["errors"] else ""),
                  str(s["registers"]), str(s["spill_bytes"]), f"{s['shared_kb']:.1f}",
                  s["wgmma"], s["tma"])
    return t


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnkata.compilegate")
    parser.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES))
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    shard, shards = (int(x) for x in args.shard.split("/"))
    if args.child:
        if os.environ.get("TRITON_INTERPRET") == "1":
            raise SystemExit("the compile gate's child must start without TRITON_INTERPRET")
        print(json.dumps(_child(args.modules, targets, shard, shards)))
        return 0
    result = run_gate(args.modules, targets, shard, shards)
    from rich.console import Console
    Console().print(table(result.rows))
    for p in result.problems():
        print(p)
    return 1 if result.problems() else 0


if __name__ == "__main__":
    raise SystemExit(main())
