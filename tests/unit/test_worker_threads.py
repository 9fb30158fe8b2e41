"""`ThreadSlots`, the worker's handler threads: reuse, hard stops by an exception raised in the
thread, lost threads (blocked outside Python code), and a fresh thread for every retired slot."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from taskyard import JobTimeoutError
from taskyard.services.worker.threads import LostThread, ThreadSlots
from tests.support.waiting import wait_until


@pytest.fixture
async def release() -> AsyncIterator[threading.Event]:
    """Set at the end of each test, so a thread blocked on it (a "lost" one) ends."""
    event = threading.Event()
    yield event
    event.set()


def _busy_loop(seen: list[BaseException], started: threading.Event) -> None:
    """Pure Python, never returns by itself: stoppable by an exception raised in it."""
    started.set()
    try:
        while True:
            pass
    except BaseException as exc:
        seen.append(exc)
        raise


async def _started(pool: ThreadSlots, fn, **kw) -> asyncio.Task[object]:
    task = asyncio.create_task(pool.run(fn, **kw))
    await wait_until(lambda: pool.busy == 1, timeout=5, what="the job to take a slot")
    return task


async def test_threads_are_reused_one_job_at_a_time() -> None:
    pool = ThreadSlots(2, name="t")
    names = [await pool.run(lambda: threading.current_thread().name) for _ in range(3)]
    assert names == ["t-1", "t-1", "t-1"]
    both = await asyncio.gather(
        pool.run(lambda: (time.sleep(0.05), threading.current_thread().name)[1]),
        pool.run(lambda: (time.sleep(0.05), threading.current_thread().name)[1]),
    )
    assert sorted(both) == ["t-1", "t-2"]
    assert (pool.busy, pool.free) == (0, 2)
    with pytest.raises(ZeroDivisionError):
        await pool.run(lambda: 1 / 0)
    await pool.close()


async def test_a_stopped_python_handler_gets_the_exception_and_its_thread_ends() -> None:
    pool = ThreadSlots(1, name="t", grace=5)
    seen: list[BaseException] = []
    started = threading.Event()
    task = await _started(pool, lambda: _busy_loop(seen, started), job_id="j1", task="spin",
                          stop_with=lambda: JobTimeoutError)
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The slot is free at once, for a fresh thread, while the old one is being stopped.
    assert pool.free == 1
    assert await pool.run(lambda: threading.current_thread().name) == "t-2"
    await wait_until(lambda: pool.stopped_total == 1, timeout=5, what="the busy loop to stop")
    assert [type(e) for e in seen] == [JobTimeoutError]
    assert pool.lost == [] and pool.lost_total == 0
    assert not any(t.name == "t-1" for t in threading.enumerate())
    await pool.close()


async def test_a_handler_that_swallows_the_first_exception_gets_another() -> None:
    pool = ThreadSlots(1, name="t", grace=5)
    caught: list[BaseException] = []
    started = threading.Event()

    def stubborn() -> None:
        started.set()
        try:
            while True:
                pass
        except Exception as exc:  # a careless handler: swallows one, carries on
            caught.append(exc)
        while True:
            pass

    task = await _started(pool, stubborn, stop_with=lambda: JobTimeoutError)
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: pool.stopped_total == 1, timeout=5, what="the second exception to stop it")
    assert [type(e) for e in caught] == [JobTimeoutError]
    await pool.close()


async def test_a_thread_blocked_outside_python_is_lost_and_does_not_hold_its_slot(
    release: threading.Event,
) -> None:
    lost: list[LostThread] = []
    pool = ThreadSlots(1, name="t", grace=0.3, on_lost=lost.append)
    started = threading.Event()

    def blocked() -> None:
        started.set()
        release.wait()  # blocked in C (a lock): an exception raised in it waits for the return

    task = await _started(pool, blocked, job_id="j1", task="hang", stop_with=lambda: JobTimeoutError)
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pool.run(lambda: threading.current_thread().name) == "t-2"  # not blocked
    await wait_until(lambda: lost, timeout=5, what="the blocked thread to be declared lost")
    assert [(x.thread, x.job_id, x.task) for x in lost] == [("t-1", "j1", "hang")]
    status = pool.status()
    assert (status["lost_threads"], status["lost_total"], status["stopped_total"]) == (1, 1, 0)
    assert status["lost"][0]["job_id"] == "j1"
    # When the blocking call returns, the pending exception ends the thread: no longer lost.
    release.set()
    await wait_until(lambda: not pool.lost, timeout=5, what="the lost thread to end")
    assert pool.lost_total == 1
    assert not any(t.name == "t-1" for t in threading.enumerate())
    await pool.close()


async def test_concurrency_holds_with_retired_threads(release: threading.Event) -> None:
    pool = ThreadSlots(2, name="t", grace=0.1)
    stuck = [await _started(pool, release.wait)]
    stuck.append(asyncio.create_task(pool.run(release.wait)))
    await wait_until(lambda: pool.busy == 2, timeout=5, what="both slots to be busy")
    assert pool.free == 0
    with pytest.raises(RuntimeError, match="all 2 thread slots are busy"):
        await pool.run(lambda: None)
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    assert pool.free == 2
    results = await asyncio.gather(*(pool.run(lambda: threading.current_thread().name) for _ in range(2)))
    assert sorted(results) == ["t-3", "t-4"]
    await wait_until(lambda: len(pool.lost) == 2, timeout=5, what="the blocked threads to be lost")
    await pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.run(lambda: None)
