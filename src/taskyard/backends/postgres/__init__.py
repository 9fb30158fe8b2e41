"""The PostgreSQL backend (`postgresql://...`): SKIP LOCKED batch claims, LISTEN/NOTIFY wake-ups
and enqueue inside the application's own transaction.
"""

from typing import TYPE_CHECKING

from taskyard.backends.postgres.backend import PostgresBackend

__all__ = ("PostgresBackend",)

if TYPE_CHECKING:
    # mypy proves the backend implements the protocols (a runtime isinstance checks names only).
    from taskyard.backends.protocol import Backend, TransactionalEnqueue, TransactionalWorkflows

    _backend: type[Backend] = PostgresBackend
    _transactional: type[TransactionalEnqueue] = PostgresBackend
    _workflows: type[TransactionalWorkflows] = PostgresBackend
