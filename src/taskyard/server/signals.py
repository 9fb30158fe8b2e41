"""Signals: a task server runs until SIGTERM/SIGINT; the first drains, a second stops at once.
The only place in taskyard that touches signal handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ("run_until_signalled",)

log = logging.getLogger("taskyard.server")


async def run_until_signalled(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, drain_timeout: float
) -> int:
    """Await `run(stop)`, setting `stop` on the first SIGTERM/SIGINT and cancelling `run` on
    a second; returns the exit code (0 after a clean stop, 1 when cut short)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s received: stopping (drain up to %.0fs)", signal.Signals(signum).name, drain_timeout)
            stop.set()
        elif main is not None:
            log.warning("second signal: stopping now")
            main.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await run(stop)
    except asyncio.CancelledError:
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    return 0
