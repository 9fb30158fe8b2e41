"""The JSON-lines protocol between a worker and its child processes (`isolation="process"`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskyard.core.job import AttemptError, Job, JobStatus, Progress
from taskyard.services.worker import messages
from taskyard.services.worker.executor import Outcome, OutcomeKind

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _job(**fields: object) -> Job:
    base: dict[str, object] = dict(
        id="01JOB0000000000000000000000", task="t", queue="q", payload={"a": [1, "é", None]},
        status=JobStatus.RUNNING, priority=3, run_at=NOW, attempt=2, max_attempts=5,
        created_at=NOW, started_at=NOW, worker_id="w", lease_token="secret-token",
        lease_expires_at=NOW, timeout=2.5, rescues=1, max_rescues=4, tags=("x", "y"),
        unique_key="k", progress=Progress(40.0, "m"),
        errors=(AttemptError(attempt=1, type="ValueError", message="bad", traceback="tb", at=NOW),),
    )
    base.update(fields)
    return Job(**base)  # type: ignore[arg-type]


def test_a_message_is_one_ascii_line_and_decodes_back() -> None:
    line = messages.encode("progress", job_id="j", percent=12.5, message="naïve\nline")
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    assert messages.decode(line) == {
        "type": "progress", "job_id": "j", "percent": 12.5, "message": "naïve\nline",
    }


def test_the_job_crosses_without_its_lease_token() -> None:
    job = _job()
    line = messages.encode("run", job=messages.job_to_json(job))
    assert b"secret-token" not in line
    back = messages.job_from_json(messages.decode(line)["job"])
    assert back == job.replace(lease_token=None)


def test_a_jobs_meta_and_workflow_step_cross_to_the_child() -> None:
    """The child's handler and tracer see the job's `meta` (its trace context) and step."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    job = _job(lease_token=None, workflow_id="01WF", step="fetch", meta={"traceparent": traceparent})
    back = messages.job_from_json(messages.decode(messages.encode("run", job=messages.job_to_json(job)))["job"])
    assert back == job
    assert back.meta == {"traceparent": traceparent} and (back.workflow_id, back.step) == ("01WF", "fetch")


def test_a_fresh_job_with_empty_fields_round_trips() -> None:
    job = _job(started_at=None, progress=None, errors=(), tags=(), unique_key=None, timeout=None,
               lease_token=None, lease_expires_at=None, payload=None)
    assert messages.job_from_json(messages.job_to_json(job)) == job


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(OutcomeKind.COMPLETED, result={"n": [1, 2.5, "x"]}),
        Outcome(OutcomeKind.FAILED, error=AttemptError(1, "TimeoutError", "late", None, NOW), retryable=False),
        Outcome(OutcomeKind.RETRY_LATER, delay=7.5, reason="busy"),
        Outcome(OutcomeKind.CANCELLED, reason="stop"),
    ],
)
def test_outcomes_round_trip(outcome: Outcome) -> None:
    line = messages.encode("outcome", outcome=messages.outcome_to_json(outcome), clean=True)
    assert messages.outcome_from_json(messages.decode(line)["outcome"]) == outcome


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"not json\n", "not a JSON line"),
        (b"[1, 2]\n", "not a message"),
        (b'{"type": "shell", "cmd": "rm"}\n', "not a message"),
        (b'{"type": "outcome", "outcome": {}}\n', "lacks ['clean']"),
        (b"\xff\xfe\n", "not a JSON line"),
    ],
)
def test_anything_else_is_a_protocol_error(line: bytes, why: str) -> None:
    with pytest.raises(messages.ProtocolError, match=why.replace("[", r"\[").replace("]", r"\]")):
        messages.decode(line)


def test_encoding_refuses_unknown_types_missing_fields_and_non_json() -> None:
    with pytest.raises(messages.ProtocolError, match="unknown message type"):
        messages.encode("pickle", data=b"")
    with pytest.raises(messages.ProtocolError, match=r"needs \['pid'\]"):
        messages.encode("ready")
    with pytest.raises(ValueError):
        messages.encode("progress", job_id="j", percent=float("nan"), message=None)
