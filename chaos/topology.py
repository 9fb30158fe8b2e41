"""Topologies: which `taskyard` processes a run starts, with which roles, in which order.

Each is a list of `Step`s (a process spec and the pause before starting it), built from the
deployment shapes the docs describe: one `run`; two full replicas; the README's scale-out;
deploy/'s one role per process; three `taskyard scheduler` replicas beside a `taskyard worker`
started in different orders; and a rolling deploy from app v1 to v2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from chaos.processes import ProcSpec

__all__ = ("TOPOLOGIES", "Step", "build", "v2_of")

ALL = frozenset({"worker", "scheduler", "maintenance", "api", "services"})
WORKER_ARGS = ("worker", "--concurrency", "8")


@dataclass(frozen=True)
class Step:
    """Start `spec` after waiting `pause` seconds."""

    spec: ProcSpec
    pause: float = 0.3


def _run(name: str, only: str | None = None) -> ProcSpec:
    args = ("run", "--only", only) if only else ("run",)
    roles = frozenset(only.split(",")) if only else ALL
    return ProcSpec(name, args, roles, http=True)


def _worker(name: str) -> ProcSpec:
    # `taskyard worker` runs the worker and maintenance roles, without HTTP.
    return ProcSpec(name, WORKER_ARGS, frozenset({"worker", "maintenance"}))


def _scheduler(name: str) -> ProcSpec:
    return ProcSpec(name, ("scheduler",), frozenset({"scheduler"}))


def _schedulers_and_workers(order: str) -> list[Step]:
    s = [_scheduler(f"scheduler-{i}") for i in (1, 2, 3)]
    w = [_worker(f"worker-{i}") for i in (1, 2)]
    specs = {
        "first": [*w, *s],
        "last": [*s, *w],
        "between": [s[0], w[0], s[1], w[1], s[2]],
        "one-worker": [*s, w[0]],
    }[order]
    return [Step(spec, 1.0) for spec in specs]


TOPOLOGIES: dict[str, Callable[[], list[Step]]] = {
    "single": lambda: [Step(_run("run-1"))],
    "replicas": lambda: [Step(_run("run-1")), Step(_run("run-2"))],
    "scale-out": lambda: [
        Step(_run("control", "api,scheduler,maintenance")),
        Step(_worker("worker-1")), Step(_worker("worker-2")),
    ],
    "roles": lambda: [
        Step(_run("api", "api")),
        *(Step(_run(f"worker-{i}", "worker")) for i in (1, 2, 3)),
        *(Step(_run(f"scheduler-{i}", "scheduler,maintenance,services")) for i in (1, 2)),
    ],
    "schedulers": lambda: _schedulers_and_workers("one-worker"),
    "workers-first": lambda: _schedulers_and_workers("first"),
    "workers-last": lambda: _schedulers_and_workers("last"),
    "workers-between": lambda: _schedulers_and_workers("between"),
    # Starts as the scale-out on v1; the runner replaces each process by its v2 twin in turn.
    "rolling": lambda: [
        Step(_run("control", "api,scheduler,maintenance")),
        Step(_worker("worker-1")), Step(_worker("worker-2")),
    ],
}


def build(name: str) -> list[Step]:
    """The steps of topology `name`."""
    try:
        return TOPOLOGIES[name]()
    except KeyError:
        raise ValueError(f"unknown topology {name!r}; choose from {', '.join(TOPOLOGIES)}") from None


def v2_of(spec: ProcSpec) -> ProcSpec:
    """The same process running version 2 of the chaos app."""
    return replace(spec, app="chaos.app:app_v2", name=spec.name + "-v2")
