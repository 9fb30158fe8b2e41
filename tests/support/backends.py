"""Builders for every backend under test; each test gets an isolated store.

`make_backend(kind, tmp_path)` returns an async context manager yielding an open backend and
cleaning up after it. postgres and redis builders live in their own modules.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from pathlib import Path

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend

KINDS = ("memory", "sqlite", "postgres", "redis", "redis-cluster", "mysql")


@contextlib.asynccontextmanager
async def isolated_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A backend URL no other test uses; removed afterwards."""
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'taskyard.db'}"
    else:
        support = importlib.import_module(f"tests.support.{kind.replace('-', '_')}")
        async with support.isolated_url() as url:
            yield url


@contextlib.asynccontextmanager
async def opened_backend(url: str) -> AsyncIterator[Backend]:
    """The backend of `url`, open for the block and closed after it."""
    backend = backend_from_url(url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@contextlib.asynccontextmanager
async def make_backend(kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """An open backend of `kind`, isolated for one test."""
    async with isolated_url(kind, tmp_path) as url, opened_backend(url) as backend:
        yield backend
