"""A user service's `[services.<id>]` options as the task server applies them: any spelling,
its own `extra_options`, the manager's `critical`, and one clear error for an unknown one."""

from __future__ import annotations

from typing import Any

import pytest

from taskyard import PeriodicService, PeriodicServiceConfig, Taskyard
from taskyard.config import load_settings
from taskyard.errors import ConfigError
from taskyard.server import TaskServer


def make_app() -> Taskyard:
    app = Taskyard("memory://")

    @app.service("csv-import")
    class Importer(PeriodicService):
        extra_options = ("inbox",)

        def __init__(self) -> None:
            super().__init__(config=PeriodicServiceConfig(interval=60, batch_size=10))

        async def execute(self) -> None:
            """Nothing to do."""

    return app


def build(services: dict[str, Any], **settings: Any) -> TaskServer:
    server = TaskServer(
        make_app(), load_settings(backend="memory://", http={"enabled": False}, services=services, **settings),
        only="services",
    )
    server.build()
    return server


def test_options_in_any_spelling_and_the_services_own_reach_it() -> None:
    server = build({"CSV_IMPORT": {"BatchSize": "20", "MAXCONCURRENTIMPORTS": "3", "INBOX": "in"}})
    entry = server.manager.get("csv-import")
    service = entry.service
    assert isinstance(service, PeriodicService)
    assert (service.config.batch_size, service.config.max_concurrency, service.options) == (20, 3, {"inbox": "in"})
    assert entry.critical is False


@pytest.mark.parametrize("value", [True, "true", "1"])
def test_the_critical_option_makes_a_service_critical(value: object) -> None:
    assert build({"csv-import": {"critical": value}}).manager.get("csv-import").critical is True


def test_an_unknown_option_names_the_service_and_the_near_miss() -> None:
    with pytest.raises(ConfigError) as info:
        build({"csv-import": {"inboxx": "x"}})
    message = str(info.value)
    assert message.startswith(
        "unknown setting 'services.csv-import.inboxx': service 'csv-import' has no option 'inboxx'; "
        "did you mean 'inbox'?"
    )
    assert "max_consecutive_failures, inbox;" in message


def test_manager_auto_restart_reaches_the_manager() -> None:
    assert build({}).manager.auto_restart is True
    assert build({}, manager={"auto_restart": False}).manager.auto_restart is False
