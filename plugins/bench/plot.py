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


def plot(data: dict, out_dir: Path, stamp: str) -> tuple[list[Path], str]:
    """Draw the PNGs; returns their paths and a message ("" when all went well)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return [], "matplotlib is not installed: no plot (pip install matplotlib, or attnkata[bench])"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu = data["environment"].get("gpu", "?")
    paths = []
    for kind in dict.fromkeys(r["kind"] for r in data["rows"]):
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
