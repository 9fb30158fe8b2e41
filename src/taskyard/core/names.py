"""The one rule for names: tasks, queues, schedules, schedule sets and keys, owners, services.

The same rule holds wherever a name enters (Python API, CLI, configuration, HTTP), so that
anything stored can be shown, linked and acted on from the API and the dashboard.
"""

from __future__ import annotations

import re
from typing import Any

from taskyard.errors import InvalidNameError

__all__ = ("NAME_ALLOWED", "NAME_MAX_LENGTH", "NAME_PATTERN", "check_name", "is_name")

#: Longest name, in characters.
NAME_MAX_LENGTH = 200
#: What a name may contain, in words (error messages and docs).
NAME_ALLOWED = "letters A-Z a-z, digits 0-9 and _ . : @ + -"
#: Names of tasks, queues, schedules, owners and services: no spaces, no slashes, no markup.
NAME_PATTERN = r"^[A-Za-z0-9_.:@+\-]{1,200}$"

_NAME = re.compile(NAME_PATTERN)


def is_name(value: Any) -> bool:
    """True when `value` is a string that follows the name rule."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(kind: str, value: Any) -> str:
    """`value` when it is a valid name; else `InvalidNameError` naming `kind` (e.g. "queue
    name"), the value and the characters allowed."""
    if is_name(value):
        return str(value)
    if not isinstance(value, str):
        problem = f"must be a string, not {type(value).__name__}"
    elif not value:
        problem = "must not be empty"
    elif len(value) > NAME_MAX_LENGTH:
        problem = f"is {len(value)} characters long; the limit is {NAME_MAX_LENGTH}"
    else:
        problem = f"may contain only {NAME_ALLOWED}"
    shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "…"
    raise InvalidNameError(kind, value, f"{kind} {shown!r} {problem}")
