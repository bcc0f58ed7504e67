"""``attnkata paged-demo``: draw a paged KV cache's block pool and block tables.

One short story, drawn after each step: a prompt fills a few blocks, a fork shares all
of them (refcount 2), the fork appends into the shared, partly filled last block (so
it copies that block first: copy-on-write), the parent appends in place, the parent is
freed. The reference ``PagedKVCache`` tells the story by default; ``--target DIR``
draws the one in ``DIR/level6/paged_kv_cache.py`` (a learner's), read only through its
public API, so a fork that copies or a missing copy-on-write shows in the picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from attnkata import hookimpl

KATA_FILE = Path("level6") / "paged_kv_cache.py"
N_HEADS, HEAD_DIM = 1, 2


@hookimpl
def attnkata_cli_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "paged-demo", help="draw a paged KV cache's blocks through a fork and a copy-on-write",
        description="A prompt fills a few blocks; a fork shares all of them; the fork appends "
                    "(copy-on-write of a shared, partly filled block); the parent appends; the "
                    "parent is freed. The pool and each block table are drawn after every step.")
    parser.add_argument("--target", metavar="DIR", default=None,
                        help="draw the PagedKVCache of DIR/level6/paged_kv_cache.py (a folder with "
                             "the layout of katas/); default: the reference")
    parser.add_argument("--block-size", type=int, default=4, help="tokens per block (default 4)")
    parser.add_argument("--prompt", type=int, default=10, help="prompt tokens (default 10)")
    parser.add_argument("--num-blocks", type=int, default=8, help="blocks in the pool (default 8)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    need = -(-args.prompt // max(args.block_size, 1)) + 2
    if args.block_size < 1 or args.prompt < 1 or args.num_blocks < need:
        print(f"the story needs --block-size >= 1, --prompt >= 1 and --num-blocks >= {need} "
              f"(the prompt's blocks, a copy and one more)")
        return 2
    from attnkata.remote import WorkerGone

    supervisor = _supervisor() if args.target is not None else None
    try:
        module, problem = _load(args.target, supervisor)
        if problem:
            print(problem)
            return 2
        label = "the reference" if args.target is None else str(args.target)
        try:
            panels = [render(title, note, snap, args.num_blocks, args.block_size)
                      for title, note, snap in story(module.PagedKVCache, args.num_blocks,
                                                     args.block_size, args.prompt)]
        except NotImplementedError as exc:
            print(f"not started: {exc}")
            return 1
        except WorkerGone as exc:  # a hang or a crash in the learner's worker
            print(f"the PagedKVCache from {label}: {exc.message}")
            return 1
        except Exception as exc:  # learner code: say what broke, in the learner's frames
            from attnkata.harness import learner_traceback

            root = Path(args.target).resolve() if args.target else None
            print(f"the PagedKVCache from {label} raised during the demo:\n"
                  f"{learner_traceback(exc, root)}")
            return 1
    finally:
        if supervisor is not None:
            supervisor.close()
    _show(f"Paged KV cache (PagedKVCache from {label}): {args.num_blocks} blocks of "
          f"{args.block_size} tokens; * marks a shared block (refcount > 1)", panels, args)
    return 0


def _show(heading: str, panels: list, args: argparse.Namespace) -> None:
    import sys

    from rich.console import Group
    from rich.text import Text

    from attnkata.render import render as to_text, use_color

    group = Group(Text(heading, style="bold"), Text(""), *panels)
    sys.stdout.write(to_text(group, color=use_color(sys.stdout.isatty()),
                             width=getattr(args, "width", None) or 100))


def _supervisor() -> Any:
    """A learner's cache runs in a sandboxed worker, never in this process."""
    from attnkata.remote import Supervisor, WorkerConfig, default_memory_limit
    from attnkata_plugins.core import ROOT

    return Supervisor(WorkerConfig(protected=(str(ROOT / "solutions"),),
                                   modules=("attnkata_kernels",), memory=default_memory_limit()),
                      timeout=30)


def _load(target: str | None, supervisor: Any = None) -> tuple[Any, str]:
    """The reference's module (in this process), or a learner's (in ``supervisor``'s worker)."""
    from attnkata.remote import WorkerGone
    from attnkata.target import TargetLoadError, load_module

    if target is None:
        from attnkata_plugins.core import ROOT

        root = ROOT / "solutions"
    else:
        root = Path(target).resolve()
    try:
        if supervisor is not None:
            if not (root / KATA_FILE).exists():
                raise TargetLoadError(str(root / KATA_FILE))
            return supervisor.module("paged-demo", (root / KATA_FILE).resolve(), root,
                                     ("numpy", "torch"), 30), ""
        return load_module(root / KATA_FILE, root), ""
    except NotImplementedError as exc:
        return None, f"not started: {exc}"
    except TargetLoadError:
        return None, f"no {KATA_FILE} under {root}: --target takes a folder with the layout of katas/"
    except WorkerGone as exc:
        return None, f"{root / KATA_FILE}: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - a learner file that does not import
        return None, f"{root / KATA_FILE} does not import: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------
# The story, as snapshots read through the public API
# ---------------------------------------------------------------------------

def story(cache_cls: Any, num_blocks: int, block_size: int, prompt: int):
    """Yield ``(title, note, {seq name: (block table, length)})`` after each step."""
    import torch

    cache = cache_cls(num_blocks, block_size, N_HEADS, HEAD_DIM)

    def tokens(t: int):
        return torch.zeros(t, N_HEADS, HEAD_DIM), torch.zeros(t, N_HEADS, HEAD_DIM)

    names: dict[str, Any] = {}

    def snapshot():
        return {name: ([int(b) for b in cache.block_table(sid)], int(cache.seq_len(sid)))
                for name, sid in names.items()}

    names["s0"] = cache.add_sequence()
    cache.append(names["s0"], *tokens(prompt))
    yield "1. prompt", (f"s0 appends {prompt} tokens: ⌈{prompt}/{block_size}⌉ = "
                       f"{-(-prompt // block_size)} blocks"), snapshot()
    names["s1"] = cache.fork(names["s0"])
    yield "2. fork", "s1 = fork(s0) shares every block (refcount 2); nothing is copied", snapshot()
    cache.append(names["s1"], *tokens(1))
    partial = prompt % block_size
    yield ("3. copy-on-write" if partial else "3. a new block"), (
        f"s1 appends a token: its last block is shared and partly filled ({partial}/{block_size}), "
        f"so s1 copies it first and writes into the copy" if partial else
        "s1 appends a token: its last block is full, so it takes a fresh block; nothing is copied"
    ), snapshot()
    cache.append(names["s0"], *tokens(1))
    yield ("4. in place", "s0 appends a token: s1 took a copy, so s0's last block is its own "
           "again and is written in place", snapshot()) if partial else (
        "4. a new block", "s0 appends a token: its last block is full too, so it takes a fresh "
        "block of its own", snapshot())
    cache.free_sequence(names.pop("s0"))
    yield "5. free", "free_sequence(s0): blocks s1 still uses stay; the others go back to the pool", \
        snapshot()


def render(title: str, note: str, snap: dict[str, tuple[list[int], int]], num_blocks: int,
           block_size: int):
    """A panel: the pool (one column per physical block) above each sequence's block table."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    owners: dict[int, list[str]] = {}
    filled: dict[int, int] = {}
    for name, (table, n) in snap.items():
        for j, b in enumerate(table):
            owners.setdefault(b, []).append(name)
            filled[b] = max(filled.get(b, 0), min(block_size, n - j * block_size))

    pool = Table(box=None, padding=(0, 1), show_edge=False)
    pool.add_column("block", style="bold")
    for b in range(num_blocks):
        pool.add_column(str(b) + ("*" if len(owners.get(b, ())) > 1 else ""), justify="center")
    pool.add_row("rows", *[_bar(filled.get(b, 0), block_size) if b in owners else "·"
                           for b in range(num_blocks)])
    pool.add_row("owners", *[Text(",".join(owners.get(b, [])) or "free", style=_style(owners, b))
                             for b in range(num_blocks)])

    tables = Text()
    for name, (table, n) in snap.items():
        cells = " ".join(f"{b}*" if len(owners[b]) > 1 else str(b) for b in table)
        tables.append(f"{name} → [{cells}]  ({n} tokens)\n")
    used = len(owners)
    shared = sum(1 for o in owners.values() if len(o) > 1)
    tables.append(f"{used} of {num_blocks} blocks in use, {shared} shared", style="dim")
    return Panel(Group(Text(note, style="italic"), Text(""), pool, Text(""), tables), title=title,
                 title_align="left")


def _bar(rows: int, block_size: int) -> str:
    return "▮" * rows + "▯" * (block_size - rows)


def _style(owners: dict[int, list[str]], b: int) -> str:
    n = len(owners.get(b, ()))
    return "dim" if n == 0 else ("bold yellow" if n > 1 else "green")
