"""The memory backend (`memory://`): in-process, non-durable; the executable specification of
the `Backend` protocol that every other backend is checked against."""

from taskyard.backends.memory.backend import MemoryBackend
from taskyard.backends.memory.state import new_lease_token

__all__ = ("MemoryBackend", "new_lease_token")
