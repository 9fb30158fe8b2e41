"""Where settings come from: the environment and taskyard.toml, with `[services.*]` ids and
option names compared loosely (`service_key`, `option_key`), and the backend URL a bare app
falls back to (`default_backend_url`)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

from taskyard.errors import ConfigError

__all__ = (
    "DEFAULT_BACKEND_URL",
    "DEFAULT_CONFIG_FILE",
    "ServiceOptionsSource",
    "TomlSource",
    "default_backend_url",
    "option_key",
    "service_key",
)

DEFAULT_BACKEND_URL = "sqlite:///taskyard.db"
DEFAULT_CONFIG_FILE = "taskyard.toml"


def default_backend_url() -> str:
    """The backend URL when none is given: `TASKYARD_BACKEND`, else `backend` in
    ./taskyard.toml, else `sqlite:///taskyard.db`."""
    url = os.environ.get("TASKYARD_BACKEND")
    if url:
        return url
    path = Path(DEFAULT_CONFIG_FILE)
    if path.is_file():
        try:
            value = tomllib.loads(path.read_text()).get("backend")
        except (OSError, tomllib.TOMLDecodeError):
            value = None  # reported properly by load_settings() when the server starts
        if isinstance(value, str) and value:
            return value
    return DEFAULT_BACKEND_URL


def option_key(name: str) -> str:
    """How service option names compare: case and `_`/`-` do not count, so `batchSize`,
    `batch_size`, `BATCHSIZE` (an environment variable) and `batchsize` are one option."""
    return name.lower().replace("_", "").replace("-", "")


def service_key(service_id: str) -> str:
    """How service ids in settings compare: `CSV_IMPORT` (an environment variable cannot
    spell a dash) is `csv-import`."""
    return service_id.lower().replace("_", "-")


class ServiceOptionsSource(PydanticBaseSettingsSource):
    """A settings source whose `[services.*]` tables compare ids and option names as
    `service_key` / `option_key` do: `TASKYARD_SERVICES__CSV_IMPORT__BATCHSIZE=20` overrides
    `batchSize = 10` under `[services.csv-import]` instead of sitting beside it."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def _set_current_state(self, state: dict[str, Any]) -> None:
        super()._set_current_state(state)
        self.inner._set_current_state(state)

    def _set_settings_sources_data(self, states: dict[str, dict[str, Any]]) -> None:
        super()._set_settings_sources_data(states)
        self.inner._set_settings_sources_data(states)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return _with_service_keys(self.inner(), self.current_state)


class TomlSource(TomlConfigSettingsSource):
    """taskyard.toml, its `[services.*]` tables compared as `ServiceOptionsSource` does."""

    def __call__(self) -> dict[str, Any]:
        return _with_service_keys(super().__call__(), self.current_state)


def _with_service_keys(data: dict[str, Any], higher: dict[str, Any]) -> dict[str, Any]:
    services = data.get("services")
    if not isinstance(services, dict):
        return data
    above = higher.get("services")
    return {**data, "services": _normalise_services(services, above if isinstance(above, dict) else {})}


def _normalise_services(services: dict[str, Any], higher: dict[str, Any]) -> dict[str, Any]:
    """`services` with ids as `service_key` and each option spelled as a source of higher
    priority (already merged into `higher`) spelled it, so the higher one wins the merge.
    One source spelling an option twice is an error: which would win is not obvious."""
    merged: dict[str, Any] = {}
    for raw_id, options in services.items():
        sid = service_key(str(raw_id))
        if not isinstance(options, dict):
            merged[sid] = options  # validation names what is wrong with it
            continue
        above = higher.get(sid)
        spelled = {option_key(k): k for k in (above if isinstance(above, dict) else {})}
        table = merged.setdefault(sid, {})
        if not isinstance(table, dict):
            continue
        seen = {option_key(k): k for k in table}
        for name, value in options.items():
            key = option_key(str(name))
            if key in seen:
                raise ConfigError(
                    f"setting 'services.{sid}' has option {seen[key]!r} twice (also as {name!r}); "
                    "option names ignore case, '_' and '-': keep one"
                )
            seen[key] = str(name)
            table[spelled.get(key, str(name))] = value
    return merged
