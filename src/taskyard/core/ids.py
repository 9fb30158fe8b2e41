"""Time-sortable job ids: 48 bits of milliseconds then 80 bits of randomness, Crockford base32.

Ids are made by the client, so an enqueue retried after a lost reply cannot create a second
job; `deterministic_id` derives the random part from a key for the same reason (schedule fires).
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime

__all__ = ("deterministic_id", "id_time_ms", "new_id", "new_id_after")

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}


#: Every pair of digits, by the 10 bits they spell.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_MASK = (1 << 130) - 1


def _encode(value: int) -> str:
    """The low 130 bits of `value` as 26 Crockford base32 digits, most significant first."""
    pairs = _PAIRS
    value &= _MASK
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def new_id(ms: int | None = None) -> str:
    """A new 26-character id that sorts by creation time."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    return _encode((ms << 80) | int.from_bytes(os.urandom(10), "big"))


def new_id_after(previous: str | None) -> str:
    """A new id that sorts after `previous` (None: any new id): `new_id()`, or, when that
    would not sort after it (same millisecond, or a clock that stepped back), `previous` plus
    one. Ids made in a row with it sort in the order they were made (a workflow's steps)."""
    made = new_id()
    if previous is None or made > previous:
        return made
    return _encode(_decode(previous) + 1)


def _decode(job_id: str) -> int:
    value = 0
    for ch in job_id.upper():
        value = (value << 5) | _DECODE[ch]
    return value


def deterministic_id(when: datetime, key: str) -> str:
    """The same id for the same (time, key): used for schedule fires."""
    ms = int(when.timestamp() * 1000)
    rand = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=10).digest(), "big")
    return _encode((ms << 80) | rand)


def id_time_ms(job_id: str) -> int:
    """The millisecond timestamp encoded in an id."""
    return _decode(job_id) >> 80
