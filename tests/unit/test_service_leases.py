"""Leader-only user services hold a lease of their own: one replica runs them, wherever they
run, independent of which process leads the scheduler and maintenance."""

from __future__ import annotations

import asyncio

from taskyard import PeriodicService, PeriodicServiceConfig, Taskyard
from taskyard.backends.memory import MemoryBackend
from taskyard.config import load_settings
from taskyard.server import TaskServer
from tests.support.waiting import wait_until


def make_app(backend: MemoryBackend, ran: asyncio.Event, ticks: list[str], label: str) -> Taskyard:
    app = Taskyard(backend)

    @app.service("ticker")
    class Ticker(PeriodicService):
        def __init__(self, app: Taskyard) -> None:
            super().__init__(
                "ticker",
                config=PeriodicServiceConfig(interval=0.05, leader_only=True, run_on_start=True),
            )

        async def execute(self) -> None:
            ticks.append(label)
            ran.set()

    return app


async def test_leader_only_service_runs_beside_another_scheduler_leader() -> None:
    backend = MemoryBackend()
    ran = asyncio.Event()
    ticks: list[str] = []
    settings = load_settings(backend="memory://", http={"enabled": False})
    scheduler = TaskServer(make_app(backend, asyncio.Event(), [], "scheduler"), settings, only="scheduler")
    lone = TaskServer(make_app(backend, ran, ticks, "lone"), settings, service="ticker")
    await scheduler.start()
    try:
        leader = scheduler.leaders["scheduler"]
        await wait_until(lambda: leader.is_leader, timeout=5, interval=0.01, what="the scheduler's lease")
        await lone.start()
        try:
            await asyncio.wait_for(ran.wait(), 5)
            elector = lone.manager.get("leader:ticker").service
            assert elector.is_leader and elector.lease_name == "service:ticker"
        finally:
            await lone.stop()
    finally:
        await scheduler.stop()
    assert set(ticks) == {"lone"}


async def test_two_replicas_of_a_leader_only_service_tick_on_one() -> None:
    backend = MemoryBackend()
    ticks: list[str] = []
    settings = load_settings(backend="memory://", http={"enabled": False})
    a_ran, b_ran = asyncio.Event(), asyncio.Event()
    a = TaskServer(make_app(backend, a_ran, ticks, "a"), settings, service="ticker")
    b = TaskServer(make_app(backend, b_ran, ticks, "b"), settings, service="ticker")
    await a.start()
    await b.start()
    try:
        await asyncio.wait_for(a_ran.wait(), 5)
        await wait_until(lambda: len(ticks) >= 5, timeout=25, interval=0.01, what="five ticks")
    finally:
        await b.stop()
        await a.stop()
    assert set(ticks) == {"a"}

