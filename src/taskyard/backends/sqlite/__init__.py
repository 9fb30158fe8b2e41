"""The SQLite backend (`sqlite:///PATH`): the default, durable, zero-setup store for one host."""

from taskyard.backends.sqlite.backend import SqliteBackend
from taskyard.backends.sqlite.connection import SqliteOptions
from taskyard.backends.sqlite.schema import SCHEMA_VERSION

__all__ = ("SCHEMA_VERSION", "SqliteBackend", "SqliteOptions")
