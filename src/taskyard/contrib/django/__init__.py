"""taskyard for Django: a `django.tasks` backend (`TaskyardBackend`), the `taskyard_worker`
management command and transactional enqueue on PostgreSQL. See docs/django.md.

Serves Django >= 6 (`django.tasks`) and the `django-tasks` backport on Django 4.2-5.2.
Add "taskyard.contrib.django" to INSTALLED_APPS for the management command.
"""

from __future__ import annotations

from typing import Any

__all__ = ("TaskyardBackend",)


def __getattr__(name: str) -> Any:
    # Lazy: Django imports this package (INSTALLED_APPS) before its settings are usable.
    if name == "TaskyardBackend":
        from taskyard.contrib.django.backend import TaskyardBackend

        return TaskyardBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
