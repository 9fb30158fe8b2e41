"""Observability: Prometheus metrics (one registry per server) and structured logging.

Sits above `services/` (it reads their one definition of a service's statuses) and below
`http/` and `server.py`, which feed it.
"""

from taskyard.observability.logging import configure_logging, redact
from taskyard.observability.metrics import ServerMetrics

__all__ = ("ServerMetrics", "configure_logging", "redact")
