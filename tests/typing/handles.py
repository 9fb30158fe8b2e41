# pyright: strict
"""A typed module that must pass mypy --strict and pyright: the task handles in use.

tests/typing/test_type_checkers.py checks it with both; tests/typing/test_handles.py runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, assert_type

from pydantic import BaseModel

from taskyard import Job, JobContext, MapRef, StepRef, Task, Taskyard


class Email(BaseModel):
    """A payload model."""

    to: str
    subject: str = "hello"


class Sent(BaseModel):
    """A result model."""

    message_id: str
    recipients: int


app = Taskyard("memory://")


@app.task("emails.send", queue="emails")
def send(email: Email) -> Sent:
    """A sync handler with a payload model and a model result."""
    return Sent(message_id=f"<{email.to}>", recipients=1)


@app.task("emails.send_async")
async def send_async(email: Email, ctx: JobContext) -> Sent:
    """An async handler that also takes the job's context."""
    return Sent(message_id=f"<{email.to}:{ctx.job.id}>", recipients=2)


@app.task("maintenance.tick")
def tick() -> None:
    """A handler without a payload."""


@app.task("events.record")
def record(event: dict[str, Any]) -> int:
    """Raw JSON in, a plain result out."""
    return len(event)


def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator typed loosely, as many are."""
    return fn


@app.task("events.loose")
@logged
def loose(event: dict[str, Any]) -> None:
    """Behind a loose decorator: its handle takes any payload."""


def notify(task: Task[Email, Sent], to: str) -> Job[Sent]:
    """A handle passed around by its payload and result types only."""
    return task.using(priority=5).enqueue(Email(to=to))


def direct_calls() -> None:
    """Handlers still call like the functions they were."""
    assert_type(send(Email(to="a@example.com")), Sent)
    assert_type(record({"a": 1}), int)
    assert_type(tick(), None)


async def use_async() -> Sent | None:
    """The async API through a handle."""
    job = await send_async.aenqueue(Email(to="b@example.com"), delay=0)
    assert_type(job, Job[Sent])
    jobs = await send_async.aenqueue_many([Email(to="c@example.com")], queue="default")
    assert_type(jobs, list[Job[Sent]])
    done = await send_async.await_job(job.id, timeout=10)
    assert_type(done, Job[Sent])
    again = await send_async.aget(job.id)
    assert_type(again, Job[Sent] | None)
    return done.result


def use_sync() -> list[str]:
    """The sync facade through handles, every option of `using` and `enqueue` typed."""
    first = send.enqueue(Email(to="d@example.com"), unique_key="d", job_id=None)
    assert_type(first, Job[Sent])
    later = send.using(queue="bulk", run_at=datetime(2030, 1, 1, tzinfo=UTC)).enqueue(
        Email(to="e@example.com")
    )
    many = send.using(delay=60).enqueue_many([Email(to="f@example.com"), Email(to="g@example.com")])
    assert_type(many, list[Job[Sent]])
    ticked = tick.enqueue()
    assert_type(ticked, Job[None])
    counted = record.enqueue({"kind": "signup"})
    assert_type(counted, Job[int])
    read = send.get(first.id)
    assert_type(read, Job[Sent] | None)
    by_name = app.enqueue("emails.send", {"to": "h@example.com"})
    assert_type(by_name, Job)
    loose.enqueue({"kind": "loose"})
    drafts = [send.draft(Email(to="i@example.com")), tick.draft(None)]
    app.enqueue_many(drafts)
    return [first.id, later.id, notify(send, "j@example.com").id, ticked.id, counted.id]


def use_workflow() -> str:
    """A workflow built from handles: step and map payloads checked, results read back typed."""
    wf = app.workflow("mail-run")
    first = wf.step(send, Email(to="k@example.com"))
    assert_type(first, StepRef[Sent])
    fanned = wf.map(send_async, [Email(to="l@example.com")], after={first: "continue"})
    assert_type(fanned, MapRef[Sent])
    wf.step(tick, after=[fanned, "emails.send"])
    return wf.enqueue().id


@app.task("emails.summary")
def summary(payload: None, ctx: JobContext) -> int:
    """A fan-in reading its parents' results, typed by the handle that ran them."""
    sent = ctx.results(send_async)
    assert_type(sent, list[Sent])
    return sum(s.recipients for s in sent)
