"""Django's task framework, from wherever it lives: `django.tasks` (Django >= 6) or the
`django-tasks` backport package (`django_tasks`, Django 4.2-5.2).

Both have the same classes; only two exception names differ (`InvalidTask` in Django,
`InvalidTaskError` in the backport). Everything else imports them from here.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = (
    "FRAMEWORK",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "signals",
    "task_backends",
)


def _framework() -> tuple[str, Any, Any, Any]:
    """(package name, its package, its `base` module, its `backends.base` module)."""
    for name in ("django.tasks", "django_tasks"):
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        return (
            name,
            package,
            importlib.import_module(f"{name}.base"),
            importlib.import_module(f"{name}.backends.base"),
        )
    raise ImportError(
        "taskyard.contrib.django needs Django's task framework: Django >= 6 (django.tasks) or, "
        "on Django 4.2-5.2, the django-tasks backport (pip install 'taskyard[django]')"
    )


FRAMEWORK, _package, _base, _backends_base = _framework()
_exceptions = importlib.import_module(f"{FRAMEWORK}.exceptions")
# Importing the checks module registers the framework's system check, which calls each
# backend's `check()` (the backport registers it only when listed in INSTALLED_APPS).
importlib.import_module(f"{FRAMEWORK}.checks")
#: The framework's signals module (`task_enqueued`, `task_started`, `task_finished`).
signals: Any = importlib.import_module(f"{FRAMEWORK}.signals")

#: The base class of task backends.
BaseTaskBackend: Any = _backends_base.BaseTaskBackend
Task: Any = _base.Task
TaskContext: Any = _base.TaskContext
TaskError: Any = _base.TaskError
TaskResult: Any = _base.TaskResult
TaskResultStatus: Any = _base.TaskResultStatus
#: The configured backends by alias (`TASKS` setting).
task_backends: Any = _package.task_backends
#: Raised for a task the backend cannot run (`InvalidTask` / `InvalidTaskError`).
InvalidTask: type[Exception] = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError
TaskResultDoesNotExist: type[Exception] = _exceptions.TaskResultDoesNotExist
