"""`TaskyardBackend`: a Django task backend (`TASKS` setting) that stores each task call as a
taskyard job, run by taskyard workers (`manage.py taskyard_worker`)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from asgiref.sync import sync_to_async

from taskyard.app import Taskyard
from taskyard.contrib.django import handlers
from taskyard.contrib.django.compat import (
    BaseTaskBackend,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    signals,
)
from taskyard.contrib.django.results import payload_of, task_result
from taskyard.core.job import JobDraft
from taskyard.core.names import is_name
from taskyard.errors import TaskyardError

__all__ = ("OPTION_NAMES", "TaskyardBackend")

#: The keys of a taskyard backend's `OPTIONS` (see docs/django.md).
OPTION_NAMES = ("BACKEND_URL", "APP", "DATABASE", "SCHEMA", "ON_COMMIT", "TASK_MODULES")
_POSTGRES_SCHEMES = ("postgres", "postgresql")


class TaskyardBackend(BaseTaskBackend):
    """Django task backend over a taskyard app.

    `OPTIONS`: `BACKEND_URL` (a taskyard backend URL) or `APP` (`"module:attr"` of an existing
    `Taskyard`); with neither, a PostgreSQL `DATABASE` (Django alias, default "default") is
    the store itself (schema `SCHEMA`, default "taskyard"), else `TASKYARD_BACKEND` or
    taskyard's default. `ON_COMMIT` (default True): inside `transaction.atomic()` on a store
    that cannot share the transaction, store the job when it commits. `TASK_MODULES`: modules
    a worker imports, besides each installed app's `tasks`, to find the tasks it runs.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.database: str = self.options.get("DATABASE", "default")
        self.on_commit: bool = self.options.get("ON_COMMIT", True)
        self.task_modules: list[str] = list(self.options.get("TASK_MODULES", []))
        self._app: Taskyard | None = None
        self._owns_app = False

    # -- the taskyard app ----------------------------------------------------------------------
    @property
    def app(self) -> Taskyard:
        """The taskyard app behind this backend, built on first use (`ImproperlyConfigured`
        for a bad configuration: `manage.py check` reports it first)."""
        if self._app is None:
            from django.core.exceptions import ImproperlyConfigured

            try:
                self._app, self._owns_app = self._build_app()
            except (TaskyardError, ImportError, ValueError, TypeError) as exc:
                raise ImproperlyConfigured(f"TASKS[{self.alias!r}]: {exc}") from exc
        return self._app

    def _build_app(self) -> tuple[Taskyard, bool]:
        app_path = self.options.get("APP")
        if app_path is not None:
            return _import_app(app_path), False
        url = self.options.get("BACKEND_URL") or self._database_url()
        app = Taskyard(url, name=f"django:{self.alias}")
        app.backend  # noqa: B018 - builds the backend from its URL (nothing is opened): a bad URL is a check error
        return app, True

    def _database_url(self) -> str | None:
        """The Django database as a taskyard URL when it is PostgreSQL (read at first use, so
        that a test run's test database is the one used), else None (taskyard's default)."""
        from django.db import connections

        if self.database not in connections.settings:
            return None
        settings = connections[self.database].settings_dict
        if connections[self.database].vendor != "postgresql":
            return None
        user = quote(settings.get("USER") or "", safe="")
        password = settings.get("PASSWORD") or ""
        auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
        host = settings.get("HOST") or "127.0.0.1"
        port = f":{settings['PORT']}" if settings.get("PORT") else ""
        schema = self.options.get("SCHEMA", "taskyard")
        return f"postgresql://{auth}{host}{port}/{quote(settings['NAME'])}?schema={schema}"

    def close(self) -> None:
        """Close the app's connections and thread when this backend built the app."""
        if self._app is not None and self._owns_app:
            self._app.close()
        self._app = None

    # -- tasks -----------------------------------------------------------------------------------
    def register(self, task: Any) -> str:
        """Register Django `task` on the app (done by `enqueue`, and by `discover` on a worker)."""
        return handlers.register(self.app, task, alias=self.alias)

    def discover(self) -> list[str]:
        """Register every task of this backend in the installed apps' `tasks` modules and in
        `TASK_MODULES`; return their taskyard names (what `taskyard_worker` runs)."""
        return handlers.discover(self.app, alias=self.alias, modules=self.task_modules)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Store one call of `task` as a taskyard job and return its `TaskResult` (READY).

        Inside `transaction.atomic()` of `DATABASE` the job belongs to that transaction: in
        it, when the taskyard store is that same PostgreSQL database; else, with `ON_COMMIT`,
        stored once it commits (never, when it rolls back).
        """
        from django.db import transaction

        self.validate_task(task)
        app = self.app
        name = self.register(task)
        draft = app.build_draft(
            name,
            payload_of(args, kwargs),
            run_at=_aware(task.run_after),
            priority=task.priority,
            queue=task.queue_name,
        )
        connection = self._shared_connection()
        if connection is not None:
            job = app.enqueue_many([draft], connection=connection)[0]
            result = task_result(task, job, backend_alias=self.alias)
        elif self.on_commit and self._in_atomic_block():
            result = self._ready_result(task, draft, args, kwargs)
            transaction.on_commit(lambda: self._store_committed(draft, result), using=self.database)
            return result
        else:
            job = app.enqueue_many([draft])[0]
            result = task_result(task, job, backend_alias=self.alias)
        signals.task_enqueued.send(type(self), task_result=result)
        return result

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """`enqueue` from async code. It runs on Django's sync thread (`thread_sensitive`): a
        Taskyard's async API binds its connections to one event loop, while Django's async
        code runs on whichever loop it is given; the app's sync facade owns its loop."""
        return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)

    def get_result(self, result_id: str) -> Any:
        """The `TaskResult` of job `result_id`: status, return value, errors with tracebacks,
        attempts and worker ids (`TaskResultDoesNotExist` for no such job of a Django task)."""
        job = self.app.get_job(result_id) if is_name(result_id) else None
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            task = handlers.load_task(job.task)
        except ImportError:
            raise TaskResultDoesNotExist(result_id) from None
        return task_result(task, job, backend_alias=self.alias)

    async def aget_result(self, result_id: str) -> Any:
        """`get_result` from async code (see `aenqueue` for why on the sync thread)."""
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)

    # -- transactions ----------------------------------------------------------------------------
    def _in_atomic_block(self) -> bool:
        from django.db import connections

        return self.database in connections.settings and connections[self.database].in_atomic_block

    def _shared_connection(self) -> Any:
        """Django's psycopg connection when the job can be stored in its open transaction:
        inside `atomic()`, on PostgreSQL with psycopg 3, the same database as the store."""
        from django.db import connections

        if not self._in_atomic_block():
            return None
        django_conn = connections[self.database]
        if django_conn.vendor != "postgresql" or not _same_database(self.app.backend.url, django_conn):
            return None
        import psycopg

        raw = django_conn.connection
        return raw if isinstance(raw, psycopg.Connection) else None

    def _ready_result(self, task: Any, draft: JobDraft, args: Any, kwargs: Any) -> Any:
        return TaskResult(
            task=task, id=draft.id, status=TaskResultStatus.READY, enqueued_at=None,
            started_at=None, finished_at=None, last_attempted_at=None, args=list(args),
            kwargs=dict(kwargs), backend=self.alias, errors=[], worker_ids=[],
        )

    def _store_committed(self, draft: JobDraft, result: Any) -> None:
        job = self.app.enqueue_many([draft])[0]
        object.__setattr__(result, "enqueued_at", job.created_at)
        signals.task_enqueued.send(type(self), task_result=result)

    # -- system checks ---------------------------------------------------------------------------
    def check(self, **kwargs: Any) -> Iterable[Any]:
        """Django system checks: every problem of `QUEUES` and `OPTIONS` (`taskyard.E00x`)."""
        yield from super().check(**kwargs)
        for problem in self.problems():
            from django.core import checks

            yield checks.Error(problem, obj=f"TASKS[{self.alias!r}]", id="taskyard.E001")

    def problems(self) -> list[str]:
        """What is wrong with this backend's settings, one sentence each (empty: nothing)."""
        out: list[str] = []
        for key in self.options:
            if key not in OPTION_NAMES:
                near = difflib.get_close_matches(str(key), OPTION_NAMES, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                out.append(f"OPTIONS has an unknown key {key!r}{hint}; known: {', '.join(OPTION_NAMES)}")
        for queue in sorted(self.queues):
            if not is_name(queue):
                out.append(f"QUEUES: {queue!r} is not a valid taskyard queue name")
        if "BACKEND_URL" in self.options and "APP" in self.options:
            out.append("OPTIONS: give BACKEND_URL or APP, not both (an APP has its own backend)")
        if not isinstance(self.on_commit, bool):
            out.append(f"OPTIONS['ON_COMMIT'] must be True or False, not {self.on_commit!r}")
        if not all(isinstance(m, str) for m in self.task_modules):
            out.append("OPTIONS['TASK_MODULES'] must be a list of module paths")
        from django.db import connections

        if self.database not in connections.settings:
            out.append(f"OPTIONS['DATABASE']: no database {self.database!r} in DATABASES")
        if not out:
            try:
                self.app  # noqa: B018 - builds and validates the app (nothing is opened)
            except Exception as exc:
                out.append(str(exc.__cause__ or exc))
        return out


def _import_app(path: Any) -> Taskyard:
    if not isinstance(path, str) or ":" not in path:
        raise ValueError(f"APP must be 'module:attribute' of a Taskyard app, not {path!r}")
    module_name, _, attr = path.partition(":")
    found = getattr(importlib.import_module(module_name), attr, None)
    if not isinstance(found, Taskyard):
        raise TypeError(f"APP {path!r} is not a Taskyard app ({type(found).__name__})")
    return found


def _aware(when: datetime | None) -> datetime | None:
    """`run_after` as an aware datetime (Django allows a naive one when USE_TZ is False)."""
    if when is None or when.tzinfo is not None:
        return when
    from django.utils import timezone

    return timezone.make_aware(when)


def _same_database(url: str, django_conn: Any) -> bool:
    """Whether taskyard's PostgreSQL URL names the database that Django's connection is on."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _POSTGRES_SCHEMES:
        return False
    info = django_conn.connection.info
    local = {"", "localhost", "127.0.0.1", "::1"}
    url_host, conn_host = parts.hostname or "", info.host or ""
    same_host = url_host == conn_host or (url_host in local and (conn_host in local or conn_host.startswith("/")))
    return same_host and (parts.port or 5432) == int(info.port) and parts.path.lstrip("/") == info.dbname
