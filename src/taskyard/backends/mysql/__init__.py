"""The MySQL/MariaDB backend (`mysql://...`): SKIP LOCKED batch claims, polling wake-ups and
enqueue inside the application's own transaction.
"""

from typing import TYPE_CHECKING

from taskyard.backends.mysql.backend import MysqlBackend

__all__ = ("MysqlBackend",)

if TYPE_CHECKING:
    # mypy proves the backend implements the protocols (a runtime isinstance checks names only).
    from taskyard.backends.protocol import Backend, TransactionalEnqueue

    _backend: type[Backend] = MysqlBackend
    _transactional: type[TransactionalEnqueue] = MysqlBackend
