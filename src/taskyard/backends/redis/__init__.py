"""The Redis backend (`redis://`, `rediss://`; a Redis Cluster with `redis+cluster://`,
`rediss+cluster://`): Lua-scripted atomic transitions, keys hash-tagged per queue, pub/sub
wake-ups.
"""

from typing import TYPE_CHECKING

from taskyard.backends.redis.backend import RedisBackend

__all__ = ("RedisBackend",)

if TYPE_CHECKING:
    # mypy proves the backend implements the protocol (a runtime isinstance checks names only).
    from taskyard.backends.protocol import Backend

    _backend: type[Backend] = RedisBackend
