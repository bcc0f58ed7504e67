"""The bench plot: throughput against N, one PNG per kernel kind, one column per dtype.

TFLOP/s for the flash kernels, GB/s for paged decode (it is memory-bound); one line per
candidate, one row of panels per (head dim, causal).  Drawn with matplotlib's Agg canvas
directly (no pyplot, no global backend switch); without matplotlib the caller is told so.
"""

from __future__ import annotations

from pathlib import Path

from .results import OK, TITLES, primary

STYLES = {"target": dict(color="black", linewidth=2.2, marker="o"),
          "reference": dict(color="tab:blue", marker="s")}


def plot(data: dict, out_dir: Path, stamp: str, kinds: bool = True) -> tuple[list[Path], str]:
    """Draw the PNGs (one per kind unless ``kinds`` is false, and one of the targets when the
    run judged them); returns their paths and a message ("" when all went well)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return [], "matplotlib is not installed: no plot (pip install matplotlib, or attnkata[bench])"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu = data["environment"].get("gpu", "?")
    paths = []
    if data.get("targets"):
        paths.append(plot_targets(data, out_dir, stamp))
    for kind in dict.fromkeys(r["kind"] for r in data["rows"]) if kinds else ():
        rows = [r for r in data["rows"] if r["kind"] == kind and r["status"] == OK]
        if not rows:
            continue
        dtypes = sorted({r["dtype"] for r in rows})
        panels = sorted({(r["shape"]["d"], r["shape"]["causal"]) for r in rows})
        fig = Figure(figsize=(5.0 * len(dtypes), 3.2 * len(panels)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), len(dtypes), squeeze=False)
        unit = "GB/s" if kind == "paged_decode" else "TFLOP/s"
        sizes = sorted({r["shape"]["N"] for r in rows})
        labels = [f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n) for n in sizes]
        for i, (d, causal) in enumerate(panels):
            for j, dtype in enumerate(dtypes):
                ax = axes[i][j]
                here = [r for r in rows if r["dtype"] == dtype and r["shape"]["d"] == d
                        and r["shape"]["causal"] == causal]
                for cand in dict.fromkeys(r["candidate"] for r in here):
                    pts = sorted((r["shape"]["N"], primary(r)) for r in here if r["candidate"] == cand)
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], label=cand,
                            **STYLES.get(cand, dict(marker=".", linestyle="--")))
                ax.set_xscale("log", base=2)
                ax.set_xticks(sizes, labels)
                ax.minorticks_off()
                ax.set_title(f"{dtype}, d={d}" + (", causal" if causal else ""), fontsize=9)
                ax.set_xlabel("N (sequence length)")
                ax.set_ylabel(unit)
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=7)
        fig.suptitle(f"{TITLES.get(kind, kind)} — {gpu}")
        path = out_dir / f"bench-{stamp}-{kind}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths, ""


def plot_targets(data: dict, out_dir: Path, stamp: str) -> Path:
    """One bar per target: the measured figure as a share of its goal (1 = the goal), the
    moonshot marked; an unmeasured target is a labelled gap, not a zero."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .targets import figure

    results = data["targets"]
    env = data["environment"]
    fig = Figure(figsize=(8.0, 1.1 + 0.9 * len(results)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = []
    for i, r in enumerate(results):
        y = len(results) - 1 - i
        labels.append((y, f"{r['title']}\n{r['goal']}"))
        value, goal = r.get("value"), _goal_number(r["goal"])
        if value is None or not goal:
            ax.text(0.02, y, f"unmeasured: {r.get('why', '')}"[:90], va="center", fontsize=8, color="0.4")
            continue
        share = value / goal
        ax.barh(y, share, color="tab:green" if r["verdict"] == "met" else "tab:red", height=0.55)
        ax.text(share + 0.02, y, figure(r).split(";")[0], va="center", fontsize=8)
        if r.get("moonshot") and _goal_number(r["moonshot"]) and r["moonshot"].split()[-1] == r["goal"].split()[-1]:
            ax.plot([_goal_number(r["moonshot"]) / goal], [y], marker="*", color="gold", markersize=12)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks([y for y, _ in labels], [text for _, text in labels], fontsize=8)
    ax.set_xlim(0, max([1.6] + [r["value"] / _goal_number(r["goal"]) + 0.4 for r in results
                                if r.get("value") is not None and _goal_number(r["goal"])]))
    ax.set_xlabel("measured / goal (1 = the goal; star: moonshot)")
    peak = env.get("peak")
    ax.set_title(f"reference kernels vs their targets — {env.get('gpu', '?')} "
                 f"({peak.get('name') if isinstance(peak, dict) else 'unknown peak'}), "
                 f"{str(data.get('created', ''))[:10]}", fontsize=9)
    path = Path(out_dir) / f"bench-{stamp}-targets.png"
    fig.savefig(path, dpi=110)
    return path


def _goal_number(text: str) -> float | None:
    """350 from ">= 350 TFLOP/s", 0.75 from ">= 0.75x sdpa_flash"."""
    try:
        return float(text.split()[1].rstrip("x%"))
    except (IndexError, ValueError):
        return None
