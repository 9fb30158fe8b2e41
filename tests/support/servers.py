"""Server availability: required when CI is set, skipped with a reason elsewhere."""

from __future__ import annotations

import os

import pytest

POSTGRES_URL = os.environ.get("TASKYARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TASKYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(what: str, why: str) -> None:
    """Fail in CI (the server is required there), skip elsewhere."""
    message = f"{what} is not reachable ({why}); set its URL variable or start it"
    if os.environ.get("CI"):
        pytest.fail(f"{message} — required because CI is set")
    pytest.skip(message)
