"""The SQLite backend (`sqlite:///PATH`): the default, durable, zero-setup store for one host."""

from typing import TYPE_CHECKING

from taskyard.backends.sqlite.backend import SqliteBackend
from taskyard.backends.sqlite.connection import SqliteOptions
from taskyard.backends.sqlite.schema import SCHEMA_VERSION

__all__ = ("SCHEMA_VERSION", "SqliteBackend", "SqliteOptions")

if TYPE_CHECKING:
    # mypy proves the backend implements the protocol (a runtime isinstance checks names only).
    from taskyard.backends.protocol import Backend

    _backend: type[Backend] = SqliteBackend
