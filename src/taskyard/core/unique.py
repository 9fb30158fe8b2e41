"""Uniqueness keys: templates filled from the payload, and the key of a schedule fire."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

__all__ = ("UniqueRule", "render_unique_key", "schedule_fire_key", "validate_template")

UniqueRule = str | Callable[[Any], str]


def validate_template(template: str) -> list[str]:
    """The field names a template uses; raises ValueError for a malformed template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad unique key template {template!r}: {exc}") from exc
    return [name for _, name, _, _ in parsed if name]


def render_unique_key(rule: UniqueRule, payload: Any) -> str:
    """Fill a template (`"watchlist:{watchlist_id}"`) from a payload dict or model, or call it."""
    if callable(rule):
        key = rule(payload)
        if not isinstance(key, str) or not key:
            raise ValueError("unique key callable must return a non-empty string")
        return key
    if hasattr(payload, "model_dump"):
        values: Mapping[str, Any] = payload.model_dump()
    elif isinstance(payload, Mapping):
        values = payload
    else:
        values = {"payload": payload}
    try:
        return rule.format_map(values)
    except (KeyError, IndexError) as exc:
        raise ValueError(f"unique key template {rule!r} needs field {exc} in the payload") from exc


def schedule_fire_key(name: str, fire_time: datetime) -> str:
    """`schedule:<name>:<fire time ISO 8601>` — one job per fire, whoever fires it."""
    return f"schedule:{name}:{fire_time.isoformat()}"
