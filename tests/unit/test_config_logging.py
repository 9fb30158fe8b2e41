"""Logging as configured from `[logging]`: JSON lines with context ids, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from taskyard.observability import configure_logging, redact


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_redact_known_secret_shapes() -> None:
    text = "postgresql://app:hunter2@db/x Authorization: Bearer abc.def.ghi password=pw1234 token: t0k3n"
    out = redact(text, secrets=["my-api-key-value"])
    for secret in ("hunter2", "abc.def.ghi", "pw1234", "t0k3n"):
        assert secret not in out
    assert "postgresql://app:***@db/x" in out
    assert redact("key my-api-key-value here", ["my-api-key-value"]) == "key *** here"


def test_json_lines_carry_context_and_hide_secrets(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", secrets=["s3cret-value-xyz"], stream=stream)
    log = logging.getLogger("taskyard.test")
    log.info("connecting to %s with s3cret-value-xyz", "redis://:pw@h:6379", extra={"service_id": "csv-import"})
    log.debug("not shown at INFO")
    try:
        raise ValueError("password=oops")
    except ValueError:
        log.exception("failed", extra={"job_id": "J1"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "connecting to redis://:***@h:6379 with ***"
    assert first["service_id"] == "csv-import" and first["level"] == "INFO"
    assert second["job_id"] == "J1" and "ValueError" in second["exception"]
    assert "oops" not in second["exception"]


def test_plain_format_appends_context(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "plain", stream=stream)
    logging.getLogger("taskyard.test").debug("tick", extra={"service_id": "rescuer"})
    assert stream.getvalue().rstrip().endswith("tick [service_id=rescuer]")
