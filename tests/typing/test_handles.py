"""The task handle at run time: it calls like the handler, enqueues with bound options, and
reads `Job[R]` back with the result validated into the handler's return type."""

from __future__ import annotations

import inspect
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from taskyard import FakeClock, JobContext, JobStatus, PayloadError, Task, Taskyard
from taskyard.testing import drain


class Email(BaseModel):
    to: str


class Sent(BaseModel):
    message_id: str


START = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def app() -> Taskyard:
    return Taskyard("memory://", clock=FakeClock(START))


def test_the_handle_calls_like_the_function_and_wraps_the_registry_record(app: Taskyard) -> None:
    def send(email: Email) -> Sent:
        """Send one email."""
        return Sent(message_id=email.to)

    async def send_async(email: Email, ctx: JobContext) -> Sent:
        return Sent(message_id=email.to)

    handle = app.task("emails.send")(send)
    other = app.task("emails.send_async")(send_async)
    assert isinstance(handle, Task)
    assert handle(Email(to="a")) == Sent(message_id="a")
    assert (handle.__name__, handle.__doc__, handle.__wrapped__) == ("send", "Send one email.", send)
    assert handle.spec is app.tasks["emails.send"] and handle.spec.handler is send
    assert app.tasks["emails.send_async"].is_async and inspect.iscoroutinefunction(other.spec.handler)
    assert "email" in inspect.signature(handle).parameters
    assert repr(handle.using(queue="bulk")) == "<Task 'emails.send' (test_the_handle_calls_like_the_function_and_wraps_the_registry_record.<locals>.send) using {'queue': 'bulk'}>"


def test_using_binds_options_and_enqueue_overrides_them(app: Taskyard) -> None:
    @app.task("emails.send", queue="emails", priority=1)
    def send(email: Email) -> None: ...

    bulk = send.using(queue="bulk", priority=4, delay=60)
    job = bulk.enqueue(Email(to="a"), priority=9)
    assert (job.task, job.queue, job.priority, job.payload) == ("emails.send", "bulk", 9, {"to": "a"})
    assert job.run_at == START + timedelta(seconds=60)
    assert send.options == {} and bulk.using(queue="x").options["delay"] == 60
    plain = send.enqueue(Email(to="b"), job_id="job-b", unique_key="b")
    assert (plain.id, plain.queue, plain.priority, plain.unique_key) == ("job-b", "emails", 1, "b")
    app.close()


def test_a_handler_without_payload_enqueues_without_one(app: Taskyard) -> None:
    @app.task("tick")
    def tick() -> None: ...

    assert tick.enqueue().payload is None
    assert [j.payload for j in tick.enqueue_many([None, None])] == [None, None]
    app.close()


def test_enqueue_many_validates_every_payload_before_storing_any(app: Taskyard) -> None:
    @app.task("emails.send")
    def send(email: Email) -> None: ...

    with pytest.raises(PayloadError, match="field 'to'"):
        send.enqueue_many([Email(to="a"), {"too": "b"}])  # type: ignore[list-item]
    assert app.list_jobs(task="emails.send").jobs == []
    jobs = send.using(queue="bulk").enqueue_many([Email(to="a"), Email(to="b")])
    assert [(j.payload, j.queue) for j in jobs] == [({"to": "a"}, "bulk"), ({"to": "b"}, "bulk")]
    assert send.enqueue_many([]) == []
    app.close()


def test_enqueue_by_name_and_drafts_of_several_tasks_in_one_call(app: Taskyard) -> None:
    @app.task("emails.send")
    def send(email: Email) -> None: ...

    @app.task("tick")
    def tick() -> None: ...

    assert app.enqueue("emails.send", {"to": "a"}).payload == {"to": "a"}
    jobs = app.enqueue_many([send.using(priority=2).draft(Email(to="b")), tick.draft(None)])
    assert [(j.task, j.priority) for j in jobs] == [("emails.send", 2), ("tick", 0)]
    app.close()


async def test_a_job_read_through_the_handle_has_its_result_validated_into_r(app: Taskyard) -> None:
    @app.task("emails.send")
    async def send(email: Email, ctx: JobContext) -> Sent:
        return Sent(message_id=f"<{email.to}>")

    @app.task("emails.batch")
    def batch(emails: list[str]) -> list[Sent]:
        return [Sent(message_id=to) for to in emails]

    @app.task("maybe")
    def maybe() -> Sent | None:
        return Sent(message_id="m")

    @app.task("count")
    def count(data: dict[str, int]) -> int:
        return len(data)

    one = await send.aenqueue(Email(to="a"))
    many = await batch.aenqueue_many([["b", "c"]])
    when = await maybe.aenqueue()
    counted = await count.aenqueue({"x": 1})
    assert one.result is None
    await drain(app)
    done = await send.await_job(one.id, timeout=10)
    assert done.status is JobStatus.COMPLETED and done.result == Sent(message_id="<a>")
    stored = await app.aget_job(one.id)
    assert stored is not None and stored.result == {"message_id": "<a>"}  # by id: JSON, as stored
    got = await batch.aget(many[0].id)
    assert got is not None and got.result == [Sent(message_id="b"), Sent(message_id="c")]
    got_when = await maybe.aget(when.id)
    assert got_when is not None and got_when.result == Sent(message_id="m")
    got_count = await count.aget(counted.id)
    assert got_count is not None and got_count.result == 1
    assert await send.aget("no-such-job") is None
    with pytest.raises(ValueError, match=r"is a job of task 'maybe', not of 'emails\.send'"):
        await send.aget(when.id)


async def test_a_result_that_breaks_the_annotation_is_reported(app: Taskyard) -> None:
    @app.task("liar")
    def liar() -> Sent:
        return {"id": 1}  # type: ignore[return-value]

    job = await liar.aenqueue()
    await drain(app)
    assert (await app.await_job(job.id)).status is JobStatus.COMPLETED
    with pytest.raises(ValueError, match="does not fit the return type of task 'liar'"):
        await liar.aget(job.id)


def test_a_handle_registers_on_another_app_by_its_handler(app: Taskyard) -> None:
    @app.task("emails.send")
    def send(email: Email) -> None: ...

    other = Taskyard("memory://")
    again = other.task("emails.send")(send)
    assert again.spec.handler is send.spec.handler and again.host is other
    assert again.enqueue(Email(to="a")).payload == {"to": "a"}
    other.close()


def test_the_typed_module_runs() -> None:
    from tests.typing import handles

    ids = handles.use_sync()
    assert len(ids) == len(set(ids)) == 5
    assert handles.send.get(ids[0]) is not None
    handles.app.close()


def test_the_readme_example_runs(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.typing.test_type_checkers import readme_handles

    monkeypatch.setenv("TASKYARD_BACKEND", "memory://")
    scope: dict[str, object] = {"__name__": "readme_handles"}
    exec(compile(readme_handles(), "README.md", "exec"), scope)  # the README's own text
    app = scope["app"]
    assert isinstance(app, Taskyard)
    try:
        jobs = app.list_jobs(limit=10).jobs
        assert sorted((j.task, j.queue) for j in jobs) == [
            ("emails.send", "bulk"), ("emails.send", "bulk"), ("emails.send", "emails"),
            ("maintenance.tick", "default"),
        ]
    finally:
        app.close()


def test_the_package_is_marked_typed() -> None:
    """py.typed ships in the package (the wheel takes every file of src/taskyard), so type
    checkers read taskyard's annotations instead of ignoring them."""
    from importlib.resources import files

    assert (files("taskyard") / "py.typed").is_file()


async def test_a_model_returned_in_a_child_process_is_stored_and_read_back() -> None:
    from tests.typing.process_handles import Report, app, build_report

    job = await build_report.aenqueue("weekly")
    await drain(app)
    stored = await app.aget_job(job.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED, stored
    assert stored.result["title"] == "weekly"  # by id: the stored JSON
    done = await build_report.await_job(job.id, timeout=10)
    assert isinstance(done.result, Report) and done.result.pid != os.getpid()
    await app.aclose()
