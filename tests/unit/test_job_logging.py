"""`ctx.logger` carries the job's fields where structlog's stdlib integration and sentry-sdk's
logging integration read them (docs/integrations.md)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog

from taskyard import JobContext, Taskyard
from taskyard.testing import drain
from tests.support.processes import ROOT

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def structlog_lines() -> Iterator[io.StringIO]:
    """The `taskyard.job` logger's records rendered as JSON by structlog's `ProcessorFormatter`,
    with `ExtraAdder` bringing the records' extra fields into the event dict."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.ExtraAdder()],
    ))  # fmt: skip
    logger = logging.getLogger("taskyard.job")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_ctx_logger_fields_reach_structlog(structlog_lines: io.StringIO) -> None:
    app = Taskyard("memory://")

    @app.task("billing.charge", queue="billing")
    async def charge(payload: dict, ctx: JobContext) -> None:
        ctx.logger.info("charging", extra={"amount": payload["amount"]})

    job = await app.aenqueue("billing.charge", {"amount": 5})
    await drain(app)
    [line] = [json.loads(line) for line in structlog_lines.getvalue().splitlines()]
    assert line == {
        "event": "charging", "level": "info", "amount": 5,
        "job_id": job.id, "task": "billing.charge", "queue": "billing", "attempt": 1,
    }
    await app.aclose()


async def test_the_jobs_fields_win_over_a_calls_extra(structlog_lines: io.StringIO) -> None:
    app = Taskyard("memory://")

    @app.task("spoof")
    async def spoof(payload: None, ctx: JobContext) -> None:
        ctx.logger.warning("hello", extra={"job_id": "not-this-one", "attempt": 99})

    job = await app.aenqueue("spoof")
    await drain(app)
    line = json.loads(structlog_lines.getvalue())
    assert (line["job_id"], line["attempt"]) == (job.id, 1)
    await app.aclose()


SENTRY_SCRIPT = """
import asyncio, json, logging
import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.transport import Transport
from taskyard import JobContext, Taskyard
from taskyard.testing import drain

events = []

class Captured(Transport):
    def capture_envelope(self, envelope):
        events.extend(item.payload.json for item in envelope.items if item.type == "event")

sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=Captured,
                integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)])
app = Taskyard("memory://")

@app.task("billing.charge", queue="billing")
async def charge(payload: dict, ctx: JobContext) -> None:
    try:
        raise ConnectionError("card processor unreachable")
    except ConnectionError:
        ctx.logger.exception("charge failed", extra={"amount": payload["amount"]})

async def main():
    job = await app.aenqueue("billing.charge", {"amount": 5})
    await drain(app)
    return job.id

job_id = asyncio.run(main())
sentry_sdk.flush()
print(json.dumps({"job_id": job_id, "events": events}))
"""


def test_sentry_captures_ctx_logger_exception_with_the_job_fields() -> None:
    done = subprocess.run([sys.executable, "-c", SENTRY_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    [event] = result["events"]
    assert event["logentry"]["message"] == "charge failed"
    assert event["exception"]["values"][-1]["type"] == "ConnectionError"
    assert {k: event["extra"][k] for k in ("job_id", "task", "queue", "attempt", "amount")} == {
        "job_id": result["job_id"], "task": "billing.charge", "queue": "billing", "attempt": 1, "amount": 5,
    }


SENTRY_FAILURE_SCRIPT = SENTRY_SCRIPT.replace(
    '''    try:
        raise ConnectionError("card processor unreachable")
    except ConnectionError:
        ctx.logger.exception("charge failed", extra={"amount": payload["amount"]})''',
    '''    raise ConnectionError("card processor unreachable")''',
).replace('@app.task("billing.charge", queue="billing")', '@app.task("billing.charge", queue="billing", retry=Retry(attempts=2, backoff=[0]))'
).replace("from taskyard import JobContext, Taskyard", "from taskyard import JobContext, Retry, Taskyard")


def test_sentry_captures_a_job_that_failed_for_good_with_its_fields() -> None:
    """Out of the box, with no logging in the handler: the worker logs a failure for good at
    ERROR with the job's fields and traceback (an event in Sentry); the retry before it only
    at WARNING (a breadcrumb)."""
    assert "raise ConnectionError" in SENTRY_FAILURE_SCRIPT and "Retry(attempts=2" in SENTRY_FAILURE_SCRIPT
    done = subprocess.run([sys.executable, "-c", SENTRY_FAILURE_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    [event] = result["events"]  # one: the second attempt's failure, not the first (retried)
    assert event["level"] == "error"
    assert event["logentry"]["formatted"].endswith("attempt 2 failed: card processor unreachable; no attempts left")
    extra = event["extra"]
    assert {k: extra[k] for k in ("job_id", "task", "queue", "attempt", "error_type")} == {
        "job_id": result["job_id"], "task": "billing.charge", "queue": "billing", "attempt": 2,
        "error_type": "ConnectionError",
    }
    assert "ConnectionError: card processor unreachable" in extra["traceback"]
