"""Fixtures shared by every tier: backends parametrised over memory/sqlite/postgres/redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskyard.backends.protocol import Backend
from tests.support.backends import KINDS, make_backend

#: Tests that start whole process topologies and judge their timing (takeovers, recoveries)
#: run one after another on one xdist worker, so they never compete with each other.
SERIAL = ("tests/chaos/test_scenarios.py", "tests/integration/test_scheduler_failover.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SERIAL):
            item.add_marker(pytest.mark.xdist_group("topologies"))


@pytest.fixture(params=KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Each backend kind in turn."""
    return str(request.param)


@pytest.fixture
async def backend(backend_kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """An open, isolated backend of each kind in turn."""
    async with make_backend(backend_kind, tmp_path) as b:
        yield b


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TASKYARD_* variable from the caller leaks in; cwd is an empty directory."""
    import os

    for name in list(os.environ):
        if name.startswith("TASKYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
