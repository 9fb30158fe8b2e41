"""How jobs, times and scores are written into Redis hashes and sorted sets, and read back.

Times are integer microseconds since the epoch (exact round trips); JSON for every structured
value. Field names are short because each one is stored once per job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from taskyard.core.job import DEFAULT_MAX_RESCUES, AttemptError, Job, JobDraft, JobStatus, Progress
from taskyard.core.payload import decode_stored
from taskyard.errors import PayloadError

__all__ = (
    "decode_job",
    "dumps",
    "encode_draft",
    "from_us",
    "new_job",
    "pending_score",
    "to_us",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_EPOCH_2000_MS = 946_684_800_000
_SPAN = 1 << 42
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (when - _EPOCH) // _US


def from_us(value: str | int) -> datetime:
    """The aware UTC datetime of a microsecond timestamp."""
    return _EPOCH + timedelta(microseconds=int(value))


def dumps(value: Any) -> str:
    """Compact JSON."""
    return _encode_json(value)


def pending_score(priority: int, run_at_us: int) -> int:
    """Sort key of a pending job (lower claims first); mirrors `pscore` in `_lib.lua`."""
    pr = max(-1023, min(1023, priority))
    ms = max(0, min(_SPAN - 1, run_at_us // 1000 - _EPOCH_2000_MS))
    return (1023 - pr) * _SPAN + ms


def encode_draft(
    draft: JobDraft, now: datetime, *, blocked: bool = False, home: str | None = None
) -> tuple[JobStatus, int, int, list[str]]:
    """(status, run_at µs, index score, flat field/value list) of a job about to be stored;
    `blocked` for a workflow step with parents, `home` its workflow's home queue."""
    run_at = draft.run_at or now
    status = JobStatus.SCHEDULED if run_at > now else JobStatus.PENDING
    if blocked:
        status = JobStatus.BLOCKED
    ra = to_us(run_at)
    try:
        payload = dumps(draft.payload)
    except (TypeError, ValueError) as exc:
        raise PayloadError(draft.task, f"payload is not JSON-serialisable: {exc}") from exc
    fields = ["t", draft.task, "p", payload, "s", status.value, "ra", str(ra), "c", str(to_us(now))]
    fields += ["ma", str(draft.max_attempts), "mr", str(draft.max_rescues)]
    if draft.priority:
        fields += ["pr", str(draft.priority)]
    if draft.unique_key:
        fields += ["u", draft.unique_key]
    if draft.tags:
        fields += ["tg", dumps(list(draft.tags))]
    if draft.timeout is not None:
        fields += ["to", repr(float(draft.timeout))]
    if draft.meta:
        fields += ["m", dumps(dict(draft.meta))]
    if draft.workflow_id is not None:
        fields += ["wf", draft.workflow_id, "sn", draft.step or "", "wq", home or draft.queue]
    score = ra if status is JobStatus.SCHEDULED else pending_score(draft.priority, ra)
    return status, ra, score, fields


def _stored(when: datetime) -> datetime:
    """`when` as it reads back from Redis (`from_us(to_us(when))`): itself when already UTC."""
    return when if when.tzinfo is UTC else from_us(to_us(when))


def new_job(draft: JobDraft, now: datetime, *, blocked: bool = False) -> Job:
    """The job just stored from `draft` (what `decode_job` would read back)."""
    return draft.to_job(_stored(now), run_at=_stored(draft.run_at or now), blocked=blocked)


def _pairs(fields: Any) -> Mapping[str, str]:
    if isinstance(fields, Mapping):
        return fields
    it = iter(fields)
    return dict(zip(it, it, strict=True))


def _time(h: Mapping[str, str], key: str) -> datetime | None:
    value = h.get(key)
    return from_us(value) if value else None


def decode_job(job_id: str, queue: str, fields: Any) -> Job:
    """A `Job` from the flat field list (or dict) of its hash."""
    h = _pairs(fields)
    progress = None
    if "pg" in h:
        pg = json.loads(h["pg"])
        progress = Progress(percent=pg["percent"], message=pg.get("message"))
    errors: tuple[AttemptError, ...] = ()
    if h.get("e"):
        errors = tuple(AttemptError.from_json(e) for e in json.loads(h["e"]))
    return Job(
        id=job_id,
        task=h["t"],
        queue=queue,
        payload=decode_stored(h["p"]),
        status=JobStatus(h["s"]),
        priority=int(h.get("pr", 0)),
        run_at=from_us(h["ra"]),
        attempt=int(h.get("a", 0)),
        max_attempts=int(h.get("ma", 1)),
        created_at=from_us(h["c"]),
        started_at=_time(h, "st"),
        finished_at=_time(h, "f"),
        result=decode_stored(h["r"]) if "r" in h else None,
        errors=errors,
        progress=progress,
        unique_key=h.get("u"),
        tags=tuple(json.loads(h["tg"])) if "tg" in h else (),
        timeout=float(h["to"]) if "to" in h else None,
        worker_id=h.get("w"),
        lease_token=h.get("lt"),
        lease_expires_at=_time(h, "le"),
        cancel_requested=h.get("cr") == "1",
        rescues=int(h.get("rs", 0)),
        max_rescues=int(h.get("mr", DEFAULT_MAX_RESCUES)),
        workflow_id=h.get("wf"),
        step=h.get("sn"),
        meta=json.loads(h["m"]) if "m" in h else {},
    )
