"""`Taskyard`: the registry of tasks, schedules and services, and the enqueue/query facade.

Async inside; the plain methods (`enqueue`, `get_job`, ...) are a thin sync facade that runs
the async twin on a private event-loop thread which this object owns and `close()` stops.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pydantic

from taskyard import config
from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend, TransactionalEnqueue
from taskyard.clock import Clock, SystemClock
from taskyard.core import ids
from taskyard.core.alert import AlertRule, parse_rule
from taskyard.core.job import DEFAULT_MAX_RESCUES, Job, JobDraft, JobFilter, JobPage, JobStatus
from taskyard.core.names import check_name
from taskyard.core.payload import MAX_PAYLOAD_BYTES, check_payload
from taskyard.core.queue import QueueCounts, QueueSettings, RateLimit
from taskyard.core.retention import Retention, parse_retention
from taskyard.core.retry import Retry
from taskyard.core.task import ISOLATIONS, Isolation, TaskSpec
from taskyard.core.unique import UniqueRule, render_unique_key, validate_template
from taskyard.errors import ConfigError, JobNotFound, PayloadError, UnknownTaskError
from taskyard.schedules import ScheduleBook

__all__ = ("MAX_PAYLOAD_BYTES", "EnqueueItem", "ServiceSpec", "Taskyard")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])



@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A user service registered on the app: built by `factory(app)` in each server process."""

    id: str
    factory: Callable[..., Any]
    name: str
    critical: bool = False
    auto_start: bool = True
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EnqueueItem:
    """One entry of `enqueue_many`: the same options as `enqueue`."""

    task: str
    payload: Any = None
    delay: float | None = None
    run_at: datetime | None = None
    priority: int | None = None
    queue: str | None = None
    unique_key: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


class _Portal:
    """An event loop on a thread of its own, for running coroutines from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.backend_open = False
        self._thread = threading.Thread(target=self.loop.run_forever, name="taskyard-sync", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class Taskyard:
    """A taskyard application: tasks, schedules and services, over one backend.

    `backend` is a URL (`memory://`, `sqlite:///PATH`, `postgresql://...`, `redis://...`) or a
    `Backend` instance; it defaults to `TASKYARD_BACKEND`, then `sqlite:///taskyard.db`.
    `name` identifies the app where several share a store (e.g. as its schedules' declarer).
    """

    def __init__(
        self, backend: str | Backend | None = None, *, clock: Clock | None = None, name: str | None = None
    ) -> None:
        if backend is None:
            backend = config.default_backend_url()
        self.backend: Backend = backend_from_url(backend) if isinstance(backend, str) else backend
        self.clock: Clock = clock or SystemClock()
        #: What this app is called where several apps share a store (shown as the declarer of
        #: its declared schedules); the CLI sets it to the `--app` path when left out.
        self.name: str | None = name
        #: Where another process finds this app, as "MODULE:ATTR" (set by the CLI's `--app`):
        #: children of `isolation="process"` import it from there. None: derived from the
        #: module of the task's handler.
        self.import_path: str | None = None
        self.tasks: dict[str, TaskSpec] = {}
        self.service_specs: dict[str, ServiceSpec] = {}
        #: Queue settings declared in code (`queue()`), stored when a task server starts.
        self.queue_specs: dict[str, QueueSettings] = {}
        #: Retention rules of single queues declared in code (queue → status → rule).
        self.queue_retention: dict[str, dict[JobStatus, Retention]] = {}
        #: Called with the jobs each successful enqueue call returned (metrics, tests).
        self.enqueue_listeners: list[Callable[[Sequence[Job]], None]] = []
        #: The application's own HTTP routers (`taskyard.http.api.app_router`), served under /api/v1.
        self.http_routers: list[Any] = []
        #: Alert rules declared in code (`alert()`), merged with `[alerts] rules` by the server.
        self.alert_rules: list[AlertRule] = []
        self._opened_in: asyncio.AbstractEventLoop | None = None
        self._open_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._portal: _Portal | None = None
        self._portal_backend: Backend | None = None
        self._portal_guard = threading.Lock()
        #: The schedules API (`app.schedules.add(...)`, ...).
        self.schedules = ScheduleBook(self)

    # -- registration ------------------------------------------------------------------------
    def task(
        self,
        name: str,
        *,
        queue: str = "default",
        priority: int = 0,
        retry: Retry | None = None,
        timeout: float | None = None,
        unique: UniqueRule | None = None,
        max_rescues: int = DEFAULT_MAX_RESCUES,
        isolation: Isolation = "thread",
        memory_limit: float | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as task `name`.

        `max_rescues` is how many times a job of this task runs again after losing its
        worker (the worker died or was cut off and its lease expired); such a loss does not
        use the `retry` budget. One more loss fails the job.

        The handler's first parameter, if annotated with a pydantic model, receives the
        validated payload (a `dict` annotation or none receives raw JSON); a second
        parameter receives the `JobContext`. `async def` handlers run on the worker's loop,
        plain `def` handlers in a thread pool; the return value (JSON) is the job's result.

        `isolation="process"` runs each job in a child process of the worker instead (see
        docs/process-isolation.md): past `timeout` the child is killed, past `memory_limit`
        MB of resident memory too (the attempt fails with `MemoryLimitExceeded`), and a child
        that dies counts as a lost worker (a rescue), not as a failed attempt.
        """
        check_name("task name", name)
        check_name(f"task {name!r}: queue name", queue)
        if timeout is not None and timeout <= 0:
            raise ValueError(f"task {name!r}: timeout must be > 0 seconds")
        if isinstance(max_rescues, bool) or not isinstance(max_rescues, int) or max_rescues < 0:
            raise ValueError(f"task {name!r}: max_rescues must be an integer >= 0, not {max_rescues!r}")
        if isolation not in ISOLATIONS:
            raise ValueError(
                f"task {name!r}: isolation must be one of {', '.join(map(repr, ISOLATIONS))}, "
                f"not {isolation!r}"
            )
        if memory_limit is not None:
            if isinstance(memory_limit, bool) or not isinstance(memory_limit, int | float) or memory_limit <= 0:
                raise ValueError(f"task {name!r}: memory_limit must be a number of MB > 0, not {memory_limit!r}")
            if isolation != "process":
                raise ValueError(
                    f"task {name!r}: memory_limit needs isolation='process' (a thread's memory "
                    "cannot be measured or limited on its own)"
                )
        if isinstance(unique, str):
            validate_template(unique)

        def decorate(fn: F) -> F:
            if name in self.tasks:
                raise ValueError(f"task {name!r} is already registered")
            model, arity = _inspect_handler(fn)
            if isinstance(unique, str) and model is not None:
                missing = [f for f in validate_template(unique) if f not in model.model_fields]
                if missing:
                    raise ValueError(
                        f"task {name!r}: unique template {unique!r} uses {missing}, "
                        f"which {model.__name__} does not have"
                    )
            self.tasks[name] = TaskSpec(
                name=name,
                handler=fn,
                payload_model=model,
                queue=queue,
                priority=priority,
                retry=retry or Retry(),
                timeout=timeout,
                unique=unique,
                max_rescues=max_rescues,
                is_async=inspect.iscoroutinefunction(fn),
                isolation=isolation,
                memory_limit=None if memory_limit is None else float(memory_limit),
                wants_ctx=arity == 2,
                arity=arity,
            )
            return fn

        return decorate

    def service(
        self,
        service_id: str,
        *,
        name: str | None = None,
        critical: bool = False,
        auto_start: bool = True,
        depends_on: Sequence[str] = (),
    ) -> Callable[[F], F]:
        """Register a user service: decorate a `Service` subclass or a factory `f(app)`.

        The task server builds it in every process that runs user services.
        """

        check_name("service id", service_id)

        def decorate(factory: F) -> F:
            if service_id in self.service_specs:
                raise ValueError(f"service {service_id!r} is already registered")
            self.service_specs[service_id] = ServiceSpec(
                id=service_id,
                factory=factory,
                name=name or service_id,
                critical=critical,
                auto_start=auto_start,
                depends_on=tuple(depends_on),
            )
            return factory

        return decorate

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate_limit: RateLimit | None = None,
        retention: Mapping[str, Retention | Mapping[str, Any]] | None = None,
    ) -> None:
        """Declare a queue's shared limits in code: at most `concurrency` of its jobs running
        across all workers, at most `rate_limit.limit` starts per `rate_limit.period` seconds.

        `retention` keeps the queue's finished jobs by rules of its own, per status
        (`{"completed": {"keep_last": 10}, "failed": {"keep_last": 5, "max_age": 86400}}`):
        each replaces `[maintenance.retention]`'s rule of that status for this queue only
        (a `[maintenance.retention.queues.<name>.<status>]` setting replaces it in turn).

        A task server stores them when it starts (`aapply_queue_specs`), so the code is the
        source of truth at each deploy; changes made at runtime through the API or the
        dashboard last until then. The paused flag is runtime state and is never declared.
        """
        check_name("queue name", name)
        rules = parse_retention(retention or {})
        if rules:
            self.queue_retention[name] = rules
        else:
            self.queue_retention.pop(name, None)
        self.queue_specs[name] = QueueSettings(name=name, concurrency=concurrency, rate_limit=rate_limit)

    async def aapply_queue_specs(self) -> list[QueueSettings]:
        """Store every declared queue's limits in the backend (done by the task server at start)."""
        backend = await self.backend_for_loop()
        return [
            await backend.queue_update(
                queue=spec.name, concurrency=spec.concurrency, rate_limit=spec.rate_limit
            )
            for spec in self.queue_specs.values()
        ]

    def alert(self, name: str, *, kind: str, **params: Any) -> AlertRule:
        """Declare an alert rule in code, e.g. `app.alert("payments-failing",
        kind="failure_rate", queue="payments", threshold=20, window=300, for_seconds=60)`.

        The parameters are those of `[[alerts.rules]]` (`for_seconds` for TOML's `for`); see
        docs/alerts.md. Raises ValueError naming the rule for a bad one or a duplicate name.
        """
        if any(rule.name == name for rule in self.alert_rules):
            raise ValueError(f"alert rule {name!r} is already declared")
        rule = parse_rule({"name": name, "kind": kind, **params})
        self.alert_rules.append(rule)
        return rule

    def schedule(self, name: str, **options: Any) -> None:
        """Declare a schedule in code (upserted when a scheduler starts); see `ScheduleBook.declare`."""
        self.schedules.declare(name, **options)

    # -- payloads ----------------------------------------------------------------------------
    def get_task(self, name: str) -> TaskSpec:
        """The registered task, or `UnknownTaskError`."""
        spec = self.tasks.get(name)
        if spec is None:
            raise UnknownTaskError(name, list(self.tasks))
        return spec

    def validate_payload(self, task: str, payload: Any) -> tuple[Any, Any]:
        """(JSON payload to store, the value the handler would get). Raises `PayloadError`
        when it does not fit the task's model, is not JSON, or breaks the limits of
        `core/payload.py` (depth, size)."""
        spec = self.get_task(task)
        model = spec.payload_model
        if model is not None:
            try:
                value = (
                    payload if isinstance(payload, model) else model.model_validate(payload)
                )
            except pydantic.ValidationError as exc:
                raise PayloadError(task, _describe(exc), list(exc.errors(include_url=False))) from None  # type: ignore[arg-type]
            data = value.model_dump(mode="json")
        else:
            data = value = payload
        check_payload(task, data)
        return data, value

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
        spec = self.get_task(task)
        data, value = self.validate_payload(task, payload)
        if delay is not None and run_at is not None:
            raise ValueError("pass either delay or run_at, not both")
        if delay is not None:
            if delay < 0:
                raise ValueError("delay must be >= 0 seconds")
            run_at = self.clock.now() + timedelta(seconds=delay)
        elif run_at is not None and run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware")
        if queue is not None:
            check_name("queue name", queue)
        if unique_key is None and spec.unique is not None:
            try:
                unique_key = render_unique_key(spec.unique, value)
            except ValueError as exc:
                raise PayloadError(task, str(exc)) from None
        return JobDraft(
            id=job_id or ids.new_id(),
            task=task,
            queue=queue or spec.queue,
            payload=data,
            priority=spec.priority if priority is None else int(priority),
            run_at=run_at.astimezone(UTC) if run_at is not None else None,
            max_attempts=spec.retry.attempts,
            unique_key=unique_key,
            timeout=spec.timeout,
            max_rescues=spec.max_rescues,
        )

    # -- async API ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the backend on the running loop (done automatically on first use)."""
        loop = asyncio.get_running_loop()
        if self._opened_in is loop:
            return
        if self._open_lock is None or self._open_lock[0] is not loop:
            self._open_lock = (loop, asyncio.Lock())
        async with self._open_lock[1]:
            if self._opened_in is not loop:
                await self.backend.open()
                self._opened_in = loop

    async def aclose(self) -> None:
        """Close the backend opened by the async API."""
        if self._opened_in is not None:
            await self.backend.close()
            self._opened_in = None

    async def backend_for_loop(self) -> Backend:
        """The backend for the running loop, opened: the portal's own on the sync facade's
        loop (see `run_sync`), else `backend`. Services and the schedules API act through it."""
        portal = self._portal
        if portal is not None and asyncio.get_running_loop() is portal.loop:
            backend = self._portal_backend
            assert backend is not None
            if not portal.backend_open:
                await backend.open()
                portal.backend_open = True
            return backend
        if self._opened_in is None:
            await self.open()
        return self.backend

    async def aenqueue(self, task: str, payload: Any = None, **options: Any) -> Job:
        """Async twin of `enqueue`."""
        connection = options.pop("connection", None)
        draft = self.build_draft(task, payload, **options)
        return (await self.store_drafts([draft], connection))[0]

    async def aenqueue_many(self, items: Iterable[Any], *, connection: Any = None) -> list[Job]:
        """Async twin of `enqueue_many`."""
        drafts = [self._draft_of(item) for item in items]
        return await self.store_drafts(drafts, connection) if drafts else []

    async def store_drafts(self, drafts: list[JobDraft], connection: Any = None) -> list[Job]:
        """Store drafts built by `build_draft` (the scheduler's fires, `trigger`) and tell the
        enqueue listeners. `connection`: store them in that open transaction of the caller's,
        which only a `TransactionalEnqueue` backend (PostgreSQL) can do; any other backend
        raises `ConfigError` naming it, before anything is stored.
        """
        backend = await self.backend_for_loop()
        if connection is not None:
            if not isinstance(backend, TransactionalEnqueue):
                raise ConfigError(
                    f"enqueue with connection= (inside your own transaction) needs the PostgreSQL "
                    f"backend; the {_backend_kind(backend)} backend cannot take a connection: "
                    "enqueue without connection=, or use a postgresql:// backend"
                )
            jobs = await backend.job_enqueue_in_transaction(
                connection=connection, drafts=drafts, now=self.clock.now()
            )
        else:
            jobs = await backend.job_enqueue_many(drafts=drafts, now=self.clock.now())
        for listener in self.enqueue_listeners:
            listener(jobs)
        return jobs

    def _draft_of(self, item: Any) -> JobDraft:
        if isinstance(item, JobDraft):  # built (and validated) by build_draft
            return item
        if isinstance(item, EnqueueItem):
            return self.build_draft(
                item.task,
                item.payload,
                delay=item.delay,
                run_at=item.run_at,
                priority=item.priority,
                queue=item.queue,
                unique_key=item.unique_key,
                **item.options,
            )
        if isinstance(item, Mapping):
            options = dict(item)
            try:
                task = options.pop("task")
            except KeyError:
                raise ValueError("each enqueue_many item needs a 'task'") from None
            return self.build_draft(task, options.pop("payload", None), **options)
        if isinstance(item, tuple) and len(item) == 2:
            return self.build_draft(item[0], item[1])
        raise TypeError(
            "enqueue_many items are (task, payload) tuples, mappings with a 'task' key, "
            "EnqueueItem or JobDraft"
        )

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
    ) -> JobPage:
        """Async twin of `list_jobs`."""
        if limit < 1 or limit > 1000:
            raise ValueError("limit must be between 1 and 1000")
        job_filter = JobFilter(
            queue=queue,
            status=JobStatus(status) if status is not None else None,
            task=task,
            created_after=created_after,
            created_before=created_before,
        )
        return await (await self.backend_for_loop()).jobs_list(filter=job_filter, limit=limit, cursor=cursor)

    async def acancel_job(self, job_id: str) -> Job:
        """Async twin of `cancel_job`."""
        return await (await self.backend_for_loop()).job_cancel(job_id=job_id, now=self.clock.now())

    async def aretry_job(self, job_id: str) -> Job:
        """Async twin of `retry_job`."""
        return await (await self.backend_for_loop()).job_retry(job_id=job_id, now=self.clock.now())

    async def aretry_failed(self, queue: str | None = None) -> int:
        """Async twin of `retry_failed`."""
        return await (await self.backend_for_loop()).jobs_retry_failed(queue=queue, now=self.clock.now())

    async def acounts(self) -> dict[str, dict[str, int]]:
        """Async twin of `counts`."""
        rows: list[QueueCounts] = await (await self.backend_for_loop()).queue_counts()
        return {
            row.queue: {status.value: row.get(status) for status in JobStatus} for row in rows
        }

    def queue_names(self, stored: Iterable[str]) -> list[str]:
        """The queues known by name, sorted: those `stored` (with jobs or settings in the
        backend) and those of registered tasks and `queue()` declarations. The API, the
        dashboard and the CLI answer "no such queue" for any other name."""
        return sorted(
            set(stored) | {spec.queue for spec in self.tasks.values()} | set(self.queue_specs)
        )

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
        its result (the facade of `app.schedules` uses it too; see `backend_for_loop`)."""
        with self._portal_guard:
            if self._portal is None:
                self._portal = _Portal()
                # A memory backend is shared (it is thread-safe); others get their own
                # connection on the portal loop, built from the same URL.
                if self.backend.url.startswith("memory:"):
                    self._portal_backend = self.backend
                else:
                    self._portal_backend = backend_from_url(self.backend.url)
            portal = self._portal
        return portal.call(make())

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
        `created_before`; `limit` (default 50) and `cursor` (the previous page's `next_cursor`).
        """
        return self.run_sync(lambda: self.alist_jobs(**filters))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a scheduled or pending job now, or ask a running one to stop."""
        return self.run_sync(lambda: self.acancel_job(job_id))

    def retry_job(self, job_id: str) -> Job:
        """Run a failed or cancelled job again (its attempts start over)."""
        return self.run_sync(lambda: self.aretry_job(job_id))

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
        """Close the sync facade's connection and thread (the async API has `aclose`)."""
        with self._portal_guard:
            portal, backend = self._portal, self._portal_backend
            self._portal = self._portal_backend = None
        if portal is not None:
            if backend is not None and backend is not self.backend and portal.backend_open:
                portal.call(backend.close())
            portal.stop()


def _backend_kind(backend: Backend) -> str:
    """The backend's URL scheme (never the URL: it may carry a password) and class."""
    scheme = backend.url.partition("://")[0] or "?"
    return f"{scheme} ({type(backend).__name__})"


def _inspect_handler(fn: Callable[..., Any]) -> tuple[type[pydantic.BaseModel] | None, int]:
    """(payload model or None, how many of (payload, ctx) the handler takes)."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) > 2:
        raise ValueError(f"handler {fn.__qualname__} takes at most (payload, ctx)")
    model: type[pydantic.BaseModel] | None = None
    if params:
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:  # an unresolvable annotation is a bug in the user's code
            raise ValueError(f"cannot read the annotations of {fn.__qualname__}: {exc}") from exc
        hint = hints.get(params[0].name)
        if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
            model = hint
    return model, len(params)


def _describe(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        parts.append(f"field {loc!r}: {err.get('msg')}")
    return "; ".join(parts)

