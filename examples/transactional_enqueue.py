"""Transactional enqueue on PostgreSQL: the job exists if and only if the order's transaction commits.

Run against a PostgreSQL database (the tables are created in the schemas named below):

    TASKYARD_BACKEND='postgresql://postgres@127.0.0.1:5432/test?schema=taskyard_example' \
        python -m examples.transactional_enqueue
    TASKYARD_BACKEND=... taskyard --app examples.transactional_enqueue:app worker --burst
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import psycopg
from pydantic import BaseModel

from taskyard import Taskyard

URL = os.environ.get(
    "TASKYARD_BACKEND", "postgresql://postgres@127.0.0.1:5432/test?schema=taskyard_example"
)
app = Taskyard(URL)


class OrderPlaced(BaseModel):
    order_id: int


@app.task("orders.send_confirmation", queue="mail")
async def send_confirmation(event: OrderPlaced) -> str:
    return f"confirmation sent for order {event.order_id}"


def place_order_sync(dsn: str, order_id: int, *, fail: bool = False) -> None:
    """A sync application (Django, Flask, scripts): pass its psycopg connection."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO shop_orders (id) VALUES (%s)", (order_id,))
        app.enqueue("orders.send_confirmation", {"order_id": order_id}, connection=conn)
        if fail:
            raise RuntimeError("payment declined")  # rolls back the order and the job


async def place_order_async(dsn: str, order_id: int) -> None:
    """An async application: pass its `psycopg.AsyncConnection`."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
        await conn.execute("INSERT INTO shop_orders (id) VALUES (%s)", (order_id,))
        await app.aenqueue("orders.send_confirmation", {"order_id": order_id}, connection=conn)


def place_order_sqlalchemy(engine: object, order_id: int) -> None:
    """SQLAlchemy (with the psycopg 3 driver, `postgresql+psycopg://`): the session's own
    DBAPI connection, so the job commits or rolls back with the session.
    """
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    with Session(engine) as session, session.begin():  # type: ignore[call-overload]
        session.execute(text("INSERT INTO shop_orders (id) VALUES (:id)"), {"id": order_id})
        conn = session.connection().connection.driver_connection
        app.enqueue("orders.send_confirmation", {"order_id": order_id}, connection=conn)


async def _async_part(dsn: str) -> None:
    try:
        await place_order_async(dsn, 3)
    finally:
        await app.aclose()


def main() -> None:
    dsn = URL.split("?", 1)[0]  # the application's own connection string
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS shop_orders (id int PRIMARY KEY)")
        conn.execute("TRUNCATE shop_orders")
    place_order_sync(dsn, 1)
    with contextlib.suppress(RuntimeError):  # the payment failed: no order, no e-mail
        place_order_sync(dsn, 2, fail=True)
    asyncio.run(_async_part(dsn))
    print({q: c for q, c in app.counts().items() if q == "mail"})  # 2 pending: orders 1 and 3
    app.close()


if __name__ == "__main__":
    main()
