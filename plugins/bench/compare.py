"""``attnkata bench --compare A.json B.json``: two saved bench results side by side, or a refusal.

A benchmark figure means something only with its environment pinned, so two results
are compared only when every pinned field matches: the mode (GPU or CPU bench), the
device, driver, CUDA, torch, triton (and numpy on the CPU), the dtype, the shapes,
causal or not, the timing method, and the clocks and SDPA's flash implementation when
either result records them.
Otherwise the fields that differ (or are missing) are printed and the exit status is
1.  ``--allow FIELD`` lets one named field differ; each allowance is printed, and the
comparison's measured claim carries both environments.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = ("mode", "device", "driver", "cuda", "torch", "triton", "numpy", "dtype", "shapes",
          "causal", "timing", "clocks", "sdpa")
REQUIRED = {  # fields that must be recorded (in both results) for a comparison in this mode
    "cuda": ("mode", "device", "driver", "cuda", "torch", "triton", "dtype", "shapes", "causal", "timing"),
    "cpu": ("mode", "device", "numpy", "dtype", "shapes", "timing"),
}
TIMING_KEYS = ("timer", "l2", "warmup_ms", "rep_ms", "min_reps", "max_reps", "target_timer", "short_calls")
CLOCK_KEYS = ("clocks", "sm_clock_mhz", "mem_clock_mhz", "gpu_clocks", "clock_mhz", "locked_clocks")


class Unreadable(ValueError):
    """A file that is not a saved bench result."""


def load(path: str | Path) -> dict:
    from .results import BENCH_SCHEMA

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Unreadable(f"{path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != BENCH_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise Unreadable(f"{path}: not a saved bench result (schema {found!r}, expected {BENCH_SCHEMA!r})")
    if not isinstance(data.get("environment"), dict):
        raise Unreadable(f"{path}: records no environment")
    return data


def _cpu_rows(data: dict) -> list[dict]:
    cpu = data.get("cpu")
    return [r for r in cpu.get("rows", []) if isinstance(r, dict)] if isinstance(cpu, dict) else []


def pinned(data: dict) -> dict[str, Any]:
    """The pinned fields of one result (None: not recorded)."""
    env = data["environment"]
    gpu = env.get("gpu")
    on_gpu = gpu not in (None, "", "none")
    rows = [r for r in data.get("rows", []) if isinstance(r, dict) and isinstance(r.get("shape"), dict)]
    out: dict[str, Any] = {"mode": data.get("mode")}
    out["device"] = (f"{gpu} ({env.get('form_factor', '?')})" if on_gpu else env.get("cpu"))
    for key in ("driver", "cuda", "torch", "triton", "numpy", "dtype"):
        value = env.get(key)
        out[key] = None if value in (None, "", "none", "unknown") else value
    if rows:
        out["shapes"] = sorted({json.dumps({k: v for k, v in r["shape"].items() if k != "causal"},
                                           sort_keys=True) for r in rows})
        out["causal"] = sorted({bool(r["shape"].get("causal")) for r in rows})
    else:
        cpu = _cpu_rows(data)
        out["shapes"] = (sorted({f"N={r.get('n')} d={r.get('d')} block={r.get('block_q')}x{r.get('block_k')}"
                                 for r in cpu}) if cpu else env.get("shapes"))
        out["causal"] = None
    timing = {k: env[k] for k in TIMING_KEYS if k in env}
    cpu_env = (data.get("cpu") or {}).get("environment", {}) if isinstance(data.get("cpu"), dict) else {}
    if isinstance(cpu_env, dict) and cpu_env.get("timer"):
        timing["cpu_timer"] = cpu_env["timer"]
    out["timing"] = timing or None
    clocks = {k: env[k] for k in CLOCK_KEYS if env.get(k) not in (None, "")}
    out["clocks"] = clocks or None
    sdpa = env.get("sdpa")  # which flash implementation SDPA runs, and which backends run at all
    out["sdpa"] = ({k: sdpa[k] for k in ("flash_impl", "cudnn_version", "runs") if k in sdpa}
                   if isinstance(sdpa, dict) else None)
    return out


@dataclass(frozen=True)
class FieldCheck:
    field: str
    a: Any
    b: Any
    verdict: str  # "same", "differs", "missing", "n/a"
    allowed: bool = False

    @property
    def blocks(self) -> bool:
        return self.verdict in ("differs", "missing") and not self.allowed


def check_fields(a: dict, b: dict, allow: tuple[str, ...] = ()) -> list[FieldCheck]:
    pa, pb = pinned(a), pinned(b)
    needed = set(REQUIRED.get(pa["mode"], FIELDS)) | set(REQUIRED.get(pb["mode"], FIELDS))
    out = []
    for f in FIELDS:
        va, vb = pa[f], pb[f]
        if va is None and vb is None:
            verdict = "missing" if f in needed else "n/a"
        elif va is None or vb is None:
            verdict = "missing"
        else:
            verdict = "same" if va == vb else "differs"
        out.append(FieldCheck(f, va, vb, verdict, allowed=f in allow and verdict in ("differs", "missing")))
    return out


def show(value: Any) -> str:
    """A pinned value for a person (whole: the table wraps it, never crops it)."""
    if value is None:
        return "not recorded"
    if isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith("{"):
        shapes = [json.loads(v) for v in value]
        text = "; ".join(" ".join(f"{k}={v}" for k, v in s.items()) for s in shapes[:3])
        return text + (f"; … {len(shapes)} shapes in all" if len(shapes) > 3 else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(map(str, value))
    return str(value)


# -- figures ---------------------------------------------------------------------

def gpu_pairs(a: dict, b: dict) -> list[tuple[str, float, float]]:
    """(label, A median ms, B median ms) for every case timed in both."""
    def key(r: dict) -> tuple:
        s = r["shape"]
        return (r["kind"], r["dtype"], r["candidate"], s.get("B"), s.get("H_q"), s.get("H_kv"),
                s.get("N"), s.get("d"), bool(s.get("causal")))

    from .results import OK

    mine = {key(r): r for r in a.get("rows", []) if r.get("status") == OK}
    out = []
    for r in b.get("rows", []):
        other = mine.get(key(r)) if r.get("status") == OK else None
        if other is not None:
            k = key(r)
            label = f"{k[0]} {k[1]} {k[2]} B={k[3]} H={k[4]}/{k[5]} N={k[6]} d={k[7]}" + (" causal" if k[8] else "")
            out.append((label, other["ms"]["median_ms"], r["ms"]["median_ms"]))
    return out


def cpu_pairs(a: dict, b: dict) -> list[tuple[str, float, float]]:
    from .results import OK

    mine = {r.get("n"): r for r in _cpu_rows(a) if r.get("status", OK) == OK and "tiled_median_s" in r}
    out = []
    for r in _cpu_rows(b):
        other = mine.get(r.get("n"))
        if other is not None and r.get("status", OK) == OK and "tiled_median_s" in r:
            out.append((f"tiled_attention N={r['n']} d={r.get('d')}", other["tiled_median_s"] * 1e3,
                        r["tiled_median_s"] * 1e3))
    return out


def claim_block(a: dict, b: dict, name_a: str, name_b: str, pairs: list, allowed: list[FieldCheck],
                width: int) -> list[str]:
    """The measured claims of both results, each with both environments, and the comparison's own."""
    from .results import claim_environment, geomean

    def env_line(who: str, env: Any) -> str:
        text = ", ".join(f"{k}={v}" for k, v in (env or {}).items()) or "not recorded"
        return textwrap.fill(f"{who} environment: {text}", width, initial_indent="    ",
                             subsequent_indent="      ")

    lines = []
    speed = geomean(ma / mb for _, ma, mb in pairs)
    if speed is not None:
        env_a = claim_environment(a["environment"], str(a["environment"].get("dtype")),
                                  str(a["environment"].get("shapes")))
        env_b = claim_environment(b["environment"], str(b["environment"].get("dtype")),
                                  str(b["environment"].get("shapes")))
        over = "; ".join(f"{c.field} differs, allowed" for c in allowed)
        text = (f"B ({name_b}) runs at {speed:.3g}x the speed of A ({name_a}), geometric mean over "
                f"{len(pairs)} case(s) timed in both" + (f" ({over})" if over else ""))
        lines += [textwrap.fill(f"- [measured] bench-compare: {text}", width, subsequent_indent="    "),
                  env_line("A", env_a), env_line("B", env_b),
                  textwrap.fill("    not claimed: only these two runs, on the environments above; "
                                "no other device, version, shape or dtype", width, subsequent_indent="      ")]
    claims_b = {c.get("id"): c for c in b.get("claims", []) if isinstance(c, dict)}
    for ca in (c for c in a.get("claims", []) if isinstance(c, dict)):
        cb = claims_b.get(ca.get("id"))
        if cb is None or ca.get("scope") != "measured":
            continue
        lines.append(textwrap.fill(f"- [measured] {ca['id']} (source {ca.get('source')})", width,
                                   subsequent_indent="    "))
        for who, c in (("A", ca), ("B", cb)):
            lines.append(textwrap.fill(f"{who}: {c.get('text')}", width, initial_indent="    ",
                                       subsequent_indent="      "))
            lines.append(env_line(who, c.get("environment")))
        if ca.get("not_claimed"):
            lines.append(textwrap.fill(f"not claimed: {ca['not_claimed']}", width, initial_indent="    ",
                                       subsequent_indent="      "))
    return lines


# -- the command -----------------------------------------------------------------

def fields_table(checks: list[FieldCheck], width: int) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Pinned fields", title_justify="left", width=width)
    for col in ("field", "A", "B", "verdict"):
        table.add_column(col, overflow="fold")
    styles = {"same": "green", "n/a": "dim", "differs": "bold red", "missing": "bold red"}
    for c in checks:
        verdict = f"{c.verdict}, allowed" if c.allowed else c.verdict
        table.add_row(c.field, show(c.a), show(c.b),
                      Text(verdict, style="yellow" if c.allowed else styles[c.verdict]))
    return table


def figures_table(pairs: list, unit: str, width: int) -> Any:
    from rich.table import Table

    table = Table(title=f"Cases timed in both (median, {unit})", title_justify="left", width=width)
    for col, justify in (("case", "left"), ("A", "right"), ("B", "right"), ("A/B", "right")):
        table.add_column(col, overflow="fold", justify=justify)
    for label, ma, mb in pairs:
        ratio = ma / mb if mb and math.isfinite(ma / mb) else float("nan")
        table.add_row(label, f"{ma:.4g}", f"{mb:.4g}", f"{ratio:.3g}x")
    return table


def run_compare(path_a: str, path_b: str, allow: tuple[str, ...] = (), *, width: int = 80,
                color: bool = False) -> tuple[int, str]:
    """(exit status, text): 0 compared, 1 refused (pinned fields differ), 2 unreadable input."""
    from rich.console import Group

    from attnkata.render import render

    try:
        a, b = load(path_a), load(path_b)
    except Unreadable as exc:
        return 2, textwrap.fill(f"attnkata bench --compare: {exc}", width) + "\n"
    checks = check_fields(a, b, allow)
    lines = [f"A: {path_a} ({a.get('mode')}, {str(a.get('created', '?'))[:16]})",
             f"B: {path_b} ({b.get('mode')}, {str(b.get('created', '?'))[:16]})"]
    head = "\n".join(textwrap.fill(x, width, subsequent_indent="   ") for x in lines) + "\n"
    text = head + render(fields_table(checks, width), color=color, width=width)
    allowed = [c for c in checks if c.allowed]
    for name in allow:
        c = next(c for c in checks if c.field == name)
        say = (f"⚠ --allow {name}: {name} {c.verdict} (A: {show(c.a)}; B: {show(c.b)}); compared anyway, "
               f"so the figures below are not like for like in {name}" if c.allowed
               else f"--allow {name}: {name} "
               f"{'matches' if c.verdict == 'same' else 'is recorded in neither'}; nothing overridden")
        text += textwrap.fill(say, width, subsequent_indent="    ") + "\n"
    blocking = [c for c in checks if c.blocks]
    if blocking:
        names = ", ".join(f"{c.field} ({c.verdict})" for c in blocking)
        text += textwrap.fill(
            f"Refused: {len(blocking)} pinned field(s) differ or are missing: {names}. A benchmark "
            f"figure holds only in its environment: rerun both in the same one, or pass --allow FIELD "
            f"(one flag per field) to compare anyway.", width) + "\n"
        return 1, text
    pairs = gpu_pairs(a, b) if a.get("mode") == "cuda" else cpu_pairs(a, b)
    if not pairs:
        text += textwrap.fill("Nothing to compare: no case was timed (status ok) in both results.", width) + "\n"
        return 1, text
    parts: list[Any] = [figures_table(pairs, "ms", width)]
    text += render(Group(*parts), color=color, width=width)
    claims = claim_block(a, b, Path(path_a).name, Path(path_b).name, pairs, allowed, width)
    text += "Measured claims, each with both environments:\n" + "\n".join(claims) + "\n"
    return 0, text


def main(args: Any) -> int:
    from attnkata.render import use_color

    width = min(getattr(args, "width", 80) or 80, shutil.get_terminal_size((80, 24)).columns)
    code, text = run_compare(args.compare[0], args.compare[1], tuple(args.allow or ()), width=width,
                             color=use_color(sys.stdout.isatty()))
    (sys.stderr if code == 2 else sys.stdout).write(text)
    return code
