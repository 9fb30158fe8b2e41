"""Django tasks as taskyard tasks: one taskyard task per Django task, named by its module path,
whose handler imports the Django task and calls it (so any worker process that can import the
project can run it).

A worker knows the tasks it may claim before it claims: `discover` imports every installed
app's `tasks` module (and the backend's `TASK_MODULES`) and registers each Django task of the
backend found there. The enqueueing side registers each task it enqueues (payload checks).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from taskyard.app import Taskyard
from taskyard.context import JobContext
from taskyard.contrib.django.compat import Task, TaskContext
from taskyard.contrib.django.results import task_result

__all__ = ("discover", "load_task", "register")


def load_task(name: str) -> Any:
    """The Django `Task` at module path `name` (`ImportError` when there is none)."""
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        raise ImportError(f"{name!r} is not a module path of a Django task")
    found = getattr(importlib.import_module(module_name), attr, None)
    if not isinstance(found, Task):
        raise ImportError(f"{name!r} is not a Django task (decorate the function with @task)")
    return found


def _call_args(task: Any, job_ctx: JobContext, payload: dict[str, Any], alias: str) -> tuple[list[Any], dict[str, Any]]:
    args = list(payload.get("args", []))
    if task.takes_context:
        args.insert(0, TaskContext(task_result=task_result(task, job_ctx.job, backend_alias=alias)))
    return args, dict(payload.get("kwargs", {}))


def register(app: Taskyard, task: Any, *, alias: str) -> str:
    """Register Django `task` on `app` as the taskyard task named by its module path (once)
    and return that name. Its queue and priority are the task's defaults; each call may
    still choose others (`task.using(...)`)."""
    name: str = task.module_path
    if name in app.tasks:
        return name

    if inspect.iscoroutinefunction(task.func):

        async def run_async(payload: dict, ctx: JobContext) -> Any:
            django_task = load_task(name)
            args, kwargs = _call_args(django_task, ctx, payload, alias)
            return await django_task.acall(*args, **kwargs)

        app.task(name, queue=task.queue_name, priority=task.priority)(run_async)
    else:

        def run(payload: dict, ctx: JobContext) -> Any:
            from django.db import close_old_connections

            django_task = load_task(name)
            args, kwargs = _call_args(django_task, ctx, payload, alias)
            # Handler threads are pooled: like a request, each job starts and ends with
            # Django's connections in a usable state (none left broken or past CONN_MAX_AGE).
            close_old_connections()
            try:
                return django_task.call(*args, **kwargs)
            finally:
                close_old_connections()

        app.task(name, queue=task.queue_name, priority=task.priority)(run)
    return name


def discover(app: Taskyard, *, alias: str, modules: Iterable[str] = ()) -> list[str]:
    """Import every installed app's `tasks` module and `modules`, register every Django task
    of backend `alias` found in them, and return the taskyard task names, sorted."""
    from django.apps import apps

    names = [f"{config.name}.tasks" for config in apps.get_app_configs()]
    found: set[str] = set()
    for module_name in [*names, *modules]:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if module_name in names and exc.name == module_name:
                continue  # an app without a tasks module
            raise
        for value in vars(module).values():
            if isinstance(value, Task) and value.backend == alias:
                found.add(register(app, value, alias=alias))
    return sorted(found)
