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


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis"])
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
