"""Property-based API tests: schemathesis generates requests from `/api/v1/openapi.json` and
checks for no 5xx, documented status codes, content types and response schemas. Runs
in-process against the real ASGI app with an admin token, one Hypothesis run per operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from taskyard.http.context import HttpContext
from taskyard.services.manager import ServiceManager
from tests.e2e.conftest import build_asgi, make_app, make_settings

EXAMPLES = 30
#: No 5xx and no schema violations. Not `positive_data_acceptance`: a schema-valid task name
#: that no task has, or a payload its task's model refuses, is rightly a 422.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _schema():
    app = make_app()
    app.schedules.define_set("basic", [{"key": "scan", "task": "math.add", "cron": "0 3 1 * *"}])
    # schemathesis's ASGI client names the host `testserver`.
    http_settings, creds = make_settings(allowed_hosts=["testserver"])
    asgi = build_asgi(HttpContext(app=app, manager=ServiceManager(), settings=http_settings))
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", asgi, headers=creds.viewer_jwt)
    return schema.include(path_regex=r"^/api/v1/"), creds.admin_jwt


SCHEMA, HEADERS = _schema()
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_operation_conforms_to_schema(operation) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case) -> None:
        case.call_and_validate(headers=HEADERS, checks=CHECKS)

    run()
