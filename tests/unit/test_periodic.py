"""PeriodicService: options from settings, timeout, retries, metrics and events per run."""

from __future__ import annotations

import asyncio

import pytest

from taskyard.core.retry import Retry
from taskyard.services.base import ServiceEvent, ServiceStatus, UnknownOptionError
from taskyard.services.periodic import PeriodicService, PeriodicServiceConfig
from tests.support.waiting import wait_until as until


class Job(PeriodicService):
    """Runs `behaviour` once per tick."""

    def __init__(self, behaviour: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.behaviour = behaviour

    async def execute(self) -> None:
        what = self.behaviour.pop(0) if self.behaviour else "ok"
        if what == "fail":
            raise RuntimeError("failed run")
        if what == "hang":
            await asyncio.Event().wait()


class Inbox(Job):
    """A service that reads one option of its own."""

    extra_options = ("inbox",)


def test_seed_options_map_onto_the_config() -> None:
    config, extra = PeriodicServiceConfig().with_options(
        {"interval": "*/10 * * * *", "batchSize": 10, "maxConcurrentImports": 5, "timeout": 300, "inbox": "in"}
    )
    assert config.interval == "*/10 * * * *"
    assert (config.batch_size, config.max_concurrency, config.timeout) == (10, 5, 300.0)
    assert extra == {"inbox": "in"}


def test_env_strings_are_coerced() -> None:
    config, _ = PeriodicServiceConfig().with_options(
        {"interval": "30", "timeout": "5", "batch_size": "7", "run_on_start": "true", "retries": 2}
    )
    assert (config.interval, config.timeout, config.batch_size, config.run_on_start) == (30.0, 5.0, 7, True)
    assert config.retry.attempts == 3


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"interval": "61 * * * *"}, "interval"),
        ({"interval": -5}, "interval"),
        ({"timeout": 0}, "timeout"),
        ({"batchSize": 0}, "batchSize"),
        ({"retries": -1}, "retries"),
    ],
)
def test_bad_options_name_the_key(options: dict, named: str) -> None:
    with pytest.raises(ValueError) as info:
        PeriodicServiceConfig().with_options(options)
    assert str(info.value).startswith(f"{named}: ")


@pytest.mark.parametrize("spelling", ["batchSize", "batch_size", "BATCHSIZE", "batchsize", "Batch-Size"])
def test_option_names_ignore_case_and_underscores(spelling: str) -> None:
    config, extra = PeriodicServiceConfig().with_options({spelling: "20", "MAXCONCURRENTIMPORTS": "3"})
    assert (config.batch_size, config.max_concurrency, extra) == (20, 3, {})


def test_declared_extra_options_reach_the_service_in_their_declared_spelling() -> None:
    service = Inbox([])
    service.apply_options({"INTERVAL": "5", "INBOX": "x"})
    assert service.config.interval == 5 and service.options == {"inbox": "x"}


@pytest.mark.parametrize(
    ("option", "suggestion"), [("batchsise", "batch_size"), ("inbx", "inbox"), ("colour", None)]
)
def test_an_unknown_option_is_refused_with_the_near_miss(option: str, suggestion: str | None) -> None:
    service = Inbox([])
    with pytest.raises(UnknownOptionError) as info:
        service.apply_options({"interval": 5, option: 20})
    assert (info.value.option, info.value.suggestion) == (option, suggestion)
    assert "inbox" in info.value.known and "batch_size" in info.value.known
    assert service.config.interval == 60.0  # nothing applied


def test_two_spellings_of_one_option_are_refused() -> None:
    with pytest.raises(ValueError, match="the same option as 'batchSize'"):
        PeriodicServiceConfig().with_options({"batchSize": 5, "batch_size": 6})


async def test_failed_runs_in_a_row_put_the_service_in_error() -> None:
    behaviour = ["fail", "ok", "fail", "fail", "fail", "ok"]
    service = Job(behaviour, config=PeriodicServiceConfig(interval=0.001, max_consecutive_failures=3))
    await service.start()
    await until(lambda: service.status is ServiceStatus.ERROR, timeout=5, what="ERROR")
    assert behaviour == ["ok"]  # the success reset the count: it took three more failures
    assert service.error == (
        "3 runs failed in a row (max_consecutive_failures=3); last: RuntimeError: failed run"
    )
    assert service.metrics_data.consecutive_failures == 3
    assert service.health()["healthy"] is False
    assert service.health()["details"]["max_consecutive_failures"] == 3
    await service.stop()
    behaviour[:] = ["fail", "fail", "ok"]
    await service.start()  # a fresh count after a start
    await until(lambda: not behaviour and service.metrics_data.successes >= 2, timeout=5, what="the success")
    assert service.status is ServiceStatus.RUNNING
    await service.stop()


async def test_zero_max_consecutive_failures_never_gives_up() -> None:
    service = Job(["fail"] * 20, config=PeriodicServiceConfig(interval=0.001, max_consecutive_failures=0))
    await service.start()
    await until(lambda: service.metrics_data.failures >= 20, timeout=5, what="20 failed runs")
    assert service.status is ServiceStatus.RUNNING
    await service.stop()


async def test_run_once_counts_successes_failures_and_timeouts() -> None:
    service = Job(["ok", "fail", "hang"], config=PeriodicServiceConfig(timeout=0.05))
    events: list[ServiceEvent] = []
    service.subscribe(events.append)
    assert await service.run_once() is True
    assert await service.run_once() is False
    assert await service.run_once() is False
    m = service.metrics_data
    assert (m.runs, m.successes, m.failures) == (3, 1, 2)
    assert m.last_error == "timed out after 0.05s"
    assert [e.ok for e in events if e.kind == "run"] == [True, False, False]
    assert service.metrics()["success_rate"] == pytest.approx(1 / 3)


async def test_retries_within_one_tick_count_as_one_run() -> None:
    service = Job(["fail", "fail", "ok"], config=PeriodicServiceConfig(retry=Retry(attempts=3, backoff=[0.0])))
    assert await service.run_once() is True
    assert (service.metrics_data.runs, service.metrics_data.successes) == (1, 1)


async def test_trigger_runs_at_once_and_runs_never_overlap() -> None:
    service = Job([], config=PeriodicServiceConfig(interval=3600))
    ran = asyncio.Event()
    service.subscribe(lambda e: ran.set() if e.kind == "run" else None)
    await service.start()
    service.trigger()
    await asyncio.wait_for(ran.wait(), 5)
    assert service.metrics_data.runs == 1
    await service.stop()
