"""Bulk actions on jobs (retry, cancel, delete) chosen by ids or by a listing filter, done in
bounded pages; shared by the API's `POST /jobs/bulk` and the dashboard's jobs pages."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from taskyard.core.job import FINISHED_STATUSES, JobFilter, JobStatus
from taskyard.errors import InvalidTransitionError, JobNotFound

if TYPE_CHECKING:
    from taskyard.app import Taskyard

__all__ = (
    "BULK_IDS_LIMIT", "BULK_LIMIT", "SKIPPED_SHOWN", "BulkAction", "BulkReport", "clean_queue",
    "count_matching", "drain_queue", "run_bulk",
)

#: Ids one call may name.
BULK_IDS_LIMIT = 1000
#: Jobs one call acts on at most; a filter matching more answers `more` and a `next_cursor`.
BULK_LIMIT = 5000
#: Jobs read per page of a filter, server-side.
_PAGE = 500
#: Skipped jobs listed in a report (all are counted).
SKIPPED_SHOWN = 100


class BulkAction(enum.StrEnum):
    """What a bulk call does to each job it matches."""

    RETRY = "retry"
    CANCEL = "cancel"
    DELETE = "delete"


@dataclass(slots=True)
class BulkReport:
    """What a bulk call did: jobs matched, done, and skipped (with why)."""

    matched: int = 0
    done: int = 0
    skipped_total: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    next_cursor: str | None = None

    def skip(self, job_id: str, reason: str) -> None:
        """Count a job left as it was; the first `SKIPPED_SHOWN` are listed."""
        self.skipped_total += 1
        if len(self.skipped) < SKIPPED_SHOWN:
            self.skipped.append((job_id, reason))


async def _act(app: Taskyard, action: BulkAction, ids: Sequence[str], report: BulkReport) -> None:
    report.matched += len(ids)
    if action is BulkAction.DELETE:
        deleted = set(await app.adelete_jobs(ids))
        report.done += len(deleted)
        for job_id in ids:
            if job_id not in deleted:
                report.skip(job_id, "not found, or not finished (only finished jobs are deleted)")
        return
    for job_id in ids:
        try:
            if action is BulkAction.RETRY:
                await app.aretry_job(job_id)
            else:
                await app.acancel_job(job_id)
        except (InvalidTransitionError, JobNotFound) as exc:
            report.skip(job_id, str(exc))
        else:
            report.done += 1


async def run_bulk(
    app: Taskyard,
    action: BulkAction,
    *,
    ids: Sequence[str] | None = None,
    job_filter: JobFilter | None = None,
    cursor: str | None = None,
) -> BulkReport:
    """Do `action` to the jobs of `ids` (at most `BULK_IDS_LIMIT`), or to those `job_filter`
    lists from `cursor` on, newest first, in pages, at most `BULK_LIMIT` per call."""
    report = BulkReport()
    if ids is not None:
        if len(ids) > BULK_IDS_LIMIT:
            raise ValueError(f"at most {BULK_IDS_LIMIT} ids per call, not {len(ids)}")
        await _act(app, action, list(dict.fromkeys(ids)), report)
        return report
    if job_filter is None:
        raise ValueError("give either ids or a filter")
    backend = await app.backend_for_loop()
    while report.matched < BULK_LIMIT:
        limit = min(_PAGE, BULK_LIMIT - report.matched)
        page = await backend.jobs_list(filter=job_filter, limit=limit, cursor=cursor)
        await _act(app, action, [j.id for j in page.jobs], report)
        cursor = page.next_cursor
        if cursor is None:
            break
    report.next_cursor = cursor
    return report


async def count_matching(app: Taskyard, job_filter: JobFilter) -> tuple[int, bool]:
    """How many jobs `job_filter` lists, counted up to `BULK_LIMIT` (one bulk call's worth),
    and whether more match."""
    backend = await app.backend_for_loop()
    count, cursor = 0, None
    while count < BULK_LIMIT:
        page = await backend.jobs_list(filter=job_filter, limit=min(_PAGE, BULK_LIMIT - count), cursor=cursor)
        count += len(page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            return count, False
    return count, True


async def drain_queue(app: Taskyard, queue: str) -> int:
    """Cancel `queue`'s pending and scheduled jobs (running ones finish), at most
    `BULK_LIMIT` of each per call; returns how many were cancelled."""
    done = 0
    for status in (JobStatus.PENDING, JobStatus.SCHEDULED):
        report = await run_bulk(app, BulkAction.CANCEL, job_filter=JobFilter(queue=queue, status=status))
        done += report.done
    return done


async def clean_queue(app: Taskyard, queue: str, hours: int) -> int:
    """Delete `queue`'s finished jobs that finished more than `hours` ago (`jobs_prune`);
    returns how many."""
    backend = await app.backend_for_loop()
    before = app.clock.now() - timedelta(hours=hours)
    deleted = 0
    for status in sorted(FINISHED_STATUSES):
        deleted += await backend.jobs_prune(status=status, older_than=before, queue=queue)
    return deleted
