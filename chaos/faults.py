"""Faults: a seeded timeline of what to break and when (`plan`), and the `Nemesis` that does it.

The timeline depends only on the fault name, the run length and the seed, so `--seed` replays
it. Process faults go through the `Supervisor` (which logs them); network faults switch the
`FaultProxy` of the processes they hit; leader faults find the holder of the `default`
leadership lease in the backend (its pid is in the holder string `host:pid:xxxxxx`) and time
how long the cluster takes to elect someone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.checker import Fault
from chaos.processes import Proc, Supervisor
from chaos.proxy import FaultProxy
from chaos.stores import Store

__all__ = ("FAULTS", "NETWORK_FAULTS", "Action", "Nemesis", "plan")

#: Every fault the suite knows, with what it does.
FAULTS: dict[str, str] = {
    "none": "no fault (calibration)",
    "worker-kill": "SIGKILL a random worker process every ~2 s; it is restarted 0.5 s later",
    "leader-kill": "SIGKILL the process leading the cluster duties every ~5 s; restarted 1 s later",
    "leader-stop": "SIGSTOP the leader for 2x the leader TTL, then SIGCONT (twice)",
    "producer-kill": "SIGKILL the producer every ~3 s, often mid-enqueue_many; restarted",
    "backend-restart": "crash the backend server (own instance) and restart it 2 s later (twice)",
    "net-cut": "reset every backend connection of every process and refuse new ones for 3 s (twice)",
    "net-slow": "add 250 ms to every chunk between every process and the backend for 40% of the run",
    "net-blackhole": "black-hole one worker's backend traffic for 3x the lease",
    "handlers": "jobs whose handler crashes its process (os._exit), hangs past its timeout, or returns 2 MiB",
    "poison": "a few jobs whose handler kills its process on every run (poison pills, attempts=3)",
    "isolation": "handlers in child processes that block past their timeout, grow past their memory "
    "limit or segfault (once, or on every run), and thread handlers spinning past their timeout",
    "clock-skew": "one worker's clock runs 2 minutes ahead, another's 2 minutes behind, and the second "
    "scheduler replica's 2 minutes ahead (libfaketime)",
    "mixed": "worker kills, leader kills and crashing/hanging handlers at once",
}
NETWORK_FAULTS = frozenset({"net-cut", "net-slow", "net-blackhole"})


@dataclass(frozen=True)
class Action:
    """One step of a timeline: do `kind` at `at` seconds into the run."""

    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def _every(rng: random.Random, kind: str, start: float, end: float, low: float, high: float) -> list[Action]:
    actions, t = [], start
    while t < end:
        actions.append(Action(round(t, 3), kind))
        t += rng.uniform(low, high)
    return actions


def plan(fault: str, seconds: float, seed: int, *, ttl: float, lease: float) -> list[Action]:
    """The timeline of `fault` over a run of `seconds`, from `seed`."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
    rng = random.Random(f"{fault}:{seed}")
    end = seconds - 1
    if fault == "worker-kill":
        return _every(rng, "kill-worker", 2.0, end, 1.5, 2.5)
    if fault == "leader-kill":
        return _every(rng, "kill-leader", 3.0, end - ttl, 4.0, 6.0)
    if fault == "leader-stop":
        return [Action(round(seconds * f, 3), "stop-leader", {"duration": 2 * ttl}) for f in (0.2, 0.55)]
    if fault == "producer-kill":
        return _every(rng, "kill-producer", 1.5, end, 2.0, 4.0)
    if fault == "backend-restart":
        return [Action(round(seconds * f, 3), "restart-backend", {"down": 2.0}) for f in (0.3, 0.65)]
    if fault == "net-cut":
        return [Action(round(seconds * f, 3), "network", {"mode": "cut", "duration": 3.0}) for f in (0.3, 0.65)]
    if fault == "net-slow":
        return [Action(round(seconds * 0.3, 3), "network", {"mode": "delay", "delay": 0.25, "duration": seconds * 0.4})]
    if fault == "net-blackhole":
        return [Action(round(seconds * 0.3, 3), "network", {"mode": "blackhole", "duration": 3 * lease, "one": True})]
    if fault == "mixed":
        return sorted(
            _every(rng, "kill-worker", 2.0, end, 1.5, 3.0) + _every(rng, "kill-leader", 4.0, end - ttl, 5.0, 8.0),
            key=lambda a: a.at,
        )
    return []  # none, handlers, poison, clock-skew: the fault is in the workload or the topology


@dataclass
class Nemesis:
    """Carries out a timeline against one run's processes, proxies and store."""

    supervisor: Supervisor
    store: Store
    proxies: dict[str, FaultProxy]  # by process name
    leader_pid: Callable[..., Awaitable[int | None]]  # (lease=None) -> pid
    restart_producer: Callable[[], None]
    producer: Callable[[], Proc | None]
    ttl: float
    seed: int
    leases: tuple[str, ...] = ("scheduler", "default", "maintenance")
    takeovers: list[dict[str, Any]] = field(default_factory=list)
    injected: int = 0
    disruptions: list[tuple[float, float]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"nemesis:{self.seed}")

    async def run(self, actions: list[Action], t0: float) -> None:
        """Do each action at its time (relative to epoch `t0`)."""
        for action in actions:
            delay = t0 + action.at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await getattr(self, "_" + action.kind.replace("-", "_"))(**action.params)
            self.injected += 1

    async def settle(self) -> None:
        """Wait for delayed restarts and heals still in flight."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _later(self, delay: float, fn: Callable[[], Any]) -> None:
        async def go() -> None:
            await asyncio.sleep(delay)
            result = fn()
            if asyncio.iscoroutine(result):
                await result

        task = asyncio.create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _is_leader(self, proc: Proc) -> bool:
        for lease in self.leases:
            with contextlib.suppress(Exception):
                if await asyncio.wait_for(self.leader_pid(lease), 2) == proc.pid:
                    return True
        return False

    async def _kill_worker(self) -> None:
        workers = [p for p in self.supervisor.live("worker") if not p.stopped]
        if not workers:
            return
        victim = self.rng.choice(workers)
        leading = await self._is_leader(victim)
        self.supervisor.signal(victim, signal.SIGKILL)
        if leading:
            self.disruptions.append((time.time(), time.time() + self.ttl + 2))
        self._later(0.5, lambda: self.supervisor.restart(victim))

    async def _leader(self) -> tuple[Proc | None, str | None]:
        """The process leading the first held lease of `leases`, and that lease."""
        for lease in self.leases:
            with contextlib.suppress(Exception):
                pid = await asyncio.wait_for(self.leader_pid(lease), 2)
                if pid:
                    return self.supervisor.by_pid(pid), lease
        return None, None

    async def _measure_takeover(self, kind: str, old: int, at: float, lease: str | None) -> None:
        deadline = at + 10 * self.ttl + 20
        while time.time() < deadline:
            with contextlib.suppress(Exception):
                pid = await asyncio.wait_for(self.leader_pid(lease), 2)
                if pid is not None and pid != old:
                    seconds = time.time() - at
                    self.takeovers.append({"kind": kind, "seconds": round(seconds, 3)})
                    self.disruptions.append((at, at + seconds + 1))
                    return
            await asyncio.sleep(0.05)
        self.takeovers.append({"kind": kind, "seconds": None})
        self.disruptions.append((at, deadline))

    async def _kill_leader(self) -> None:
        proc, lease = await self._leader()
        if proc is None:
            return
        at = time.time()
        self.supervisor.signal(proc, signal.SIGKILL)
        self._later(1.0, lambda: self.supervisor.restart(proc))
        await self._measure_takeover("SIGKILL", proc.pid, at, lease)

    async def _stop_leader(self, duration: float) -> None:
        proc, lease = await self._leader()
        if proc is None:
            return
        at = time.time()
        self.supervisor.signal(proc, signal.SIGSTOP, until=at + duration)
        self._later(duration, lambda: self.supervisor.signal(proc, signal.SIGCONT))
        await self._measure_takeover("SIGSTOP", proc.pid, at, lease)

    async def _kill_producer(self) -> None:
        proc = self.producer()
        if proc is not None and proc.alive:
            self.supervisor.signal(proc, signal.SIGKILL)
            self._later(0.3, self.restart_producer)

    async def _restart_backend(self, down: float) -> None:
        at = time.time()
        await self.store.restart(down)
        self.supervisor.faults.append(Fault("backend", at, 0, "backend", time.time()))
        self.disruptions.append((at, time.time() + self.ttl + 2))

    async def _network(self, mode: str, duration: float, delay: float = 0.0, one: bool = False) -> None:
        names = list(self.proxies)
        if one:
            workers = [p.spec.name for p in self.supervisor.live("worker") if p.spec.name in self.proxies]
            names = [self.rng.choice(workers)] if workers else []
        at = time.time()
        for name in names:
            self.proxies[name].set_mode(mode, delay)
        for name in names:
            for proc in self.supervisor.live():
                if proc.spec.name == name and mode != "delay":
                    self.supervisor.faults.append(Fault("partition", at, proc.pid, name, at + duration, mode))
        if not one:
            self.disruptions.append((at, at + duration + self.ttl + 2))

        def heal() -> None:
            for name in names:
                self.proxies[name].set_mode("pass")

        self._later(duration, heal)
