"""``attnkata doctor``: installed versions against the tested ranges, and what each level needs.

Version drift, Triton's above all, is how kata courses break: each row says what
was found, the range we test, and in plain words what to install or pin.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .manager import Registry
from .runner import missing_requirement

#: (distribution, tested range, versions CI and maintainers ran, what needs it, required?)
TESTED = (
    ("numpy", ">=1.26,<3", "2.4", "every level", True),
    ("torch", ">=2.4,<2.15", "2.13.0 (CPU), 2.14.1", "levels 5-7", True),
    ("triton", ">=3.1,<3.10", "3.8, 3.9", "levels 5-6 (Triton katas)", False),
    ("pytest", ">=8.0,<10", "9.x", "running katas", True),
    ("pluggy", ">=1.5,<2", "1.6, 1.7", "plugins and packs", True),
    ("hypothesis", ">=6.100,<7", "6.1xx", "hidden tests", True),
    ("rich", ">=13.7,<16", "15.0", "the ladder report", True),
    ("pytest-xdist", ">=3.5", "3.8", "pytest -n auto (optional)", False),
    ("pytest-benchmark", ">=4.0,<6", "5.x", "attnkata bench on CPU (optional)", False),
    ("matplotlib", ">=3.7", "3.x", "bench plots (optional)", False),
)
PYTHON_RANGE = ">=3.10,<3.14"


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def levels_needing(registry: Registry | None, requirement: str, default: str) -> str:
    """"levels 5-7": the levels with a kata that ``requires`` it (``default`` without a registry)."""
    if registry is None:
        return default
    found = sorted({k.level for k in registry.katas if requirement in k.requires})
    if not found:
        return "no kata here"
    runs, start = [], found[0]
    for prev, here in zip(found, found[1:] + [None]):
        if here is None or here != prev + 1:  # a run of levels ends at prev
            runs.append(str(start) if start == prev else f"{start}-{prev}")
            start = here
    return ("level " if len(found) == 1 else "levels ") + ", ".join(runs)


def package_rows(registry: Registry | None = None) -> list[dict[str, Any]]:
    py = platform.python_version()
    rows = [{"name": "python", "found": py, "ok": Version(py) in SpecifierSet(PYTHON_RANGE),
             "needed_for": "everything", "fix": f"use Python {PYTHON_RANGE} (tested: 3.11)"}]
    for dist, spec, tested, needed_for, required in TESTED:
        if dist in ("torch", "triton"):  # from the katas' own requires, as the Levels table
            needed_for = levels_needing(registry, dist, needed_for)
        found = _installed(dist)
        if found is None:
            fix = f"pip install '{dist}{spec}'" + ("" if required else "   (optional)")
            rows.append({"name": dist, "found": "not installed", "ok": not required,
                         "needed_for": needed_for, "fix": fix})
            continue
        try:
            ok = Version(found) in SpecifierSet(spec)
        except InvalidVersion:
            ok = False
        fix = "" if ok else (f"found {found}, tested {spec} (we run {tested}): "
                             f"pip install '{dist}{spec}'")
        rows.append({"name": dist, "found": found, "ok": ok, "needed_for": needed_for, "fix": fix})
    return rows


def machine_rows(registry: Registry | None = None) -> list[dict[str, Any]]:
    rows = []
    try:
        import torch
        cuda = torch.cuda.is_available()
        name = torch.cuda.get_device_name(0) if cuda else "none"
        rows.append({"name": "CUDA GPU", "found": name, "ok": True,
                     "needed_for": "compiled Triton kernels, GPU benchmarks",
                     "fix": "" if cuda else "optional: without a GPU Triton katas run in the interpreter"})
        import torch.distributed as dist
        gloo = dist.is_available() and dist.is_gloo_available()
        rows.append({"name": "torch.distributed gloo", "found": "yes" if gloo else "no", "ok": gloo,
                     "needed_for": "level 7 (ring attention)",
                     "fix": "" if gloo else "install a torch build with distributed support (the PyPI wheels have it)"})
    except Exception as exc:  # torch missing or broken: the package rows already say so
        rows.append({"name": "torch import", "found": f"{type(exc).__name__}: {exc}", "ok": False,
                     "needed_for": levels_needing(registry, "torch", "levels 5-7"),
                     "fix": "pip install 'torch>=2.4,<2.15'"})
    mode = os.environ.get("TRITON_INTERPRET")
    rows.append({"name": "Triton mode", "found": "interpreter" if mode == "1" else "compiled",
                 "ok": True, "needed_for": "levels 5-6",
                 "fix": "" if mode == "1" else "on a machine without a GPU set TRITON_INTERPRET=1"})
    rows.append(triton_smoke())
    from .remote import sandbox_rows

    rows.extend(sandbox_rows())
    return rows


def triton_smoke() -> dict[str, Any]:
    """Run a 16-element kernel: catches interpreter regressions, not just import errors."""
    row = {"name": "Triton smoke kernel", "needed_for": "levels 5-6"}
    try:
        import torch
        import triton
        import triton.language as tl

        @triton.jit
        def _double(X, Y, N: tl.constexpr):
            offs = tl.arange(0, N)
            tl.store(Y + offs, tl.load(X + offs) * 2)

        device = "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"
        x = torch.arange(16, dtype=torch.float32, device=device)
        y = torch.empty_like(x)
        _double[(1,)](x, y, 16)
        ok = bool(torch.equal(y, x * 2))
        return {**row, "found": "runs" if ok else "wrong result", "ok": ok,
                "fix": "" if ok else "this Triton build miscomputes: pip install 'triton>=3.1,<3.10'"}
    except Exception as exc:  # any failure here is the finding
        return {**row, "found": f"{type(exc).__name__}: {str(exc)[:120]}", "ok": False,
                "fix": "pip install 'triton>=3.1,<3.10' (Linux; CPU machines need TRITON_INTERPRET=1)"}


ROW_FIELDS = ("name", "found", "needed_for", "fix")


def plugin_rows(answer: Any) -> list[dict[str, Any]]:
    """A plugin's doctor rows as plain rows (text fields, ``ok`` a bool); ``TypeError`` if not rows."""
    rows = [answer] if isinstance(answer, dict) else list(answer or [])
    out = []
    for row in rows:
        if not isinstance(row, dict) or "name" not in row:
            raise TypeError(f"attnkata_doctor_checks answered {type(row).__name__}, "
                            f"not a row (a dict with name, ok, found, needed_for, fix)")
        out.append({**{key: str(row.get(key, "")) for key in ROW_FIELDS}, "ok": bool(row.get("ok"))})
    return out


def _missing(kata: Any) -> str:
    """What this machine lacks for ``kata`` ("" when nothing); odd requirements say so."""
    try:
        return missing_requirement(kata.requires) or ""
    except Exception as exc:  # a plugin's kata with requirements we cannot check
        return f"{kata.id}: cannot check its requirements ({type(exc).__name__}: {exc})"


def level_rows(registry: Registry) -> list[dict[str, Any]]:
    rows = []
    for level, katas in registry.by_level().items():
        needs = ["numpy"] + sorted({str(r) for k in katas for r in k.requires} - {"numpy"})
        reasons = {k.id: _missing(k) for k in katas}
        blocked = {kid: r for kid, r in reasons.items() if r}
        rows.append({"name": f"level {level} {registry.levels.get(level, '')}",
                     "found": "ready to run" if not blocked else f"{len(blocked)} kata(s) cannot run",
                     "ok": not blocked, "needed_for": ", ".join(needs),
                     "fix": "; ".join(sorted(set(blocked.values())))})
    return rows


def doctor_report(registry: Registry, extra: list[dict] | None = None,
                  problems: list | None = None) -> tuple[list[tuple[str, list[dict]]], bool]:
    """The doctor's sections and whether all is well.

    :param problems: plugin problems (default: the registry's); each becomes a row.
    """
    problems = registry.problems if problems is None else problems
    sections = [("Packages (tested ranges)", package_rows(registry)),
                ("This machine", machine_rows(registry) + (extra or [])),
                ("Levels", level_rows(registry))]
    healthy = all(r["ok"] for _, rows in sections for r in rows)
    if problems:
        sections.append(("Plugins", [{"name": p.plugin, "found": p.message, "ok": False,
                                      "needed_for": "its katas", "fix": "fix or uninstall the plugin"}
                                     for p in problems]))
        healthy = False
    return sections, healthy

