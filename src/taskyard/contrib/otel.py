"""OpenTelemetry traces for an app (`pip install 'taskyard[otel]'`; docs/integrations.md):
`instrument(app)` traces every enqueue as a PRODUCER span `send {queue}` and every attempt as
a CONSUMER span `process {queue}`, following the messaging semantic conventions, with the
trace context carried in the job's `meta` (W3C `traceparent`, kept across retries).

Only the OpenTelemetry API is used: the application brings the SDK and its exporter.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from taskyard import __version__
from taskyard.app import Taskyard
from taskyard.core.job import Job, JobDraft

__all__ = ("SYSTEM", "OtelTracing", "instrument", "uninstrument")

#: `messaging.system` of every span.
SYSTEM = "taskyard"
#: The instrumentation scope the spans are reported under.
SCOPE = "taskyard.contrib.otel"


def instrument(app: Taskyard, *, tracer_provider: TracerProvider | None = None) -> None:
    """Trace `app`'s enqueues and attempts with `tracer_provider` (default: the global one,
    looked up when the first span starts, so it may be set after this call).

    Call it where the app is defined (at import of the module `--app` names), so worker
    processes and their `isolation="process"` children, which import that module, are traced
    too. Calling it again replaces the tracer."""
    app.tracing = OtelTracing(trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider))


def uninstrument(app: Taskyard) -> None:
    """Stop tracing `app`."""
    app.tracing = None


class OtelTracing:
    """The `taskyard.tracing.Tracing` hook over an OpenTelemetry tracer."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextlib.contextmanager
    def sending(self, drafts: Sequence[JobDraft], *, schedule: str | None = None) -> Iterator[list[JobDraft]]:
        """One PRODUCER span per draft, a child of the current span; its context injected into
        the draft's `meta` by the global propagator (W3C `traceparent`/`tracestate` unless the
        application configured another). A draft that carries a trace context already (a
        workflow step stamped by the builder, a job re-enqueued with its meta) keeps it and
        gets no second span. The spans end when the block does; an exception leaving it is
        recorded on each."""
        propagator = propagate.get_global_textmap()
        spans: list[Span] = []
        stamped: list[JobDraft] = []
        for draft in drafts:
            if _carried(draft.meta).is_valid:
                stamped.append(draft)
                continue
            attributes = _attributes("send", draft.queue, draft.id, draft.task)
            if schedule is not None:
                attributes["taskyard.schedule"] = schedule
            attributes.update(_step(draft.workflow_id, draft.step))
            span = self.tracer.start_span(f"send {draft.queue}", kind=SpanKind.PRODUCER, attributes=attributes)
            carrier = dict(draft.meta)
            propagator.inject(carrier, context=trace.set_span_in_context(span))
            spans.append(span)
            stamped.append(dataclasses.replace(draft, meta=carrier))
        # One job: the store runs inside its span (a traced database client nests under it).
        token = otel_context.attach(trace.set_span_in_context(spans[0])) if len(spans) == 1 else None
        try:
            yield stamped
        except BaseException as exc:
            for span in spans:
                _record_error(span, exc)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
            for span in spans:
                span.end()

    @contextlib.contextmanager
    def processing(self, job: Job) -> Iterator[_Attempt]:
        """A CONSUMER span for one attempt, current while the handler runs: its parent is the
        context carried in `job.meta` (the enqueue's PRODUCER span), also added as a link
        (the creation context); a job that carries none starts a trace of its own."""
        carried = propagate.extract(job.meta)
        creation = trace.get_current_span(carried).get_span_context()
        attributes = _attributes("process", job.queue, job.id, job.task)
        attributes["taskyard.attempt"] = job.attempt
        if job.worker_id is not None:
            attributes["taskyard.worker_id"] = job.worker_id
        attributes.update(_step(job.workflow_id, job.step))
        # The carried context becomes the current one (its baggage too), not the worker's.
        token = otel_context.attach(carried)
        try:
            with self.tracer.start_as_current_span(
                f"process {job.queue}",
                kind=SpanKind.CONSUMER,
                links=[Link(creation)] if creation.is_valid else None,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                attempt = _Attempt(span)
                try:
                    yield attempt
                finally:
                    if not attempt.ended:  # the worker stopped it (cancel requested, lease lost)
                        span.set_attribute("taskyard.outcome", "interrupted")
        finally:
            otel_context.detach(token)


class _Attempt:
    """The `AttemptTrace` of one CONSUMER span."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self.ended = False

    def end(self, outcome: str, *, error: BaseException | None = None) -> None:
        """`taskyard.outcome`; a failure's exception recorded and the status ERROR. Retrying
        later and cancelling are outcomes, not errors: their status stays unset."""
        self.ended = True
        self.span.set_attribute("taskyard.outcome", outcome)
        if error is not None:
            _record_error(self.span, error)
        elif outcome == "failed":
            self.span.set_status(Status(StatusCode.ERROR, "failed"))


def _attributes(operation: str, queue: str, job_id: str, task: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
        "taskyard.task": task,
    }


def _step(workflow_id: str | None, step: str | None) -> dict[str, str]:
    if workflow_id is None:
        return {}
    return {"taskyard.workflow_id": workflow_id, **({"taskyard.step": step} if step else {})}


def _carried(meta: Mapping[str, str]) -> trace.SpanContext:
    return trace.get_current_span(propagate.extract(meta)).get_span_context()


def _record_error(span: Span, exc: BaseException) -> None:
    kind = type(exc)
    span.record_exception(exc)
    span.set_attribute(
        "error.type", kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    )
    span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {exc}"))
