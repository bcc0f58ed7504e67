"""``attnkata show KATA``: what your Triton kernel did on a small input.

The kata's entry runs once, in the supervised worker, on a small input from
:data:`RECIPES`, with Triton's interpreter writing down every ``tl.load`` and
``tl.store`` (:mod:`attnkata.tritonguard`, through :mod:`attnkata.showprobe`).  What
comes back is plain data; it is drawn here, in the CLI process:

- the grid: how many programs ran, and their ids;
- per tensor, which program stored (or loaded) each element, as a coloured grid of
  program labels in the terminal and as a PNG (matplotlib, Agg);
- per program, the lanes the mask switched off and the lanes that pointed outside
  every tensor (out of bounds: recorded and skipped, never performed).

A tensor is drawn as a matrix: its last dimension across, every other dimension down
(``[B, H, N, d]`` becomes ``B·H·N`` rows of ``d``).  An element is located from the
address a lane used, relative to the tensor's first element, so a lane past the end
appears below the last row, in red.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

LABELS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta",
           "bright_green", "bright_yellow", "bright_blue", "bright_red")


# ---------------------------------------------------------------------------
# Small inputs, one per Triton kata
# ---------------------------------------------------------------------------

def _softmax_input() -> tuple:
    import torch

    g = torch.Generator().manual_seed(0)
    return (torch.randn(4, 6, generator=g),), {}


def _flash_input(backward: bool) -> Callable[[], tuple]:
    def make() -> tuple:
        import torch

        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 2, 20, 16, generator=g) for _ in range(3))
        if not backward:
            return (q, k, v), {}
        s = q @ k.transpose(-1, -2) / math.sqrt(16)
        lse = torch.logsumexp(s, dim=-1)
        o = torch.softmax(s, dim=-1) @ v
        return (q, k, v, o, lse, torch.randn(1, 2, 20, 16, generator=g)), {}

    return make


def _paged_input() -> tuple:
    import torch

    g = torch.Generator().manual_seed(0)
    k_pages, v_pages = (torch.randn(6, 4, 1, 16, generator=g) for _ in range(2))
    q = torch.randn(2, 2, 16, generator=g)
    tables = torch.tensor([[3, 0, 5], [1, 4, 2]], dtype=torch.int32)
    return (q, k_pages, v_pages, tables, torch.tensor([10, 5], dtype=torch.int32)), {}


@dataclass(frozen=True)
class Recipe:
    entry: str
    make: Callable[[], tuple]
    about: str


RECIPES: dict[str, Recipe] = {
    "triton_softmax": Recipe("triton_softmax", _softmax_input,
                             "x: 4 rows of 6 (BLOCK_SIZE 8: two lanes per row masked off)"),
    "flash_attention_forward": Recipe(
        "flash_attention_forward", _flash_input(False),
        "q, k, v: [B=1, H=2, N=20, d=16], tiles of 16 (the second query tile has 4 real rows)"),
    "flash_attention_backward": Recipe(
        "flash_attention_backward", _flash_input(True),
        "q, k, v, o, dO: [1, 2, 20, 16], lse from torch (tiles of 16: the last has 4 rows)"),
    "paged_attention_decode_triton": Recipe(
        "paged_attention_decode_triton", _paged_input,
        "2 sequences (10 and 5 tokens), 2 query heads over 1 KV head, d=16, blocks of 4 "
        "tokens, block tables [[3, 0, 5], [1, 4, 2]]"),
}


# ---------------------------------------------------------------------------
# From the record to per-element counts
# ---------------------------------------------------------------------------

@dataclass
class TensorUse:
    """What one launch did to one tensor, element by element (row-major 2-D view)."""

    name: str
    shape: tuple
    dtype: str
    rows: int
    cols: int
    stores: Any = None        # int array [rows, cols]: how many stores hit the element
    loads: Any = None         # int array [rows, cols]: how many loads read it
    store_owner: Any = None   # int array: program (linear id) of the first store, -1 none
    load_owner: Any = None    # int array: program of the first load, -1 none; -2 several
    oob: dict = field(default_factory=dict)   # "load"/"store" -> list of (program, offset)

    @property
    def numel(self) -> int:
        return self.rows * self.cols


@dataclass
class Program:
    pid: tuple
    loads: int = 0
    stores: int = 0
    masked: int = 0
    oob: int = 0


@dataclass
class LaunchView:
    kernel: str
    grid: tuple
    tensors: list[TensorUse]
    programs: dict          # linear id -> Program

    def linear(self, pid: tuple) -> int:
        gx, gy, _ = (tuple(self.grid) + (1, 1, 1))[:3]
        return int(pid[0] + gx * (pid[1] + gy * pid[2]))


def analyse(record: dict) -> list[LaunchView]:
    """Per launch: each tensor's per-element store/load counts and owners, per program
    the active, masked and out-of-bounds lanes."""
    import numpy as np

    views = []
    for launch in record.get("launches", ()):
        grid = tuple(launch.get("grid") or (1, 1, 1))
        uses = []
        for t in launch["tensors"]:
            shape = tuple(t["shape"]) or (1,)
            cols = int(shape[-1]) if shape[-1] else 1
            rows = max(int(np.prod(shape[:-1])) if len(shape) > 1 else 1, 1)
            uses.append(TensorUse(t["name"], tuple(t["shape"]), t["dtype"], rows, cols,
                                  np.zeros((rows, cols), int), np.zeros((rows, cols), int),
                                  np.full((rows, cols), -1), np.full((rows, cols), -1),
                                  {"load": [], "store": []}))
        view = LaunchView(launch["kernel"], grid, uses, {})
        for acc in launch["accesses"]:
            p = view.linear(acc["pid"])
            prog = view.programs.setdefault(p, Program(tuple(acc["pid"])))
            prog.masked += acc["off"]
            prog.oob += len(acc["oob"])
            kind = acc["kind"]
            for i, offsets in acc["hits"].items():
                use = uses[int(i)]
                flat = _flat_index(np.asarray(offsets, dtype=np.int64), launch["tensors"][int(i)])
                inside = (flat >= 0) & (flat < use.numel)
                flat = flat[inside]
                if kind == "store":
                    prog.stores += int(flat.size)
                    counts, owner = use.stores.reshape(-1), use.store_owner.reshape(-1)
                else:
                    prog.loads += int(flat.size)
                    counts, owner = use.loads.reshape(-1), use.load_owner.reshape(-1)
                np.add.at(counts, flat, 1)
                fresh = owner[flat] == -1
                owner[flat[fresh]] = p
                if kind == "load":
                    owner[flat[(~fresh) & (owner[flat] != p)]] = -2
                for off in np.asarray(offsets)[~inside].tolist():  # inside the storage, not the view
                    use.oob[kind].append((p, int(off)))
            for i, off in acc["oob"]:
                uses[int(i)].oob[kind].append((p, int(off)))
        views.append(view)
    return views


def _flat_index(offsets: Any, t: dict) -> Any:
    """Element offsets from the tensor's first element → row-major positions in its
    shape (-1 where the offset is no element of the view)."""
    import numpy as np

    shape, stride = tuple(t["shape"]), tuple(t["stride"])
    if not shape:
        return np.where(offsets == 0, 0, -1)
    contiguous = all(stride[i] == int(np.prod(shape[i + 1:])) for i in range(len(shape))
                     if shape[i] > 1)
    if contiguous:
        return offsets
    out = np.zeros_like(offsets)
    rest = offsets.copy()
    ok = np.ones(offsets.shape, bool)
    order = sorted(range(len(shape)), key=lambda i: -stride[i])
    for i in order:
        if stride[i] <= 0:
            continue
        idx = rest // stride[i]
        ok &= (idx >= 0) & (idx < shape[i])
        rest = rest - idx * stride[i]
        out += idx * int(np.prod(shape[i + 1:]))
    ok &= rest == 0
    return np.where(ok, out, -1)


def oob_offsets(use: TensorUse) -> list[int]:
    return [off for kind in ("load", "store") for _, off in use.oob.get(kind, ())]


# ---------------------------------------------------------------------------
# Terminal
# ---------------------------------------------------------------------------

def label(p: int) -> str:
    return LABELS[p % len(LABELS)]


def terminal(views: list[LaunchView], width: int, title: str) -> Any:
    """A rich Group: per launch its grid, per-program lanes, and each tensor drawn."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(title, style="bold")]
    for n, view in enumerate(views, 1):
        gx, gy, gz = (tuple(view.grid) + (1, 1, 1))[:3]
        total = gx * gy * gz
        parts.append(Text(""))
        parts.append(Text(f"launch {n}: {view.kernel}, grid ({gx}, {gy}, {gz}) = {total} "
                          f"program{'s' if total != 1 else ''}", style="bold"))
        table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
        for name in ("prog", "program_id", "loaded", "stored", "masked off", "out of bounds"):
            table.add_column(name, justify="right" if name not in ("prog", "program_id") else "left",
                             overflow="fold")
        for p in sorted(view.programs):
            prog = view.programs[p]
            table.add_row(Text(label(p), style=PALETTE[p % len(PALETTE)]), str(tuple(prog.pid)),
                          str(prog.loads), str(prog.stores), str(prog.masked),
                          Text(str(prog.oob), style="bold red") if prog.oob else "0")
        if len(view.programs) > 24:
            parts.append(Text(f"{len(view.programs)} programs: the first 24 are listed"))
            table.rows[:] = table.rows[:24]
        parts.append(table)
        parts.append(Text("lanes: loaded/stored count active lanes inside a tensor; masked off: "
                          "lanes the mask switched off, summed over every load and store of the program (a "
                          "row's masked lanes count once when loaded and once when stored); out of bounds: active lanes outside "
                          "every tensor (skipped here, memory corruption on a GPU)",
                          style="dim"))
        for use in view.tensors:
            for kind in ("store", "load"):
                counts = use.stores if kind == "store" else use.loads
                if not counts.any() and not use.oob[kind]:
                    continue
                parts.append(_tensor_text(use, kind, width))
    return Group(*parts)


def _tensor_text(use: TensorUse, kind: str, width: int) -> Any:
    from rich.text import Text

    counts = use.stores if kind == "store" else use.loads
    owner = use.store_owner if kind == "store" else use.load_owner
    oob = [off for _, off in use.oob[kind]]
    n_once = int((counts == 1).sum())
    text = Text()
    verb = "stored" if kind == "store" else "loaded"
    head = (f"\n{use.name} {list(use.shape)} {use.dtype}, {verb}: {int((counts > 0).sum())} of "
            f"{use.numel} elements")
    if kind == "store":
        twice, never = int((counts > 1).sum()), int((counts == 0).sum())
        head += (", each once" if n_once == use.numel else
                 f" ({twice} more than once, {never} never)")
    if oob:
        head += f"; {len(oob)} lane(s) out of bounds (red ×)"
    text.append(head + "\n", style="bold")
    cell = 2
    cols_fit = max((width - 6) // cell, 1)
    shown_cols = min(use.cols, cols_fit)
    beyond = sorted({off // use.cols for off in oob if off >= use.numel})
    before = sorted({off // use.cols for off in oob if off < 0})
    rows = list(range(use.rows))
    if len(rows) > 64:
        rows = rows[:32] + [-10**9] + rows[-32:]
    for r in [*before, *rows, *beyond]:
        if r == -10**9:
            text.append(f"  ... {use.rows - 64} rows not drawn\n", style="dim")
            continue
        text.append(f"{r:>4}  ", style="dim")
        for c in range(shown_cols):
            off = r * use.cols + c
            if 0 <= r < use.rows:
                k, o = int(counts[r, c]), int(owner[r, c])
                if k == 0:
                    text.append("· ", style="dim")
                elif o == -2:
                    text.append("+ ", style="bold")
                else:
                    mark = label(o) if (kind == "load" or k == 1) else "!"
                    style = PALETTE[o % len(PALETTE)] + (" reverse" if k > 1 else "")
                    text.append(mark + " ", style=style)
            else:
                text.append("× " if off in oob else "  ", style="bold red")
        if shown_cols < use.cols:
            text.append("…", style="dim")
        text.append("\n")
    key = "cell: program label, · untouched"
    key += ", + several programs" if kind == "load" else ", ! stored twice or more"
    if shown_cols < use.cols:
        key += f"; columns past {shown_cols} not drawn (PNG has all)"
    text.append(key, style="dim")
    return text


# ---------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------

def png(views: list[LaunchView], path: Path, title: str) -> Path:
    """One row of panels per launch: each tensor it stored, then each it loaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    panels = [[(use, kind) for kind in ("store", "load") for use in view.tensors
               if (use.stores if kind == "store" else use.loads).any() or use.oob[kind]]
              for view in views]
    n_rows = max(len(panels), 1)
    n_cols = max((len(p) for p in panels), default=1) or 1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 3.2 * n_rows + 0.6),
                             squeeze=False)
    base = plt.get_cmap("tab20")
    for r, (view, row) in enumerate(zip(views, panels)):
        gx, gy, gz = (tuple(view.grid) + (1, 1, 1))[:3]
        n_prog = max(gx * gy * gz, 1)
        colors = [(0.93, 0.93, 0.93, 1.0)] + [base(i % 20) for i in range(n_prog)] + [(0.2, 0.2, 0.2, 1)]
        cmap = ListedColormap(colors)
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(row):
                ax.axis("off")
                continue
            use, kind = row[c]
            counts = use.stores if kind == "store" else use.loads
            owner = use.store_owner if kind == "store" else use.load_owner
            oob = [off for _, off in use.oob[kind]]
            extra_below = max([off // use.cols - use.rows + 1 for off in oob if off >= use.numel],
                              default=0)
            grid = np.zeros((use.rows + extra_below, use.cols))
            grid[:use.rows] = np.where(owner >= 0, owner + 1, np.where(owner == -2, n_prog + 1, 0))
            ax.imshow(grid, cmap=cmap, vmin=0, vmax=n_prog + 1, interpolation="nearest",
                      aspect="auto")
            if use.numel <= 256:  # small: write each element's program label in it
                for (y, x), o in np.ndenumerate(owner):
                    if o >= 0:
                        ax.text(x, y, label(int(o)), ha="center", va="center", fontsize=6)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.yaxis.get_major_locator().set_params(integer=True)
            twice = np.argwhere(counts > 1) if kind == "store" else np.zeros((0, 2))
            if len(twice):
                ax.scatter(twice[:, 1], twice[:, 0], marker="o", s=12, facecolors="none",
                           edgecolors="black", linewidths=0.8, label="stored twice+")
            bad = [(off // use.cols, off % use.cols) for off in oob if 0 <= off // use.cols < grid.shape[0]]
            if bad:
                ys, xs = zip(*bad)
                ax.scatter(xs, ys, marker="x", s=18, color="red", label="out of bounds")
            if extra_below:
                ax.axhline(use.rows - 0.5, color="red", linewidth=0.8)
            ax.set_title(f"{view.kernel}: {use.name} ({'stores' if kind == 'store' else 'loads'})",
                         fontsize=7)
            ax.set_xlabel(f"last dim ({use.cols})", fontsize=6)
            ax.set_ylabel(f"rows ({use.rows})", fontsize=6)
            ax.tick_params(labelsize=5)
            if bad or len(twice):
                ax.legend(fontsize=5, loc="upper right")
    import textwrap

    chars = max(int(3.2 * n_cols * 13), 60)  # about what a line of 8-point text holds
    fig.suptitle(textwrap.fill(title, chars) + "\n" + textwrap.fill(
        "colour = program (linear id) that touched the element first; grey = untouched; "
        "dark = loaded by several programs", chars), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="draw what your Triton kernel did on a small input "
                                    "(grid, loads, stores, masked lanes)",
                       description=__doc__.splitlines()[0])
    p.add_argument("kata", help="a Triton kata: " + ", ".join(RECIPES))
    p.add_argument("--target", default="katas",
                   help="katas (default), solutions, or a folder with the layout of katas/")
    p.add_argument("--png", metavar="PATH", type=Path, default=None,
                   help="where to write the picture (default .attnkata/show/KATA.png)")
    p.set_defaults(func=cmd_show)


def run_recipe(kata: Any, recipe: Recipe, state: Any) -> tuple[dict, BaseException | None]:
    """Run the recipe in the target's worker; the record and what the learner's code raised."""
    from .remote import probe

    path, root = state.locate(kata)
    module = state.supervisor().module(f"show:{state.target.slug}:{kata.id}", path.resolve(),
                                       root.resolve(), kata.requires, state.timeout or kata.timeout,
                                       ("attnkata.showprobe",))
    args, kwargs = recipe.make()
    try:
        return probe(module, "attnkata.showprobe", "record", recipe.entry, args, kwargs), None
    except Exception as exc:  # learner code: keep what was recorded before it raised
        from .remote import WorkerGone  # noqa: F401  (a BaseException: not caught here)

        return probe(module, "attnkata.showprobe", "last"), exc


def cmd_show(args: argparse.Namespace, pm: Any, registry: Any) -> int:
    import os

    from .render import render, use_color, wrap_lines, wrap_path

    width = terminal_width(args)
    try:
        kata = registry.get(args.kata)
    except StopIteration:
        print(f"no kata named {args.kata!r}; `attnkata list` shows them", file=sys.stderr)
        return 2
    recipe = RECIPES.get(kata.id)
    if recipe is None:
        print(wrap_lines(f"{kata.id} has no Triton kernel to draw; attnkata show takes "
                         + ", ".join(RECIPES), width))
        return 2
    os.environ["TRITON_INTERPRET"] = "1"  # loads and stores are recorded by the interpreter
    from .remote import WorkerGone
    from .session import RunState
    from .target import TargetLoadError, TargetSpec

    state = RunState(pm, registry, TargetSpec.parse(args.target, args.root), args.root,
                     args.root / "katas")
    shown = state.locate(kata)[0]
    try:
        record, error = run_recipe(kata, recipe, state)
    except NotImplementedError as exc:
        print(wrap_lines(f"not started: {exc}", width))
        return 1
    except TargetLoadError as exc:
        print(wrap_lines(f"{exc}: --target takes katas, solutions or a folder like katas/", width))
        return 2
    except WorkerGone as exc:
        print(wrap_lines(f"{shown}: {exc.message}", width))
        return 1
    except Exception as exc:  # the learner's file does not import
        from .harness import learner_traceback

        print(f"{shown} does not import:\n{learner_traceback(exc, state.locate(kata)[1])}")
        return 1
    finally:
        state.close()
    if error is not None and _unwritten(error) and not any(
            launch["accesses"] for launch in record["launches"]):
        print(wrap_lines(f"not started: {error}", width))
        return 1
    views = analyse(record)
    title = f"{kata.id} ({_relative(shown, args.root)}) on {recipe.about}"
    out = args.png or args.root / ".attnkata" / "show" / f"{kata.id}.png"
    color = use_color(sys.stdout.isatty())
    sys.stdout.write(render(terminal(views, width, title), color=color, width=width))
    if views:
        png(views, out, title)
        print(wrap_path("picture:", str(_relative(out, Path.cwd())), width))
    if record.get("truncated"):
        print(wrap_lines("(the record stopped early: too many lanes for one picture)", width))
    if error is not None:
        from .harness import learner_traceback

        print(wrap_lines(f"your code raised after {len(views)} launch(es); drawn up to there:",
                         width))
        print(learner_traceback(error, state.locate(kata)[1]))
        return 1
    return 0


def _unwritten(error: BaseException) -> bool:
    """A kernel (or launcher) that still raises NotImplementedError, seen from here."""
    from .wire import unwritten

    return (unwritten(error) or getattr(error, "learner_type", "") == "NotImplementedError"
            or "NotImplementedError" in str(error) or "NotImplementedError" in
            str(getattr(error, "learner_traceback", "")))


def terminal_width(args: Any = None) -> int:
    """``--width`` when given, else the terminal's (``COLUMNS`` first), at most 200."""
    given = getattr(args, "width", None)
    if given:
        return int(given)
    return max(min(shutil.get_terminal_size((80, 24)).columns, 200), 30)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)
