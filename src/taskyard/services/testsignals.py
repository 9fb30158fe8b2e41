"""`TestSignals` (River's name): events a service or the manager records for tests to wait on,
instead of sleeping or reading private state. Off (`signals is None`) unless a test sets it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Signal", "TestSignals")


@dataclass(frozen=True, slots=True)
class Signal:
    """One recorded event: its `name` and, for the manager, the service id it is about."""

    name: str
    subject: str | None = None


class TestSignals:
    """An append-only record of signals. Names a service records:

    - `held`: the main loop holds at `wait_resumed()` because the service is paused
      (any run under way has ended; nothing runs until resumed);
    - `tick`: one pass of a periodic service's loop is over (it ran, or was skipped
      because another process leads);
    - manager, with the service id as subject: `restart_scheduled` (a failed critical
      service will be restarted), `restart_skipped` (a failed service will not be:
      not critical, `auto_restart` off, or the manager is stopping it),
      `restart_ended` (a restart series is over: restarted, given up or cancelled).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        self.events: list[Signal] = []

    def record(self, name: str, subject: str | None = None) -> None:
        """Append one signal."""
        self.events.append(Signal(name, subject))

    def count(self, name: str, subject: str | None = None) -> int:
        """How many `name` signals were recorded (about `subject`, when given)."""
        return sum(1 for e in self.events if e.name == name and (subject is None or e.subject == subject))
