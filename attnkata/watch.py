"""``attnkata watch``: rerun one kata whenever its file is saved — rustlings' core loop.

The watcher never imports learner code: each run is ``python -m pytest`` on the kata's
file in a subprocess, and whether the kata turned ready is read from the results that
run saved, not from its text. File changes come from ``watchfiles`` when it is
installed, else from polling the file's mtime and size.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .ladder import READY

POLL_S = 0.5  # the polling fallback's interval
CLEAR = "\x1b[H\x1b[2J\x1b[3J"


def signature(path: Path) -> tuple[int, int] | None:
    """What a save changes: the file's mtime and size (None while it does not exist)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def wait_for_change(path: Path, since: tuple[int, int] | None, poll: float | None = None) -> None:
    """Return once ``path`` differs from ``since`` (a save during the last run counts).

    :param poll: poll every ``poll`` seconds; None uses ``watchfiles`` when installed.
    """
    if poll is None:
        try:
            import watchfiles
        except ImportError:
            poll = POLL_S
    if poll is not None:
        while signature(path) == since:
            time.sleep(poll)
        return
    target = str(path.resolve())
    # the folder, not the file: an editor that saves by rename replaces the file's inode
    for _ in watchfiles.watch(path.parent, watch_filter=lambda _change, p: p == target,
                              rust_timeout=1000, yield_on_timeout=True):
        if signature(path) != since:  # a timeout rechecks, so no save slips between runs
            return


def kata_status(root: Path, kata_id: str) -> str | None:
    """The kata's status in the saved results of the learner's ``katas/``."""
    from .report import saved_ladder

    ladder, _ = saved_ladder(root, "katas")
    row = next((r for r in ladder.rows if r.id == kata_id), None) if ladder else None
    return row.status if row else None


def next_kata(root: Path, registry: Any) -> str | None:
    """The ladder's Next kata, as ``attnkata report`` names it (the first kata before any run)."""
    from .report import saved_ladder
    from .state import ledger

    entries = ledger(root).read().get("targets", {}).get("katas", {})
    ladder, _ = saved_ladder(root, "katas")
    if ladder is None:
        return next((k.id for k in registry.katas if not entries.get(k.id, {}).get("skipped")), None)
    ladder.mark_skipped(entries)
    row = ladder.next_kata()
    return row.id if row else None


def run_kata(root: Path, rel: str) -> int:
    """One focused pytest run of the kata's file; its output goes straight to ours."""
    sys.stdout.flush()
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", rel]
    return subprocess.run(cmd, cwd=root).returncode


def watch(root: Path, registry: Any, kata_id: str | None, *, once: bool = False,
          poll: float | None = None) -> int:
    """Run the kata, then again on every save; move to the new Next once it turns ready."""
    clear = sys.stdout.isatty()
    news = ""  # what to say above the next run's output
    while True:
        kata_id = kata_id or next_kata(root, registry)
        if kata_id is None:
            print(f"{news}Every kata on the ladder is ready (or skipped): `attnkata report` shows it.")
            return 0
        kata = registry.get(kata_id)
        rel = f"katas/{kata.path}"
        path = root / rel
        before = kata_status(root, kata.id)
        if signature(path) is None:
            print(f"{news}{kata.id}: {rel} does not exist yet (`attnkata list` says where it "
                  f"comes from). Waiting for it · Ctrl-C to leave", flush=True)
            news = ""
            if once:
                return 1
            wait_for_change(path, None, poll)
        since = signature(path)
        if clear:
            sys.stdout.write(CLEAR)
        print(f"{news}attnkata watch · {kata.id} · {rel}", flush=True)
        news = ""
        code = run_kata(root, rel)
        if kata_status(root, kata.id) == READY and before != READY:
            following = next_kata(root, registry)
            where = f"next: {following}" if following else "that was the last one"
            print(f"✔ {kata.id} is ready — {where}", flush=True)
            if once:
                return 0
            news = f"✔ {kata.id} is ready. Moving on.\n"
            kata_id = following
            continue
        if once:
            return code
        print(f"watching {rel}: save it to run again · Ctrl-C to leave", flush=True)
        wait_for_change(path, since, poll)


def cmd_watch(args: Any, pm: Any, registry: Any) -> int:
    from .cli import outside_course

    if args.kata is not None and args.kata not in {k.id for k in registry.katas}:
        print(f"no kata named {args.kata!r}; `attnkata list` shows them", file=sys.stderr)
        return 2
    if outside_course(args):
        return 2
    try:
        return watch(args.root, registry, args.kata, once=args.once, poll=args.poll)
    except KeyboardInterrupt:
        print("\nattnkata watch: bye.")
        return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watch", help="rerun a kata (default: the Next one) whenever you save it")
    p.add_argument("kata", nargs="?", default=None, help="kata id (default: the report's Next)")
    p.add_argument("--once", action="store_true", help="run once and exit (for scripts)")
    p.add_argument("--poll", type=float, default=None, metavar="SECONDS",
                   help=f"poll the file every SECONDS instead of using watchfiles "
                        f"(the fallback polls every {POLL_S} s when watchfiles is missing)")
    p.set_defaults(func=cmd_watch)
