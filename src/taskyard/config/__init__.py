"""Settings: defaults < taskyard.toml < TASKYARD_* environment < CLI flags.

The only module that reads the environment and taskyard.toml. `load_settings()` validates
everything once and turns any problem into a one-line `ConfigError` naming the setting.
The sections are in `config.sections`, the sources (environment, taskyard.toml) in
`config.sources`; everything is importable from here.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from taskyard.backends import SCHEMES
from taskyard.config.sections import (
    AlertNotifiersSettings,
    AlertsSettings,
    ApiKey,
    EmailSettings,
    HttpSettings,
    LoggingSettings,
    MaintenanceSettings,
    ManagerSettings,
    RetentionSettings,
    SchedulerSettings,
    WebhookSettings,
    WorkerSettings,
)
from taskyard.config.sources import (
    DEFAULT_BACKEND_URL,
    DEFAULT_CONFIG_FILE,
    ServiceOptionsSource,
    TomlSource,
    default_backend_url,
    option_key,
    service_key,
)
from taskyard.errors import ConfigError

__all__ = (
    "DEFAULT_BACKEND_URL",
    "DEFAULT_CONFIG_FILE",
    "AlertNotifiersSettings",
    "AlertsSettings",
    "ApiKey",
    "EmailSettings",
    "HttpSettings",
    "LoggingSettings",
    "MaintenanceSettings",
    "ManagerSettings",
    "RetentionSettings",
    "SchedulerSettings",
    "Settings",
    "WebhookSettings",
    "WorkerSettings",
    "default_backend_url",
    "load_settings",
    "option_key",
    "service_key",
)

#: Backend URL schemes: the URL table of `taskyard.backends` (one list).
_BACKEND_SCHEMES = tuple(SCHEMES)


class Settings(BaseSettings):
    """Everything a taskyard process is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="TASKYARD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        toml_file=DEFAULT_CONFIG_FILE,
    )

    backend: str = Field(default=DEFAULT_BACKEND_URL, description="Backend URL.")
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    manager: ManagerSettings = Field(default_factory=ManagerSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    #: Options of user services by service id (e.g. `[services.csv-import] interval = ...`).
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _backend_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme.lower() if "://" in value else ""
        if scheme not in _BACKEND_SCHEMES:
            raise ValueError(
                f"{redact_url(value)!r} is not a backend URL; expected memory://, "
                "sqlite:///PATH, postgresql://... or redis://..."
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: CLI flags (init) > environment > taskyard.toml > defaults.
        return (
            ServiceOptionsSource(settings_cls, init_settings),
            ServiceOptionsSource(settings_cls, env_settings),
            TomlSource(settings_cls),
        )



def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Validated settings; `overrides` (CLI flags, nested as dicts) win over everything.

    `config_file` defaults to ./taskyard.toml (optional); a given file must exist. Any
    problem raises `ConfigError` with a one-line message naming the setting.
    """
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file {os.fspath(config_file)!r} does not exist")
    path = os.fspath(config_file) if config_file is not None else DEFAULT_CONFIG_FILE

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        return FileSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None
    except SettingsError as exc:
        # A TASKYARD_* variable holding a list or table that is not JSON; the value may be a
        # secret (API keys), so only the variable's section is named.
        field = str(exc).split('"')[1] if '"' in str(exc) else "settings"
        raise ConfigError(
            f"invalid setting {field!r}: a TASKYARD_{field.upper()}__* environment variable "
            "holds a list or table that is not valid JSON"
        ) from None


def describe_error(exc: ValidationError) -> str:
    """One line naming the first bad setting (and the near miss for an unknown key)."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = [str(part) for part in err.get("loc", ()) if part != "[key]"]
    name = ".".join(loc) or "settings"
    env = "TASKYARD_" + "__".join(part.upper().replace("-", "_") for part in loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if err.get("type") == "extra_forbidden":
        hint = ""
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6) if loc else []
        if close:
            hint = f"; did you mean {'.'.join([*loc[:-1], close[0]])!r}?"
        return f"unknown setting {name!r}{hint}{more}"
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    value = err.get("input")
    secret = any(word in name for word in ("secret", "key", "backend", "password", "headers"))
    shown = "" if isinstance(value, dict | list) or secret else f" (got {value!r})"
    return f"invalid setting {name!r} [{env}]: {message}{shown}{more}"


def _known_keys(path: list[str]) -> list[str]:
    """Field names of the section at `path` (empty when it is not a fixed section)."""
    model: Any = Settings
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(getattr(model, "model_fields", {}))
