"""The workflow chaos scenario, short (`make chaos` runs it with 1,000 steps): a fan-out and
a fan-in run by real worker processes SIGKILLed every second; the workflow completes, every
re-run body is explained by a lost worker, and the fan-in starts after the fan-out ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chaos.fanin import run
from chaos.stores import StoreUnavailable

from tests.support.servers import unavailable

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_a_fan_in_survives_workers_killed_during_the_fan_out(backend: str, tmp_path: Path) -> None:
    try:
        result = asyncio.run(run(backend, children=150, workers=2, seed=3, kill_every=1.0, root=tmp_path))
    except StoreUnavailable as exc:
        unavailable(f"the {backend} server", str(exc))
        raise
    assert result.kills >= 2, "the run must have killed workers mid fan-out"
    assert result.ok, "\n".join(result.violations[:10])
    assert result.status == "completed" and result.fan_in_runs >= 1
