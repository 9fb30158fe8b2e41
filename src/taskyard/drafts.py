"""Enqueue arguments → validated `JobDraft`s: the payload checked against the task's model and
limits, the run time, queue and unique key settled. Pure: nothing here touches a backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from taskyard.clock import Clock
from taskyard.core import ids
from taskyard.core.job import JobDraft
from taskyard.core.names import check_name
from taskyard.core.payload import check_payload
from taskyard.core.task import TaskSpec
from taskyard.core.unique import render_unique_key
from taskyard.errors import PayloadError

__all__ = ("EnqueueItem", "build_draft", "draft_of", "validate_payload")


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


def validate_payload(spec: TaskSpec, payload: Any) -> tuple[Any, Any]:
    """(JSON payload to store, the value the handler would get) for a job of `spec`; see
    `Taskyard.validate_payload`."""
    model = spec.payload_model
    if model is not None:
        try:
            value = payload if isinstance(payload, model) else model.model_validate(payload)
        except pydantic.ValidationError as exc:
            raise PayloadError(spec.name, _describe(exc), list(exc.errors(include_url=False))) from None  # type: ignore[arg-type]
        data = value.model_dump(mode="json")
    else:
        data = value = payload
    check_payload(spec.name, data)
    return data, value


def build_draft(
    spec: TaskSpec,
    payload: Any = None,
    *,
    clock: Clock,
    delay: float | None = None,
    run_at: datetime | None = None,
    priority: int | None = None,
    queue: str | None = None,
    unique_key: str | None = None,
    job_id: str | None = None,
) -> JobDraft:
    """Validate everything about one enqueue of `spec` and return the draft to store
    (`delay` counts from `clock.now()`)."""
    data, value = validate_payload(spec, payload)
    if delay is not None and run_at is not None:
        raise ValueError("pass either delay or run_at, not both")
    if delay is not None:
        if delay < 0:
            raise ValueError("delay must be >= 0 seconds")
        run_at = clock.now() + timedelta(seconds=delay)
    elif run_at is not None and run_at.tzinfo is None:
        raise ValueError("run_at must be timezone-aware")
    if queue is not None:
        check_name("queue name", queue)
    if unique_key is None and spec.unique is not None:
        try:
            unique_key = render_unique_key(spec.unique, value)
        except ValueError as exc:
            raise PayloadError(spec.name, str(exc)) from None
    return JobDraft(
        id=job_id or ids.new_id(),
        task=spec.name,
        queue=queue or spec.queue,
        payload=data,
        priority=spec.priority if priority is None else int(priority),
        run_at=run_at.astimezone(UTC) if run_at is not None else None,
        max_attempts=spec.retry.attempts,
        unique_key=unique_key,
        timeout=spec.timeout,
        max_rescues=spec.max_rescues,
    )


def draft_of(item: Any, build: Callable[..., JobDraft]) -> JobDraft:
    """The draft of one `enqueue_many` item; `build(task, payload, **options)` makes one from
    enqueue arguments (the app's `build_draft`)."""
    if isinstance(item, JobDraft):  # built (and validated) by build_draft
        return item
    if isinstance(item, EnqueueItem):
        return build(
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
        return build(task, options.pop("payload", None), **options)
    if isinstance(item, tuple) and len(item) == 2:
        return build(item[0], item[1])
    raise TypeError(
        "enqueue_many items are (task, payload) tuples, mappings with a 'task' key, "
        "EnqueueItem or JobDraft"
    )


def _describe(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        parts.append(f"field {loc!r}: {err.get('msg')}")
    return "; ".join(parts)
