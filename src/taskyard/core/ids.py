"""Time-sortable job ids: 48 bits of milliseconds then 80 bits of randomness, Crockford base32.

Ids are made by the client, so an enqueue retried after a lost reply cannot create a second
job; `deterministic_id` derives the random part from a key for the same reason (schedule fires).
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime

__all__ = ("deterministic_id", "id_time_ms", "new_id")

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(ms: int | None = None) -> str:
    """A new 26-character id that sorts by creation time."""
    if ms is None:
        import time

        ms = time.time_ns() // 1_000_000
    return _encode((ms << 80) | int.from_bytes(os.urandom(10), "big"))


def deterministic_id(when: datetime, key: str) -> str:
    """The same id for the same (time, key): used for schedule fires."""
    ms = int(when.timestamp() * 1000)
    rand = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=10).digest(), "big")
    return _encode((ms << 80) | rand)


def id_time_ms(job_id: str) -> int:
    """The millisecond timestamp encoded in an id."""
    value = 0
    for ch in job_id.upper():
        value = (value << 5) | _DECODE[ch]
    return value >> 80
