"""The performance targets of the reference kernels, as measured claims with their environment.

Four targets (issue 12; set for an H100 or H200 SXM at bf16, d = 128, N = 4096):

* ``fwd`` -- the forward, not causal, at least as fast as SDPA's flash backend (moonshot:
  at least 0.8x the cuDNN backend), with its speed against every SDPA backend and its
  share of the device's dense bf16 peak;
* ``fwd-causal`` -- the causal forward at 350 TFLOP/s or more (and the same comparisons);
* ``fwdbwd`` -- forward + backward at least 0.75x SDPA's flash backend forward + backward;
* ``decode`` -- paged decode reading K/V at 70 % or more of the HBM peak at 4k tokens and
  more (moonshot 85 %), against SDPA on the same K/V laid out densely (a *dense upper
  bound, no paging*: its gather is outside the timed region) and against a gather + SDPA
  (gather timed).

Each target is judged on the rows of one run (plain arithmetic on them: the tests drive
it with fake timings).  A target whose rows are missing, failed or were skipped stays
*unmeasured*, with the reason; a measured one becomes a ``measured`` claim carrying the
device, its clocks, driver, CUDA, torch, triton and which flash implementation SDPA uses.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from .cases import SDPA_NAMES
from .timing import spread, spread_warning

SDPA = tuple(SDPA_NAMES.values())
TARGET_DEVICES = ("H100 SXM", "H200 SXM")   # the peaks the targets were set for
TARGET_ENV_KEYS = ("clocks", "sdpa")          # beyond GPU_ENV_KEYS, a target claim pins these


@dataclass(frozen=True)
class Target:
    id: str
    title: str
    kind: str
    causal: bool
    metric: str               # "x <baseline>", "tflops" or "pct_hbm"
    goal: float
    moonshot: tuple[str, float] | None = None   # (metric, goal)
    source: str = "dao-2023"
    dtype: str = "bf16"
    d: int = 128
    N: int = 4096              # decode: the smallest N that counts (every N >= it is judged)

    def goal_text(self, metric: str | None = None, goal: float | None = None) -> str:
        metric, goal = metric or self.metric, self.goal if goal is None else goal
        if metric.startswith("x "):
            return f">= {goal:g}x {metric[2:]}"
        if metric == "tflops":
            return f">= {goal:g} TFLOP/s"
        return f">= {goal:g}% of HBM peak"


TARGETS = (
    Target("fwd", "forward vs SDPA", "flash_fwd", False, "x sdpa_flash", 1.0,
           moonshot=("x sdpa_cudnn", 0.8)),
    Target("fwd-causal", "causal forward", "flash_fwd", True, "tflops", 350.0),
    Target("fwdbwd", "fwd+bwd vs SDPA", "flash_fwdbwd", False, "x sdpa_flash", 0.75),
    Target("decode", "paged decode", "paged_decode", False, "pct_hbm", 70.0,
           moonshot=("pct_hbm", 85.0), source="kwon-2023-paged"),
)


def _matches(row: dict, t: Target) -> bool:
    shape = row["shape"]
    if row["kind"] != t.kind or row["dtype"] != t.dtype or shape["d"] != t.d:
        return False
    if t.kind == "paged_decode":
        return shape["N"] >= t.N
    return shape["N"] == t.N and bool(shape["causal"]) == t.causal


def _key(row: dict) -> tuple:
    s = row["shape"]
    return (s["B"], s["H_q"], s["H_kv"], s["N"], s["d"], bool(s["causal"]))


def _value(row: dict, metric: str, group: dict[str, dict]) -> float | None:
    if metric.startswith("x "):
        other = group.get(metric[2:])
        if other is None or other["status"] != "ok" or row["status"] != "ok":
            return None
        return other["ms"]["median_ms"] / row["ms"]["median_ms"]
    if row["status"] != "ok":
        return None
    if metric == "tflops":
        return row.get("tflops")
    return row.get("pct_peak")  # decode rows: % of the HBM peak (None: unknown peak)


def _why_not(row: dict | None, name: str) -> str:
    if row is None:
        return f"no {name} row at this shape"
    return f"{name} {row['status']}: {row.get('message', '')[:120]}".rstrip(": ")


def _versus(row: dict, group: dict[str, dict], names: tuple[str, ...]) -> dict[str, Any]:
    """``{baseline: speed-up of the reference over it}`` or why there is none."""
    out: dict[str, Any] = {}
    for name in names:
        other = group.get(name)
        if other is None:
            continue
        if other["status"] == "ok" and row["status"] == "ok":
            out[name] = other["ms"]["median_ms"] / row["ms"]["median_ms"]
        else:
            out[name] = f"{other['status']}: {other.get('message', '')[:100]}".rstrip(": ")
    return out


def unmeasured(why: str) -> list[dict]:
    """Every target, unmeasured, and why (a run without a GPU, or without these shapes)."""
    return [{"id": t.id, "title": t.title, "goal": t.goal_text(), "verdict": "unmeasured", "why": why,
             "shape": f"{t.dtype}, d={t.d}, N{'>=' if t.kind == 'paged_decode' else '='}{t.N}"}
            for t in TARGETS]


def evaluate(rows: list[dict], env: dict) -> list[dict]:
    """Each target judged on this run's rows (the reference kernels' rows and their baselines)."""
    peak = env.get("peak")
    peak_name = peak.get("name") if isinstance(peak, dict) else None
    out = []
    for t in TARGETS:
        groups: dict[tuple, dict[str, dict]] = {}
        for row in rows:
            if _matches(row, t):
                groups.setdefault(_key(row), {})[row["candidate"]] = row
        result: dict[str, Any] = {"id": t.id, "title": t.title, "goal": t.goal_text(), "source": t.source,
                                  "shape": f"{t.dtype}, d={t.d}, N{'>=' if t.kind == 'paged_decode' else '='}{t.N}"
                                           + ("" if t.kind == "paged_decode" else
                                              f", {'causal' if t.causal else 'not causal'}")}
        if t.moonshot:
            result["moonshot"] = t.goal_text(*t.moonshot)
        judged = []
        for key, group in sorted(groups.items(), key=lambda kv: kv[0][3]):
            ref = group.get("reference")
            value = _value(ref, t.metric, group) if ref else None
            if value is None:
                base = t.metric[2:] if t.metric.startswith("x ") else None
                why = (_why_not(ref, "reference") if ref is None or ref["status"] != "ok"
                       else _why_not(group.get(base), base) if base
                       else "unknown peak: this device is not in the peak table")
                judged.append((key, group, None, why))
            else:
                judged.append((key, group, value, ""))
        if not judged:
            result.update(verdict="unmeasured", why=f"no {t.kind} rows at {result['shape']} in this run")
            out.append(result)
            continue
        measured = [j for j in judged if j[2] is not None]
        if not measured:
            result.update(verdict="unmeasured", why=judged[0][3])
            out.append(result)
            continue
        key, group, value, _ = min(measured, key=lambda j: j[2])  # the worst shape that counts
        ref = group["reference"]
        result.update(value=value, unit=_unit(t.metric), verdict="met" if value >= t.goal else "NOT met",
                      shape=_shape_text(t, ref), tflops=ref.get("tflops"), gbps=ref.get("gbps"),
                      pct_peak=ref.get("pct_peak"), peak_basis=ref.get("peak_basis"),
                      timing={name: r["ms"] for name, r in group.items() if r["status"] == "ok"},
                      versus=_versus(ref, group, SDPA + (("sdpa_gather",) if t.kind == "paged_decode" else ())),
                      shapes_judged=len(measured))
        if len(judged) > len(measured):
            result["not_judged"] = [f"N={k[3]}: {why}" for k, _, v, why in judged if v is None]
        if t.moonshot:
            mvalue = _value(ref, t.moonshot[0], group)
            result["moonshot_value"] = mvalue
            result["moonshot_verdict"] = ("unmeasured" if mvalue is None
                                          else "met" if mvalue >= t.moonshot[1] else "not met")
        if t.kind == "paged_decode":
            result["baseline_note"] = ("sdpa_* rows: dense upper bound, no paging (K/V contiguous, their gather "
                                       "excluded from the timed region); sdpa_gather: the gather timed")
        warnings = []
        for name, r in group.items():
            if r["status"] == "ok" and (name == "reference" or t.metric == f"x {name}"
                                        or (t.moonshot and t.moonshot[0] == f"x {name}")):
                w = spread_warning(r["ms"])
                if w:
                    warnings.append(f"{name}: {w}")
        if peak_name not in TARGET_DEVICES:
            warnings.append(f"the targets are set for an H100/H200 SXM; this device is "
                            f"{env.get('gpu')} ({peak_name or 'unknown peak'})")
        if isinstance(peak, dict) and peak.get("uncertain"):
            warnings.append(f"peak uncertain: {peak['uncertain']}")
        result["warnings"] = warnings
        result["spread"] = {name: round(spread(r["ms"]["p20_ms"], r["ms"]["p80_ms"]), 4)
                            for name, r in group.items() if r["status"] == "ok"}
        out.append(result)
    return out


def _unit(metric: str) -> str:
    return metric if metric.startswith("x ") else {"tflops": "TFLOP/s", "pct_hbm": "% of HBM peak"}[metric]


def _shape_text(t: Target, row: dict) -> str:
    s = row["shape"]
    if t.kind == "paged_decode":
        return (f"{t.dtype}, d={s['d']}, S={s['B']} sequences of N={s['N']}, H={s['H_q']}/{s['H_kv']}, "
                f"page {s['page_size']}")
    return f"{t.dtype}, d={s['d']}, N={s['N']}, B={s['B']}, H={s['H_q']}, {'causal' if s['causal'] else 'not causal'}"


def figure(result: dict) -> str:
    """The measured figure of a target, in words (or why it is unmeasured)."""
    if result.get("verdict") == "unmeasured" or result.get("value") is None:
        return f"unmeasured: {result.get('why', '')}"
    unit = result["unit"]
    head = (f"{result['value']:.2f}{unit}" if unit.startswith("x ") else
            f"{result['value']:.0f} {unit}" if unit == "TFLOP/s" else f"{result['value']:.1f}{unit}")
    parts = [head]
    if result.get("gbps"):
        parts.append(f"{result['gbps']:.0f} GB/s")
    elif result.get("tflops") and unit != "TFLOP/s":
        parts.append(f"{result['tflops']:.0f} TFLOP/s")
    if result.get("pct_peak") is not None and unit != "% of HBM peak":
        parts.append(f"{result['pct_peak']:.0f}% of peak")
    vs = []
    for name, x in result.get("versus", {}).items():
        short = name.replace("sdpa_", "")
        vs.append(f"{x:.2f}x {short}" if isinstance(x, float) else f"{short} {x.split(':')[0]}")
    if vs:
        parts.append("vs SDPA: " + ", ".join(vs))
    if result.get("moonshot"):
        m = result.get("moonshot_value")
        shown = "" if not isinstance(m, float) else f" ({m:.1f}%)" if "%" in result["moonshot"] else f" ({m:.2f}x)"
        parts.append(f"moonshot {result['moonshot']}: {result['moonshot_verdict']}{shown}")
    return "; ".join(parts)


def target_claims(results: list[dict], env: dict) -> list[Any]:
    """A measured claim per measured target, with the run's environment (refused without it).

    Ids are ``bench-goal-<target>``: never ``-target-``, which marks a claim about the
    learner's code (it would then join only that learner's ladder)."""
    from .results import MeasuredClaimRefused, claim_environment, measured_claim

    claims = []
    for r in results:
        if r.get("value") is None:
            continue
        missing = [k for k in TARGET_ENV_KEYS if k not in env]
        if missing:
            raise MeasuredClaimRefused(f"target {r['id']!r}: the environment lacks {missing}: refused")
        text = (f"reference {r['title']} ({r['shape']}) on {env.get('gpu')}: {figure(r)}; "
                f"target {r['goal']}: {r['verdict']}")
        if r.get("warnings"):
            text += " [" + "; ".join(r["warnings"]) + "]"
        cenv = claim_environment(env, "bf16", r["shape"])
        claims.append(measured_claim(f"bench-goal-{r['id']}", text, r["source"], cenv,
                                     evidence=[f"attnkata bench: reference vs SDPA at {r['shape']}"],
                                     not_claimed=("one run on this device, driver, clocks and these versions; "
                                                  "other shapes, dtypes and devices unmeasured; no end-to-end "
                                                  "model speed")))
    return claims


# -- for a person ------------------------------------------------------------------------

def environment_lines(env: dict) -> list[str]:
    """The environment a target table stands on, one fact per line (wrapped by the caller)."""
    peak = env.get("peak")
    if isinstance(peak, dict):
        peak_text = (f"{peak.get('name')}: dense bf16 {peak.get('tflops', {}).get('bf16', '?')} TFLOP/s, "
                     f"HBM {peak.get('hbm_gbps')} GB/s ({peak.get('source')})"
                     + (f"; uncertain: {peak['uncertain']}" if peak.get("uncertain") else ""))
    else:
        peak_text = "unknown peak"
    clocks = env.get("clocks")
    sampled = env.get("clocks_sampled")
    sdpa = env.get("sdpa") if isinstance(env.get("sdpa"), dict) else {}
    runs = sdpa.get("runs")
    runs_text = (", ".join(f"{b.lower().replace('_attention', '')} {v}" for b, v in runs.items())
                 if isinstance(runs, dict) else str(runs or "not recorded"))
    lines = [f"device: {env.get('gpu')} ({env.get('form_factor')}, sm {env.get('capability')}, "
             f"{env.get('sm_count')} SMs, {env.get('memory_gib')} GiB, L2 {env.get('l2_mib')} MiB)",
             f"peak: {peak_text}",
             f"clocks: {_kv(clocks)}" + (f"; sampled {_kv(sampled)}" if sampled else ""),
             f"driver {env.get('driver')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
             f"torch {env.get('torch')}, triton {env.get('triton')}",
             f"SDPA flash implementation: {sdpa.get('flash_impl', 'not recorded')}; flash enabled "
             f"{sdpa.get('flash_sdp_enabled', '?')}, cuDNN available {sdpa.get('cudnn_available', '?')}; "
             f"pinned backends: {runs_text}",
             f"timing: {env.get('timer')}, L2 {env.get('l2')}; {env.get('short_calls', '')}".rstrip("; ")]
    return lines


def _kv(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items() if k != "source") + (
            f" (from {value['source']})" if "source" in value else "") if value else "not recorded"
    return str(value or "not recorded")


def targets_table(data: dict, width: int = 80) -> Any:
    """The targets as a table for a person (wrapped to ``width``), then the environment."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    env = data.get("environment", {})
    results = data.get("targets") or []
    table = Table(title=f"attnkata bench targets ({env.get('gpu', '?')}; reference kernels)",
                  title_justify="left", width=width, show_lines=True)
    table.add_column("target", overflow="fold", min_width=15)
    table.add_column("goal", overflow="fold", min_width=12, max_width=16)
    table.add_column("measured", overflow="fold", ratio=1)
    table.add_column("verdict", overflow="fold", min_width=10)
    styles = {"met": "green", "NOT met": "bold red", "unmeasured": "yellow"}
    for r in results:
        goal = r["goal"] + (f" (moonshot {r['moonshot']})" if r.get("moonshot") else "")
        measured = figure(r) + (f" at {r['shape']}" if r.get("value") is not None else "")
        if r.get("warnings"):
            measured += "\n⚠ " + "\n⚠ ".join(r["warnings"])
        table.add_row(r["title"], goal, measured, Text(r["verdict"], style=styles.get(r["verdict"], "")))
    env_text = Text()
    if data.get("mode") == "cuda":
        for line in environment_lines(env):
            env_text.append(textwrap.fill(line, width, subsequent_indent="  ") + "\n", style="dim")
    return Group(table, env_text)
