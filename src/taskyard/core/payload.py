"""The limits of stored JSON values (job payloads, schedule payloads, job results), the one
check every entry path runs before it stores one, and the bounded view listings show.

A value nested deeper than `MAX_PAYLOAD_DEPTH` or encoded larger than `MAX_PAYLOAD_BYTES` is
refused before anything is stored: deep values break JSON serialisers (Python's own at about
1,000 levels, pydantic's at about 255), and one such row would break every listing showing it.
"""

from __future__ import annotations

import json
from typing import Any

from taskyard.errors import PayloadError

__all__ = (
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "TOO_DEEP",
    "bounded",
    "check_payload",
    "decode_stored",
    "encode_value",
    "json_depth",
)

#: Largest JSON value stored (payload, schedule payload or result), in bytes of compact UTF-8 JSON.
MAX_PAYLOAD_BYTES = 1024 * 1024
#: Deepest nesting of objects and arrays in a stored value (`{"a": [1]}` is 2 levels deep).
MAX_PAYLOAD_DEPTH = 64
#: What listings show in place of a part of a stored value nested past `MAX_PAYLOAD_DEPTH`
#: (a row stored before the limit existed, or written around it).
TOO_DEEP = f"…[nested deeper than {MAX_PAYLOAD_DEPTH} levels: not shown]…"

#: `json.dumps(..., separators=(",", ":"), allow_nan=False, ensure_ascii=False)` without
#: building an encoder per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode


def json_depth(value: Any, limit: int = MAX_PAYLOAD_DEPTH) -> int:
    """How many levels of objects/arrays `value` nests (a scalar is 0), counted without
    recursion; the count stops at `limit + 1` (so a cyclic value ends too)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def encode_value(value: Any, *, what: str = "payload") -> bytes:
    """`value` as compact UTF-8 JSON, the way it is stored and served back. Raises
    `ValueError` naming `what` and the limit when it nests deeper than `MAX_PAYLOAD_DEPTH`,
    is larger than `MAX_PAYLOAD_BYTES`, or is not JSON (NaN, a lone surrogate, an object)."""
    depth = json_depth(value)
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(
            f"{what} is nested more than {MAX_PAYLOAD_DEPTH} levels deep; "
            f"the limit is {MAX_PAYLOAD_DEPTH} levels of objects and arrays"
        )
    try:
        # As UTF-8, the way it is served back: a lone surrogate ("\ud800") fails here
        # instead of breaking every listing that would show it.
        encoded = _encode_json(value).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{what} is {len(encoded)} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes of JSON")
    return encoded


def check_payload(task: str, value: Any, *, what: str = "payload") -> bytes:
    """`encode_value`, raising `PayloadError` for task `task`: the check every path that
    stores a payload (enqueue, enqueue_many, schedules, the CLI, the HTTP API) runs first."""
    try:
        return encode_value(value, what=what)
    except ValueError as exc:
        raise PayloadError(task, str(exc)) from None


def bounded(value: Any, limit: int = MAX_PAYLOAD_DEPTH) -> Any:
    """`value` itself when it nests at most `limit` levels; else a copy in which every object
    or array below that depth is replaced by `TOO_DEEP`, so that any serialiser can show it."""
    if json_depth(value, limit) <= limit:
        return value
    return _cut(value, limit)


def _cut(value: Any, left: int) -> Any:
    if isinstance(value, dict | list | tuple):
        if left == 0:
            return TOO_DEEP
        if isinstance(value, dict):
            return {key: _cut(item, left - 1) for key, item in value.items()}
        return [_cut(item, left - 1) for item in value]
    return value


def decode_stored(text: str | bytes) -> Any:
    """A stored JSON value, or `TOO_DEEP` when it nests too deeply for Python's parser
    (a row written around the limit must not make every read of it fail)."""
    try:
        return json.loads(text)
    except RecursionError:
        return TOO_DEEP
