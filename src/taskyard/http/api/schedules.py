"""`/schedules`: list, get (with the next five fire times), create, update, delete, pause,
resume, trigger now; schedule sets applied to and removed from an owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.routing import APIRoute

from taskyard.errors import NotFoundError
from taskyard.http.api.access import current_principal
from taskyard.http.api.errors import ApiError
from taskyard.http.api.schemas import (
    NAME_PATTERN,
    ApplySetRequest,
    JobOut,
    RemovedOut,
    ScheduleCreate,
    ScheduleOut,
    SchedulePatch,
)
from taskyard.http.auth import Principal, audit

if TYPE_CHECKING:
    from taskyard.core.schedule import Schedule
    from taskyard.http.context import HttpContext
    from taskyard.schedules import ScheduleBook

__all__ = ("build", "schedule_detail")

ScheduleName = Annotated[str, Path(pattern=NAME_PATTERN, description="A schedule name")]
Caller = Annotated[Principal, Depends(current_principal)]
NEXT_FIRES = 5


async def _get(book: ScheduleBook, name: str) -> Schedule:
    schedule = await book.aget(name)
    if schedule is None:
        raise NotFoundError(f"no schedule named {name!r}")
    return schedule


async def schedule_detail(book: ScheduleBook, name: str, n: int = NEXT_FIRES) -> ScheduleOut:
    """One schedule with its next `n` fire times (none while paused)."""
    schedule = await _get(book, name)
    fires = await book.anext_fires(name, n) if schedule.enabled else []
    return ScheduleOut.of(schedule, list(fires))


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The schedule routes, acting through `ctx.app.schedules`."""
    router = APIRouter(prefix="/schedules", tags=["schedules"], route_class=route_class)
    book = ctx.app.schedules

    @router.get("", response_model=list[ScheduleOut], summary="List schedules", operation_id="listSchedules")
    async def list_schedules(
        owner: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    ) -> list[ScheduleOut]:
        """Every schedule (or one owner's), sorted by name, with next and last fire times."""
        return [ScheduleOut.of(s) for s in await book.alist(owner=owner)]

    @router.post("", status_code=201, response_model=ScheduleOut, summary="Create a schedule", operation_id="createSchedule")
    async def create(body: ScheduleCreate, caller: Caller) -> ScheduleOut:
        """Cron (5 or 6 fields) or `every` seconds; task and payload are validated first."""
        if await book.aget(body.name) is not None:
            raise ApiError(409, "conflict", f"a schedule named {body.name!r} already exists")
        fields = body.model_dump(exclude={"name"}, exclude_none=True)
        await book.aadd(body.name, **fields)
        audit(caller, "schedule.create", body.name)
        return await schedule_detail(book, body.name)

    @router.get("/{name}", response_model=ScheduleOut, summary="Get a schedule", operation_id="getSchedule")
    async def get_schedule(name: ScheduleName) -> ScheduleOut:
        """The schedule with its next five fire times."""
        return await schedule_detail(book, name)

    @router.patch("/{name}", response_model=ScheduleOut, summary="Update a schedule", operation_id="updateSchedule")
    async def update(name: ScheduleName, body: SchedulePatch, caller: Caller) -> ScheduleOut:
        """Change the given fields (validated like a create); the next fire is recomputed."""
        await _get(book, name)
        changes = {k: getattr(body, k) for k in body.model_fields_set}
        if changes:
            await book.aupdate(name, **changes)
        audit(caller, "schedule.update", name, sorted(changes))
        return await schedule_detail(book, name)

    @router.delete("/{name}", response_model=RemovedOut, summary="Delete a schedule", operation_id="deleteSchedule")
    async def delete(name: ScheduleName, caller: Caller) -> RemovedOut:
        """Remove the schedule; jobs it already enqueued are kept."""
        await _get(book, name)
        await book.aremove(name)
        audit(caller, "schedule.delete", name)
        return RemovedOut(removed=1)

    @router.post("/{name}/pause", response_model=ScheduleOut, summary="Pause a schedule", operation_id="pauseSchedule")
    async def pause(name: ScheduleName, caller: Caller) -> ScheduleOut:
        """No fires until resumed."""
        await _get(book, name)
        await book.apause(name)
        audit(caller, "schedule.pause", name)
        return await schedule_detail(book, name)

    @router.post("/{name}/resume", response_model=ScheduleOut, summary="Resume a schedule", operation_id="resumeSchedule")
    async def resume(name: ScheduleName, caller: Caller) -> ScheduleOut:
        """Fires again from now on (missed fires are not made up)."""
        await _get(book, name)
        await book.aresume(name)
        audit(caller, "schedule.resume", name)
        return await schedule_detail(book, name)

    @router.post("/{name}/trigger", status_code=201, response_model=JobOut, summary="Trigger now", operation_id="triggerSchedule")
    async def trigger(name: ScheduleName, caller: Caller) -> JobOut:
        """Enqueue the schedule's job now, outside its timetable; returns the job."""
        await _get(book, name)
        job = await book.atrigger(name)
        audit(caller, "schedule.trigger", name, [f"job={job.id}"])
        return JobOut.of(job)

    @router.post(
        "/sets/{set_name}/apply", response_model=list[ScheduleOut], summary="Apply a schedule set", operation_id="applyScheduleSet"
    )
    async def apply_set(set_name: ScheduleName, body: ApplySetRequest, caller: Caller) -> list[ScheduleOut]:
        """Replace every schedule of `owner` with the set's schedules, in one step."""
        await book.aapply_set(set_name, owner=body.owner, payload=body.payload)
        audit(caller, "schedule_set.apply", set_name, [f"owner={body.owner}"])
        return [ScheduleOut.of(s) for s in await book.alist(owner=body.owner)]

    @router.delete("/owners/{owner}", response_model=RemovedOut, summary="Remove an owner's schedules", operation_id="removeScheduleOwner")
    async def remove_owner(owner: ScheduleName, caller: Caller) -> RemovedOut:
        """Delete every schedule of `owner` (e.g. when a subscription ends)."""
        count = await book.aremove_owner(owner)
        audit(caller, "schedule_owner.remove", owner, [f"count={count}"])
        return RemovedOut(removed=int(count or 0))

    return router
