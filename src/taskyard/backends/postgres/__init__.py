"""The PostgreSQL backend (`postgresql://...`): SKIP LOCKED batch claims, LISTEN/NOTIFY wake-ups
and enqueue inside the application's own transaction.
"""

from taskyard.backends.postgres.backend import PostgresBackend

__all__ = ("PostgresBackend",)
