"""Bench plugin: GPU kernel benchmarks, opt-in — glue for pytest and for attnkata.

``pytest --attnkata-bench`` (after the katas) and ``attnkata bench`` time, on CUDA, the
target's Triton kernels (the katas that declare ``bench=``), the reference kernels in
``attnkata_kernels`` and torch's ``scaled_dot_product_attention`` (each backend pinned)
over a sweep of shapes, each checked against a float32 truth on fresh inputs before it
is timed.  They report TFLOP/s, bandwidth, % of the device's peak and speed-ups, write a
JSON document (``attnkata.bench/1``) with the environment and a plot, and turn the
figures into ``measured`` claims.  Without CUDA: "no GPU: correctness only", and the CPU
katas are timed instead.  Never part of the default run; never a timed assertion.

The logic lives in this package's plain modules (``run``, ``cases``, ``results``, ...), which
the CLI reuses; this module only wires it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from attnkata import hookimpl

BENCH_RUN = pytest.StashKey[Any]()


# -- pytest side -------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import add_options

    group = parser.getgroup("attnkata", "attnkata katas")
    group.addoption("--attnkata-bench", action="store_true", default=False,
                    help="after the katas, benchmark the GPU katas' kernels against the reference kernels "
                         "and torch SDPA (CUDA; without it, time the CPU katas); writes JSON and a plot")
    add_options(group.addoption, "--attnkata-bench-")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not config.getoption("attnkata_bench", False) or hasattr(config, "workerinput"):
        return
    from attnkata.session import SESSION

    from .options import BenchOptions
    from .run import run_bench

    state = config.stash.get(SESSION, None)
    if state is None:  # the attnkata plugin did not configure this run
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def echo(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "attnkata bench")
    try:
        opts = BenchOptions.from_namespace(config.option, seed=state.seed)
        run = run_bench(opts, registry=state.registry, target=state.target, learner_root=state.katas_dir,
                        rootdir=state.rootdir, echo=echo, worker_config=state.worker_config())
    except Exception as exc:  # the bench reports; it never turns a green run red
        config.stash[BENCH_RUN] = f"attnkata bench failed: {type(exc).__name__}: {exc}"
        return
    config.stash[BENCH_RUN] = run
    state.extra_claims.extend(run.claims)


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(BENCH_RUN, None)
    if run is None:
        return
    if isinstance(run, str):
        terminalreporter.write_line(run, red=True)
        return
    if run.renderables:
        from rich.console import Group

        from attnkata.render import render

        writer = config.get_terminal_writer()
        terminalreporter.write(render(Group(*run.renderables), color=writer.hasmarkup, width=writer.fullwidth))


# -- attnkata side -------------------------------------------------------------

@hookimpl
def attnkata_cli_commands(subparsers: Any) -> None:
    from .cli import add_command

    add_command(subparsers)


@hookimpl
def attnkata_ladder_claims(ladder: Any, rootdir: Path) -> list[Any]:
    """The last saved bench's measured claims, with their environment."""
    from .saved import bench_dir, ladder_claims

    return ladder_claims(ladder, bench_dir(rootdir))


@hookimpl
def attnkata_report_sections(ladder: Any, rootdir: Path) -> list[Any]:
    """Where the last saved bench is, and what it measured."""
    from .saved import bench_dir, report_sections

    return report_sections(ladder, bench_dir(rootdir))


@hookimpl
def attnkata_report_json(ladder: Any, data: dict, rootdir: Path) -> None:
    from .saved import bench_dir, report_json

    report_json(ladder, data, bench_dir(rootdir))



@hookimpl
def attnkata_doctor_checks() -> list[dict]:
    from importlib.util import find_spec

    ok = find_spec("matplotlib") is not None
    return [{"name": "matplotlib", "ok": ok, "found": "installed" if ok else "missing",
             "needed_for": "the plot of `attnkata bench` / --attnkata-bench (optional)",
             "fix": "" if ok else 'pip install -e ".[bench]"'}]
