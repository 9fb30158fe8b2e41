"""Procrastinate on PostgreSQL (its own database): the no-op task, and the benchmark round."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import harness
import psycopg
from procrastinate import App, PsycopgConnector

SERVER = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
DATABASE = "taskyard_bench_procrastinate"
URL = SERVER.rsplit("/", 1)[0] + "/" + DATABASE

app = App(connector=PsycopgConnector(conninfo=URL))


@app.task(name="noop", queue="bench")
async def noop(sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class ProcrastinateSystem(harness.System):
    """Procrastinate 3 with LISTEN/NOTIFY, async connector."""

    name = "procrastinate"
    configs = {
        "one": "1 process, concurrency 10, listen/notify",
        "best": "2 processes, concurrency 10, listen/notify",
    }

    def __init__(self) -> None:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(app.open_async())
        self.loop.run_until_complete(app.schema_manager.apply_schema_async())

    def reset(self) -> None:
        async def go() -> None:
            await app.connector.execute_query_async(
                "TRUNCATE procrastinate_jobs, procrastinate_events, "
                "procrastinate_periodic_defers, procrastinate_workers CASCADE")

        self.loop.run_until_complete(go())

    def enqueue_single(self, n: int) -> float:
        async def go() -> None:
            for _ in range(n):
                await noop.defer_async()

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        async def go() -> None:
            for offset in range(0, n, 1000):
                await noop.batch_defer_async(*({} for _ in range(min(1000, n - offset))))

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        self.loop.run_until_complete(noop.defer_async(sent_at=sent_at))

    def store_bytes(self) -> int | None:
        # Tables with their indexes and TOAST, in the database this benchmark owns.
        with psycopg.connect(URL) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchone()
        return int(row[0]) if row else None

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        count = 1 if config == "one" else 2
        return [[sys.executable, "-m", "procrastinate", "--app=peer_procrastinate.app", "--log-level", "warning", "worker",
                 "-q", "bench", "-c", "10"] for _ in range(count)]

    def close(self) -> None:
        self.loop.run_until_complete(app.close_async())
        self.loop.close()
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    harness.main_for(ProcrastinateSystem)
