"""Chaos tests: the `chaos_known_failure` marker and the scenario runner fixture.

`@pytest.mark.chaos_known_failure(reason=...)` marks a scenario that fails today because the
product is wrong (the reason names the bug). It runs for real and is expected to fail: it is
turned into a strict xfail, so the day the fix lands it XPASSes, which fails the run until
the marker is removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from chaos.report import summary_line
from chaos.runner import Outcome, Scenario, run_scenario
from chaos.stores import StoreUnavailable

from tests.support.servers import unavailable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chaos_known_failure(reason): a chaos scenario that fails today because of a product "
        "bug (the reason names it); run as a strict xfail, so a fix makes it XPASS",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("chaos_known_failure")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "known product bug")
            item.add_marker(pytest.mark.xfail(reason=f"known failure: {reason}", strict=True, raises=AssertionError))


@pytest.fixture
def chaos_run(tmp_path: Path) -> Callable[[Scenario], Outcome]:
    """Run a scenario in `tmp_path`; a missing server skips (fails under CI)."""

    def run(scenario: Scenario) -> Outcome:
        try:
            outcome = asyncio.run(run_scenario(scenario, tmp_path))
        except StoreUnavailable as exc:
            unavailable(f"the {scenario.backend} server", str(exc))
            raise
        print(f"{scenario.id}:{summary_line(outcome.to_json())}")
        return outcome

    return run
