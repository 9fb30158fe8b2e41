"""Observability: Prometheus metrics (one registry per server) and structured logging.

Takes plain values only, so every layer above may feed it.
"""

from taskyard.observability.logging import configure_logging, redact
from taskyard.observability.metrics import ServerMetrics

__all__ = ("ServerMetrics", "configure_logging", "redact")
