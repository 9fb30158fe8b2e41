"""`Registry`: what an app declares in code — tasks, user services, queues and alert rules."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from taskyard.core.alert import AlertRule, parse_rule
from taskyard.core.job import DEFAULT_MAX_RESCUES, JobStatus
from taskyard.core.names import check_name
from taskyard.core.queue import QueueSettings, RateLimit
from taskyard.core.retention import Retention, parse_retention
from taskyard.core.retry import Retry
from taskyard.core.task import ISOLATIONS, Isolation, TaskSpec
from taskyard.core.unique import UniqueRule, validate_template
from taskyard.errors import UnknownTaskError
from taskyard.task import Task, TaskDecorator, TaskHost

__all__ = ("Registry", "ServiceSpec")

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


class Registry:
    """The declarations of an app, made at import: `Taskyard` is one (it adds the backend)."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskSpec] = {}
        self.service_specs: dict[str, ServiceSpec] = {}
        #: Queue settings declared in code (`queue()`), stored when a task server starts.
        self.queue_specs: dict[str, QueueSettings] = {}
        #: Retention rules of single queues declared in code (queue → status → rule).
        self.queue_retention: dict[str, dict[JobStatus, Retention]] = {}
        #: Alert rules declared in code (`alert()`), merged with `[alerts] rules` by the server.
        self.alert_rules: list[AlertRule] = []

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
    ) -> TaskDecorator:
        """Register the decorated function as task `name` and return its typed handle, a
        `Task[P, R]` (see taskyard/task.py): it calls like the function, and
        `handle.enqueue(payload)` is checked by mypy and pyright against the payload type.

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

        def decorate(fn: Callable[..., Any]) -> Task[Any, Any]:
            if name in self.tasks:
                raise ValueError(f"task {name!r} is already registered")
            if isinstance(fn, Task):  # another app's handle: register its handler here too
                fn = fn.spec.handler
            model, arity = _inspect_handler(fn)
            if isinstance(unique, str) and model is not None:
                missing = [f for f in validate_template(unique) if f not in model.model_fields]
                if missing:
                    raise ValueError(
                        f"task {name!r}: unique template {unique!r} uses {missing}, "
                        f"which {model.__name__} does not have"
                    )
            spec = self.tasks[name] = TaskSpec(
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
            # Only a Taskyard (app.py) is ever built, and it is a TaskHost (checked there).
            return Task(typing.cast(TaskHost, self), spec)

        return decorate  # type: ignore[return-value]  # TaskDecorator's overloads type it

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

    def get_task(self, name: str) -> TaskSpec:
        """The registered task, or `UnknownTaskError`."""
        spec = self.tasks.get(name)
        if spec is None:
            raise UnknownTaskError(name, list(self.tasks))
        return spec

    def queue_names(self, stored: Iterable[str]) -> list[str]:
        """The queues known by name, sorted: those `stored` (with jobs or settings in the
        backend) and those of registered tasks and `queue()` declarations. The API, the
        dashboard and the CLI answer "no such queue" for any other name."""
        return sorted(
            set(stored) | {spec.queue for spec in self.tasks.values()} | set(self.queue_specs)
        )


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
