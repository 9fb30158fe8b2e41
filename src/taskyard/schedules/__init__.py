"""`ScheduleBook`: the schedules API of an app (`app.schedules`), declared and at runtime.

Schedules declared in code (`app.schedule(...)`) are stored and kept confirmed by every
scheduler process (`sync_declared`, rule in `core/declaration.py`); runtime ones are stored at
once. Schedule sets stamp templates onto an owner (`apply_set`).
Every method validates everything (cron, time zone, task, payload) before it stores anything.
Beside the book: `sets` (schedule-set templates) and `fires` (the jobs a fire makes).
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from taskyard.backends.protocol import Backend
from taskyard.clock import Clock
from taskyard.core.declaration import DeclarationStep, Declarer, declaration_step
from taskyard.core.job import Job, JobDraft
from taskyard.core.payload import check_payload
from taskyard.core.schedule import SETTABLE_DEFAULTS, SETTABLE_FIELDS, Schedule
from taskyard.errors import NotFoundError, ScheduleError
from taskyard.schedules.fires import fire_drafts, prepared
from taskyard.schedules.sets import (
    TEMPLATE_OMITS,
    ScheduleTemplate,
    check_names,
    merge_payload,
    template_options,
)

__all__ = (
    "DECLARED_GRACE",
    "OPTIONS",
    "TEMPLATE_OMITS",
    "DeclarationReport",
    "ScheduleBook",
    "ScheduleHost",
    "ScheduleTemplate",
)

#: Seconds a declared schedule outlives its last confirmation (`scheduler.declared_grace`).
DECLARED_GRACE = 300.0

T = TypeVar("T")


class ScheduleHost(Protocol):
    """What the book uses of its `Taskyard`, all public (`app.py` sits above this module:
    no import)."""

    @property
    def tasks(self) -> Mapping[str, Any]: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def name(self) -> str | None: ...
    @property
    def build_draft(self) -> Callable[..., JobDraft]: ...

    def validate_payload(self, task: str, payload: Any) -> tuple[Any, Any]: ...
    def get_task(self, name: str) -> Any: ...
    async def backend_for_loop(self) -> Backend: ...
    async def store_drafts(
        self, drafts: list[JobDraft], connection: Any = None, *, schedule: str | None = None
    ) -> list[Job]: ...
    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T: ...


#: Options a schedule accepts (besides its name), with their defaults: the settable fields of
#: `Schedule` (`core.schedule.SETTABLE_FIELDS`).
OPTIONS: dict[str, Any] = dict(SETTABLE_DEFAULTS)
@dataclass(frozen=True, slots=True)
class DeclarationReport:
    """What one `sync_declared` pass did: names stored (new or replaced), how many were only
    confirmed, names left to a newer process's differing definition, names deleted because
    nobody had confirmed them for the grace period.
    """

    written: tuple[str, ...] = ()
    confirmed: int = 0
    yielded: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class ScheduleBook:
    """The schedules of one app: `app.schedules`."""

    def __init__(self, app: ScheduleHost) -> None:
        self.app = app
        #: This process as the declarer of `declared` (set by the first `sync_declared`).
        self.declarer: Declarer | None = None
        #: Schedules declared in code, by name (stored and confirmed by `sync_declared`).
        self.declared: dict[str, Schedule] = {}
        #: Schedule sets, by name.
        self.sets: dict[str, tuple[ScheduleTemplate, ...]] = {}

    # -- building and validating -------------------------------------------------------------
    def build(self, name: str, *, source: str = "api", check_task: bool = True, **options: Any) -> Schedule:
        """A validated `Schedule` from keyword options (`task`, `cron` or `every`, `tz`, ...).

        Raises `ScheduleError` (bad option, name, cron, interval or time zone),
        `UnknownTaskError` or `PayloadError` (payload too deep or too large for
        `core/payload.py`, or not fitting the task's model).
        """
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ScheduleError(f"schedule {name!r}: unknown option(s) {', '.join(unknown)}")
        values = {**OPTIONS, **options}
        if not values["task"]:
            raise ScheduleError(f"schedule {name!r}: task= is required")
        schedule = Schedule(name=name, source=source, **values).validated()
        # Depth and size even when the task is not known here (a declaration of another app).
        check_payload(schedule.task, schedule.payload, what="schedule payload")
        if check_task:
            self._check_task(schedule)
        return schedule

    def _check_task(self, schedule: Schedule) -> Schedule:
        """Validate the payload against the task and capture the task's job settings, which a
        scheduler that does not know the task (another app version) fires with."""
        data, _ = self.app.validate_payload(schedule.task, schedule.payload)
        spec = self.app.get_task(schedule.task)
        defaults = {
            "queue": spec.queue, "priority": spec.priority,
            "max_attempts": spec.retry.attempts, "timeout": spec.timeout,
            "max_rescues": spec.max_rescues,
        }
        return schedule.replace(payload=data, task_defaults=defaults)

    def declare(self, name: str, **options: Any) -> Schedule:
        """Record a schedule declared in code; stored (source "code") when a scheduler starts.

        Cron, interval and time zone are checked now; the task and payload too when the task
        is already registered (otherwise when the scheduler stores the declarations).
        """
        if name in self.declared:
            raise ScheduleError(f"schedule {name!r} is already declared")
        schedule = self.build(name, source="code", check_task=False, **options)
        if schedule.task in self.app.tasks:
            schedule = self._check_task(schedule)
        self.declared[name] = schedule
        return schedule

    def define_set(self, name: str, templates: Iterable[ScheduleTemplate | Mapping[str, Any]]) -> None:
        """Define schedule set `name` from templates (or mappings of template fields).
        The set name and template keys follow the name rule (`core/names.py`)."""
        check_names("schedule set name", name)
        built: list[ScheduleTemplate] = []
        for item in templates:
            template = item if isinstance(item, ScheduleTemplate) else ScheduleTemplate(**item)
            check_names(f"schedule set {name!r}: template key", template.key)
            # Validate the timing and options now, the task and payload when applied.
            self.build(f"set:{name}:{template.key}", check_task=False, **template_options(template))
            built.append(template)
        keys = [t.key for t in built]
        if len(set(keys)) != len(keys):
            raise ScheduleError(f"schedule set {name!r} has duplicate keys")
        if not built:
            raise ScheduleError(f"schedule set {name!r} has no templates")
        self.sets[name] = tuple(built)

    # -- fire drafts (used by the scheduler and `trigger`) -------------------------------------
    def drafts(self, schedule: Schedule, fire_times: Iterable[datetime], *, rng: random.Random | None = None) -> list[JobDraft]:
        """One job draft per fire (see `schedules.fires.fire_drafts`)."""
        return fire_drafts(schedule, fire_times, build_draft=self.app.build_draft, known_tasks=self.app.tasks, rng=rng)

    # -- async API ---------------------------------------------------------------------------
    async def _backend(self) -> Backend:
        return await self.app.backend_for_loop()

    def _now(self) -> datetime:
        return self.app.clock.now()

    async def aadd(self, name: str, *, replace: bool = False, **options: Any) -> Schedule:
        """Async twin of `add`."""
        schedule = self.build(name, **options)
        schedule = self._check_task(schedule)
        backend = await self._backend()
        existing = await backend.schedule_get(name=name)
        if existing is not None and not replace:
            raise ScheduleError(f"schedule {name!r} already exists (use update, or replace=True)")
        return await backend.schedule_upsert(schedule=prepared(schedule, existing, self._now()))

    async def aupdate(self, name: str, **changes: Any) -> Schedule:
        """Async twin of `update`."""
        backend = await self._backend()
        existing = await self._require(backend, name)
        current = {name: getattr(existing, name) for name in SETTABLE_FIELDS}
        schedule = self.build(name, source=existing.source, **{**current, **changes})
        schedule = self._check_task(schedule)
        return await backend.schedule_upsert(schedule=prepared(schedule, existing, self._now()))

    async def _require(self, backend: Backend, name: str) -> Schedule:
        existing = await backend.schedule_get(name=name)
        if existing is None:
            raise NotFoundError(f"no schedule named {name!r}")
        return existing

    async def aremove(self, name: str) -> None:
        """Async twin of `remove`."""
        if not await (await self._backend()).schedule_delete(name=name):
            raise NotFoundError(f"no schedule named {name!r}")

    async def apause(self, name: str) -> Schedule:
        """Async twin of `pause`."""
        backend = await self._backend()
        existing = await self._require(backend, name)
        paused = existing.replace(enabled=False, next_fire_at=None, updated_at=self._now())
        return await backend.schedule_upsert(schedule=paused)

    async def aresume(self, name: str) -> Schedule:
        """Async twin of `resume`."""
        backend = await self._backend()
        existing = await self._require(backend, name)
        if existing.enabled and existing.next_fire_at is not None:
            return existing
        now = self._now()
        resumed = existing.replace(
            enabled=True, next_fire_at=existing.timing().next_after(now), updated_at=now
        )
        return await backend.schedule_upsert(schedule=resumed)

    async def atrigger(self, name: str) -> Job:
        """Async twin of `trigger`."""
        backend = await self._backend()
        schedule = await self._require(backend, name)
        draft = self.drafts(schedule.replace(jitter=0.0), [self._now()])[0]
        return (await self.app.store_drafts([draft], schedule=name))[0]

    async def aget(self, name: str) -> Schedule | None:
        """Async twin of `get`."""
        return await (await self._backend()).schedule_get(name=name)

    async def alist(self, *, owner: str | None = None) -> list[Schedule]:
        """Async twin of `list`."""
        return await (await self._backend()).schedules_list(owner=owner)

    async def anext_fires(self, name: str, n: int = 5) -> list[datetime]:
        """Async twin of `next_fires`."""
        if n < 1 or n > 1000:
            raise ValueError("n must be between 1 and 1000")
        schedule = await self._require(await self._backend(), name)
        if not schedule.enabled:
            return []
        timing = schedule.timing()
        first = schedule.next_fire_at or timing.next_after(self._now())
        return [first, *timing.next_n(first, n - 1)]

    async def aapply_set(self, set_name: str, *, owner: str, payload: Any = None) -> list[Schedule]:
        """Async twin of `apply_set`."""
        templates = self.sets.get(set_name)
        if templates is None:
            raise NotFoundError(f"no schedule set named {set_name!r} (known: {', '.join(sorted(self.sets)) or 'none'})")
        check_names("owner", owner)
        built = []
        for template in templates:
            options = template_options(template)
            options["payload"] = merge_payload(template.payload, payload)
            schedule = self.build(f"{owner}:{template.key}", source=f"set:{set_name}", owner=owner, **options)
            built.append(self._check_task(schedule))
        backend = await self._backend()
        previous = {s.name: s for s in await backend.schedules_list(owner=owner)}
        now = self._now()
        stored = [prepared(s, previous.get(s.name), now) for s in built]
        await backend.schedules_replace_owner(owner=owner, schedules=stored)
        return stored

    async def aremove_owner(self, owner: str) -> int:
        """Async twin of `remove_owner`."""
        return await (await self._backend()).schedules_delete_owner(owner=owner)

    async def sync_declared(
        self, *, grace: float = DECLARED_GRACE, expire: bool = True, now: datetime | None = None
    ) -> DeclarationReport:
        """Store or confirm this process's declarations (source "code"); with `expire`, also
        delete declarations nobody has confirmed for `grace` seconds (the scheduler leader's
        duty). Called when a scheduler starts and every few seconds after. `now` is the time
        to judge by (the scheduler passes the store's clock); None: the app's clock.

        Per name (`core.declaration.declaration_step`): a new name is stored, our unchanged
        definition is only confirmed (fire bookkeeping untouched, a runtime pause kept), a
        differing one is replaced when we started after its declarer (or it went unconfirmed
        for half the grace), else left to the newer process. Nothing is deleted because this
        process does not declare it.
        """
        declared = [self._check_task(s) for s in self.declared.values()]
        backend = await self._backend()
        now = now or self._now()
        if self.declarer is None:
            self.declarer = Declarer(app=self.app.name or "", process=_process_label(), started_at=now)
        stored = {s.name: s for s in await backend.schedules_get(names=[s.name for s in declared])}
        written: list[str] = []
        confirm: list[str] = []
        yielded: list[str] = []
        for schedule in declared:
            existing = stored.get(schedule.name)
            mine = self.declarer.stamp(schedule, now)
            if existing is not None:
                mine = mine.replace(enabled=existing.enabled)
            step = declaration_step(existing, mine, now=now, grace=grace)
            if step in (DeclarationStep.CREATE, DeclarationStep.REPLACE):
                await backend.schedule_upsert(schedule=prepared(mine, existing, now))
                written.append(schedule.name)
            elif step is DeclarationStep.CONFIRM:
                confirm.append(schedule.name)
            else:
                yielded.append(schedule.name)
        if confirm:
            await backend.schedules_confirm(names=confirm, now=now)
        removed = await backend.schedules_expire_declared(grace=grace, now=now) if expire else []
        return DeclarationReport(tuple(written), len(confirm), tuple(yielded), tuple(removed))

    # -- sync facade -------------------------------------------------------------------------
    def _sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self.app.run_sync(make)

    def add(self, name: str, **options: Any) -> Schedule:
        """Store a new schedule: `task`, `cron` or `every`, `tz`, `payload`, `queue`,
        `priority`, `jitter`, `misfire` (skip|once|all), `misfire_cap`, `misfire_grace`,
        `enabled`, `owner`; `replace=True` overwrites one of the same name.
        """
        return self._sync(lambda: self.aadd(name, **options))

    def update(self, name: str, **changes: Any) -> Schedule:
        """Change some options of a stored schedule (`NotFoundError` if there is none)."""
        return self._sync(lambda: self.aupdate(name, **changes))

    def remove(self, name: str) -> None:
        """Delete a schedule (`NotFoundError` if there is none)."""
        self._sync(lambda: self.aremove(name))

    def pause(self, name: str) -> Schedule:
        """Stop firing a schedule until `resume`."""
        return self._sync(lambda: self.apause(name))

    def resume(self, name: str) -> Schedule:
        """Fire a paused schedule again, from its next fire time after now."""
        return self._sync(lambda: self.aresume(name))

    def trigger(self, name: str) -> Job:
        """Enqueue one job of the schedule now (its fire times are unchanged)."""
        return self._sync(lambda: self.atrigger(name))

    def get(self, name: str) -> Schedule | None:
        """The stored schedule, or None."""
        return self._sync(lambda: self.aget(name))

    def next_fires(self, name: str, n: int = 5) -> list[datetime]:
        """The next `n` fire times of a schedule (UTC); empty while paused."""
        return self._sync(lambda: self.anext_fires(name, n))

    def apply_set(self, set_name: str, *, owner: str, payload: Any = None) -> list[Schedule]:
        """Replace `owner`'s schedules with set `set_name`'s templates, in one backend step."""
        return self._sync(lambda: self.aapply_set(set_name, owner=owner, payload=payload))

    def remove_owner(self, owner: str) -> int:
        """Delete every schedule of `owner`; returns how many."""
        return self._sync(lambda: self.aremove_owner(owner))

    # Last in the class: below this point `list` names this method, not the builtin.
    def list(self, *, owner: str | None = None) -> list[Schedule]:
        """Stored schedules (of one owner), sorted by name."""
        return self._sync(lambda: self.alist(owner=owner))


def _process_label() -> str:
    # Unique among live processes even for two apps in one process or a reused pid.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
