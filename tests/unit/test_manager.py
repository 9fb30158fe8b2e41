"""ServiceManager: ordering, restarts of critical services, pause/resume, run now, health."""

from __future__ import annotations

import asyncio

import pytest

from taskyard.errors import ConfigError, InvalidTransitionError, NotFoundError
from taskyard.services.base import Service, ServiceEvent, ServiceStatus
from taskyard.services.manager import RestartPolicy, ServiceManager
from taskyard.services.periodic import PeriodicService, PeriodicServiceConfig
from taskyard.services.testsignals import TestSignals
from tests.support.waiting import wait_until as until

FAST = RestartPolicy(initial_delay=0.01, max_delay=0.02, max_restarts=3)


class Recorder(Service):
    """Records starts and stops into a shared journal."""

    def __init__(self, journal: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.append(f"start:{self.id}")

    async def on_stop(self) -> None:
        self.journal.append(f"stop:{self.id}")


class Crashing(Service):
    """The main loop raises for the first `crashes` starts, then runs normally."""

    def __init__(self, crashes: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.crashes = crashes
        self.starts = 0

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= self.crashes:
            raise RuntimeError(f"boom {self.starts}")
        await self.stopping.wait()


class Ticker(PeriodicService):
    """Counts its runs; fails when `fail` is set."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ran = asyncio.Event()
        self.fail = False

    async def execute(self) -> None:
        self.ran.set()
        if self.fail:
            raise ValueError("bad tick")


async def test_start_in_dependency_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    manager = ServiceManager()
    manager.register("c", Recorder(journal), depends_on=("b",))
    manager.register("a", Recorder(journal))
    manager.register("b", Recorder(journal), depends_on=("a",))
    manager.register("manual", Recorder(journal), auto_start=False)
    await manager.start_all()
    assert journal == ["start:a", "start:b", "start:c"]
    assert [e.id for e in manager.services()] == ["a", "b", "c", "manual"]
    assert manager.get("manual").service.status is ServiceStatus.STOPPED
    await manager.stop_all()
    # "manual" never started, so it has nothing to clean up.
    assert journal[3:] == ["stop:c", "stop:b", "stop:a"]
    assert all(e.service.status is ServiceStatus.STOPPED for e in manager.services())


async def test_unknown_dependency_and_cycles_are_config_errors() -> None:
    manager = ServiceManager()
    manager.register("a", Service(), depends_on=("ghost",))
    with pytest.raises(ConfigError, match="ghost"):
        await manager.start_all()
    cyclic = ServiceManager()
    cyclic.register("x", Service(), depends_on=("y",))
    cyclic.register("y", Service(), depends_on=("x",))
    with pytest.raises(ConfigError, match="cycle"):
        await cyclic.start_all()


async def test_get_unknown_raises_not_found() -> None:
    with pytest.raises(NotFoundError):
        ServiceManager().get("nope")


async def test_critical_service_that_crashes_is_restarted_and_recovers() -> None:
    manager = ServiceManager(restart=FAST)
    service = Crashing(crashes=2)
    events: list[ServiceEvent] = []
    manager.subscribe(events.append)
    manager.register("importer", service, critical=True)
    await manager.start_all()
    entry = manager.get("importer")
    await until(lambda: service.starts == 3 and service.status is ServiceStatus.RUNNING)
    assert entry.restarts == 2
    assert [e.kind for e in events].count("restart") == 2
    assert manager.health()["healthy"] is True
    await manager.stop_all()
    assert service.status is ServiceStatus.STOPPED


async def test_critical_service_gives_up_after_the_cap() -> None:
    manager = ServiceManager(restart=FAST)
    service = Crashing(crashes=100)
    manager.register("importer", service, critical=True)
    await manager.start_all()
    entry = manager.get("importer")
    await until(lambda: entry.gave_up)
    assert entry.restarts == FAST.max_restarts
    assert service.starts == FAST.max_restarts + 1
    assert service.status is ServiceStatus.ERROR
    health = manager.health()
    assert health["healthy"] is False and health["status"] == "unhealthy"
    assert health["services"]["importer"]["gave_up"] is True
    assert manager.critical_down() == ["importer"]
    # An explicit start grants a fresh budget.
    service.crashes = 0
    await manager.start("importer")
    assert service.status is ServiceStatus.RUNNING and not entry.gave_up
    await manager.stop_all()


async def test_critical_service_whose_start_fails_is_restarted() -> None:
    class FlakyStart(Service):
        attempts = 0

        async def on_start(self) -> None:
            FlakyStart.attempts += 1
            if FlakyStart.attempts == 1:
                raise ConnectionError("not yet")

    manager = ServiceManager(restart=FAST)
    service = FlakyStart()
    manager.register("flaky", service, critical=True)
    await manager.start_all()
    await until(lambda: service.status is ServiceStatus.RUNNING)
    assert manager.get("flaky").restarts == 1
    await manager.stop_all()


async def test_non_critical_service_stays_in_error() -> None:
    manager = ServiceManager(restart=FAST)
    manager.signals = signals = TestSignals()
    service = Crashing(crashes=1)
    manager.register("optional", service)
    manager.register("fine", Service())
    await manager.start_all()
    await until(lambda: signals.count("restart_skipped", "optional"), what="the decision not to restart")
    assert service.status is ServiceStatus.ERROR
    assert signals.count("restart_scheduled") == 0
    assert service.starts == 1 and manager.get("optional").restarts == 0
    health = manager.health()
    assert health["status"] == "degraded" and health["healthy"] is False
    assert health["totals"]["error"] == 1 and health["totals"]["running"] == 1
    assert health["services"]["optional"]["error"] == "RuntimeError: boom 1"
    assert manager.critical_down() == [] and manager.in_error() == ["optional"]
    await manager.stop_all()


async def test_dependents_of_a_failed_service_are_not_started() -> None:
    class NoStart(Service):
        async def on_start(self) -> None:
            raise RuntimeError("cannot")

    manager = ServiceManager(restart=FAST)
    manager.register("base", NoStart())
    manager.register("top", Service(), depends_on=("base",))
    await manager.start_all()
    assert manager.get("top").service.status is ServiceStatus.STOPPED
    await manager.stop_all()


async def test_pause_resume_and_run_now_of_a_periodic_service() -> None:
    manager = ServiceManager()
    ticker = Ticker(config=PeriodicServiceConfig(interval=3600))
    manager.register("ticker", ticker, name="Ticker")
    manager.register("plain", Service())
    await manager.start_all()
    manager.pause("ticker")
    assert manager.health()["services"]["ticker"]["status"] == "PAUSED"
    assert await manager.run_now("ticker") is True  # run now works while paused
    ticker.fail = True
    assert await manager.run_now("ticker") is False
    metrics = manager.health()["services"]["ticker"]["metrics"]
    assert (metrics["runs"], metrics["successes"], metrics["failures"]) == (2, 1, 1)
    assert metrics["success_rate"] == 0.5
    manager.resume("ticker")
    assert ticker.status is ServiceStatus.RUNNING
    with pytest.raises(InvalidTransitionError):
        await manager.run_now("plain")
    manager.resume("plain")  # already running: a no-op
    await manager.stop("plain")
    with pytest.raises(InvalidTransitionError):
        manager.pause("plain")
    await manager.stop_all()


async def test_a_service_that_cannot_pause_refuses_and_keeps_running() -> None:
    class Steady(Service):
        pausable = False

        async def run(self) -> None:
            await self.stopping.wait()

    manager = ServiceManager()
    manager.register("steady", Steady("steady"))
    await manager.start_all()
    with pytest.raises(InvalidTransitionError, match="cannot be paused"):
        manager.pause("steady")
    assert manager.get("steady").service.status is ServiceStatus.RUNNING
    await manager.stop_all()


async def test_paused_periodic_service_does_not_tick() -> None:
    manager = ServiceManager()
    ticker = Ticker(config=PeriodicServiceConfig(interval=0.01))
    control = Ticker(config=PeriodicServiceConfig(interval=0.01))  # not paused: the time it takes
    ticker.signals, control.signals = TestSignals(), TestSignals()
    manager.register("ticker", ticker)
    manager.register("control", control)
    await manager.start_all()
    await asyncio.wait_for(ticker.ran.wait(), 5)
    manager.pause("ticker")
    await until(lambda: ticker.signals.count("held"), what="the paused loop to hold")  # a run under way is over
    runs, ticks = ticker.metrics_data.runs, control.signals.count("tick")
    await until(lambda: control.signals.count("tick") >= ticks + 10, what="ten ticks of the control")
    assert ticker.metrics_data.runs == runs
    ticker.ran.clear()
    manager.resume("ticker")
    await asyncio.wait_for(ticker.ran.wait(), 5)
    await manager.stop_all()


async def test_stop_all_cancels_pending_restarts() -> None:
    manager = ServiceManager(restart=RestartPolicy(initial_delay=3600))
    manager.signals = signals = TestSignals()
    service = Crashing(crashes=1)
    manager.register("slow", service, critical=True)
    await manager.start_all()
    await until(lambda: signals.count("restart_scheduled", "slow"), what="the restart to be scheduled")
    assert signals.count("restart_ended") == 0
    await manager.stop_all()
    assert service.starts == 1 and manager.get("slow").restarts == 0
    assert signals.count("restart_ended", "slow") == 1  # the pending restart is over, not waiting


async def test_a_critical_periodic_service_whose_runs_keep_failing_is_restarted() -> None:
    manager = ServiceManager(restart=FAST)
    service = Ticker(config=PeriodicServiceConfig(interval=0.001, max_consecutive_failures=2))
    service.fail = True
    manager.register("importer", service, critical=True)
    await manager.start_all()
    entry = manager.get("importer")
    await until(lambda: entry.gave_up, timeout=10, what="the restart budget to run out")
    assert entry.restarts == FAST.max_restarts
    assert service.metrics_data.failures == 2 * (FAST.max_restarts + 1)  # two runs per start
    assert "2 runs failed in a row" in (service.error or "")
    assert manager.critical_down() == ["importer"]
    service.fail = False
    await manager.start("importer")
    await until(lambda: service.metrics_data.successes > 0, what="a successful run")
    assert service.status is ServiceStatus.RUNNING
    await manager.stop_all()


async def test_without_auto_restart_a_failed_critical_service_stays_in_error() -> None:
    manager = ServiceManager(restart=FAST, auto_restart=False)
    control = ServiceManager(restart=FAST)  # the same failure, restarted: the time it takes
    service, restarted = Crashing(crashes=1), Crashing(crashes=1)
    manager.register("importer", service, critical=True)
    control.register("importer", restarted, critical=True)
    await manager.start_all()
    await control.start_all()
    await until(lambda: restarted.starts == 2 and restarted.status is ServiceStatus.RUNNING)
    assert service.status is ServiceStatus.ERROR
    assert (service.starts, manager.get("importer").restarts) == (1, 0)
    assert manager.critical_down() == ["importer"]
    await manager.stop_all()
    await control.stop_all()


async def test_restart_stops_and_starts_with_a_fresh_budget_and_counts() -> None:
    journal: list[str] = []
    manager = ServiceManager(restart=FAST)
    events: list[ServiceEvent] = []
    manager.subscribe(events.append)
    manager.register("a", Recorder(journal), critical=True)
    await manager.start_all()
    entry = manager.get("a")
    entry.gave_up, entry.restarts_in_row = True, 3
    await manager.restart("a")
    assert journal == ["start:a", "stop:a", "start:a"]
    assert (entry.restarts, entry.restarts_in_row, entry.gave_up) == (1, 0, False)
    assert [e.kind for e in events].count("restart") == 1
    await manager.stop_all()


async def test_start_all_starts_what_is_down_again() -> None:
    journal: list[str] = []
    manager = ServiceManager(restart=FAST)
    manager.register("a", Recorder(journal))
    manager.register("b", Crashing(crashes=1))
    manager.register("c", Recorder(journal), auto_start=False)
    assert await manager.start_all() == ["a", "b"]
    await until(lambda: manager.get("b").service.status is ServiceStatus.ERROR)
    await manager.stop("a")
    assert await manager.start_all() == ["a", "b"]
    assert manager.get("b").service.status is ServiceStatus.RUNNING
    assert journal == ["start:a", "stop:a", "start:a"]  # c is not auto-started
    await manager.stop_all()
