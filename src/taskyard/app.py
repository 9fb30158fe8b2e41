"""`Taskyard`: an app — the declarations of `Registry`, one backend, and the enqueue/query API.

Async inside; the plain methods (`enqueue`, `get_job`, ...) are a thin sync facade that runs
the async twin on a private event-loop thread which this object owns and `close()` stops.
The parts live beside it: `registry` (what the app declares), `drafts` (enqueue arguments →
`JobDraft`), `backend_host` (the backend, chosen once and opened per loop), `portal`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar

from taskyard.backend_host import BackendHost
from taskyard.backends.protocol import Backend, TransactionalEnqueue
from taskyard.clock import Clock, SystemClock
from taskyard.core.job import Job, JobDraft, JobFilter, JobPage, JobStatus
from taskyard.core.names import check_name
from taskyard.core.payload import MAX_PAYLOAD_BYTES
from taskyard.core.queue import QueueCounts, QueueSettings
from taskyard.core.search import SEARCH_LIMIT
from taskyard.drafts import EnqueueItem, build_draft, draft_of, validate_payload
from taskyard.errors import ConfigError, JobNotFound
from taskyard.registry import Registry, ServiceSpec
from taskyard.schedules import ScheduleBook
from taskyard.task import TaskHost
from taskyard.tracing import Tracing, traced_drafts
from taskyard.workflow_api import WorkflowApi

__all__ = ("MAX_PAYLOAD_BYTES", "EnqueueItem", "ServiceSpec", "Taskyard")

T = TypeVar("T")


class Taskyard(Registry, WorkflowApi):
    """A taskyard application: tasks, schedules and services, over one backend.

    `backend` is a URL (`memory://`, `sqlite:///PATH`, `postgresql://...`, `redis://...`) or a
    `Backend` instance; without one it is `TASKYARD_BACKEND`, then taskyard.toml's `backend`,
    then `sqlite:///taskyard.db`, read when the backend is first needed. The CLI and the task
    server may choose another with `use_backend` before then; it is built once.
    `name` identifies the app where several share a store (e.g. as its schedules' declarer).
    Workflows: `workflow(name)` builds one; `get_workflow`, `list_workflows`,
    `cancel_workflow` and `retry_workflow` (and their async twins) act on stored ones.
    """

    def __init__(
        self, backend: str | Backend | None = None, *, clock: Clock | None = None, name: str | None = None
    ) -> None:
        super().__init__()
        self._host = BackendHost(backend)
        self.clock: Clock = clock or SystemClock()
        #: What this app is called where several apps share a store (shown as the declarer of
        #: its declared schedules); the CLI sets it to the `--app` path when left out.
        self.name: str | None = name
        #: Where another process finds this app, as "MODULE:ATTR" (set by the CLI's `--app`):
        #: children of `isolation="process"` import it from there. None: derived from the
        #: module of the task's handler.
        self.import_path: str | None = None
        #: Called with the jobs each successful enqueue call returned (metrics, tests).
        self.enqueue_listeners: list[Callable[[Sequence[Job]], None]] = []
        #: The application's own HTTP routers (`taskyard.http.api.app_router`), served under /api/v1.
        self.http_routers: list[Any] = []
        #: The schedules API (`app.schedules.add(...)`, ...).
        self.schedules = ScheduleBook(self)
        #: The tracer around enqueues and attempts (`taskyard.contrib.otel.instrument` sets
        #: it); None: no tracing.
        self.tracing: Tracing | None = None

    # -- the backend -------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The app's backend, built from its URL on first use (see the class docstring)."""
        return self._host.backend

    @backend.setter
    def backend(self, backend: Backend) -> None:
        self._host.replace(backend)

    @property
    def backend_url(self) -> str:
        """The URL of the app's backend (decided now if nothing needed the backend yet)."""
        return self._host.url

    def use_backend(self, url: str) -> None:
        """Run on the backend at `url` (what the CLI's `--backend` and the server's `backend`
        setting do), overriding the app's own choice. Call it before the app's first use:
        once the backend is built, another URL raises `ConfigError` (the same URL is fine)."""
        self._host.use(url)

    # -- declarations ------------------------------------------------------------------------
    def schedule(self, name: str, **options: Any) -> None:
        """Declare a schedule in code (upserted when a scheduler starts); see `ScheduleBook.declare`."""
        self.schedules.declare(name, **options)

    async def aapply_queue_specs(self) -> list[QueueSettings]:
        """Store every declared queue's limits in the backend (done by the task server at start)."""
        backend = await self.backend_for_loop()
        return [
            await backend.queue_update(
                queue=spec.name, concurrency=spec.concurrency, rate_limit=spec.rate_limit
            )
            for spec in self.queue_specs.values()
        ]

    # -- payloads ----------------------------------------------------------------------------
    def validate_payload(self, task: str, payload: Any) -> tuple[Any, Any]:
        """(JSON payload to store, the value the handler would get). Raises `PayloadError`
        when it does not fit the task's model, is not JSON, or breaks the limits of
        `core/payload.py` (depth, size)."""
        return validate_payload(self.get_task(task), payload)

    def build_draft(
        self,
        task: str,
        payload: Any = None,
        *,
        delay: float | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        job_id: str | None = None,
    ) -> JobDraft:
        """Validate everything about one enqueue and return the draft to store."""
        return build_draft(
            self.get_task(task), payload, clock=self.clock, delay=delay, run_at=run_at,
            priority=priority, queue=queue, unique_key=unique_key, job_id=job_id,
        )

    # -- async API ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the backend on the running loop (done automatically on first use)."""
        await self._host.open()

    async def aclose(self) -> None:
        """Close the backend opened by the async API."""
        await self._host.aclose()

    async def backend_for_loop(self) -> Backend:
        """The backend for the running loop, opened: the portal's own on the sync facade's
        loop (see `run_sync`), else `backend`. Services and the schedules API act through it."""
        return await self._host.for_loop()

    async def aenqueue(self, task: str, payload: Any = None, **options: Any) -> Job:
        """Async twin of `enqueue`."""
        connection = options.pop("connection", None)
        draft = self.build_draft(task, payload, **options)
        return (await self.store_drafts([draft], connection))[0]

    async def aenqueue_many(self, items: Iterable[Any], *, connection: Any = None) -> list[Job]:
        """Async twin of `enqueue_many`."""
        drafts = [draft_of(item, self.build_draft) for item in items]
        return await self.store_drafts(drafts, connection) if drafts else []

    async def store_drafts(
        self, drafts: list[JobDraft], connection: Any = None, *, schedule: str | None = None
    ) -> list[Job]:
        """Store drafts built by `build_draft` (the scheduler's fires, `trigger`) and tell the
        enqueue listeners. `connection`: store them in that open transaction of the caller's,
        which only a `TransactionalEnqueue` backend (PostgreSQL) can do; any other backend
        raises `ConfigError` naming it, before anything is stored. With tracing, each enqueue
        is traced (`schedule`: the schedule whose fire these drafts are).
        """
        backend = await self.backend_for_loop()
        if connection is not None and not isinstance(backend, TransactionalEnqueue):
            raise ConfigError(
                f"enqueue with connection= (inside your own transaction) needs the PostgreSQL "
                f"backend; the {_backend_kind(backend)} backend cannot take a connection: "
                "enqueue without connection=, or use a postgresql:// backend"
            )
        with traced_drafts(self, drafts, schedule=schedule) as stamped:
            if connection is not None:
                assert isinstance(backend, TransactionalEnqueue)
                jobs = await backend.job_enqueue_in_transaction(
                    connection=connection, drafts=stamped, now=self.clock.now()
                )
            else:
                jobs = await backend.job_enqueue_many(drafts=stamped, now=self.clock.now())
        for listener in self.enqueue_listeners:
            listener(jobs)
        return jobs

    async def aget_job(self, job_id: str) -> Job | None:
        """Async twin of `get_job`."""
        return await (await self.backend_for_loop()).job_get(job_id=job_id)

    async def alist_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobStatus | str | None = None,
        task: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        q: str | None = None,
    ) -> JobPage:
        """Async twin of `list_jobs`."""
        if limit < 1 or limit > 1000:
            raise ValueError("limit must be between 1 and 1000")
        if q is not None and not 1 <= len(q) <= SEARCH_LIMIT:
            raise ValueError(f"q must be 1 to {SEARCH_LIMIT} characters")
        job_filter = JobFilter(
            queue=queue,
            status=JobStatus(status) if status is not None else None,
            task=task,
            created_after=created_after,
            created_before=created_before,
            q=q,
        )
        return await (await self.backend_for_loop()).jobs_list(filter=job_filter, limit=limit, cursor=cursor)

    async def acancel_job(self, job_id: str) -> Job:
        """Async twin of `cancel_job`."""
        return await (await self.backend_for_loop()).job_cancel(job_id=job_id, now=self.clock.now())

    async def aretry_job(self, job_id: str) -> Job:
        """Async twin of `retry_job`."""
        return await (await self.backend_for_loop()).job_retry(job_id=job_id, now=self.clock.now())

    async def adelete_jobs(self, ids: Sequence[str]) -> list[str]:
        """Async twin of `delete_jobs`."""
        return await (await self.backend_for_loop()).jobs_delete(ids=list(ids))

    async def aretry_failed(self, queue: str | None = None) -> int:
        """Async twin of `retry_failed`."""
        return await (await self.backend_for_loop()).jobs_retry_failed(queue=queue, now=self.clock.now())

    async def acounts(self) -> dict[str, dict[str, int]]:
        """Async twin of `counts`."""
        rows: list[QueueCounts] = await (await self.backend_for_loop()).queue_counts()
        return {
            row.queue: {status.value: row.get(status) for status in JobStatus} for row in rows
        }

    async def aqueue_names(self) -> list[str]:
        """`queue_names` of every queue with jobs or stored settings."""
        backend = await self.backend_for_loop()
        counts = await backend.queue_counts()
        settings = await backend.queues_list()
        return self.queue_names([c.queue for c in counts] + [s.name for s in settings])

    async def apause_queue(self, queue: str) -> QueueSettings:
        """Async twin of `pause_queue`."""
        check_name("queue name", queue)
        return await (await self.backend_for_loop()).queue_update(queue=queue, paused=True)

    async def aresume_queue(self, queue: str) -> QueueSettings:
        """Async twin of `resume_queue`."""
        check_name("queue name", queue)
        return await (await self.backend_for_loop()).queue_update(queue=queue, paused=False)

    async def await_job(self, job_id: str, *, timeout: float = 30.0, poll: float = 0.05) -> Job:
        """Wait until the job is finished (completed, failed or cancelled) and return it."""
        backend = await self.backend_for_loop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            job = await backend.job_get(job_id=job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.is_finished:
                return job
            if loop.time() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.status.value} after {timeout}s")
            await asyncio.sleep(poll)

    # -- sync facade -------------------------------------------------------------------------
    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine `make()` builds on the sync facade's own loop thread and return
        its result (the facade of `app.schedules` uses it too; see `backend_for_loop`). A
        backend whose class is `shared_across_loops` (memory) is used there as it is; any
        other gets an instance of its own on that loop, built from the same URL."""
        return self._host.run_sync(make)

    def enqueue(self, task: str, payload: Any = None, **options: Any) -> Job:
        """Enqueue one job of `task` and return it.

        Options: `delay` (seconds) or `run_at` (aware datetime), `priority`, `queue`,
        `unique_key`, and `connection` (PostgreSQL: insert inside that open transaction).
        The payload is validated first: an unknown task raises `UnknownTaskError`, a bad
        payload `PayloadError` naming the field, and nothing is stored. With a unique key
        that is already held by a scheduled, pending or running job, that job is returned.
        """
        return self.run_sync(lambda: self.aenqueue(task, payload, **options))

    def enqueue_many(self, items: Iterable[Any], *, connection: Any = None) -> list[Job]:
        """Enqueue several jobs in one round-trip: items are `(task, payload)` tuples,
        mappings (`{"task": ..., "payload": ..., "delay": ...}`), `EnqueueItem`s or drafts
        from `build_draft`. Every item is validated before anything is stored. A draft whose
        unique key is held by an active job is not stored: its place in the answer holds that
        job (compare the ids to tell).
        """
        items = list(items)
        return self.run_sync(lambda: self.aenqueue_many(items, connection=connection))

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, or None."""
        return self.run_sync(lambda: self.aget_job(job_id))

    def list_jobs(self, **filters: Any) -> JobPage:
        """Jobs newest first: filters `queue`, `status`, `task`, `created_after`,
        `created_before`, `q` (text in the id, task, queue, unique key, payload or errors); `limit` (default 50) and `cursor` (the previous page's `next_cursor`).
        """
        return self.run_sync(lambda: self.alist_jobs(**filters))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a scheduled or pending job now, or ask a running one to stop."""
        return self.run_sync(lambda: self.acancel_job(job_id))

    def retry_job(self, job_id: str) -> Job:
        """Run a failed or cancelled job again (its attempts start over)."""
        return self.run_sync(lambda: self.aretry_job(job_id))

    def delete_jobs(self, ids: Sequence[str]) -> list[str]:
        """Delete the finished jobs among `ids` (others are left as they are); returns the
        ids deleted."""
        return self.run_sync(lambda: self.adelete_jobs(ids))

    def retry_failed(self, queue: str | None = None) -> int:
        """Retry every failed job (of one queue, or all); returns how many."""
        return self.run_sync(lambda: self.aretry_failed(queue))

    def counts(self) -> dict[str, dict[str, int]]:
        """`{queue: {status: count}}` for every queue, every status present."""
        return self.run_sync(lambda: self.acounts())

    def pause_queue(self, queue: str) -> QueueSettings:
        """Stop every worker from claiming jobs of `queue`."""
        return self.run_sync(lambda: self.apause_queue(queue))

    def resume_queue(self, queue: str) -> QueueSettings:
        """Let workers claim jobs of `queue` again."""
        return self.run_sync(lambda: self.aresume_queue(queue))

    def close(self) -> None:
        """Close the sync facade's connection and thread (the async API has `aclose`). Done at
        interpreter exit for an app whose sync facade is still open."""
        self._host.close()

    # -- context managers --------------------------------------------------------------------
    def __enter__(self) -> Self:
        """`with app:` closes the sync facade at the end of the block."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        """`async with app:` opens the backend on the running loop and closes it (and the sync
        facade, if it was used) at the end of the block."""
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.aclose()
        finally:
            # Off the loop: closing the sync facade waits on its own thread.
            await asyncio.to_thread(self.close)


def _backend_kind(backend: Backend) -> str:
    """The backend's URL scheme (never the URL: it may carry a password) and class."""
    scheme = backend.url.partition("://")[0] or "?"
    return f"{scheme} ({type(backend).__name__})"


def _is_task_host(app: Taskyard) -> TaskHost:
    """The task handles (`taskyard.task.Task`) call their app as a `TaskHost`: mypy checks here
    that a Taskyard is one."""
    return app
