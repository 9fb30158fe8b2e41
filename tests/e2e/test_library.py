"""taskyard as a library in a user's script: it exits without asyncio's "Task was destroyed but
it is pending!" (the sync API closes its pools at exit), and `Taskyard` is a context manager."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from taskyard import Taskyard
from taskyard.core.job import JobStatus
from tests.support import postgres, redis
from tests.support.processes import ROOT

pytestmark = pytest.mark.timeout(120)

STORES: dict[str, Callable[[], AbstractAsyncContextManager[str]]] = {
    "postgres": postgres.isolated_url,
    "redis": redis.isolated_url,
}

#: The script's three ways to end: nothing closed (atexit does it), `with app:`, `async with app:`.
SCRIPTS = {
    "plain": """
        app = Taskyard(URL)
        app.task("hello")(hello)
        print(app.enqueue("hello", {"n": 1}).id)
    """,
    "with": """
        with Taskyard(URL) as app:
            app.task("hello")(hello)
            print(app.enqueue("hello", {"n": 1}).id)
    """,
    "async-with": """
        async def main():
            async with Taskyard(URL) as app:
                app.task("hello")(hello)
                print((await app.aenqueue("hello", {"n": 1})).id)
        asyncio.run(main())
    """,
}


@pytest.fixture(params=sorted(STORES))
async def store_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with STORES[request.param]() as url:
        yield url


def _run_script(body: str, url: str) -> subprocess.CompletedProcess[str]:
    source = "import asyncio, sys\nfrom taskyard import Taskyard\nURL = sys.argv[1]\n"
    source += "def hello(payload):\n    return payload\n" + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-c", source, url], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("ending", sorted(SCRIPTS))
async def test_a_script_that_enqueues_and_exits_prints_nothing_on_stderr(store_url: str, ending: str) -> None:
    done = await asyncio.to_thread(_run_script, SCRIPTS[ending], store_url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    job_id = done.stdout.strip()
    async with Taskyard(store_url) as app:  # the job was stored before the script ended
        job = await app.aget_job(job_id)
    assert job is not None and job.status is JobStatus.PENDING


async def test_async_with_opens_and_closes_the_backend(tmp_path: Path) -> None:
    app = Taskyard(f"sqlite:///{tmp_path / 'jobs.db'}")
    app.task("hello")(lambda payload: payload)
    async with app as entered:
        assert entered is app
        job = await app.aenqueue("hello", 1)
        # The sync facade used inside the block is closed by it too.
        assert (await asyncio.to_thread(app.get_job, job.id)) == job
    async with app:  # a closed app opens again on the next use
        assert await app.aget_job(job.id) == job


def test_with_closes_the_sync_facade(tmp_path: Path) -> None:
    with Taskyard(f"sqlite:///{tmp_path / 'jobs.db'}") as app:
        app.task("hello")(lambda payload: payload)
        job = app.enqueue("hello", 1)
    with app:
        assert app.get_job(job.id) == job


@pytest.mark.parametrize("path", ["taskyard", "/taskyard/", "//taskyard", ""])
def test_mount_refuses_a_path_that_is_not_a_prefix(path: str) -> None:
    from fastapi import FastAPI

    from taskyard.http.asgi import mount

    with pytest.raises(ValueError, match="must start with '/' and not end with one"):
        mount(FastAPI(), Taskyard("memory://"), path)
