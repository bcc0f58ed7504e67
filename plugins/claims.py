"""Claims: the ``claim`` marker for any test, and the report section grouping claims by scope.

A claim is one sentence a test makes true, with a scope (``exact`` identity checked
numerically, ``toy`` witness at small sizes here, ``measured`` on named hardware) and
a source id.  Kata claims come from the kata metadata; any pytest test may add one:

    @pytest.mark.claim("gqa-kv-ratio", scope="toy", source="ainslie-2023-gqa",
                       text="GQA's KV cache is H_kv/H_q of MHA's")

A ``measured`` claim must carry ``environment={...}`` (GPU, driver, versions, dtype,
shapes); without one it is refused at collection.
"""

from __future__ import annotations

from typing import Any

import pytest
from rich.table import Table
from rich.text import Text

from attnkata import hookimpl
from attnkata.model import SCOPES

SCOPE_TITLES = {
    "exact": "exact — identities checked numerically",
    "toy": "toy — witnessed at small sizes on this machine",
    "measured": "measured — on the hardware named, valid only there",
}


# -- pytest side -------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "claim(id, scope, source, text='', not_claimed='', environment=None): "
                   "the test witnesses a claim (attnkata claims report)")


def marker_claim(marker: pytest.Mark) -> dict:
    """The claim a ``claim`` marker declares; ``ValueError`` when it breaks the rules."""
    if not marker.args:
        raise ValueError("claim marker needs an id: @pytest.mark.claim('my-claim', scope=..., source=...)")
    kw = marker.kwargs
    scope, source = kw.get("scope"), kw.get("source")
    if scope not in SCOPES:
        raise ValueError(f"claim {marker.args[0]!r}: scope must be one of {SCOPES}, got {scope!r}")
    if not source:
        raise ValueError(f"claim {marker.args[0]!r}: name a source id (e.g. source='dao-2022')")
    if scope == "measured" and not kw.get("environment"):
        raise ValueError(f"claim {marker.args[0]!r} is measured but records no environment: refused")
    return {"id": marker.args[0], "scope": scope, "source": source, "text": kw.get("text", marker.args[0]),
            "not_claimed": kw.get("not_claimed", ""), "environment": kw.get("environment")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in item.iter_markers("claim"):
            try:
                marker_claim(marker)
            except ValueError as exc:
                raise pytest.UsageError(f"{item.nodeid}: {exc}") from None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    for marker in item.iter_markers("claim"):
        claim = marker_claim(marker)
        claim["witnessed"] = report.outcome == "passed"
        claim["evidence"] = [item.nodeid]
        report.user_properties.append(("attnkata-claim", claim))


# -- attnkata side -------------------------------------------------------------

@hookimpl(trylast=True)
def attnkata_report_sections(ladder: Any) -> list[Any]:
    witnessed = [c for c in ladder.claims if c.witnessed]
    if not ladder.claims:
        return []
    table = Table(title=f"Claims your code now witnesses ({len(witnessed)} of {len(ladder.claims)})",
                  title_justify="left", show_header=True)
    table.add_column("scope", no_wrap=True)
    table.add_column("claim", overflow="fold")
    table.add_column("source", no_wrap=True)
    table.add_column("not claimed", overflow="fold", style="dim")
    for scope in SCOPES:
        rows = [c for c in witnessed if c.scope == scope]
        for i, c in enumerate(rows):
            text = Text(c.text)
            if c.environment:
                env = ", ".join(f"{k}={v}" for k, v in c.environment.items())
                text.append(f"\n[{env}]", style="dim")
            table.add_row(scope if i == 0 else "", text, c.source, c.not_claimed,
                          end_section=i == len(rows) - 1)
    if not witnessed:
        return [Text("Claims: none witnessed yet — each ready kata makes its claims true.", style="dim")]
    return [table]
