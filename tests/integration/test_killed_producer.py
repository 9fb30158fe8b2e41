"""A producer SIGKILLed in the middle of bulk enqueues: every batch is stored whole or not at
all, every acknowledged batch is there, and the store stays sound and usable (reliability
plan T6, on every durable backend)."""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskyard import JobStatus
from taskyard.core.job import JobFilter
from tests.apps.worker_app import build
from tests.support.backends import isolated_url
from tests.support.processes import ROOT

pytestmark = pytest.mark.slow

BATCH = 500
PRODUCER = textwrap.dedent(
    f"""
    import asyncio, sys
    from tests.apps.worker_app import build

    async def main():
        app = build(sys.argv[1])
        n = 0
        while True:
            await app.aenqueue_many([("record", {{"batch": n, "k": k}}) for k in range({BATCH})])
            print(n, flush=True)  # this batch is acknowledged
            n += 1

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis", "mysql"])
async def test_bulk_enqueue_is_all_or_nothing_when_the_producer_dies(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        errors = tmp_path / "producer.err"
        acknowledged: list[int] = []
        with errors.open("w") as err, subprocess.Popen(
            [sys.executable, "-c", PRODUCER, url], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=err, text=True,
        ) as producer:
            try:
                assert producer.stdout is not None
                while len(acknowledged) < 6:  # kill while the seventh batch is on its way
                    line = producer.stdout.readline()
                    assert line, f"the producer stopped: {errors.read_text()}"
                    acknowledged.append(int(line))
                producer.send_signal(signal.SIGKILL)
            finally:
                if producer.poll() is None:
                    producer.kill()

        app = build(url)
        await app.open()
        jobs = []
        cursor = None
        while True:
            page = await app.backend.jobs_list(filter=JobFilter(), limit=500, cursor=cursor)
            jobs.extend(page.jobs)
            cursor = page.next_cursor
            if not cursor:
                break
        per_batch = collections.Counter(j.payload["batch"] for j in jobs)
        assert set(per_batch.values()) == {BATCH}, "a batch was stored in part"
        assert set(acknowledged) <= set(per_batch), "an acknowledged batch is missing"
        assert len(per_batch) <= len(acknowledged) + 1
        assert {j.status for j in jobs} == {JobStatus.PENDING}

        # The store is still sound: a job enqueued now runs like any other.
        fresh = await app.aenqueue("record", {"batch": -1, "k": 0})
        assert (await app.aget_job(fresh.id)).status is JobStatus.PENDING
        await app.aclose()
        if kind == "sqlite":
            path = url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
