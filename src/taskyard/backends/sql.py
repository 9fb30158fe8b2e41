"""What the SQL backends (SQLite, PostgreSQL, MySQL) share: the job columns, named after
`Job`'s fields, and the rule for a URL's connection-pool parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from taskyard.core.job import Job
from taskyard.errors import ConfigError

__all__ = ("JOB_COLUMNS", "pool_parameters")

#: Every job column, in `Job`'s field order (each backend's `job_from_row` reads them so).
JOB_COLUMNS = ", ".join(f.name for f in dataclasses.fields(Job))


def pool_parameters(params: Mapping[str, str], *, timeout: str, label: str) -> tuple[int, int, float]:
    """`pool_min`, `pool_max` and the `timeout` parameter (seconds) of a backend URL's query,
    defaults 1, 10 and 5 s; `ConfigError` naming the URL's `label` when they are not numbers
    or not 0 <= pool_min <= pool_max, pool_max >= 1, timeout > 0."""
    try:
        pool_min = int(params.get("pool_min", 1))
        pool_max = int(params.get("pool_max", 10))
        seconds = float(params.get(timeout, 5.0))
    except ValueError as exc:
        raise ConfigError(f"{label}: bad pool parameter: {exc}") from None
    if pool_min < 0 or pool_max < max(1, pool_min) or seconds <= 0:
        raise ConfigError(f"{label}: need 0 <= pool_min <= pool_max, pool_max >= 1, {timeout} > 0")
    return pool_min, pool_max, seconds
