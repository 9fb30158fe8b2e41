"""OpenTelemetry tracing in one process, on the memory backend (`taskyard.contrib.otel`): the
PRODUCER span of each enqueue, the CONSUMER span of each attempt, the trace context in
`job.meta`, schedule fires and workflow steps, and no opentelemetry import without it."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import taskyard
from taskyard import JobStatus, Taskyard
from taskyard.contrib.otel import uninstrument
from taskyard.core import ids
from taskyard.core.job import JobDraft
from taskyard.core.workflow import Edge, WorkflowDraft
from taskyard.services.scheduler import Scheduler
from taskyard.testing import drain
from taskyard.tracing import traced_drafts
from tests.apps.otel_app import build, span_record

pytestmark = pytest.mark.timeout(30)


@dataclass
class Traced:
    app: Taskyard
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self, name: str | None = None) -> list[dict]:
        records = [span_record(s) for s in self.exporter.get_finished_spans()]
        return [r for r in records if name is None or r["name"] == name]


@pytest.fixture
async def traced() -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = build("memory://", tracer_provider=provider)
    await app.open()
    yield Traced(app, provider, exporter)
    await app.aclose()
    provider.shutdown()


def _traceparent(span: dict) -> str:
    return f"00-{span['trace_id']}-{span['span_id']}-{span['trace_flags']}"


async def test_an_enqueue_in_a_user_span_is_a_producer_child_and_each_attempt_a_consumer_under_it(
    traced: Traced,
) -> None:
    tracer = traced.provider.get_tracer("test")
    with tracer.start_as_current_span("signup"):
        job = await traced.app.aenqueue("flaky", {"n": 1})
    [user] = traced.spans("signup")
    [send] = traced.spans("send default")
    assert send["kind"] == "PRODUCER" and send["parent_id"] == user["span_id"]
    assert send["trace_id"] == user["trace_id"]
    assert send["attributes"] == {
        "messaging.system": "taskyard",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "default",
        "messaging.message.id": job.id,
        "taskyard.task": "flaky",
    }
    assert job.meta == {"traceparent": _traceparent(send)}

    await drain(traced.app, wait_retries=True)
    done = await traced.app.aget_job(job.id)
    assert done is not None and done.status is JobStatus.COMPLETED and done.attempt == 3
    assert done.meta == job.meta  # kept across the retries
    attempts = traced.spans("process default")
    assert [a["attributes"]["taskyard.attempt"] for a in attempts] == [1, 2, 3]
    for attempt in attempts:
        assert attempt["kind"] == "CONSUMER" and attempt["trace_id"] == send["trace_id"]
        assert attempt["parent_id"] == send["span_id"]
        assert attempt["links"] == [{"trace_id": send["trace_id"], "span_id": send["span_id"]}]
        assert {k: v for k, v in attempt["attributes"].items() if k.startswith("messaging.")} == {
            "messaging.system": "taskyard",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": "default",
            "messaging.message.id": job.id,
        }
        assert attempt["attributes"]["taskyard.task"] == "flaky"
        assert attempt["attributes"]["taskyard.worker_id"]
    failed, failed_again, completed = attempts
    for n, span in ((1, failed), (2, failed_again)):
        assert (span["status"], span["status_description"]) == ("ERROR", f"RuntimeError: attempt {n} fails")
        assert span["attributes"]["taskyard.outcome"] == "failed"
        assert span["attributes"]["error.type"] == "RuntimeError"
        [event] = span["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "RuntimeError"
        assert event["attributes"]["exception.message"] == f"attempt {n} fails"
        assert "in charge" in event["attributes"]["exception.stacktrace"]
    assert completed["status"] == "UNSET" and completed["events"] == []
    assert completed["attributes"]["taskyard.outcome"] == "completed"
    # The handler ran inside its attempt's span: its own span is a child of it.
    charges = traced.spans("charge card")
    assert [(c["parent_id"], c["attributes"]["attempt"]) for c in charges] == [
        (a["span_id"], a["attributes"]["taskyard.attempt"]) for a in attempts
    ]


async def test_a_sync_handlers_own_spans_nest_under_its_attempt(traced: Traced) -> None:
    """Sync handlers run in a worker thread with the attempt's context."""
    job = await traced.app.aenqueue("flaky_sync", {})
    await drain(traced.app, wait_retries=True)
    attempts = traced.spans("process default")
    assert [a["attributes"]["taskyard.outcome"] for a in attempts] == ["failed", "failed", "completed"]
    assert all(a["attributes"]["messaging.message.id"] == job.id for a in attempts)
    assert [c["parent_id"] for c in traced.spans("charge card")] == [a["span_id"] for a in attempts]


async def test_retry_later_and_cancel_are_outcomes_not_errors(traced: Traced) -> None:
    later = await traced.app.aenqueue("later", {})
    cancelled = await traced.app.aenqueue("cancels", {})
    await drain(traced.app, wait_retries=True)
    outcomes = {
        (s["attributes"]["messaging.message.id"], s["attributes"]["taskyard.attempt"]): (
            s["attributes"]["taskyard.outcome"], s["status"], s["events"]
        )
        for s in traced.spans("process default")
    }
    assert outcomes == {
        (later.id, 1): ("retry_later", "UNSET", []),
        (later.id, 2): ("completed", "UNSET", []),
        (cancelled.id, 1): ("cancelled", "UNSET", []),
    }


async def test_a_non_retryable_failure_is_an_error_too(traced: Traced) -> None:
    job = await traced.app.aenqueue("broken", {})
    await drain(traced.app)
    [attempt] = traced.spans("process default")
    assert (await traced.app.aget_job(job.id)).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert attempt["status"] == "ERROR" and attempt["attributes"]["error.type"] == "ValueError"
    assert [e["attributes"]["exception.message"] for e in attempt["events"]] == ["bad input"]


async def test_enqueue_many_makes_one_producer_span_per_job(traced: Traced) -> None:
    jobs = await traced.app.aenqueue_many([("later", {"i": 1}), ("cancels", {"i": 2})])
    sends = traced.spans("send default")
    assert [s["attributes"]["messaging.message.id"] for s in sends] == [j.id for j in jobs]
    assert [j.meta["traceparent"] for j in jobs] == [_traceparent(s) for s in sends]
    assert all(s["parent_id"] is None for s in sends)  # no current span: each starts a trace
    assert sends[0]["trace_id"] != sends[1]["trace_id"]


async def test_a_draft_that_carries_a_trace_context_keeps_it(traced: Traced) -> None:
    carried = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    draft = traced.app.build_draft("later", {})
    kept = dataclasses.replace(draft, meta={"traceparent": carried, "tenant": "a"})
    [job] = await traced.app.store_drafts([kept])
    assert job.meta == {"traceparent": carried, "tenant": "a"}
    assert traced.spans("send default") == []
    await drain(traced.app, wait_retries=True)
    first = traced.spans("process default")[0]
    assert (first["trace_id"], first["parent_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


async def test_a_schedule_fire_and_a_trigger_are_producer_spans_naming_the_schedule(traced: Traced) -> None:
    app = traced.app
    await app.schedules.aadd("nightly", task="later", every=3600)
    schedule = await app.schedules.aget("nightly")
    assert schedule is not None and schedule.next_fire_at is not None
    record = await Scheduler(app, None).fire(schedule, schedule.next_fire_at)
    triggered = await app.schedules.atrigger("nightly")
    sends = traced.spans("send default")
    assert [s["attributes"]["messaging.message.id"] for s in sends] == [*record.job_ids, triggered.id]
    for send in sends:
        assert send["kind"] == "PRODUCER" and send["parent_id"] is None
        assert send["attributes"]["taskyard.schedule"] == "nightly"
        assert send["attributes"]["taskyard.task"] == "later"


async def test_workflow_steps_stamped_by_traced_drafts_are_traced_step_by_step(traced: Traced) -> None:
    """The workflow builder's hook: the steps' drafts stamped around `workflow_enqueue`."""
    app = traced.app
    workflow_id = ids.new_id()
    first = ids.new_id_after(None)
    step_ids = {"fetch": first, "report": ids.new_id_after(first)}
    steps = [
        JobDraft(id=step_ids[name], task="later", queue="default", payload={}, max_attempts=3,
                 workflow_id=workflow_id, step=name)
        for name in ("fetch", "report")
    ]
    tracer = traced.provider.get_tracer("test")
    with tracer.start_as_current_span("nightly report"), traced_drafts(app, steps) as stamped:
        await app.backend.workflow_enqueue(
            workflow=WorkflowDraft(
                id=workflow_id, name="report", steps=tuple(stamped),
                edges=(Edge(parent=steps[0].id, child=steps[1].id),),
            )
        )
    [root] = traced.spans("nightly report")
    sends = traced.spans("send default")
    assert [(s["attributes"]["taskyard.step"], s["parent_id"]) for s in sends] == [
        ("fetch", root["span_id"]), ("report", root["span_id"]),
    ]
    assert all(s["attributes"]["taskyard.workflow_id"] == workflow_id for s in sends)
    await drain(app, wait_retries=True)
    by_step = {}
    for span in traced.spans("process default"):
        by_step.setdefault(span["attributes"]["taskyard.step"], []).append(span["parent_id"])
    assert by_step == {"fetch": [sends[0]["span_id"]] * 2, "report": [sends[1]["span_id"]] * 2}


async def test_an_uninstrumented_app_stores_no_trace_context(traced: Traced) -> None:
    uninstrument(traced.app)
    job = await traced.app.aenqueue("later", {})
    await drain(traced.app, wait_retries=True)
    assert job.meta == {} and traced.spans() == []


def test_taskyard_does_not_import_opentelemetry_unless_instrumented() -> None:
    """An app, its CLI, a worker running a job: no opentelemetry module loaded. (The HTTP
    layer is left out: FastAPI imports opentelemetry itself when it is installed.)"""
    script = (
        "import asyncio, sys\n"
        "from taskyard import Taskyard\n"
        "from taskyard.testing import drain\n"
        "import taskyard.cli.main, taskyard.services.scheduler\n"
        "app = Taskyard('memory://')\n"
        "@app.task('t')\n"
        "def t(payload): return payload\n"
        "async def main():\n"
        "    job = await app.aenqueue('t', 1)\n"
        "    await drain(app)\n"
        "    assert job.meta == {} and (await app.aget_job(job.id)).result == 1\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_only_the_otel_integration_imports_opentelemetry() -> None:
    src = Path(taskyard.__file__).parent
    importers = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            if any(n.split(".")[0] == "opentelemetry" for n in names):
                importers.add(path.relative_to(src).as_posix())
    assert importers == {"contrib/otel.py"}


async def test_the_sync_api_enqueues_under_the_callers_current_span(traced: Traced) -> None:
    """`app.enqueue` from sync code (a Django or Flask view) runs on the sync facade's own
    loop thread, with the caller's context: its PRODUCER span is a child of the view's."""
    tracer = traced.provider.get_tracer("test")

    def view() -> str:
        with tracer.start_as_current_span("GET /signup"):
            return traced.app.enqueue("later", {}).meta["traceparent"]

    traceparent = await asyncio.to_thread(view)
    [request] = traced.spans("GET /signup")
    [send] = traced.spans("send default")
    assert send["parent_id"] == request["span_id"] and traceparent == _traceparent(send)
    await asyncio.to_thread(traced.app.close)


async def test_a_workflow_built_with_the_builder_traces_every_step(traced: Traced) -> None:
    """`app.workflow(...).aenqueue()` stamps each step: one `send` span per step, under the
    caller's span, and each stored step carries its traceparent."""
    app = traced.app
    tracer = traced.provider.get_tracer("test")
    wf = app.workflow("nightly")
    fetch = wf.step("later", {}, name="fetch")
    wf.step("later", {}, name="report", after=fetch)
    with tracer.start_as_current_span("request"):
        stored = await wf.aenqueue()
    [root] = traced.spans("request")
    sends = traced.spans("send default")
    assert sorted(s["attributes"]["taskyard.step"] for s in sends) == ["fetch", "report"]
    assert all(s["parent_id"] == root["span_id"] for s in sends)
    assert all("traceparent" in job.meta for job in stored.steps)
