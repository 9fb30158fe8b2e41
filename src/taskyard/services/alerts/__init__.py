"""Alerts: the leader-only `Alerter` and the notifiers it hands fire/resolve events to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.clock import Clock
from taskyard.config import AlertNotifiersSettings, AlertsSettings
from taskyard.core.alert import AlertRule
from taskyard.errors import ConfigError
from taskyard.services.alerts.alerter import Alerter
from taskyard.services.alerts.mail import EmailNotifier
from taskyard.services.alerts.notifier import LogNotifier, Notifier
from taskyard.services.alerts.webhook import WebhookError, WebhookNotifier
from taskyard.services.base import LeaseHolder
from taskyard.services.periodic import PeriodicServiceConfig

__all__ = (
    "Alerter",
    "EmailNotifier",
    "LogNotifier",
    "Notifier",
    "WebhookError",
    "WebhookNotifier",
    "build_alerter",
    "build_notifiers",
)


def build_notifiers(settings: AlertNotifiersSettings) -> list[Notifier]:
    """The log notifier, and the webhook and e-mail ones when configured."""
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.webhook is not None:
        w = settings.webhook
        notifiers.append(WebhookNotifier(
            w.url, timeout=w.timeout, retries=w.retries, retry_delay=w.retry_delay,
            headers={k: v.get_secret_value() for k, v in w.headers.items()},
        ))
    if settings.email is not None:
        e = settings.email
        notifiers.append(EmailNotifier(
            host=e.host, port=e.port, sender=e.sender, to=e.to, starttls=e.starttls,
            username=e.username, password=e.password.get_secret_value() if e.password else None,
            timeout=e.timeout, subject_prefix=e.subject_prefix,
        ))
    return notifiers


def build_alerter(
    backend: Backend,
    settings: AlertsSettings,
    *,
    code_rules: Sequence[AlertRule] = (),
    leader: LeaseHolder | None = None,
    manager: Any | None = None,
    clock: Clock | None = None,
) -> Alerter | None:
    """The leader-only alerter for the rules declared in code (`app.alert`) and in
    `[alerts]`, or None when alerts are off (`enabled = false`, or no rule and `enabled`
    unset). A rule name declared in both places is a `ConfigError`."""
    rules = [*code_rules]
    declared = {rule.name for rule in rules}
    for rule in settings.alert_rules():
        if rule.name in declared:
            raise ConfigError(
                f"invalid setting 'alerts.rules': rule {rule.name!r} is also declared in code (app.alert)"
            )
        rules.append(rule)
    enabled = settings.enabled if settings.enabled is not None else bool(rules)
    if not enabled:
        return None
    return Alerter(
        backend, rules, build_notifiers(settings.notifiers), manager=manager, leader=leader, clock=clock,
        config=PeriodicServiceConfig(interval=settings.interval, leader_only=True, max_consecutive_failures=0),
    )
