"""From timings to figures: TFLOP/s, bandwidth, % of peak, speed-ups, geometric means,
the versioned JSON envelope, the measured claims it supports, and the summary table.

Every number here is arithmetic on the rows; nothing is timed, so the tests drive it with
a fake timer and a fake device.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from rich.table import Table
from rich.text import Text

from attnkata.ladder import ClaimRow
from attnkata.state import JsonStore, jsonable, now

from .cases import BASELINES

BENCH_SCHEMA = "attnkata.bench/1"
OK = "ok"
GPU_ENV_KEYS = ("gpu", "form_factor", "driver", "cuda", "torch", "triton", "cudnn", "dtype", "shapes", "seed")
CPU_ENV_KEYS = ("cpu", "torch", "numpy", "dtype", "shapes")
SOURCES = {"flash_fwd": "dao-2023", "flash_bwd": "dao-2023", "flash_fwdbwd": "dao-2023",
           "paged_decode": "kwon-2023-paged"}
TITLES = {"flash_fwd": "flash attention forward", "flash_bwd": "flash attention backward",
          "flash_fwdbwd": "flash attention forward + backward", "paged_decode": "paged-KV decode"}
NOT_CLAIMED = ("valid only on this GPU, driver and these torch/triton versions, at these shapes and "
               "dtype; no end-to-end model or serving speed")


class MeasuredClaimRefused(ValueError):
    """A measured claim that does not pin its environment."""


def geomean(values: Iterable[float]) -> float | None:
    xs = [float(x) for x in values if x is not None and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def case_key(row: dict) -> tuple:
    shape = row["shape"]
    return (row["kind"], row["dtype"], *(shape[k] for k in ("B", "H_q", "H_kv", "N", "d", "causal")))


def add_metrics(rows: list[dict], peaks: dict[str, float | None], peak_gbps: float | None) -> None:
    """Fill TFLOP/s, GB/s, % of peak and speed-ups into timed rows, in place.

    :param peaks: dtype -> dense TFLOP/s of the device (None: unknown peak).
    """
    for row in rows:
        if row["status"] != OK:
            continue
        seconds = row["ms"]["median_ms"] * 1e-3
        row["tflops"] = row["flops"] / seconds / 1e12
        if row["kind"] == "paged_decode":
            row["gbps"] = row["bytes"] / seconds / 1e9
            row["pct_peak"] = 100 * row["gbps"] / peak_gbps if peak_gbps else None
            row["peak_basis"] = f"HBM {peak_gbps:g} GB/s" if peak_gbps else "unknown peak"
        else:
            peak = peaks.get(row["dtype"])
            row["pct_peak"] = 100 * row["tflops"] / peak if peak else None
            what = "FP32 (CUDA cores; fp32 kernels here use IEEE fp32, not TF32)" if row["dtype"] == "fp32" \
                else f"dense {row['dtype']} tensor-core"
            row["peak_basis"] = f"{what} {peak:g} TFLOP/s" if peak else "unknown peak"
    by_case: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        if row["status"] == OK:
            by_case.setdefault(case_key(row), {})[row["candidate"]] = row
    for group in by_case.values():
        for row in group.values():
            row["speedup"] = {b: group[b]["ms"]["median_ms"] / row["ms"]["median_ms"]
                              for b in BASELINES if b in group and b != row["candidate"]}


def primary(row: dict) -> float | None:
    """The figure a row is judged by: GB/s for decode (memory-bound), TFLOP/s otherwise."""
    return row.get("gbps") if row["kind"] == "paged_decode" else row.get("tflops")


def summarise(rows: list[dict]) -> list[dict]:
    """Geometric means across shapes, per (kind, dtype, candidate)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["kind"], row["dtype"], row["candidate"]), []).append(row)
    out = []
    for (kind, dtype, candidate), members in groups.items():
        ok = [r for r in members if r["status"] == OK]
        speedups = {}
        for b in BASELINES:
            vals = [r["speedup"][b] for r in ok if b in r.get("speedup", {})]
            if vals:
                speedups[b] = {"geomean": geomean(vals), "shapes": len(vals)}
        pcts = [r["pct_peak"] for r in ok if r.get("pct_peak")]
        out.append({"kind": kind, "dtype": dtype, "candidate": candidate, "impl": members[0]["impl"],
                    "shapes": len(members), "shapes_ok": len(ok),
                    "statuses": sorted({r["status"] for r in members}),
                    "unit": "GB/s" if kind == "paged_decode" else "TFLOP/s",
                    "geomean": geomean(primary(r) for r in ok),
                    "geomean_tflops": geomean(r["tflops"] for r in ok),
                    "geomean_pct_peak": geomean(pcts) if len(pcts) == len(ok) and ok else None,
                    "speedup": speedups})
    return out


# -- claims ----------------------------------------------------------------------

def measured_claim(claim_id: str, text: str, source: str, environment: dict | None, *,
                   not_claimed: str = NOT_CLAIMED, evidence: list[str] | None = None,
                   witnessed: bool = True, kata: str = "") -> ClaimRow:
    """A ``measured`` claim row; refused (:class:`MeasuredClaimRefused`) without its environment."""
    if not environment:
        raise MeasuredClaimRefused(f"claim {claim_id!r} is measured but records no environment: refused")
    keys = GPU_ENV_KEYS if environment.get("gpu", "none") != "none" else CPU_ENV_KEYS
    missing = [k for k in keys if environment.get(k) in (None, "")]
    if missing:
        raise MeasuredClaimRefused(f"claim {claim_id!r} is measured but its environment lacks {missing}: refused")
    return ClaimRow(claim_id, text, "measured", source, not_claimed, witnessed, list(evidence or []),
                    dict(environment), kata)


def claim_environment(env: dict, dtype: str, shapes: str) -> dict:
    """The pinned environment a claim carries (a compact subset of the run's)."""
    keep = ("gpu", "form_factor", "driver", "cuda", "torch", "triton", "cudnn", "cpu", "numpy", "l2",
            "seed", "target", "clocks", "clocks_sampled", "sdpa")
    cpu_only = env.get("gpu", "none") == "none"  # then gpu/cuda/cudnn "none" say nothing
    out = {k: env[k] for k in keep if k in env and not (cpu_only and env[k] == "none")}
    out.update(dtype=dtype, shapes=shapes, measured=env.get("created", now())[:10])
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "?" if x is None else f"{x:.{digits}g}"


def gpu_claims(summary: list[dict], rows: list[dict], env: dict, katas: dict[str, str]) -> list[ClaimRow]:
    """Measured claims for the target (or, without one, the reference) per kind and dtype."""
    claims = []
    for s in summary:
        if s["candidate"] not in ("target", "reference") or not s["shapes_ok"]:
            continue
        if s["candidate"] == "reference" and any(t["kind"] == s["kind"] and t["dtype"] == s["dtype"]
                                                 and t["candidate"] == "target" and t["shapes_ok"]
                                                 for t in summary):
            continue
        who = "your kernel" if s["candidate"] == "target" else "the reference kernel"
        pct = f", {_fmt(s['geomean_pct_peak'], 2)}% of peak" if s["geomean_pct_peak"] else ", unknown peak"
        vs = ", ".join(f"{v['geomean']:.2f}x {b}" for b, v in s["speedup"].items())
        plural = "s" if s["shapes_ok"] != 1 else ""
        text = (f"{TITLES[s['kind']]} ({who}, {s['dtype']}): {_fmt(s['geomean'])} {s['unit']} "
                f"geomean over {s['shapes_ok']} shape{plural}{pct}" + (f"; speed-up {vs}" if vs else ""))
        shapes = shapes_summary([r for r in rows if r["kind"] == s["kind"] and r["dtype"] == s["dtype"]])
        claims.append(measured_claim(
            f"bench-{s['kind']}-{s['candidate']}-{s['dtype']}", text, SOURCES[s["kind"]],
            claim_environment(env, s["dtype"], shapes), evidence=[f"attnkata bench: {s['impl']}"],
            kata=katas.get(s["kind"], "") if s["candidate"] == "target" else ""))
    return claims


def shapes_summary(rows: list[dict]) -> str:
    """``N 512-16384, d 64/128, causal and not`` for a group of rows."""
    if not rows:
        return ""
    Ns = sorted({r["shape"]["N"] for r in rows})
    ds = "/".join(str(d) for d in sorted({r["shape"]["d"] for r in rows}))
    causal = sorted({r["shape"]["causal"] for r in rows})
    mask = {(False,): "not causal", (True,): "causal", (False, True): "causal and not"}[tuple(causal)]
    first = rows[0]["shape"]
    if rows[0]["kind"] == "paged_decode":
        lead = f"S={first['B']} sequences, H={first['H_q']}/{first['H_kv']}, page {first['page_size']}"
    else:
        tokens = "/".join(str(t) for t in sorted({r["shape"]["B"] * r["shape"]["N"] for r in rows}))
        width = "/".join(str(w) for w in sorted({r["shape"]["H_q"] * r["shape"]["d"] for r in rows}))
        groups = "/".join(str(g) for g in sorted({r["shape"]["H_q"] // r["shape"]["H_kv"] for r in rows}))
        lead = f"B*N={tokens}, H*d={width}, H_q/H_kv={groups}"
    return f"N {Ns[0]}-{Ns[-1]}, d {ds}, {mask}, {lead}"


# -- the envelope ----------------------------------------------------------------

def envelope(mode: str, environment: dict, rows: list[dict], summary: list[dict], claims: list[ClaimRow],
             notes: list[str], message: str = "", extra: dict | None = None) -> dict:
    return jsonable({"schema": BENCH_SCHEMA, "created": environment.get("created", now()), "mode": mode,
                     "message": message, "environment": environment, "rows": rows, "summary": summary,
                     "claims": [asdict(c) for c in claims], "notes": notes, **(extra or {})})


def validate_envelope(data: Any) -> list[str]:
    """What is wrong with a bench document (empty when it follows ``attnkata.bench/1``)."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    problems = []
    if data.get("schema") != BENCH_SCHEMA:
        problems.append(f"schema is {data.get('schema')!r}, expected {BENCH_SCHEMA!r}")
    if data.get("mode") not in ("cuda", "cpu"):
        problems.append(f"mode {data.get('mode')!r} is neither 'cuda' nor 'cpu'")
    env = data.get("environment")
    if not isinstance(env, dict):
        return problems + ["no environment"]
    keys = GPU_ENV_KEYS if data.get("mode") == "cuda" else CPU_ENV_KEYS
    problems += [f"environment lacks {k!r}" for k in keys if k not in env]
    if not isinstance(data.get("rows"), list):
        return problems + ["rows is not a list"]
    for i, row in enumerate(data["rows"]):
        missing = [k for k in ("kind", "candidate", "impl", "dtype", "shape", "status") if k not in row]
        if row.get("status") == OK:
            missing += [k for k in ("ms", "flops", "tflops", "pct_peak", "speedup") if k not in row]
            missing += [f"ms.{k}" for k in ("median_ms", "p20_ms", "p80_ms", "n") if k not in row.get("ms", {})]
        if row.get("candidate", "").startswith("sdpa") and "sdpa_backend" not in row:
            missing.append("sdpa_backend")
        if missing:
            problems.append(f"row {i}: lacks {missing}")
    for i, target in enumerate(data.get("targets") or []):
        missing = [k for k in ("id", "goal", "verdict") if k not in target]
        if missing or (target.get("verdict") == "unmeasured" and not target.get("why")):
            problems.append(f"target {i}: lacks {missing or ['why']}")
    for claim in data.get("claims", []):
        if claim.get("scope") == "measured" and not claim.get("environment"):
            problems.append(f"claim {claim.get('id')!r} is measured without an environment")
    return problems


def save(data: dict, out_dir: Path, stamp: str) -> Path:
    """Write ``bench-<stamp>.json`` and ``last.json`` atomically; returns the stamped path."""
    path = Path(out_dir) / f"bench-{stamp}.json"
    for target in (path, Path(out_dir) / "last.json"):
        JsonStore(target, BENCH_SCHEMA).write(data)
    return path


def load_last(out_dir: Path) -> dict | None:
    """The last saved bench document, or None (also when it is unreadable or of another schema)."""
    path = Path(out_dir) / "last.json"
    if not path.exists():
        return None
    try:
        import json

        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == BENCH_SCHEMA else None


def claims_from(data: dict) -> tuple[list[ClaimRow], list[str]]:
    """The claims saved in a bench document; a measured one without environment is refused."""
    out, problems = [], []
    for c in data.get("claims", []):
        try:
            out.append(measured_claim(c["id"], c["text"], c["source"], c.get("environment"),
                                      not_claimed=c.get("not_claimed", ""), evidence=c.get("evidence"),
                                      witnessed=c.get("witnessed", True), kata=c.get("kata", "")))
        except (MeasuredClaimRefused, KeyError, TypeError) as exc:
            problems.append(f"bench: {exc}")
    return out, problems


# -- the table -------------------------------------------------------------------

def summary_table(data: dict) -> Table:
    """Geometric means per kind, dtype and candidate, with the speed-up against each baseline."""
    env = data["environment"]
    peak = env.get("peak")
    peak_name = peak.get("name") if isinstance(peak, dict) else "unknown peak"
    table = Table(title=f"attnkata bench — {env.get('gpu')} ({env.get('form_factor')}, {peak_name}); "
                        f"geometric means across shapes", title_justify="left")
    baselines = [b for b in BASELINES if any(b in s["speedup"] for s in data["summary"])]
    for col in ("kernel", "dtype", "candidate", "shapes ok", "geomean", "% peak", *[f"x {b}" for b in baselines]):
        table.add_column(col, overflow="fold",  # wrapped, never cropped, at 80 columns
                         justify="right" if col not in ("kernel", "dtype", "candidate") else "left")
    for s in data["summary"]:
        status = f"{s['shapes_ok']}/{s['shapes']}"
        if not s["shapes_ok"]:
            status += " (" + ", ".join(s["statuses"]) + ")"
        pct = (f"{_fmt(s['geomean_pct_peak'], 2)}%" if s["geomean_pct_peak"]
               else "unknown peak" if s["shapes_ok"] else "")
        table.add_row(s["kind"], s["dtype"], s["candidate"], status,
                      f"{_fmt(s['geomean'])} {s['unit']}" if s["geomean"] else "-", pct,
                      *[f"{s['speedup'][b]['geomean']:.2f}" if b in s["speedup"] else "" for b in baselines])
    return table


def notes_text(data: dict, limit: int = 12) -> Text:
    """Why rows were not timed (incorrect, unsupported, errors), once per distinct reason."""
    text, seen = Text(), set()
    for row in data["rows"]:
        if row["status"] == OK:
            continue
        key = (row["kind"], row["candidate"], row["status"], row.get("message", "")[:80])
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > limit:
            text.append("… (more in the JSON)\n", style="dim")
            break
        style = "bold red" if row["candidate"] == "target" and row["status"] not in ("not started",) else "dim"
        text.append(f"{row['kind']} {row['candidate']}: {row['status']} — {row.get('message', '')[:160]}\n",
                    style=style)
    for note in data.get("notes", []):
        text.append(f"{note}\n", style="dim")
    for warning in spread_warnings(data["rows"]):
        text.append(f"⚠ {warning}\n", style="yellow")
    return text


def spread_warnings(rows: list[dict]) -> list[str]:
    """One line per timed row whose p80/p20 exceeds the limit (:data:`~.timing.SPREAD_WARN`)."""
    from .timing import spread_warning

    out = []
    for row in rows:
        warning = spread_warning(row.get("ms")) if row["status"] == OK else None
        if warning:
            s = row["shape"]
            out.append(f"{row['kind']} {row['candidate']} N={s['N']} d={s['d']}"
                       f"{' causal' if s.get('causal') else ''}: {warning}")
    return out
