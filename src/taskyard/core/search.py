"""Searching jobs (`JobFilter.q`): what a search looks in, and the rule the memory backend
carries out as written (the stores keep indexes of the same fields)."""

from __future__ import annotations

import json

from taskyard.core.job import Job

__all__ = ("SEARCH_LIMIT", "is_search_match", "search_text")

#: The longest search text a filter takes (`JobFilter.q`).
SEARCH_LIMIT = 200


def search_text(job: Job) -> str:
    """What `JobFilter.q` is looked for in: id, task, queue, unique key, the payload as JSON
    and every error's type, message and traceback (the stores search their stored forms)."""
    parts = [job.id, job.task, job.queue, job.unique_key or "", json.dumps(job.payload)]
    for error in job.errors:
        parts += [error.type, error.message, error.traceback or ""]
    return "\n".join(parts)


def is_search_match(job: Job, q: str | None) -> bool:
    """True when `q` is None or the job's `search_text` contains it, case-insensitively."""
    return q is None or q.casefold() in search_text(job).casefold()
