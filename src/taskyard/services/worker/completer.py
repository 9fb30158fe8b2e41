"""`Completer`: settles the outcomes of a worker's runs in batches through the backend's one
owned write, `jobs_settle` (River's BatchCompleter is the model).

An outcome submitted while no write is in flight is written at once; outcomes submitted
while one is accumulate into the next batch. A batch is retried through a store outage for
up to one lease (a write already applied is then refused, not repeated). Each submitter gets
a future resolved with its `Settled`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from taskyard.backends.protocol import Backend
from taskyard.core.settle import Settle, Settled
from taskyard.errors import BackendUnavailable
from taskyard.services.worker.leases import raise_if_cancelling

__all__ = ("Completer",)

log = logging.getLogger("taskyard.worker")


class Completer:
    """Owned by one worker: `start()` runs its writer task, `stop()` flushes and ends it."""

    def __init__(
        self,
        backend: Callable[[], Backend],
        *,
        now: Callable[[], datetime],
        patience: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`backend()` is the store to write to, `now()` the time to write at (the store's
        clock), `patience` how long a batch is retried through an outage (a lease)."""
        self._backend = backend
        self._now = now
        self.patience = patience
        self._monotonic = monotonic
        self._pending: list[tuple[Settle, asyncio.Future[Settled]]] = []
        self._ready = asyncio.Event()
        # One write at a time: stop() must wait for a batch already being written rather
        # than cancel it (the outcomes in it would be lost).
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: Outcomes written so far (a burst worker claims again after new writes: a settle
        #: may have unblocked workflow steps).
        self.written = 0

    @property
    def pending(self) -> int:
        """Outcomes submitted and not yet written."""
        return len(self._pending)

    def submit(self, outcome: Settle) -> asyncio.Future[Settled]:
        """Queue `outcome` for the next batch; the future resolves with its `Settled` (or the
        error that ended its batch's retries)."""
        future: asyncio.Future[Settled] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        self._ready.set()
        return future

    async def settle(self, outcome: Settle) -> Settled:
        """Submit `outcome` and wait until its batch is written."""
        return await self.submit(outcome)

    def start(self) -> None:
        """Start the writer task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="worker:completer")

    async def stop(self) -> None:
        """Write every pending outcome, then end the writer task."""
        await self.flush()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("completer task failed")

    async def flush(self) -> None:
        """Write every outcome submitted so far (waits for a batch already in flight)."""
        async with self._writing:
            while self._pending:
                batch, self._pending = self._pending, []
                self._ready.clear()
                await self._write(batch)
            # Let the submitters' callbacks see their answers before the caller goes on.
            await asyncio.sleep(0)

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            await self.flush()
            raise_if_cancelling()

    async def _write(self, batch: list[tuple[Settle, asyncio.Future[Settled]]]) -> None:
        outcomes = [outcome for outcome, _ in batch]
        deadline = self._monotonic() + self.patience
        delay = 0.1
        while True:
            try:
                answers = await self._backend().jobs_settle(outcomes=outcomes, now=self._now())
                self.written += len(outcomes)
                break
            except BackendUnavailable as exc:
                if self._monotonic() <= deadline:
                    log.warning("backend unavailable while recording %d job(s), retrying: %s", len(batch), exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                _fail(batch, exc)
                return
            except Exception as exc:
                raise_if_cancelling(exc)
                _fail(batch, exc)
                return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)


def _fail(batch: list[tuple[Settle, asyncio.Future[Settled]]], exc: Exception) -> None:
    log.error("could not record %d job outcome(s): %s", len(batch), exc)
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
