"""Two different apps' `taskyard scheduler` processes on one store (as a second app started
beside `make run`'s demo on its SQLite file): neither removes the other's declared schedules,
every schedule of both keeps firing, and one app's schedules outlive its process (for the grace).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.job import JobFilter
from taskyard.core.schedule import Schedule
from tests.support.backends import isolated_url
from tests.support.processes import stop_process, taskyard_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DEMO = "tests.apps.scheduler_app:app"
OTHER = "tests.apps.other_scheduler_app:app"
DEMO_SCHEDULES = {f"every-second-{p}" for p in ("skip", "once", "all")}
ALL_SCHEDULES = DEMO_SCHEDULES | {"other-every-second"}


async def fires(backend: Backend) -> Counter[str]:
    """Jobs made so far, per schedule."""
    counts: Counter[str] = Counter()
    cursor = None
    while True:
        page = await backend.jobs_list(filter=JobFilter(), limit=500, cursor=cursor)
        counts.update(j.unique_key.split(":", 2)[1] for j in page.jobs if j.unique_key)
        cursor = page.next_cursor
        if not cursor:
            return counts


async def keep_firing(backend: Backend, names: set[str], more: int = 3) -> None:
    """Wait until every schedule in `names` has made `more` jobs beyond what it has now."""
    start = await fires(backend)

    async def done() -> bool:
        now = await fires(backend)
        return all(now[n] >= start[n] + more for n in names)

    await wait_until(done, timeout=60, interval=0.2, what=f"{more} more fires of {sorted(names)}")


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis", "mysql"])
async def test_two_apps_on_one_store_keep_each_others_schedules(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        await two_apps(url, tmp_path)


async def two_apps(url: str, tmp_path: Path) -> None:
    env = {"TASKYARD_BACKEND": url, "TASKYARD_SCHEDULER__LEADER_TTL": "3"}
    logs = {name: tmp_path / f"{name}.log" for name in ("demo", "other")}
    backend = backend_from_url(url)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["demo"] = taskyard_process(["--app", DEMO, "scheduler"], env=env, log_path=logs["demo"])
        await backend.open()
        await keep_firing(backend, DEMO_SCHEDULES, more=2)
        procs["other"] = taskyard_process(["--app", OTHER, "scheduler"], env=env, log_path=logs["other"])
        await keep_firing(backend, ALL_SCHEDULES)

        stored = {s.name: s for s in await backend.schedules_list()}
        assert set(stored) == ALL_SCHEDULES  # nobody removed anybody's
        declarers = {name: (s.declarer or "").split(" ")[0] for name, s in stored.items()}
        assert declarers == {**dict.fromkeys(DEMO_SCHEDULES, DEMO), "other-every-second": OTHER}
        assert all(s.confirmed_at is not None for s in stored.values())

        # The demo stops: its schedules stay (and fire, the other app knows their task) until
        # nobody has confirmed them for scheduler.declared_grace (300 s by default).
        assert stop_process(procs.pop("demo")) == 0
        await keep_firing(backend, ALL_SCHEDULES)
        assert {s.name for s in await backend.schedules_list()} == ALL_SCHEDULES
    finally:
        codes = [stop_process(p) for p in procs.values()]
        await backend.close()
    assert codes == [0]
    text = "".join(path.read_text() for path in logs.values() if path.exists())
    assert "removed" not in text, text
    assert "declared schedules stored" in text  # each app stored its own, once


async def versions_fired(backend: Backend, name: str) -> list[str]:
    """The version in each job of schedule `name`, in fire order."""
    jobs = []
    cursor = None
    while True:
        page = await backend.jobs_list(filter=JobFilter(), limit=500, cursor=cursor)
        jobs += [j for j in page.jobs if j.unique_key and j.unique_key.split(":", 2)[1] == name]
        cursor = page.next_cursor
        if not cursor:
            return [j.payload["version"] for j in sorted(jobs, key=lambda j: j.unique_key or "")]


async def test_two_versions_side_by_side_converge_without_fighting(tmp_path: Path) -> None:
    """A rolling deploy on one SQLite file: v2 (started last) takes the shared schedule over
    once; v1 keeps confirming its own schedule and never writes the shared one back."""
    url = f"sqlite:///{tmp_path / 'deploy.db'}"
    app = "tests.apps.versioned_app:app"
    logs = {v: tmp_path / f"v{v}.log" for v in ("1", "2")}
    backend = backend_from_url(url)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    async def stored(name: str) -> Schedule | None:
        return await backend.schedule_get(name=name)

    try:
        for version in ("1", "2"):
            procs[version] = taskyard_process(
                ["--app", app, "scheduler"], log_path=logs[version],
                env={"TASKYARD_BACKEND": url, "TASKYARD_SCHEDULER__LEADER_TTL": "3", "APP_VERSION": version},
            )
            if version == "1":
                await backend.open()
                await keep_firing(backend, {"shared", "only-v1"}, more=2)

        async def switched() -> bool:
            shared = await stored("shared")
            return shared is not None and shared.payload == {"version": "2"}

        await wait_until(switched, timeout=60, what="v2's definition of 'shared'")
        # v1 confirms every 10 s: wait for two of its confirmations after the switch.
        v1_only = await stored("only-v1")
        assert v1_only is not None and v1_only.confirmed_at is not None
        seen = [v1_only.confirmed_at]

        async def confirmed_twice() -> bool:
            current = await stored("only-v1")
            if current is not None and current.confirmed_at and current.confirmed_at > seen[-1]:
                seen.append(current.confirmed_at)
            return len(seen) >= 3

        await wait_until(confirmed_twice, timeout=60, interval=0.5, what="two confirmations by v1")
        await keep_firing(backend, {"shared", "only-v1", "only-v2"}, more=2)
        shared = await stored("shared")
        assert shared is not None and shared.payload == {"version": "2"}
        assert (shared.declarer or "").startswith("versioned-v2 ")
        fired = await versions_fired(backend, "shared")
        switch = fired.index("2")
        assert set(fired[:switch]) == {"1"} and set(fired[switch:]) == {"2"}, fired  # one switch
        assert {s.name for s in await backend.schedules_list()} == {"shared", "only-v1", "only-v2"}
    finally:
        codes = [stop_process(p) for p in procs.values()]
        await backend.close()
    assert codes == [0, 0]
    v1_log, v2_log = logs["1"].read_text(), logs["2"].read_text()
    assert v1_log.count("declared differently by a process started after this one") == 1, v1_log
    assert v1_log.count("declared schedules stored") == 1 and v2_log.count("declared schedules stored") == 1
    assert "removed" not in v1_log + v2_log
