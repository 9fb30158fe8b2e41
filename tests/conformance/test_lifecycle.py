"""Lifecycle: open and close are idempotent, a closed backend opens again, ping, migrate."""

from __future__ import annotations

from taskyard.backends.protocol import Backend

from .factory import enqueue


async def test_open_is_idempotent_and_ping_works(backend: Backend) -> None:
    await backend.open()
    await backend.ping()


async def test_migrate_reports_a_version(backend: Backend) -> None:
    version = await backend.migrate()
    assert isinstance(version, int) and version >= 1
    assert await backend.migrate() == version


async def test_schema_version_reads_the_version_in_place(backend: Backend) -> None:
    version = await backend.migrate()
    assert await backend.schema_version() == version
    assert await backend.migrate() == version  # reading changed nothing


async def test_close_twice_then_open_again(backend: Backend) -> None:
    job = await enqueue(backend)
    await backend.close()
    await backend.close()
    await backend.open()
    await backend.ping()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.id == job.id


async def test_server_check_returns_warnings_as_text(backend: Backend) -> None:
    warnings = await backend.server_check()
    assert isinstance(warnings, list) and all(isinstance(w, str) and w for w in warnings)
