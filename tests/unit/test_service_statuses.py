"""A service's statuses are defined once (`ServiceStatus` in `services/base.py`): the API model
and the metrics derive from it, and no module spells the list out again."""

from __future__ import annotations

import ast
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import taskyard
from taskyard.http.api.schemas import ServiceOut
from taskyard.observability import ServerMetrics
from taskyard.services.base import ServiceStatus

SRC = Path(taskyard.__file__).parent
NAMES = {status.value for status in ServiceStatus}


def spelled_out_lists(tree: ast.AST) -> list[int]:
    """Lines of tuples, lists, sets and `Literal[...]`s holding three or more status names."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        elements: list[ast.expr] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            elements = node.elts
        names = {e.value for e in elements if isinstance(e, ast.Constant) and e.value in NAMES}
        if len(names) >= 3:
            lines.add(node.lineno)
    return sorted(lines)


def test_no_module_but_base_spells_out_the_statuses() -> None:
    copies = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).as_posix() != "services/base.py"
        and (lines := spelled_out_lists(ast.parse(path.read_text(), str(path))))
    }
    assert copies == {}, f"derive these from ServiceStatus instead: {copies}"


def test_the_check_sees_a_copy() -> None:
    assert spelled_out_lists(ast.parse('S = ("STOPPED", "RUNNING", "ERROR")')) == [1]
    assert spelled_out_lists(ast.parse('x: Literal["STOPPED", "STARTING", "PAUSED"]')) == [1]


def test_the_api_model_offers_every_status() -> None:
    schema = ServiceOut.model_json_schema()
    assert schema["$defs"]["ServiceStatus"]["enum"] == [status.value for status in ServiceStatus]


def test_the_status_gauge_has_a_series_per_status() -> None:
    metrics = ServerMetrics()
    metrics.set_services({"worker": "PAUSED"}, {"worker": 2})
    series = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "taskyard_service_status"
        for sample in family.samples
    }
    assert series == {status.value: float(status is ServiceStatus.PAUSED) for status in ServiceStatus}
