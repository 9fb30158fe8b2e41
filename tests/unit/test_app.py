"""The app facade: registration, validation at enqueue, uniqueness, sync and async twins."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from taskyard import EnqueueItem, JobStatus, PayloadError, Taskyard, UnknownTaskError
from taskyard.errors import ConfigError


class Scan(BaseModel):
    watchlist_id: int


@pytest.fixture
def app() -> Taskyard:
    app = Taskyard("memory://")

    @app.task("scan", queue="scans", priority=3, unique="watchlist:{watchlist_id}")
    async def scan(req: Scan, ctx) -> None: ...

    @app.task("raw")
    def raw(payload: dict) -> None: ...

    return app


def test_sync_enqueue_validates_and_stores(app: Taskyard) -> None:
    job = app.enqueue("scan", {"watchlist_id": "7"})
    assert job.payload == {"watchlist_id": 7}
    assert (job.queue, job.priority, job.unique_key) == ("scans", 3, "watchlist:7")
    assert app.get_job(job.id) == job
    app.close()


def test_same_unique_key_yields_one_job(app: Taskyard) -> None:
    first = app.enqueue("scan", {"watchlist_id": 1})
    second = app.enqueue("scan", {"watchlist_id": 1})
    assert first.id == second.id
    assert app.counts()["scans"]["pending"] == 1
    app.close()


def test_bad_payload_names_task_and_field_and_stores_nothing(app: Taskyard) -> None:
    with pytest.raises(PayloadError) as err:
        app.enqueue("scan", {"watchlist_id": "seven"})
    assert "scan" in str(err.value) and "watchlist_id" in str(err.value)
    with pytest.raises(UnknownTaskError, match="nope"):
        app.enqueue("nope", {})
    with pytest.raises(PayloadError, match="not JSON"):
        app.enqueue("raw", {"x": object()})
    with pytest.raises(PayloadError, match=r"not JSON.*surrogate"):
        app.enqueue("raw", {"half an emoji": "\ud83d"})
    assert app.counts() == {}
    assert app.enqueue("raw", {"emoji": "\N{GRINNING FACE}"}).payload == {"emoji": "\N{GRINNING FACE}"}
    app.close()


def test_enqueue_many_is_all_or_nothing_on_validation(app: Taskyard) -> None:
    with pytest.raises(PayloadError):
        app.enqueue_many([("raw", {"a": 1}), ("scan", {"watchlist_id": "x"})])
    assert app.counts() == {}
    jobs = app.enqueue_many(
        [("raw", {"a": 1}), {"task": "scan", "payload": {"watchlist_id": 2}, "delay": 60},
         EnqueueItem("raw", {"b": 2}, priority=9)]
    )
    assert [j.status for j in jobs] == [JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.PENDING]
    assert jobs[2].priority == 9
    app.close()


async def test_async_twins(app: Taskyard) -> None:
    job = await app.aenqueue("raw", {"k": "v"}, delay=30)
    assert job.status is JobStatus.SCHEDULED
    cancelled = await app.acancel_job(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    again = await app.aretry_job(job.id)
    assert again.status is JobStatus.PENDING
    page = await app.alist_jobs(task="raw")
    assert [j.id for j in page.jobs] == [job.id]
    await app.apause_queue("default")
    assert (await app.backend.queue_get(queue="default")).paused


def test_registration_errors() -> None:
    app = Taskyard("memory://")
    with pytest.raises(ValueError, match="does not have"):
        @app.task("x", unique="k:{missing}")
        async def x(req: Scan) -> None: ...
    with pytest.raises(ValueError, match="timeout"):
        app.task("y", timeout=0)


async def test_declared_queue_limits_are_stored_on_apply() -> None:
    from taskyard import RateLimit

    app = Taskyard("memory://")
    app.queue("sync", concurrency=5, rate_limit=RateLimit(limit=10, period=60))
    with pytest.raises(ValueError, match="concurrency"):
        app.queue("bad", concurrency=0)
    await app.apause_queue("sync")
    [stored] = await app.aapply_queue_specs()
    assert (stored.concurrency, stored.rate_limit) == (5, RateLimit(limit=10, period=60))
    assert stored.paused  # runtime state is left alone


async def test_max_rescues_is_a_task_option_stored_on_each_job() -> None:
    app = Taskyard("memory://")

    @app.task("fragile", max_rescues=5)
    async def fragile(payload: dict) -> None: ...

    @app.task("plain")
    async def plain(payload: dict) -> None: ...

    assert (await app.aenqueue("fragile", {})).max_rescues == 5
    assert (await app.aenqueue("plain", {})).max_rescues == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_rescues"):
            app.task(f"bad{bad}", max_rescues=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
async def test_connection_on_a_backend_without_transactions_is_a_config_error(
    scheme: str, tmp_path: Path
) -> None:
    """`connection=` needs a `TransactionalEnqueue` backend; others say so by name (not a
    `TypeError` from deep inside) and store nothing."""
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'jobs.db'}"
    app = Taskyard(url)

    @app.task("raw")
    def raw(payload: dict) -> None: ...

    try:
        for enqueue in (
            lambda: app.aenqueue("raw", {"n": 1}, connection=object()),
            lambda: app.aenqueue_many([("raw", {"n": 2})], connection=object()),
        ):
            with pytest.raises(ConfigError) as err:
                await enqueue()
            message = str(err.value)
            assert f"the {scheme} (" in message and "connection=" in message
            assert "postgresql://" in message
        assert await app.acounts() == {}
    finally:
        await app.aclose()
