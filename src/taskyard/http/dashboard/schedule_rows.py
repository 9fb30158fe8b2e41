"""What the schedules page says of each schedule: its next fires, its last fire and that
fire's job, the fires it is missing now, and every reason it cannot fire."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskyard.core import ids
from taskyard.core.job import Job
from taskyard.core.schedule import Schedule, plan_fires
from taskyard.core.unique import schedule_fire_key
from taskyard.errors import TaskyardError

__all__ = ("ScheduleRow", "schedule_row")


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One schedule as the page shows it."""

    schedule: Schedule
    fires: list[datetime]
    #: The job of the last fire (None when it was pruned, or never stored).
    last_job: Job | None
    #: Due fires the next pass would drop (missed: no scheduler ran in time).
    missed: int
    #: Why it cannot fire (empty when it can), each a short sentence.
    cannot: list[str] = field(default_factory=list)
    #: Reasons its jobs would wait once fired (no live worker knows the task; queue paused).
    waits: list[str] = field(default_factory=list)


async def schedule_row(
    app: Any, schedule: Schedule, now: datetime, *, scheduler_leads: bool, known: set[str], paused: set[str]
) -> ScheduleRow:
    """Everything the page shows of `schedule`; `known` holds the tasks of live workers and
    `paused` the paused queues."""
    cannot, waits = [], []
    fires: list[datetime] = []
    missed = 0
    if schedule.enabled:
        try:
            timing = schedule.timing()
            first = schedule.next_fire_at or timing.next_after(now)
            fires = [first, *timing.next_n(first, 2)]
            missed = plan_fires(schedule, now).missed
        except TaskyardError as exc:
            cannot.append(f"its definition does not fit this app: {exc}")
        if not scheduler_leads:
            cannot.append("no scheduler leads: no process with the scheduler role holds the lease")
        if schedule.task not in app.tasks and schedule.task_defaults is None:
            cannot.append(f"this app does not know the task {schedule.task!r} and no declaration stored its settings")
    if schedule.task not in known:
        waits.append(f"no live worker knows the task {schedule.task!r}: its jobs wait, pending")
    queue = schedule.queue or (app.tasks[schedule.task].queue if schedule.task in app.tasks else None)
    if queue in paused:
        waits.append(f"queue {queue!r} is paused: its jobs wait")
    last_job = None
    if schedule.last_fire_at is not None:
        job_id = ids.deterministic_id(schedule.last_fire_at, schedule_fire_key(schedule.name, schedule.last_fire_at))
        last_job = await app.aget_job(job_id)
    return ScheduleRow(schedule=schedule, fires=fires, last_job=last_job, missed=missed, cannot=cannot, waits=waits)
