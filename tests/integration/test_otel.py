"""A trace from an HTTP request through enqueue, two failed attempts and the completion, checked
span by span: the request served by a FastAPI app under OpenTelemetry's ASGI middleware in
this process, the job run by a real `taskyard worker` process on SQLite (and, for an
`isolation="process"` task, by its child), whose spans tests/apps/otel_app.py writes to a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import propagate
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import set_span_in_context

from taskyard import JobStatus
from tests.apps.otel_app import SPANS_ENV, build, span_record
from tests.support.processes import stop_process, taskyard_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _read_spans(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("task", ["flaky", "flaky_isolated"])
async def test_a_request_is_traced_through_its_enqueue_two_failed_attempts_and_the_completion(
    task: str, tmp_path: Path
) -> None:
    """`flaky` runs in the worker process, `flaky_isolated` in a child of it: either way one
    trace from the client's span through the request, the enqueue and the three attempts."""
    url = f"sqlite:///{tmp_path / 'taskyard.db'}"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = build(url, tracer_provider=provider)
    shop = FastAPI()

    @shop.post("/charges", status_code=202)
    async def charge(body: dict) -> dict:
        job = await app.aenqueue(task, body)
        return {"job_id": job.id}

    asgi = OpenTelemetryMiddleware(shop, tracer_provider=provider)
    # The client is another service: its span is not current here, only sent as `traceparent`.
    checkout = provider.get_tracer("shop.client").start_span("checkout")
    headers: dict[str, str] = {}
    propagate.inject(headers, context=set_span_in_context(checkout))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://shop.test") as http:
        response = await http.post("/charges", json={"amount": 5}, headers=headers)
    checkout.end()
    assert response.status_code == 202
    job_id = response.json()["job_id"]

    spans_path = tmp_path / "spans.jsonl"
    worker = taskyard_process(
        ["--app", "tests.apps.otel_app:app", "worker", "--poll-interval", "0.1"],
        env={"TASKYARD_BACKEND": url, SPANS_ENV: str(spans_path)},
        log_path=tmp_path / "worker.log",
    )
    try:
        done = await app.await_job(job_id, timeout=60)
    finally:
        assert stop_process(worker) == 0
    await app.aclose()
    provider.shutdown()
    assert (done.status, done.attempt) == (JobStatus.COMPLETED, 3)

    here = [span_record(s) for s in exporter.get_finished_spans()]
    there = _read_spans(spans_path)
    [client] = [s for s in here if s["name"] == "checkout"]
    [server] = [s for s in here if s["kind"] == "SERVER"]
    [send] = [s for s in here if s["kind"] == "PRODUCER"]
    attempts = [s for s in there if s["kind"] == "CONSUMER"]
    charges = [s for s in there if s["name"] == "charge card"]
    trace_id = client["trace_id"]

    # One trace throughout: client → request → enqueue → three attempts → the handler's spans.
    assert {s["trace_id"] for s in [server, send, *attempts, *charges]} == {trace_id}
    assert server["name"] == "POST /charges" and server["parent_id"] == client["span_id"]
    status_keys = ("http.response.status_code", "http.status_code")  # new and old conventions
    assert [server["attributes"].get(k) for k in status_keys if k in server["attributes"]] == [202]
    assert send["name"] == "send default" and send["parent_id"] == server["span_id"]
    assert send["attributes"]["messaging.system"] == "taskyard"
    assert send["attributes"]["messaging.operation.type"] == "send"
    assert send["attributes"]["messaging.message.id"] == job_id
    assert send["attributes"]["taskyard.task"] == task
    assert done.meta["traceparent"] == f"00-{trace_id}-{send['span_id']}-{send['trace_flags']}"

    assert [a["attributes"]["taskyard.attempt"] for a in attempts] == [1, 2, 3]
    for attempt in attempts:
        assert attempt["name"] == "process default"
        assert attempt["parent_id"] == send["span_id"]
        assert attempt["links"] == [{"trace_id": trace_id, "span_id": send["span_id"]}]
        assert attempt["attributes"]["messaging.system"] == "taskyard"
        assert attempt["attributes"]["messaging.operation.type"] == "process"
        assert attempt["attributes"]["messaging.destination.name"] == "default"
        assert attempt["attributes"]["messaging.message.id"] == job_id
        assert attempt["attributes"]["taskyard.worker_id"] == done.worker_id
        assert attempt["pid"] != worker.pid if task == "flaky_isolated" else attempt["pid"] == worker.pid
    for n, attempt in enumerate(attempts[:2], start=1):
        assert attempt["status"] == "ERROR" and attempt["attributes"]["taskyard.outcome"] == "failed"
        [event] = attempt["events"]
        assert event["name"] == "exception"
        assert (event["attributes"]["exception.type"], event["attributes"]["exception.message"]) == (
            "RuntimeError", f"attempt {n} fails"
        )
    last = attempts[2]
    assert last["status"] == "UNSET" and last["events"] == []
    assert last["attributes"]["taskyard.outcome"] == "completed"
    # Each attempt's handler opened its own span inside the attempt's.
    assert [c["parent_id"] for c in charges] == [a["span_id"] for a in attempts]
