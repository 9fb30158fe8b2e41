"""Storage backends. `open_backend(url)` picks the implementation by URL scheme, importing it
lazily so the drivers of unused backends (psycopg, redis) are never loaded.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from taskyard.backends.protocol import Backend
from taskyard.errors import ConfigError

__all__ = ("DRIVER_EXTRAS", "SCHEMES", "Backend", "backend_from_url")

#: URL scheme -> "module:class".
SCHEMES: dict[str, str] = {
    "memory": "taskyard.backends.memory:MemoryBackend",
    "sqlite": "taskyard.backends.sqlite:SqliteBackend",
    "postgresql": "taskyard.backends.postgres:PostgresBackend",
    "postgres": "taskyard.backends.postgres:PostgresBackend",
    "redis": "taskyard.backends.redis:RedisBackend",
    "rediss": "taskyard.backends.redis:RedisBackend",
    "redis+cluster": "taskyard.backends.redis:RedisBackend",
    "rediss+cluster": "taskyard.backends.redis:RedisBackend",
    "mysql": "taskyard.backends.mysql:MysqlBackend",
}

#: URL scheme -> the extra that installs its driver (`pip install 'taskyard[EXTRA]'`).
DRIVER_EXTRAS: dict[str, str] = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "redis": "redis",
    "rediss": "redis",
    "redis+cluster": "redis",
    "rediss+cluster": "redis",
    "mysql": "mysql",
}


def backend_from_url(url: str) -> Backend:
    """Build (but do not open) the backend for `url`; a bad URL raises `ConfigError`."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"backend URL {url!r} is not a URL; expected one of memory://, sqlite:///PATH, "
            "postgresql://..., redis://..."
        )
    scheme = urlsplit(url).scheme.lower()
    target = SCHEMES.get(scheme)
    if target is None:
        raise ConfigError(
            f"backend URL scheme {scheme!r} is not supported; use one of "
            + ", ".join(sorted({s + '://' for s in SCHEMES}))
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = DRIVER_EXTRAS.get(scheme)
        if extra is not None and exc.name is not None and not exc.name.startswith("taskyard"):
            raise ConfigError(
                f"the {scheme}:// backend needs the {exc.name.partition('.')[0]} package, which is not "
                f"installed: pip install 'taskyard[{extra}]'"
            ) from exc
        raise ConfigError(f"backend {scheme!r} is not available: {exc}") from exc
    backend: Backend = getattr(module, class_name)(url)
    return backend
