"""`Task[P, R]`: the typed handle `@app.task` returns — calls like the handler, enqueues a
payload the type checker verifies (`send.enqueue(Email(...))`), reads `Job[R]` back."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any, Concatenate, Generic, Protocol, TypedDict, Unpack, overload

import pydantic
import pydantic_core
from typing_extensions import ParamSpec, TypeVar

from taskyard.core.job import Job, JobDraft
from taskyard.core.payload import MAX_PAYLOAD_DEPTH
from taskyard.core.task import TaskSpec

__all__ = ("EnqueueOptions", "JobOptions", "Task", "TaskDecorator", "TaskHost", "result_adapter", "stored_result")

T = TypeVar("T")
#: The payload type: the handler's first parameter (a pydantic model, or the plain type of
#: raw JSON such as `dict[str, Any]`); None for a handler that takes no payload.
P = TypeVar("P")
#: The result type: what the handler returns (awaited, for an `async def` handler).
R = TypeVar("R")
#: The handler's own parameters and what calling it returns (the coroutine, for `async def`),
#: so the handle still calls like the function; `Task[P, R]` leaves them open.
A = ParamSpec("A", default=...)
C = TypeVar("C", default=Any)
# The decorator's own, without defaults (a type variable with none may not follow one).
_P = TypeVar("_P")
_R = TypeVar("_R")
_A = ParamSpec("_A")


class JobOptions(TypedDict, total=False):
    """The options `Task.using` binds (and `enqueue` takes): see `Taskyard.enqueue`."""

    delay: float | None
    run_at: datetime | None
    priority: int | None
    queue: str | None
    unique_key: str | None


class ManyOptions(JobOptions, total=False):
    """`enqueue_many`'s options: those of every job, and the caller's open transaction."""

    connection: Any


class EnqueueOptions(ManyOptions, total=False):
    """`enqueue`'s options: `JobOptions`, the job's own id, the caller's open transaction."""

    job_id: str | None


class TaskHost(Protocol):
    """What a handle needs of its app (`Taskyard` is one)."""

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
        """Validate one enqueue and return the draft to store."""
        ...

    async def store_drafts(self, drafts: list[JobDraft], connection: Any = None) -> list[Job]:
        """Store drafts (in the caller's transaction with `connection`)."""
        ...

    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the sync facade's loop."""
        ...

    async def aget_job(self, job_id: str) -> Job | None:
        """The job with that id, or None."""
        ...

    async def await_job(self, job_id: str, *, timeout: float = 30.0, poll: float = 0.05) -> Job:
        """Wait until the job is finished and return it."""
        ...


class Task(Generic[P, R, A, C]):
    """The handle of a registered task: `P` its payload type, `R` its result type.

    Calling it calls the handler (tests and other code keep calling handlers directly).
    `enqueue(payload, **options)` and its async twin `aenqueue`, `enqueue_many` and
    `aenqueue_many` store jobs of the task; `using(...)` returns a handle with options bound
    (`send.using(queue="bulk", delay=60).enqueue(...)`); `get`, `aget` and `await_job` read
    a job back as `Job[R]`, its result validated into `R` with pydantic (a model, a list of
    models, a datetime, ...; JSON types stay as they are). `spec` is the registry's record.
    """

    def __init__(self, host: TaskHost, spec: TaskSpec, options: JobOptions | None = None) -> None:
        functools.update_wrapper(self, spec.handler)  # first: it copies the handler's __dict__
        self.host = host
        #: The registry's record of the task (`app.tasks[name]` is the same object).
        self.spec = spec
        #: The options bound by `using` (enqueue's own options win over them).
        self.options: JobOptions = options or {}

    @property
    def name(self) -> str:
        """The task's name (what jobs carry and enqueue by name takes)."""
        return self.spec.name

    def __call__(self, *args: A.args, **kwargs: A.kwargs) -> C:
        """Call the handler itself, here and now (no job)."""
        return typing.cast("C", self.spec.handler(*args, **kwargs))

    def __repr__(self) -> str:
        bound = f" using {self.options}" if self.options else ""
        return f"<Task {self.name!r} ({self.spec.handler.__qualname__}){bound}>"

    def using(self, **options: Unpack[JobOptions]) -> Task[P, R, A, C]:
        """This handle with `options` bound (added to, and replacing, those already bound)."""
        return Task(self.host, self.spec, {**self.options, **options})

    def draft(self, payload: P, /, **options: Unpack[EnqueueOptions]) -> JobDraft:
        """The validated draft of one job of this task, for `app.enqueue_many` with jobs of
        several tasks in one round-trip (`connection` does not apply to a draft)."""
        merged: dict[str, Any] = {**self.options, **options}
        merged.pop("connection", None)
        return self.host.build_draft(self.name, payload, **merged)

    @overload
    async def aenqueue(
        self: Task[None, R, ..., Any], payload: None = None, /, **options: Unpack[EnqueueOptions]
    ) -> Job[R]: ...
    @overload
    async def aenqueue(self, payload: P, /, **options: Unpack[EnqueueOptions]) -> Job[R]: ...
    async def aenqueue(self, payload: Any = None, /, **options: Unpack[EnqueueOptions]) -> Job[R]:
        """Async twin of `enqueue`."""
        connection = options.pop("connection", None)
        drafts = [self.draft(payload, **options)]
        return self.typed((await self.host.store_drafts(drafts, connection))[0])

    @overload
    def enqueue(
        self: Task[None, R, ..., Any], payload: None = None, /, **options: Unpack[EnqueueOptions]
    ) -> Job[R]: ...
    @overload
    def enqueue(self, payload: P, /, **options: Unpack[EnqueueOptions]) -> Job[R]: ...
    def enqueue(self, payload: Any = None, /, **options: Unpack[EnqueueOptions]) -> Job[R]:
        """Enqueue one job of this task and return it: `Taskyard.enqueue` with the task
        fixed and the payload typed (a task without a payload parameter takes none). Options:
        `delay` or `run_at`, `priority`, `queue`, `unique_key`, `job_id`, `connection`."""
        return self.host.run_sync(lambda: self.aenqueue(payload, **options))

    async def aenqueue_many(self, payloads: Iterable[P], /, **options: Unpack[ManyOptions]) -> list[Job[R]]:
        """Async twin of `enqueue_many`."""
        connection = options.pop("connection", None)
        drafts = [self.draft(payload, **options) for payload in payloads]
        if not drafts:
            return []
        return [self.typed(job) for job in await self.host.store_drafts(drafts, connection)]

    def enqueue_many(self, payloads: Iterable[P], /, **options: Unpack[ManyOptions]) -> list[Job[R]]:
        """Enqueue one job per payload in one round-trip, all with the same options; every
        payload is validated before anything is stored (see `Taskyard.enqueue_many`)."""
        items = list(payloads)
        return self.host.run_sync(lambda: self.aenqueue_many(items, **options))

    async def aget(self, job_id: str) -> Job[R] | None:
        """Async twin of `get`."""
        job = await self.host.aget_job(job_id)
        return None if job is None else self.typed(job)

    def get(self, job_id: str) -> Job[R] | None:
        """The job with that id (its result validated into `R`), or None. A job of another
        task raises ValueError."""
        return self.host.run_sync(lambda: self.aget(job_id))

    async def await_job(self, job_id: str, *, timeout: float = 30.0, poll: float = 0.05) -> Job[R]:
        """Wait until the job is finished and return it, its result validated into `R`
        (`Taskyard.await_job` through the handle)."""
        return self.typed(await self.host.await_job(job_id, timeout=timeout, poll=poll))

    def typed(self, job: Job) -> Job[R]:
        """`job` as a `Job[R]`: its result validated into `R` (the handler's return
        annotation) where that is more than plain JSON. Raises ValueError for a job of another
        task, or a result that does not fit `R` (a handler that broke its own annotation)."""
        if job.task != self.name:
            raise ValueError(f"job {job.id} is a job of task {job.task!r}, not of {self.name!r}")
        adapter = self._result_adapter
        if adapter is None or job.result is None:
            return job
        try:
            return job.replace(result=adapter.validate_python(job.result))
        except pydantic.ValidationError as exc:
            raise ValueError(
                f"job {job.id}: its result does not fit the return type of task {self.name!r}: "
                f"{exc.errors(include_url=False)}"
            ) from None

    @functools.cached_property
    def _result_adapter(self) -> pydantic.TypeAdapter[Any] | None:
        """How a stored result becomes `R`; None where it stays as stored (no annotation,
        `Any`, `None`, plain JSON types, or a type pydantic cannot validate)."""
        return result_adapter(self.spec.handler)


@functools.lru_cache(maxsize=1024)
def result_adapter(handler: Callable[..., Any]) -> pydantic.TypeAdapter[Any] | None:
    """How a stored result of `handler` becomes its return type (see `Task.typed`); None where
    it stays as stored. Built once per handler."""
    try:
        hints = typing.get_type_hints(handler)
    except Exception as exc:  # an unresolvable annotation is a bug in the user's code
        raise ValueError(f"cannot read the return annotation of {handler.__qualname__}: {exc}") from exc
    hint: Any = hints.get("return")
    if hint in _AS_STORED:
        return None
    try:
        return pydantic.TypeAdapter(hint)
    except pydantic.PydanticSchemaGenerationError:
        return None


def stored_result(value: Any) -> Any:
    """What a handler's return value is stored as: pydantic models, also inside lists, tuples
    and dicts, dumped to JSON (`mode="json"`; a handle's `typed` validates them back); any
    other value as it is (the worker then checks that it is JSON within the limits)."""
    return pydantic_core.to_jsonable_python(value) if _holds_model(value) else value


def _holds_model(value: Any, depth: int = 0) -> bool:
    if isinstance(value, pydantic.BaseModel):
        return True
    if depth > MAX_PAYLOAD_DEPTH:  # too deep to store anyway: the check rejects it
        return False
    if isinstance(value, list | tuple):
        return any(_holds_model(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_model(v, depth + 1) for v in value.values())
    return False


# JSON comes back as these types already: validating it would only copy it.
_AS_STORED: tuple[Any, ...] = (None, type(None), Any, object, str, int, float, bool, dict, list)


class TaskDecorator(Protocol):
    """What `@app.task(...)` returns: it turns the handler into its `Task` handle, `P` and `R`
    read from the handler's first parameter and return type (`None`: no payload)."""

    # Handlers with a payload first: a callable typed `(...) -> Any` matches those, so its
    # handle takes any payload (or none) instead of none at all.
    @overload
    def __call__(
        self, fn: Callable[Concatenate[_P, _A], Coroutine[Any, Any, _R]], /
    ) -> Task[_P, _R, Concatenate[_P, _A], Coroutine[Any, Any, _R]]: ...
    @overload
    def __call__(
        self, fn: Callable[[], Coroutine[Any, Any, _R]], /
    ) -> Task[None, _R, [], Coroutine[Any, Any, _R]]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[_P, _A], _R], /) -> Task[_P, _R, Concatenate[_P, _A], _R]: ...
    @overload
    def __call__(self, fn: Callable[[], _R], /) -> Task[None, _R, [], _R]: ...
