"""``attnkata serve``: the shipped tiny model, generating with the learner's katas.

The command lives in :mod:`attnkata.capstone.serve`; this plugin only registers it.
"""

from __future__ import annotations

import argparse

from attnkata import hookimpl


@hookimpl
def attnkata_cli_commands(subparsers: argparse._SubParsersAction) -> None:
    from attnkata.capstone.serve import add_parser

    add_parser(subparsers)
