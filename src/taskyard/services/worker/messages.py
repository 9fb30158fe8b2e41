"""The messages between a worker and its child processes (`isolation="process"`): one JSON
object per line over a socket pair, never pickle. The parent sends `run`; the child answers
`ready` (or `fatal`) once, then per job `started`, `progress`* and one `outcome`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from taskyard.core.job import AttemptError, Job, JobStatus, Progress
from taskyard.services.worker.executor import Outcome, OutcomeKind

__all__ = (
    "BACKEND_ENV",
    "KINDS",
    "MAX_LINE",
    "ProtocolError",
    "decode",
    "encode",
    "job_from_json",
    "job_to_json",
    "outcome_from_json",
    "outcome_to_json",
)

#: Message types and the fields each must carry.
KINDS: dict[str, tuple[str, ...]] = {
    "run": ("job",),  # parent → child: run this job
    "ready": ("pid",),  # child → parent: the app is imported
    "fatal": ("error",),  # child → parent: the app cannot be imported; the child exits
    "started": ("job_id",),  # child → parent: it took the job (a death after this is a crash)
    "progress": ("job_id", "percent", "message"),
    "outcome": ("outcome", "clean"),  # clean False: a handler thread still runs; the child exits
}

#: The longest line either side accepts (a payload or result is at most 1 MB of JSON; with
#: its escaping and the job's other fields this leaves ample room).
MAX_LINE = 16 * 1024 * 1024
#: The environment variable that hands a child its parent's backend URL (`app.use_backend`).
BACKEND_ENV = "TASKYARD_CHILD_BACKEND"


class ProtocolError(ValueError):
    """A line that is not a well-formed message."""


def encode(kind: str, **fields: Any) -> bytes:
    """One message as a line of JSON (ASCII, so no byte inside it is a newline)."""
    if kind not in KINDS:
        raise ProtocolError(f"unknown message type {kind!r}")
    missing = [f for f in KINDS[kind] if f not in fields]
    if missing:
        raise ProtocolError(f"message {kind!r} needs {missing}")
    return json.dumps({"type": kind, **fields}, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """The message on `line`; `ProtocolError` for anything else."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}") from exc
    if not isinstance(msg, dict) or msg.get("type") not in KINDS:
        raise ProtocolError(f"not a message: {line[:200]!r}")
    missing = [f for f in KINDS[msg["type"]] if f not in msg]
    if missing:
        raise ProtocolError(f"message {msg['type']!r} lacks {missing}")
    return msg


def job_to_json(job: Job) -> dict[str, Any]:
    """What a child needs of a job (everything `Job.to_json` shows; never the lease token)."""
    return job.to_json()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def job_from_json(data: dict[str, Any]) -> Job:
    """The `Job` a child's handler sees, rebuilt from `job_to_json`."""
    progress = data.get("progress")
    return Job(
        id=data["id"],
        task=data["task"],
        queue=data["queue"],
        payload=data["payload"],
        status=JobStatus(data["status"]),
        priority=int(data["priority"]),
        run_at=datetime.fromisoformat(data["run_at"]),
        attempt=int(data["attempt"]),
        max_attempts=int(data["max_attempts"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        started_at=_time(data.get("started_at")),
        finished_at=_time(data.get("finished_at")),
        result=data.get("result"),
        errors=tuple(AttemptError.from_json(e) for e in data.get("errors", ())),
        progress=None if progress is None else Progress(float(progress["percent"]), progress.get("message")),
        unique_key=data.get("unique_key"),
        tags=tuple(data.get("tags", ())),
        timeout=data.get("timeout"),
        worker_id=data.get("worker_id"),
        lease_expires_at=_time(data.get("lease_expires_at")),
        cancel_requested=bool(data.get("cancel_requested", False)),
        rescues=int(data.get("rescues", 0)),
        max_rescues=int(data["max_rescues"]),
        workflow_id=data.get("workflow_id"),
        step=data.get("step"),
        meta={str(k): str(v) for k, v in (data.get("meta") or {}).items()},
    )


def outcome_to_json(outcome: Outcome) -> dict[str, Any]:
    """An `Outcome` as JSON (its result is JSON already: the executor checked it)."""
    return {
        "kind": outcome.kind,
        "result": outcome.result,
        "error": None if outcome.error is None else outcome.error.to_json(),
        "retryable": outcome.retryable,
        "delay": outcome.delay,
        "reason": outcome.reason,
    }


def outcome_from_json(data: dict[str, Any]) -> Outcome:
    """The `Outcome` a child reported."""
    error = data.get("error")
    return Outcome(
        kind=OutcomeKind(data["kind"]),
        result=data.get("result"),
        error=None if error is None else AttemptError.from_json(error),
        retryable=bool(data.get("retryable", True)),
        delay=float(data.get("delay", 0.0)),
        reason=str(data.get("reason", "")),
    )
