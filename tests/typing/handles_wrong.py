"""A module with mistakes at handle call sites that mypy and pyright must both reject, each on
its marked line (tests/typing/test_type_checkers.py reads the `# wrong:` markers)."""

from __future__ import annotations

from pydantic import BaseModel

from taskyard import Taskyard


class Email(BaseModel):
    """The payload model of `send`."""

    to: str


class Invoice(BaseModel):
    """Another model: not `send`'s payload."""

    number: int


app = Taskyard("memory://")


@app.task("emails.send")
def send(email: Email) -> None:
    """A handler with a payload model."""


@app.task("maintenance.tick")
def tick() -> None:
    """A handler without a payload."""


def mistakes() -> None:
    """Each line holds one mistake."""
    send.enqueue(Invoice(number=1))  # wrong: payload
    send.using(prio=3).enqueue(Email(to="a@example.com"))  # wrong: option
    send.using(delay="soon").enqueue(Email(to="a@example.com"))  # wrong: option-type
    send.enqueue_many([Email(to="a@example.com"), Invoice(number=2)])  # wrong: many
    tick.enqueue(Email(to="a@example.com"))  # wrong: no-payload
    app.workflow("w").step(send, Invoice(number=3))  # wrong: step-payload
