"""``attnkata grade``: a whole class, each submission isolated, in parallel on Dask.

A submission is a folder with the layout of ``katas/``.  Each one is graded by its own
``pytest`` process (so by the supervised worker: learner code never runs in the
grader), with its own state folder under ``OUT/state/`` — never the course's
``.attnkata/`` — and a wall-clock budget.  Whatever happens (a crash, a hang, an
import error) a result file ``OUT/students/<name>.json`` is written.  The submissions
run as tasks on a Dask ``distributed`` cluster: a ``LocalCluster`` sized to the
machine by default, or a running scheduler (``--scheduler tcp://host:8786``).
Rerunning skips every submission whose content hash matches its saved result.

The gradebook (``grades.csv``, Gradescope ``results.json``, ``class.html``) is built
from the result files by :mod:`attnkata.gradebook`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

RESULT_SCHEMA = "attnkata-grade-1"


@dataclass(frozen=True)
class Submission:
    """One student's folder and what identifies its content."""

    name: str
    path: Path
    digest: str


# ---------------------------------------------------------------------------
# Finding submissions
# ---------------------------------------------------------------------------

def looks_like_submission(folder: Path, known_dirs: set[str]) -> bool:
    """A folder with the layout of ``katas/``: it holds one of the ladder's folders."""
    return folder.is_dir() and any((folder / d).is_dir() for d in known_dirs)


def discover(paths: Iterable[Path], known_dirs: set[str]) -> list[Submission]:
    """Submissions named on the command line: each path is one, or a folder of them.

    ``known_dirs`` are the top folders of the ladder's kata paths (``level0``, ...)."""
    found: dict[str, Submission] = {}
    for path in paths:
        path = Path(path).resolve()
        if not path.is_dir():
            raise ValueError(f"{path} is not a folder")
        if looks_like_submission(path, known_dirs):
            folders = [path]
        else:
            folders = [c for c in sorted(path.iterdir())
                       if not c.name.startswith(".") and looks_like_submission(c, known_dirs)]
            if not folders:
                raise ValueError(f"{path} holds no submission: expected folders like "
                                 f"{sorted(known_dirs)[0]}/ in it or in its subfolders")
        for folder in folders:
            name = _unique(folder.name, found)
            found[name] = Submission(name, folder, content_digest(folder))
    return list(found.values())


def _unique(name: str, taken: dict) -> str:
    base, n = re.sub(r"[^\w.-]", "_", name) or "student", 2
    name = base
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def content_digest(folder: Path) -> str:
    """sha256 of every ``.py`` file's path and bytes, with the grader's version."""
    from . import __version__

    h = hashlib.sha256(f"attnkata {__version__}\n".encode())
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()


def read_roster(path: Path) -> dict[str, dict]:
    """A roster CSV: a ``folder`` (or ``id``) column matched to submission folder names;
    every other column (name, email, ...) is carried into the gradebook."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    key = next((k for k in ("folder", "id", "student", "name") if k in rows[0]), None)
    if key is None:
        raise ValueError(f"{path}: the roster needs a 'folder' or 'id' column")
    return {row[key].strip(): row for row in rows if row.get(key, "").strip()}


# ---------------------------------------------------------------------------
# Grading one submission (runs on a Dask worker, or inline)
# ---------------------------------------------------------------------------

def grade_one(name: str, folder: str, digest: str, course: str, out: str, budget: float,
              selection: tuple[str, ...] = (), timeout: float | None = None) -> dict:
    """Grade one submission in its own pytest process; write and return its result.

    Never raises for anything the student did: a crash, a hang past ``budget`` seconds
    or an import error is recorded in the result with its reason."""
    out_dir = Path(out)
    state = out_dir / "state" / name
    state.mkdir(parents=True, exist_ok=True)
    export = state / "ladder.json"
    export.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--attnkata",
           "--attnkata-no-report", f"--attnkata-target={folder}", f"--attnkata-json={export}",
           *(["--attnkata-timeout", str(timeout)] if timeout else []), *selection]
    env = {**os.environ, "ATTNKATA_STATE_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "100"}
    env.pop("PYTEST_ADDOPTS", None)
    start = time.monotonic()
    status, log = "graded", ""
    with tempfile.TemporaryFile() as sink:
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code, status = None, "timed out"
        sink.seek(0)
        log = _tail(sink.read())
    seconds = round(time.monotonic() - start, 2)
    ladder = _read_json(export)
    if status == "graded" and (ladder is None or code not in (0, 1)):
        status = "grader error"
    result = {"schema": RESULT_SCHEMA, "student": name, "folder": folder, "digest": digest,
              "status": status, "exit_code": code, "seconds": seconds,
              "reason": _reason(status, code, budget, log), "ladder": ladder,
              "selection": list(selection),
              "log_tail": log if status != "graded" else log[-2000:]}
    write_atomic(out_dir / "students" / f"{name}.json", result)
    return summary(result)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()


def _tail(data: bytes, limit: int = 8000) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else "…" + text[-limit:]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _reason(status: str, code: Any, budget: float, log: str) -> str:
    if status == "timed out":
        return (f"the whole submission took longer than its budget of {budget:g} s and was "
                f"stopped; katas not reached are reported as not run")
    if status == "grader error":
        last = [ln for ln in log.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        return f"the grading run ended with exit code {code} and no ladder: {last[0][:300]}"
    return ""


def write_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def summary(result: dict) -> dict:
    """What the progress display needs from a result."""
    ladder = result.get("ladder") or {}
    ready = sum(1 for k in ladder.get("katas", []) if k.get("status") == "ready")
    return {"student": result["student"], "status": result["status"], "ready": ready,
            "seconds": result.get("seconds", 0.0)}


def load_result(out: Path, name: str) -> dict | None:
    data = _read_json(out / "students" / f"{name}.json")
    return data if isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA else None


# ---------------------------------------------------------------------------
# The class: Dask
# ---------------------------------------------------------------------------

@dataclass
class Plan:
    course: Path
    out: Path
    submissions: list[Submission]
    budget: float = 600.0
    selection: tuple[str, ...] = ()
    timeout: float | None = None
    workers: int | None = None
    scheduler: str | None = None
    resume: bool = True

    def todo(self) -> tuple[list[Submission], list[Submission]]:
        """(to grade, already graded with the same content)."""
        fresh, done = [], []
        for sub in self.submissions:
            old = load_result(self.out, sub.name) if self.resume else None
            same = old is not None and old.get("digest") == sub.digest and old.get(
                "selection", list(self.selection)) == list(self.selection)
            (done if same and old.get("status") != "grader error" else fresh).append(sub)
        return fresh, done


def run(plan: Plan, progress: Callable[[dict], None] | None = None,
        serial: bool = False) -> list[dict]:
    """Grade every submission not already graded; returns one summary per submission."""
    fresh, done = plan.todo()
    summaries = [summary(load_result(plan.out, s.name)) | {"resumed": True} for s in done]
    for s in summaries:
        if progress:
            progress(s)
    args = [(s.name, str(s.path), s.digest, str(plan.course), str(plan.out), plan.budget,
             plan.selection, plan.timeout) for s in fresh]
    if serial or not args:
        for a in args:
            res = grade_one(*a)
            summaries.append(res)
            if progress:
                progress(res)
        return summaries
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if plan.scheduler:
        client = Client(plan.scheduler)
    else:
        n = plan.workers or max(1, min(len(args), (os.cpu_count() or 2)))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    try:
        futures = [client.submit(grade_one, *a, key=f"grade-{a[0]}-{a[2][:12]}", pure=False)
                   for a in args]
        for future in as_completed(futures):
            try:
                res = future.result()
            except Exception as exc:  # a Dask worker died: the grader says so for this one
                name = _name_of(future.key)
                res = _grader_failed(plan, name, exc)
            summaries.append(res)
            if progress:
                progress(res)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return summaries


def _name_of(key: Any) -> str:
    text = str(key)
    return text[len("grade-"):].rsplit("-", 1)[0] if text.startswith("grade-") else text


def _grader_failed(plan: Plan, name: str, exc: BaseException) -> dict:
    sub = next((s for s in plan.submissions if s.name == name), None)
    result = {"schema": RESULT_SCHEMA, "student": name, "folder": str(sub.path) if sub else "",
              "digest": "", "status": "grader error", "exit_code": None, "seconds": 0.0,
              "reason": f"the Dask task failed: {type(exc).__name__}: {exc}", "ladder": None,
              "log_tail": ""}
    write_atomic(plan.out / "students" / f"{name}.json", result)
    return summary(result)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

def add_parser(sub: Any) -> None:
    p = sub.add_parser("grade", help="instructors: grade a class of submissions, isolated and in "
                                     "parallel (Dask), into a gradebook")
    p.add_argument("submissions", nargs="+", type=Path,
                   help="folders with the layout of katas/, or folders of such folders")
    p.add_argument("--out", type=Path, required=True, help="where the gradebook goes")
    p.add_argument("--roster", type=Path, help="CSV with a 'folder' (or 'id') column and any "
                                               "others (name, email) to carry into grades.csv")
    p.add_argument("--weights", type=Path, help="TOML: [weights] default = 1, kata_id = points")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core)")
    p.add_argument("--scheduler", help="a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--budget", type=float, default=600.0,
                   help="wall-clock seconds per submission (default 600)")
    p.add_argument("--timeout", type=float, help="seconds per call into student code")
    p.add_argument("--only", nargs="+", default=(), metavar="PATH",
                   help="grade these kata paths only, e.g. katas/level0 katas/level1")
    p.add_argument("--serial", action="store_true", help="no Dask: one submission at a time")
    p.add_argument("--bench", action="store_true",
                   help="also time each graded submission's kernels (`attnkata bench --quick`, "
                        "one at a time) and rank them in a leaderboard")
    p.add_argument("--bench-args", default="", metavar="ARGS",
                   help="more options for each `attnkata bench`, e.g. \"--cpu-sizes 256,512\"")
    p.add_argument("--bench-resource", metavar="NAME",
                   help="with --scheduler: run bench tasks only on Dask workers that declare "
                        "this resource (e.g. GPU), one per unit")
    p.add_argument("--no-resume", action="store_true", help="regrade even unchanged submissions")
    p.set_defaults(func=cmd_grade)


def cmd_grade(args: Any, pm: Any, registry: Any) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from . import gradebook

    console = Console(stderr=True, width=min(args.width, 100))
    known = {Path(k.path).parts[0] for k in registry.katas}
    try:
        subs = discover(args.submissions, known)
        roster = read_roster(args.roster) if args.roster else {}
        weights = gradebook.Weights.read(args.weights)
    except (ValueError, OSError) as exc:
        console.print(f"attnkata grade: {exc}")
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.root, out, subs, budget=args.budget, selection=tuple(args.only),
                timeout=args.timeout, workers=args.workers, scheduler=args.scheduler,
                resume=not args.no_resume)
    fresh, done = plan.todo()
    console.print(f"grading {len(fresh)} submission(s); {len(done)} unchanged since the last "
                  f"run (kept); out: {out}")
    failed = [0]
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
            "{task.completed}/{task.total}"), TimeRemainingColumn(), console=console,
            transient=False) as bar:
        task = bar.add_task("students", total=len(subs))

        def progress(res: dict) -> None:
            if res["status"] != "graded":
                failed[0] += 1
            bar.update(task, advance=1, description=f"students ({failed[0]} not graded cleanly)")

        try:
            run(plan, progress, serial=args.serial)
        except ImportError as exc:
            console.print(f"attnkata grade: Dask is not installed ({exc}): "
                          f"pip install 'attnkata[grade]', or use --serial")
            return 2
    names = [s.name for s in subs]
    copies = _copies(args.root, registry, subs)
    board = _bench(args, plan, console) if args.bench else None
    rows = gradebook.build(out, names, weights, copies[0], roster, board,
                           predictions={k.id: [p.id for p in k.predictions] for k in registry.katas})
    gradebook.write_all(out, rows, weights, copies[1], board)
    gradebook.exports_for_class(out, names)
    console.print(f"wrote {out / 'grades.csv'}, {out / 'class.html'}, per-student results in "
                  f"{out / 'students'} and Gradescope files in {out / 'gradescope'}")
    for row in rows:
        if row.flags:
            console.print(f"  ⚑ {row.student}: " + " | ".join(row.flags)[:300])
    broken = [r for r in rows if r.status == "grader error"]
    return 1 if broken else 0


def _copies(course: Path, registry: Any, subs: list[Submission]) -> tuple[dict, list[str]]:
    """(flags per student, lines for the report) from token fingerprints."""
    from . import similarity

    paths = [k.path for k in registry.katas]
    files = {s.name: similarity.read_tree(s.path, paths) for s in subs}
    bases, refs = {}, {}
    for k in registry.katas:
        pack = registry.pack_of(k)
        bases.update(similarity.read_tree(pack.katas_dir, [k.path]))
        refs.update(similarity.read_tree(pack.solutions_dir, [k.path]))
    matches = similarity.find_matches(files, bases, refs)
    flags: dict[str, list[str]] = {}
    by_pair: dict[tuple[str, str], list] = {}
    for m in matches:
        by_pair.setdefault((m.a, m.b), []).append(m)
    for (a, b), ms in by_pair.items():
        what = f"{len(ms)} kata file(s) match {b}: {', '.join(m.file for m in ms[:4])}"
        flags.setdefault(a, []).append(what)
        if b != "the reference":
            flags.setdefault(b, []).append(
                f"{len(ms)} kata file(s) match {a}: {', '.join(m.file for m in ms[:4])}")
    return flags, [m.describe() for m in matches]


def _bench(args: Any, plan: Plan, console: Any) -> list:
    """Time every cleanly graded submission's kernels; the leaderboard entries."""
    from . import leaderboard

    graded = [s for s in plan.submissions
              if (load_result(plan.out, s.name) or {}).get("status") == "graded"]
    course, out = str(plan.course), str(plan.out)
    console.print(f"timing the kernels of {len(graded)} submission(s), one at a time, and "
                  f"the references once")
    import shlex

    extra = tuple(shlex.split(args.bench_args))
    ref = leaderboard.read(leaderboard.bench_one("_reference", "solutions", course, out,
                                                 plan.budget, extra))
    jobs = [(s.name, str(s.path), course, out, plan.budget, extra) for s in graded]
    if plan.scheduler and args.bench_resource:
        from distributed import Client

        client = Client(plan.scheduler)
        try:
            futures = [client.submit(leaderboard.bench_one, *j, key=f"bench-{j[0]}", pure=False,
                                     resources={args.bench_resource: 1}) for j in jobs]
            paths = []
            for f in futures:
                try:
                    paths.append(f.result())
                except Exception:  # that task's worker died: no timing for this student
                    paths.append("")
        finally:
            client.close()
    else:  # timings want the machine to themselves: one after another
        paths = [leaderboard.bench_one(*j) for j in jobs]
    entries = []
    for sub, path in zip(graded, paths):
        data = leaderboard.read(path) if path else None
        e = leaderboard.entry(sub.name, data, ref)
        void = leaderboard.voids(data)
        if void:
            e.note = (e.note + "; " if e.note else "") + "timing void: " + void[0]
        entries.append(e)
    return entries
