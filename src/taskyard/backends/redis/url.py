"""The Redis backend's URL: one server (`redis://`, `rediss://`) or a Redis Cluster
(`redis+cluster://host:port,host:port/`, `rediss+cluster://`), and taskyard's own options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio.connection import SSLConnection
from redis.asyncio.connection import parse_url as redis_parse_url

from taskyard.errors import ConfigError

__all__ = ("CLUSTER_SCHEMES", "DEFAULT_PREFIX", "RedisUrl", "parse_url")

DEFAULT_PREFIX = "taskyard:"
#: Cluster scheme -> whether it uses TLS.
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class RedisUrl:
    """What a backend URL says."""

    #: The URL redis-py understands (one server), or "" for a cluster.
    server_url: str
    prefix: str = DEFAULT_PREFIX
    allow_eviction: bool = False
    #: Startup nodes of a cluster, `(host, port)`; empty for one server.
    nodes: tuple[tuple[str, int], ...] = ()
    #: redis-py connection options of a cluster (TLS, credentials, query parameters).
    cluster_options: dict[str, Any] = field(default_factory=dict)
    #: Replicas that must acknowledge an enqueue (`WAIT`) before it returns; 0: none.
    durable_replicas: int = 0
    #: Seconds `WAIT` may block an enqueue before it counts as not durable.
    durable_timeout: float = 1.0

    @property
    def is_cluster(self) -> bool:
        """True for a Redis Cluster URL."""
        return bool(self.nodes)

    @property
    def where(self) -> str:
        """host:port (a cluster: its startup nodes), for error messages."""
        if self.nodes:
            return ",".join(f"{host}:{port}" for host, port in self.nodes)
        parts = urlsplit(self.server_url)
        return f"{parts.hostname}:{parts.port or 6379}"


def parse_url(url: str) -> RedisUrl:
    """Split a Redis backend URL into redis-py's part and taskyard's options.

    taskyard's own query parameters (`prefix`, `allow_eviction`, `durable`,
    `durable_timeout`) are removed; every other parameter is redis-py's.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options: dict[str, Any] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            options["prefix"] = value
        elif key == "allow_eviction":
            if value.lower() not in _BOOLEANS:
                raise ConfigError(f"redis URL option allow_eviction={value!r}: expected true or false")
            options["allow_eviction"] = _BOOLEANS[value.lower()]
        elif key == "durable":
            if not value.isdigit():
                raise ConfigError(
                    f"redis URL option durable={value!r}: expected the number of replicas that "
                    "must acknowledge an enqueue (0 = none)"
                )
            options["durable_replicas"] = int(value)
        elif key == "durable_timeout":
            try:
                timeout = float(value)
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= 60:
                raise ConfigError(
                    f"redis URL option durable_timeout={value!r}: expected seconds, above 0 "
                    "and at most 60"
                )
            options["durable_timeout"] = timeout
        else:
            rest.append((key, value))
    prefix = options.get("prefix", DEFAULT_PREFIX)
    if "{" in prefix or "}" in prefix:
        raise ConfigError(
            f"redis key prefix {prefix!r} must not contain braces (used for hash tags)"
        )
    if scheme not in CLUSTER_SCHEMES:
        return RedisUrl(urlunsplit(parts._replace(query=urlencode(rest))), **options)
    nodes, cluster_options = _cluster(url, parts.netloc, parts.path, rest, CLUSTER_SCHEMES[scheme])
    return RedisUrl("", nodes=nodes, cluster_options=cluster_options, **options)


def _cluster(
    url: str, netloc: str, path: str, query: list[tuple[str, str]], tls: bool
) -> tuple[tuple[tuple[str, int], ...], dict[str, Any]]:
    """Startup nodes and redis-py options of a `redis+cluster://` URL."""
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = []
    for spec in hosts.split(","):
        host, _, port = spec.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"redis cluster URL {_redacted(url)!r}: node {spec!r} is not host:port; expected "
                "redis+cluster://host:port[,host:port...]/?prefix=..."
            )
        nodes.append((host.strip("[]"), int(port)))
    if path not in ("", "/", "/0"):
        raise ConfigError(
            f"redis cluster URL {_redacted(url)!r}: database {path.lstrip('/')!r} selected, but "
            "a Redis Cluster has only database 0; drop the path"
        )
    # redis-py parses the query (types of socket_timeout, ssl_cert_reqs, ...) and the
    # credentials as it would for one server; the host and database are ours.
    single = urlunsplit(
        ("rediss" if tls else "redis", f"{userinfo}@x" if userinfo else "x", "", urlencode(query), "")
    )
    kwargs = dict(redis_parse_url(single))
    for key in ("host", "port", "db", "path"):
        kwargs.pop(key, None)
    if kwargs.pop("connection_class", None) is SSLConnection or tls:
        kwargs["ssl"] = True
    return tuple(nodes), kwargs


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    _, at, hosts = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"***@{hosts}" if at else hosts))
