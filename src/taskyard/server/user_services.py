"""User services in a task server: which run in this process, built from their
registration (`@app.service`) and their `[services.<id>]` options."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from taskyard.app import ServiceSpec, Taskyard
from taskyard.config import option_key, service_key
from taskyard.errors import ConfigError
from taskyard.services.base import Service, UnknownOptionError

__all__ = ("build_user_service", "user_services")


def user_services(
    app: Taskyard, settings: Mapping[str, dict[str, Any]], *, only_service: str | None, with_all: bool
) -> list[tuple[ServiceSpec, Service]]:
    """The user services this process runs, built: `only_service` alone, else every
    registered one when `with_all` (the services role), else none. `settings` are the
    `[services]` tables; one naming no registered service is a `ConfigError` with a hint."""
    specs = app.service_specs
    by_key = {service_key(service_id): service_id for service_id in specs}
    configured: dict[str, dict[str, Any]] = {}
    for key, options in settings.items():
        # Environment variables cannot spell `csv-import`; CSV_IMPORT means the same.
        service_id = by_key.get(service_key(key))
        if service_id is None:
            close = difflib.get_close_matches(key, list(specs), n=1)
            hint = f"; did you mean 'services.{close[0]}'?" if close else ""
            raise ConfigError(f"unknown setting 'services.{key}': no such service{hint}")
        configured[service_id] = {**configured.get(service_id, {}), **options}
    critical = {sid: _take_critical(sid, opts) for sid, opts in configured.items()}
    if only_service is not None:
        if only_service not in specs:
            known = ", ".join(specs) or "none registered"
            raise ConfigError(f"--service: no service {only_service!r} (known: {known})")
        chosen = [specs[only_service]]
    elif with_all:
        chosen = list(specs.values())
    else:
        chosen = []
    built = []
    for spec in chosen:
        if (is_critical := critical.get(spec.id)) is not None:
            spec = replace(spec, critical=is_critical)
        built.append((spec, build_user_service(spec, app, configured.get(spec.id, {}))))
    return built


def build_user_service(spec: ServiceSpec, app: Taskyard, options: dict[str, Any]) -> Service:
    """Build a registered user service: a `Service` subclass (given `app` if its constructor
    takes it) or a factory `f(app)`; then apply its `[services.<id>]` options."""
    factory = spec.factory
    try:
        if isinstance(factory, type):
            params = inspect.signature(factory).parameters
            service = factory(app) if "app" in params else factory()
        else:
            takes_app = any(
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                for p in inspect.signature(factory).parameters.values()
            )
            service = factory(app) if takes_app else factory()
    except ValueError as exc:
        raise ConfigError(f"services.{spec.id}: {exc}") from None
    if not isinstance(service, Service):
        raise ConfigError(
            f"service {spec.id!r}: its factory returned {type(service).__name__}, not a Service"
        )
    if options:
        try:
            service.apply_options(options)
        except UnknownOptionError as exc:
            hint = f"; did you mean {exc.suggestion!r}?" if exc.suggestion else ""
            raise ConfigError(
                f"unknown setting 'services.{spec.id}.{exc.option}': service {spec.id!r} has no "
                f"option {exc.option!r}{hint} (its options: {', '.join(exc.known) or 'none'}; a "
                "service reads more of them by naming them in its `extra_options`)"
            ) from None
        except ValueError as exc:
            key, sep, message = str(exc).partition(": ")
            name = f"services.{spec.id}.{key}" if sep else f"services.{spec.id}"
            raise ConfigError(f"invalid setting {name!r}: {message if sep else exc}") from None
    service.id = spec.id
    service.name = spec.name
    return service


def _take_critical(service_id: str, options: dict[str, Any]) -> bool | None:
    """Remove the manager's own `critical` option from a service's options and return it
    (None when not set): it overrides `@app.service(critical=...)`."""
    for key in [k for k in options if option_key(k) == "critical"]:
        value = options.pop(key)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            value = value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"invalid setting 'services.{service_id}.{key}': must be true or false (got {value!r})")
        return value
    return None
