"""The Redis backend (`redis://` / `rediss://`): Lua-scripted atomic transitions, keys
hash-tagged per queue, pub/sub wake-ups.
"""

from taskyard.backends.redis.backend import RedisBackend

__all__ = ("RedisBackend",)
