"""The end of ``attnkata serve``: the verdict and three tables, for an 80-column terminal."""

from __future__ import annotations

from typing import Any


def _bytes(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def verdict(report: dict) -> list[str]:
    """What went wrong first, in words (empty when every check passed)."""
    lines = []
    if report.get("failed"):
        lines.append(f"✘ the run stopped: {report['failed']}")
    div, culprit = report.get("divergence"), report.get("culprit")
    if div:
        lines.append(f"✘ step {div['step']} is the first whose logits diverge: the {div['model']}'s "
                     f"logits at position {div['position']} differ from the reference model's by "
                     f"{div['error']:.3g} (tolerance {div['tolerance']:g}).")
    if culprit:
        lead = "responsible" if div or report.get("failed") else "a wrong answer, though no " \
            "step's logits left the tolerance"
        lines.append(f"✘ {lead}: {culprit['kata']} ({culprit['file']}): its first answer "
                     f"unlike the reference's on the same inputs came at {culprit['where']}: "
                     f"{culprit['what']}.")
    elif div:
        lines.append("No single kata's output left its tolerance: small differences added up "
                     "(or a kata outside this list).")
    if not lines:
        mine = [r["kata"] for r in report["wiring"] if r["source"] != "reference"]
        lines.append(f"✔ every step's logits match the reference model "
                     f"({report['dtype']}, |Δ| ≤ {report['logit_tolerance']:g}); " + (
                         "every call to the katas in workers matched the reference on the same "
                         "inputs." if mine else "no kata was yours in this run."))
    return lines


def renderables(report: dict) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    m = report["model"]
    parts.append(Text(f"attnkata serve · target {report['target']} · tiny model: {m['layers']} "
                      f"blocks, d_model {m['d_model']}, {m['heads']} query / {m['kv_heads']} KV "
                      f"heads, RoPE, bytes as tokens · draft: {m['draft']}", style="bold"))
    if report.get("text") is not None and not report.get("streamed"):
        text = Text(report["prompt"], style="bold")
        text.append(report["text"])
        parts += [Text(""), text]
    for note in report.get("notes", []):
        parts.append(Text(f"⚠ {note}", style="yellow"))

    wiring = Table(title="Who ran each part", title_justify="left", expand=False)
    wiring.add_column("kata", no_wrap=True)
    wiring.add_column("ran", no_wrap=True)
    wiring.add_column("calls", justify="right")
    wiring.add_column("check / why", overflow="fold")
    for row in report["wiring"]:
        mis = row["mismatch"]
        if row["source"] != "reference" or mis:
            check = (f"✘ {mis['where']}: {mis['what']}" if mis else
                     "✔ matched the reference" if row["calls"] else "not called in this run")
        else:
            check = row["why"]
        style = "bold red" if mis else ("dim" if row["source"] == "reference" else "green")
        wiring.add_row(row["kata"], Text(row["source"], style=style), str(row["calls"] or ""), check)
    parts += [Text(""), wiring]

    if "measured" in report:
        meas, spec, kv = report["measured"], report["speculative"], report["kv_bytes"]
        nums = Table(title="Measured on this machine (one sequence)", title_justify="left")
        nums.add_column("what")
        nums.add_column("value", justify="right")
        nums.add_row("tokens generated", str(report["tokens"]))
        nums.add_row("tokens/s", f"{meas['tokens_per_s']:.1f}")
        nums.add_row("TTFT (prompt → first token)", f"{meas['ttft_ms']:.1f} ms")
        nums.add_row("TPOT (per later token)", f"{meas['tpot_ms']:.1f} ms")
        nums.add_row("calls into your katas' workers", str(meas["worker_calls"]))
        nums.add_row("reference checks (not counted)", f"{meas['checking_s']:.2f} s")
        if spec["proposed"]:
            nums.add_row(f"draft acceptance (γ = {report['gamma']})",
                         f"{spec['accepted']}/{spec['proposed']} = {spec['acceptance_rate']:.0%}")
            nums.add_row("tokens per target forward (prefill included)",
                         f"{spec['tokens_per_step']:.2f}")
        mem = Table(title=f"KV memory of the target after {report['tokens']} tokens",
                    title_justify="left")
        mem.add_column("layout")
        mem.add_column(report["dtype"], justify="right")
        mem.add_column("int8 (computed)", justify="right")
        mem.add_row("contiguous, exact length", _bytes(kv["contiguous"]), _bytes(kv["contiguous_int8"]))
        mem.add_row("contiguous, reserved for the context", _bytes(kv["reserved_context"]),
                    _bytes(kv["reserved_context_int8"]))
        mem.add_row("paged (16-token blocks in use)", _bytes(kv["paged"]), _bytes(kv["paged_int8"]))
        env = meas["environment"]
        parts += [Text(""), nums, Text(""), mem,
                  Text(f"Environment: {env['system']}, {env['cpu_count']} CPUs (load average "
                       f"{env['load_average_1min']} at the end), torch {env['torch']} "
                       f"({env['torch_threads']} thread), Python {env['python']}, device "
                       f"{env['device']}, kernels {report['kernels']}. Scope: {meas['scope']}.",
                       style="dim")]
        if report["kernels"] == "triton":
            parts.append(Text("Triton kernels: on a GPU they would run compiled; no GPU figure "
                              "here is measured.", style="dim"))
    parts.append(Text(""))
    for line in verdict(report):
        parts.append(Text(line, style="bold green" if line.startswith("✔") else "bold red"))
    trace = (report.get("culprit") or {}).get("traceback")
    if trace:
        parts.append(Text(trace, style="dim", overflow="fold"))
    return Group(*parts)
