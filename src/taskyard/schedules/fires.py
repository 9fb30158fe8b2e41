"""When and what a schedule fires: the job drafts of its fire times, and the fire bookkeeping
a stored schedule carries from its previous version."""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Iterable
from datetime import UTC, datetime, timedelta

from taskyard.core import ids
from taskyard.core.job import DEFAULT_MAX_RESCUES, JobDraft
from taskyard.core.schedule import TIMING_FIELDS, Schedule
from taskyard.core.unique import schedule_fire_key

__all__ = ("fire_drafts", "foreign_draft", "prepared")


def fire_drafts(
    schedule: Schedule,
    fire_times: Iterable[datetime],
    *,
    build_draft: Callable[..., JobDraft],
    known_tasks: Container[str],
    rng: random.Random | None = None,
) -> list[JobDraft]:
    """One job draft per fire: unique key `schedule:<name>:<fire time>`, an id derived from
    it, and `run_at` = fire time + a random jitter in [0, jitter]. A task in `known_tasks` is
    drafted by `build_draft` (the app's), any other from the task settings stored with the
    schedule.
    """
    rng = rng or random.Random()  # noqa: S311 - jitter spreads load; no secret
    drafts = []
    for fire in fire_times:
        key = schedule_fire_key(schedule.name, fire)
        delay = rng.uniform(0, schedule.jitter) if schedule.jitter else 0.0
        run_at = fire + timedelta(seconds=delay)
        job_id = ids.deterministic_id(fire, key)
        if schedule.task not in known_tasks and schedule.task_defaults is not None:
            # Another app (version) declared it: fire with the task settings it stored; a
            # worker that knows the task runs the job (workers claim only tasks they know).
            drafts.append(foreign_draft(schedule, run_at=run_at, unique_key=key, job_id=job_id))
            continue
        drafts.append(
            build_draft(
                schedule.task,
                schedule.payload,
                run_at=run_at,
                queue=schedule.queue,
                priority=schedule.priority,
                unique_key=key,
                job_id=job_id,
            )
        )
    return drafts


def prepared(schedule: Schedule, existing: Schedule | None, now: datetime) -> Schedule:
    """`schedule` as it is to be stored: fire bookkeeping carried over from the stored
    version `existing`; `next_fire_at` recomputed when the timing changed, the schedule was
    resumed, or it is new.
    """
    if existing is None:
        next_at = schedule.timing().next_after(now) if schedule.enabled else None
        return schedule.replace(created_at=now, updated_at=now, last_fire_at=None, next_fire_at=next_at)
    same_timing = all(getattr(existing, f) == getattr(schedule, f) for f in TIMING_FIELDS)
    if not schedule.enabled:
        next_at = None
    elif same_timing and existing.enabled and existing.next_fire_at is not None:
        next_at = existing.next_fire_at
    else:
        next_at = schedule.timing().next_after(now)
    return schedule.replace(
        created_at=existing.created_at or now,
        updated_at=now,
        last_fire_at=existing.last_fire_at,
        next_fire_at=next_at,
    )


def foreign_draft(schedule: Schedule, *, run_at: datetime, unique_key: str, job_id: str) -> JobDraft:
    """The job of a fire of a schedule whose task this app does not know, from the task
    settings the declaring app stored with it (`Schedule.task_defaults`)."""
    defaults = schedule.task_defaults or {}
    return JobDraft(
        id=job_id,
        task=schedule.task,
        queue=schedule.queue or str(defaults.get("queue") or "default"),
        payload=schedule.payload,
        priority=int(schedule.priority if schedule.priority is not None else defaults.get("priority") or 0),
        run_at=run_at.astimezone(UTC),
        max_attempts=int(defaults.get("max_attempts") or 1),
        max_rescues=int(defaults.get("max_rescues", DEFAULT_MAX_RESCUES)),
        unique_key=unique_key,
        timeout=defaults.get("timeout"),
    )
