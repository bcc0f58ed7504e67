"""Draw an alignment matrix: in the terminal (rich) and, if asked, as a PNG (matplotlib).

Learners call it from their own stub (``python katas/history/additive_attention.py``
runs the stub's demo) or from a REPL::

    from attnkata_history.show import render_alignment, toy_translation
    source, target, args = toy_translation()
    context, weights = additive_attention(*args)
    render_alignment(weights, source, target, png="alignment.png")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SOURCE = ("the", "black", "cat", "sleeps", ".")
TARGET = ("le", "chat", "noir", "dort", ".")
# Which source word each target word translates: French puts the adjective after the noun.
ALIGNMENT = (0, 2, 1, 3, 4)


def toy_translation(dtype=np.float64):
    """A hand-built toy translation for ``additive_attention``.

    Returns ``(source words, target words, (q, k, v, w_q, w_k, v_a))``. Each word is one
    "concept" direction; encoder annotations ``k`` (and values ``v``) hold the source
    concepts, decoder states ``q`` the concept of the target word being produced. Every
    entry is shifted by −1 so that tanh works in its convex part, where a match (both
    +1 on the same axis) scores higher than two half-matches. Nothing here was trained:
    it is a toy that shows what a learned alignment looks like.
    """
    n = len(SOURCE)
    eye = np.eye(n)
    k = eye - 1.0
    q = eye[list(ALIGNMENT)] - 1.0
    v = eye.copy()
    w_q = np.eye(n)
    w_k = np.eye(n)
    v_a = np.full(n, 5.0)
    args = tuple(a.astype(dtype) for a in (q, k, v, w_q, w_k, v_a))
    return SOURCE, TARGET, args


def alignment_table(weights, source, target):
    """A rich Table: one row per target word, one shaded column per source word."""
    from rich.table import Table
    from rich.text import Text

    weights = np.asarray(weights, dtype=np.float64)
    table = Table(title="alignment (rows: target, columns: source; darker = more weight)",
                  title_justify="left", show_lines=False)
    table.add_column("")
    for word in source:
        table.add_column(str(word), justify="center")
    for word, row in zip(target, weights):
        cells = []
        for w in row:
            level = int(round(255 * (1 - min(max(float(w), 0.0), 1.0))))
            style = f"black on rgb({level},{level},255)" if w >= 0.5 else f"on rgb({level},{level},255)"
            cells.append(Text(f"{w:.2f}", style=style))
        table.add_row(str(word), *cells)
    return table


def render_alignment(weights, source, target, png: str | Path | None = None, console=None):
    """Print ``weights`` ([len(target), len(source)]) as a shaded table; with ``png``,
    also save a heatmap there (needs matplotlib). Returns the PNG path or None."""
    from rich.console import Console

    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(target), len(source)):
        raise ValueError(f"weights has shape {weights.shape}; expected "
                         f"({len(target)}, {len(source)}) = (target words, source words)")
    (console or Console()).print(alignment_table(weights, source, target))
    if png is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(source), 1 + 0.7 * len(target)))
    ax.imshow(weights, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(source)), labels=list(source), rotation=45)
    ax.set_yticks(range(len(target)), labels=list(target))
    for i in range(len(target)):
        for j in range(len(source)):
            ax.text(j, i, f"{weights[i, j]:.2f}", ha="center", va="center",
                    color="white" if weights[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return Path(png)
