"""The Django app of taskyard's integration (for its management command)."""

from __future__ import annotations

from django.apps import AppConfig


class TaskyardConfig(AppConfig):
    """`taskyard.contrib.django` in INSTALLED_APPS: adds `manage.py taskyard_worker`."""

    name = "taskyard.contrib.django"
    label = "taskyard"
    verbose_name = "taskyard"
    default = True

    def ready(self) -> None:
        """Register the task framework's system checks (which call `TaskyardBackend.check`)."""
        from taskyard.contrib.django import compat  # noqa: F401
