"""Schedules declared in code by several processes on one store (replicas, two versions in a
rolling deploy, two apps): what one process does with each name it declares, as a pure function.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskyard.core.schedule import Schedule

__all__ = ("DeclarationStep", "Declarer", "declaration_step", "takeover_after")


@dataclass(frozen=True, slots=True)
class Declarer:
    """A process declaring schedules: its app's name (may be empty), a process label unique
    among live processes (host, pid, a random suffix), and when it started declaring.
    """

    app: str
    process: str
    started_at: datetime

    @property
    def label(self) -> str:
        """What is stored in `Schedule.declarer`: `"<app> <process>"`, or the process alone."""
        return f"{self.app} {self.process}" if self.app else self.process

    def stamp(self, schedule: Schedule, now: datetime) -> Schedule:
        """`schedule` as this declarer stores it, confirmed at `now`."""
        return schedule.replace(
            declarer=self.label, declarer_started_at=self.started_at, confirmed_at=now
        )


class DeclarationStep(enum.StrEnum):
    """What a declaring process does with one of its names."""

    CREATE = "create"  # nothing stored under the name: store the declaration
    CONFIRM = "confirm"  # the stored definition is ours: refresh its confirmed_at
    REPLACE = "replace"  # ours differs and wins (newer start, theirs went unconfirmed, or it
    # has no declarer: stored by an older taskyard, or changed at runtime)
    YIELD = "yield"  # ours differs and a newer live process's definition is stored: leave it


def takeover_after(grace: float) -> float:
    """Seconds a differing declaration must go unconfirmed before an older process takes the
    name over: half the grace, so a live declarer takes over well before the leader would
    delete the name.
    """
    return grace / 2


def declaration_step(stored: Schedule | None, mine: Schedule, *, now: datetime, grace: float) -> DeclarationStep:
    """The step for declaration `mine` (stamped by its `Declarer`, with `enabled` taken over
    from `stored` so a runtime pause is not a difference) given what is `stored` under its name.

    The rule. Every scheduler process confirms the names it declares every few seconds and
    deletes nothing because it does not declare it; the scheduler leader deletes declarations
    nobody has confirmed for the grace (their last declarer is gone). When live processes
    declare one name differently, the most recently started one's definition is stored and
    older ones leave it alone, so a rolling deploy converges to the new version and a rollback
    (new processes of the old version) to the old one; a definition whose declarers have all
    stopped is taken over by a live declarer after half the grace, before it could expire.

    Runtime (`api`) and set schedules of the same name are replaced: a name declared in code
    belongs to the code. Ties between two processes started at the same instant go to the
    larger declarer label, so every process reaches the same answer.
    """
    if stored is None:
        return DeclarationStep.CREATE
    if stored.source != "code":
        return DeclarationStep.REPLACE
    if stored.declarer_started_at is None or mine.declarer_started_at is None:
        # Stored by an older taskyard or changed through the API (`update`): ours, stamped
        # with its declarer (same timing, so the fire bookkeeping is carried over).
        return DeclarationStep.REPLACE
    if stored.definition() == mine.definition():
        return DeclarationStep.CONFIRM
    if (mine.declarer_started_at, mine.declarer or "") > (stored.declarer_started_at, stored.declarer or ""):
        return DeclarationStep.REPLACE
    cutoff = now - timedelta(seconds=takeover_after(grace))
    if stored.confirmed_at is None or stored.confirmed_at < cutoff:
        return DeclarationStep.REPLACE
    return DeclarationStep.YIELD
