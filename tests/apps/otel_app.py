"""An app traced with OpenTelemetry, for tests/unit/test_otel.py and
tests/integration/test_otel.py. Imported by a worker process (`--app tests.apps.otel_app:app`)
and by its `isolation="process"` children, it exports every span it ends as one JSON line to
the file named by `TASKYARD_TEST_SPANS`, where the test reads them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from taskyard import Cancel, JobContext, Retry, RetryLater, Taskyard
from taskyard.contrib.otel import instrument

#: The file the spans of this process are appended to.
SPANS_ENV = "TASKYARD_TEST_SPANS"


class SpanFile(SpanExporter):
    """Appends each span as a JSON line: ids in hex, kind and status by name, the pid."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        with self.lock, open(self.path, "a") as f:
            f.write(lines)
        return SpanExportResult.SUCCESS


def span_record(span: ReadableSpan) -> dict:
    """A span as plain JSON (what `SpanFile` writes, and what tests compare)."""
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "trace_flags": f"{span.context.trace_flags:02x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": dict(span.attributes or {}),
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "pid": os.getpid(),
    }


def provider_from_env() -> TracerProvider | None:
    """A provider exporting to the file of `TASKYARD_TEST_SPANS`; None when it is not set."""
    path = os.environ.get(SPANS_ENV)
    if not path:
        return None
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanFile(path)))
    return provider


def build(backend: str | None = None, *, tracer_provider: TracerProvider | None = None) -> Taskyard:
    """The app on `backend` (default: TASKYARD_BACKEND), traced with `tracer_provider`; its
    handlers open spans of their own with a tracer of that provider too."""
    app = Taskyard(backend)
    tracer = trace.get_tracer("tests.apps.otel_app", tracer_provider=tracer_provider)

    def charge(ctx: JobContext) -> None:
        with tracer.start_as_current_span("charge card", attributes={"attempt": ctx.attempt}):
            if ctx.attempt < 3:
                raise RuntimeError(f"attempt {ctx.attempt} fails")

    async def flaky(payload: dict, ctx: JobContext) -> int:
        """Fails its first two attempts, completes the third; each opens a span of its own."""
        charge(ctx)
        return ctx.attempt

    def flaky_sync(payload: dict, ctx: JobContext) -> int:
        """`flaky` as a sync handler (run in a worker thread, or in a child process)."""
        charge(ctx)
        return os.getpid()

    quick_retries = Retry(attempts=3, backoff=[0.05])
    app.task("flaky", retry=quick_retries)(flaky)
    app.task("flaky_sync", retry=quick_retries)(flaky_sync)
    app.task("flaky_isolated", retry=quick_retries, isolation="process")(flaky_sync)
    app.task("later", retry=Retry(attempts=3))(later)
    app.task("cancels")(cancels)
    app.task("broken", retry=Retry(attempts=3, non_retryable=(ValueError,)))(broken)
    instrument(app, tracer_provider=tracer_provider)
    return app


async def later(payload: dict, ctx: JobContext) -> int:
    """Asks to run again later once, then completes."""
    if ctx.attempt == 1:
        raise RetryLater(0)
    return ctx.attempt


async def cancels(payload: dict) -> None:
    """Cancels itself."""
    raise Cancel("not needed")


async def broken(payload: dict) -> None:
    """Fails with a non-retryable error."""
    raise ValueError("bad input")


app = build(tracer_provider=provider_from_env())
