"""The pytest plugin (entry point ``pytest11: attnkata``): glue only.

Options, collection of the kata tree, gathering item outcomes (also from xdist
workers, through ``user_properties``), and the ladder report at the end of the run.
The logic lives in plain modules that the ``attnkata`` CLI reuses.

Installed, it is loaded by every pytest run in the environment, so it stays out of
projects that are not an attnkata course: it activates only when the rootdir's
``pyproject.toml`` has a ``[tool.attnkata]`` table, or with ``--attnkata`` (also
through ``addopts``).  Until then it only adds its options: no imports beyond
pytest's own, no ``.attnkata/``, no collection changes.
"""

from __future__ import annotations

import os

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

ACTIVE = pytest.StashKey[str]()  # why attnkata runs in this project
NARROW = 100  # columns: at most this wide, a failure's lines wrap at words (the terminal would cut them)
COURSE_PLUGINS = ("attnkata_plugins.claims", "attnkata_plugins.bench")
TRITON_MODE = "not chosen"       # set on activation, before any conftest or kata imports triton


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("attnkata", "attnkata katas")
    group.addoption("--attnkata", action="store_true", default=False,
                    help="run attnkata here even though pyproject.toml has no [tool.attnkata] table")
    group.addoption("--attnkata-target", metavar="katas|solutions|DIR", default=None,
                    help="folder whose katas the hidden tests check: the learner's katas (default), "
                         "each pack's solutions, or any folder with the layout of katas/")
    group.addoption("--attnkata-json", metavar="PATH", default=None,
                    help="also write the ladder report as JSON to PATH")
    group.addoption("--attnkata-html", metavar="PATH", default=None,
                    help="also write the ladder report as HTML to PATH")
    group.addoption("--attnkata-seed", type=int, default=None,
                    help="seed for generated inputs (default 0: every run sees the same inputs)")
    group.addoption("--attnkata-timeout", type=float, default=None,
                    help="seconds one call into learner code may take (default: per kata)")
    group.addoption("--attnkata-kata-budget", type=float, default=None,
                    help="seconds all of one kata's checks may spend in learner code together "
                         "(default 180); past it the kata's remaining checks fail at once")
    group.addoption("--attnkata-memory-limit", metavar="SIZE", default=None,
                    help="address-space cap for learner code, e.g. 8G; 0 for none (default: "
                         "half of physical memory; none when an NVIDIA GPU is present)")
    group.addoption("--attnkata-no-report", action="store_true", default=False,
                    help="do not print the ladder report at the end")
    group.addoption("--attnkata-ladder", action="store_true", default=False,
                    help="print the whole ladder even when the run selects katas (a path, -k, --lf)")
    parser.addini("attnkata_target", "default for --attnkata-target", default="katas")
    parser.addini("attnkata_katas_dir", "the learner's kata folder, relative to rootdir",
                  default="katas")
    parser.addini("attnkata_memory_limit", "default for --attnkata-memory-limit", default="auto")
    parser.addini("attnkata_kata_budget", "default for --attnkata-kata-budget", default="180")
    parser.addini("attnkata_max_examples", "generated examples per property check",
                  default="25")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def activation(config: pytest.Config) -> str:
    """Why attnkata should run for this config ("" when it should stay out)."""
    from .state import is_course

    if getattr(config.known_args_namespace, "attnkata", False):
        return "--attnkata"
    return "[tool.attnkata]" if is_course(config.rootpath) else ""


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Activate in a course: choose Triton's mode, then load the course's pytest plugins."""
    global TRITON_MODE
    why = activation(early_config)
    if not why:
        return
    from .hardware import ensure_triton_mode

    TRITON_MODE = ensure_triton_mode()  # before any conftest or kata module can import triton
    early_config.stash[ACTIVE] = why
    ns = early_config.known_args_namespace
    controller = getattr(ns, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER")
    if getattr(ns, "numprocesses", None) in ("auto", "logical"):
        controller = True  # decided later (auto_workers); a serial run warms at configure
    if not controller and not getattr(ns, "collectonly", False):
        from .remote import start_early

        start_early()  # the fork server's start-up overlaps with pytest's (Triton's mode is set)
    for name in COURSE_PLUGINS:
        early_config.pluginmanager.import_plugin(name)


def active(config: pytest.Config) -> bool:
    return ACTIVE in config.stash


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` for katas: attnkata picks serial or parallel (see :func:`auto_workers`);
    a run of other tests (the framework's own ``tests/``) is left to xdist."""
    return auto_workers(config) if active(config) else None


def auto_workers(config: pytest.Config, cores: int | None = None) -> int | None:
    """How many xdist workers a kata run should use; 0 is serial, None: not a kata run.

    Every kata already runs its learner code in a worker process beside pytest, so one
    pytest process keeps two cores busy. Measured on 2 cores: the whole ladder takes
    about twice as long with ``-n 2`` as serially. So: serial for a run that selects
    katas (a path, ``-k``, ``-m``, ``--lf``) and on machines with fewer than 4 cores;
    otherwise one xdist worker per two cores, at most 4 (unmeasured: no such machine here).
    """
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
    opt = config.option
    root = Path(config.rootpath).resolve()
    katas_dir = (root / config.getini("attnkata_katas_dir")).resolve()
    paths = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    if any(p != root and p != katas_dir and katas_dir not in p.parents for p in paths):
        return None  # not (only) katas: xdist's own choice
    selected = (bool(getattr(opt, "keyword", "") or getattr(opt, "markexpr", "")
                     or getattr(opt, "lf", False) or getattr(opt, "failedfirst", False))
                or any(p not in (root, katas_dir) for p in paths))
    workers = 0 if selected else min(cores // 2, 4)
    return workers if workers >= 2 else 0


def pytest_configure(config: pytest.Config) -> None:
    if not active(config):
        return
    from .manager import load_registry
    from .session import SESSION, RunState
    from .target import TargetSpec

    config.addinivalue_line("markers", "attnkata(kata): item checks the named kata (set by attnkata)")
    rootdir = Path(config.rootpath)
    pm, registry = load_registry()
    target_value = config.getoption("attnkata_target") or config.getini("attnkata_target")
    seed = config.getoption("attnkata_seed")
    config.stash[SESSION] = RunState(
        pm=pm, registry=registry, target=TargetSpec.parse(target_value, rootdir), rootdir=rootdir,
        katas_dir=(rootdir / config.getini("attnkata_katas_dir")).resolve(),
        seed=0 if seed is None else seed, timeout=config.getoption("attnkata_timeout"),
        max_examples=int(config.getini("attnkata_max_examples")),
        is_worker=hasattr(config, "workerinput"),
        kata_budget=float(config.getoption("attnkata_kata_budget")
                          or config.getini("attnkata_kata_budget")),
        memory_limit=memory_limit(config))
    config.pluginmanager.register(Recorder(config), "attnkata-recorder")
    controller = getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    if not controller and not config.option.collectonly:
        from .remote import WorkerUnsupported

        try:  # the fork server starts now, importing what every worker needs, while pytest collects
            config.stash[SESSION].supervisor().warm(set(), ("attnkata.model",))
        except WorkerUnsupported:
            pass


def memory_limit(config: pytest.Config) -> int | None:
    from .remote import default_memory_limit, parse_size

    value = config.getoption("attnkata_memory_limit") or config.getini("attnkata_memory_limit")
    if str(value).strip().lower() in ("", "auto"):
        return default_memory_limit()
    try:
        return parse_size(value)
    except ValueError as exc:
        raise pytest.UsageError(f"attnkata: --attnkata-memory-limit: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    if not active(config):
        return
    from .session import SESSION

    state = config.stash.get(SESSION, None)
    if state is not None:
        state.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not active(config):
        return []
    from .session import SESSION

    state = config.stash[SESSION]
    packs = ", ".join(f"{name} ({len([k for k in state.registry.katas if k.pack == name])})"
                      for name in state.registry.packs)
    triton = f"; triton: {TRITON_MODE}" if _selects_triton(config, state) else ""
    lines = [f"attnkata: target={state.target.name} seed={state.seed} katas from {packs}{triton}"]
    lines += [f"attnkata: ⚠ {p}" for p in state.registry.problems]
    from .render import wrap_lines

    return wrap_lines("\n".join(lines), config.get_terminal_writer().fullwidth).split("\n")


def _selects_triton(config: pytest.Config, state: Any) -> bool:
    """Whether the paths on the command line reach a kata that needs Triton (its mode is
    said only then: a NumPy kata's header stays one line at 80 columns)."""
    paths = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    for kata in state.registry.katas:
        if "triton" in kata.requires:
            file = (state.katas_dir / kata.path).resolve()
            if any(p == file or p in file.parents for p in paths):
                return True
    return False


BENCH_OPTIONS = ("benchmark_only", "benchmark_save", "benchmark_autosave", "benchmark_json",
                 "benchmark_compare", "benchmark_histogram", "attnkata_bench")


def benchmarking(config: pytest.Config) -> bool:
    """Whether this run asked for benchmarks (an option, or ``-m`` naming them)."""
    asked = any(config.getoption(name, default=None) for name in BENCH_OPTIONS)
    return asked or "bench" in (config.getoption("markexpr", default="") or "")


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> Any:
    if not active(parent.config):
        return None
    from .collect import ladder_dir
    from .session import SESSION

    state = parent.config.stash[SESSION]
    if path.resolve() == state.katas_dir:
        return ladder_dir(parent, path, state)
    return None


class Recorder:
    """Registered per run: gathers kata outcomes (on the xdist controller too) and reports."""

    def __init__(self, config: pytest.Config):
        from .session import SESSION

        self.config = config
        self.state = config.stash[SESSION]
        self.explained: set[str] = set()  # misconceptions explained in this run's failures

    @pytest.hookimpl(wrapper=True)
    def pytest_report_header(self, config: pytest.Config) -> Any:
        """pytest-benchmark's one long header line only when benchmarking."""
        found = yield
        if benchmarking(config):
            return found
        return [[ln for ln in ([lines] if isinstance(lines, str) else lines)
                 if not str(ln).startswith("benchmark: ")] for lines in found]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        katas = list({id(i.kata): i.kata for i in session.items if hasattr(i, "kata")}.values())
        pm = self.config.pluginmanager
        if (katas and "hypothesis" not in sys.modules and pm.has_plugin("hypothesispytest")
                and all(hasattr(i, "kata") for i in session.items)):
            # Kata checks are not hypothesis tests, so hypothesis' pytest plugin has nothing
            # to report for them, yet its terminal summary imports hypothesis (~0.5 s) even
            # in a run whose checks never drew an example.  Only kata checks run: drop it.
            pm.unregister(name="hypothesispytest")
        if katas and not self.config.option.collectonly:
            from .remote import WorkerUnsupported

            try:
                self.state.warm(katas)
            except WorkerUnsupported:  # every kata says so when it runs
                pass
            for kata in katas:  # meanwhile import the references here (torch, on two cores)
                try:
                    self.state.reference_module(kata)
                except Exception:  # reported by the kata's own checks
                    pass

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .ladder import ClaimRow

        if (report.failed and not self.state.is_worker and isinstance(report.longrepr, str)
                and any(name == "attnkata" for name, _ in report.user_properties)):
            from .render import fold_repeat, wrap_lines  # feedback wraps at words, never cut

            width = self.config.get_terminal_writer().fullwidth
            report.longrepr = fold_repeat(report.longrepr, self.explained)
            if width <= NARROW:
                report.longrepr = wrap_lines(report.longrepr, width)
                report.sections = [(title, wrap_lines(text, width)) for title, text in report.sections]
        for name, value in report.user_properties:
            if name == "attnkata" and isinstance(value, dict):
                self.state.outcomes.setdefault(value["kata"], {})[value["check"]] = value
            elif name == "attnkata-claim" and isinstance(value, dict):  # from the claims plugin
                self.state.extra_claims.append(ClaimRow(**value))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .report import finish_run

        config, state = self.config, self.state
        if state.is_worker or not state.outcomes:
            return
        writer = config.get_terminal_writer()
        text = finish_run(state, color=writer.hasmarkup, width=writer.fullwidth,
                          show=not config.getoption("attnkata_no_report"),
                          json_path=config.getoption("attnkata_json"),
                          html_path=config.getoption("attnkata_html"),
                          environment=environment(state),
                          whole=config.getoption("attnkata_ladder"))
        if text:
            terminalreporter.write("\n")
            terminalreporter.write(text)


def environment(state: Any) -> dict:
    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            **{pkg: ver(pkg) for pkg in ("attnkata", "numpy", "torch", "triton", "pytest")},
            "triton_mode": TRITON_MODE, "seed": state.seed, "target": state.target.name}
