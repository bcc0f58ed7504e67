"""Hook specifications for attnkata plugins (project name ``attnkata``).

Hooks are called with keyword arguments; an implementation may accept fewer
arguments than its spec, so hooks grow by adding arguments, never by changing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import pluggy

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from .ladder import Ladder
    from .model import Pack

hookspec = pluggy.HookspecMarker("attnkata")


# -------------------------------------------------------------------------
# Registration
# -------------------------------------------------------------------------

@hookspec
def attnkata_packs() -> Sequence["Pack"] | "Pack":
    """Declare kata packs.

    Called once, when the registry is built (at pytest configure time, or when a CLI
    command needs the katas).  The core pack answers through this same hook.

    :returns: one :class:`~attnkata.Pack` or a sequence of them.

    Example::

        @attnkata.hookimpl
        def attnkata_packs():
            return Pack("my-pack", katas=(MY_KATA,), katas_dir=HERE / "katas",
                        solutions_dir=HERE / "solutions", levels={100: "My level"})
    """


# -------------------------------------------------------------------------
# Reporting
# -------------------------------------------------------------------------

@hookspec
def attnkata_ladder_claims(ladder: "Ladder", rootdir: "Path") -> Sequence[Any] | None:
    """Contribute claims witnessed outside the kata checks (e.g. saved benchmarks).

    Called once per report, after the ladder is built and before it is rendered or
    saved.  Claims whose id the ladder already has are ignored; a ``measured`` claim
    without an ``environment`` is refused and reported as a problem.

    :param ladder: the run's ladder.
    :param rootdir: the learner's checkout (its ``.attnkata/`` holds saved state).
    :returns: :class:`~attnkata.ladder.ClaimRow` records, or None.
    """


@hookspec
def attnkata_report_sections(ladder: "Ladder", rootdir: "Path") -> Sequence[Any] | None:
    """Add rich renderables after the ladder table.

    Called each time the ladder report is rendered (end of a pytest run, and by
    ``attnkata report``).  Sections appear newest plugin first (pluggy's call order);
    mark an implementation ``tryfirst``/``trylast`` to place it.

    :param ladder: the run's :class:`~attnkata.ladder.Ladder`.
    :param rootdir: the learner's checkout.
    :returns: renderables (``rich.table.Table``, ``rich.text.Text``…) or None.
    """


@hookspec
def attnkata_report_json(ladder: "Ladder", data: dict, rootdir: "Path") -> None:
    """Amend the JSON export in place (add a key of your plugin's name).

    Called after the ladder's own fields are filled, before the file is written.

    :param ladder: the run's ladder.
    :param data: the JSON document, mutable.
    :param rootdir: the learner's checkout.
    """


# -------------------------------------------------------------------------
# Command line and environment
# -------------------------------------------------------------------------

@hookspec
def attnkata_cli_commands(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``attnkata`` subcommands.

    Called once when the CLI starts.  Add a parser with ``subparsers.add_parser``
    and ``set_defaults(func=callable)``; the callable gets the parsed namespace and
    returns the exit status.
    """


@hookspec
def attnkata_doctor_checks() -> Sequence[dict] | None:
    """Add rows to ``attnkata doctor``.

    Called by ``attnkata doctor``.  Each row is a dict with ``name``, ``ok``
    (bool), ``found`` (str), ``needed_for`` (str) and ``fix`` (str, what to do).
    """
