"""Connecting: the URL's taskyard parameters, and the one place driver errors are converted.

URL: `postgresql://user:pass@host:port/db?schema=taskyard&pool_max=10&pool_timeout=5`; every
other query parameter is passed to libpq unchanged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool

from taskyard.backends.sql import pool_parameters
from taskyard.errors import BackendUnavailable, ConfigError

__all__ = ("DEFAULT_SCHEMA", "PostgresUrl", "converted_errors", "is_connection_error")

DEFAULT_SCHEMA = "taskyard"
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    """A parsed `postgresql://` URL: libpq's conninfo plus taskyard's own parameters."""

    conninfo: str
    schema: str = DEFAULT_SCHEMA
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout: float = 5.0

    @classmethod
    def parse(cls, url: str) -> PostgresUrl:
        """Split taskyard's parameters off `url`; a bad value raises `ConfigError`."""
        parts = urlsplit(url)
        params: dict[str, str] = {}
        passthrough: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("schema", "pool_min", "pool_max", "pool_timeout"):
                params[key] = value
            else:
                passthrough.append((key, value))
        if not any(k == "connect_timeout" for k, _ in passthrough):
            passthrough.append(("connect_timeout", "5"))
        schema = params.get("schema", DEFAULT_SCHEMA)
        if not _SCHEMA_RE.match(schema):
            raise ConfigError(
                f"backend URL parameter schema={schema!r} must be a lowercase SQL identifier "
                "(letters, digits, underscores)"
            )
        pool_min, pool_max, pool_timeout = pool_parameters(params, timeout="pool_timeout", label="backend URL")
        scheme = "postgresql"
        conninfo = urlunsplit((scheme, parts.netloc, parts.path, urlencode(passthrough), ""))
        return cls(conninfo, schema, pool_min, pool_max, pool_timeout)


def is_connection_error(exc: BaseException) -> bool:
    """True for failures that mean 'the server cannot be used right now' (retry later)."""
    return isinstance(
        exc,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | psycopg_pool.PoolTimeout
        | psycopg_pool.TooManyRequests,
    )


@contextlib.contextmanager
def converted_errors(what: str) -> Iterator[None]:
    """Re-raise connection failures inside the block as `BackendUnavailable`."""
    try:
        yield
    except BackendUnavailable:
        raise
    except Exception as exc:
        if is_connection_error(exc):
            raise BackendUnavailable(f"PostgreSQL unavailable during {what}: {exc}") from exc
        raise
