"""Structured logging: JSON lines when stderr is not a terminal, rich when it is.

Records carry `job_id` / `service_id` (passed with `extra=`); secrets are redacted from
every message: URL passwords, bearer tokens, `password=`/`secret=` pairs and any value
registered with `configure_logging(secrets=...)`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ("JsonFormatter", "RedactingFilter", "configure_logging", "redact")

#: Record attributes copied into JSON lines and appended to human-readable lines.
CONTEXT_FIELDS = (
    "service_id", "job_id", "worker_id", "queue", "task", "event", "attempt", "outcome", "duration",
)

_PATTERNS = (
    # scheme://user:password@host
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)"), r"\g<keep>***"),
    (re.compile(r"(?P<keep>\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]+"), r"\g<keep>***"),
    (
        re.compile(r"(?P<keep>\b(?:password|passwd|secret|token|api_key|apikey)\b\s*[=:]\s*)[^\s,;&]+", re.I),
        r"\g<keep>***",
    ),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with known secret shapes and the given secret values replaced by `***`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in secrets:
        if secret and len(secret) >= 4:  # masking tiny strings would garble ordinary text
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Renders each record's message once, redacted, so no handler sees the raw arguments."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logged as is rather than lost
            message = str(record.msg)
        record.msg = redact(message, self.secrets)
        record.args = None
        # Another handler may have cached the traceback text already: redact that too.
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class _ContextFormatter(logging.Formatter):
    """Human-readable line with the context ids appended as `key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None)
        )
        if not context:
            return line
        head, sep, tail = line.partition("\n")
        return f"{head} [{context}]{sep}{tail}"


def configure_logging(
    level: str = "INFO",
    format: str = "auto",
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing any earlier one of ours)."""
    stream = stream or sys.stderr
    if format == "auto":
        format = "rich" if getattr(stream, "isatty", lambda: False)() else "json"
    handler: logging.Handler
    if format == "rich":
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(file=stream), show_path=False, rich_tracebacks=False)
        handler.setFormatter(_ContextFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(
            JsonFormatter()
            if format == "json"
            else _ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    handler.addFilter(RedactingFilter(secrets))
    setattr(handler, "_taskyard", True)  # noqa: B010 - a marker on a foreign class
    root = logging.getLogger()
    for old in list(root.handlers):
        # Replace ours and the CLI's plain fallback; leave handlers others installed (pytest's).
        if getattr(old, "_taskyard", False) or type(old) in (logging.StreamHandler,):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own loggers propagate to ours; its access log is noise for a task server.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return handler
