"""The shop's tasks: plain Django tasks (`@task`), run by taskyard workers."""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:  # Django < 6: the django-tasks backport
    from django_tasks import task  # type: ignore[no-redef]


class PaymentDeclined(Exception):
    """A task's own exception: its class path is kept with the error."""


@task()
def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


@task(queue_name="mail", priority=10)
def send_receipt(order_id: int) -> str:
    """Send the receipt of an order (here: say so)."""
    from shop.models import Order

    return f"receipt for order {order_id}: {Order.objects.get(pk=order_id).item}"


@task()
def charge(amount: int) -> None:
    """Always declined."""
    raise PaymentDeclined(f"card declined for {amount}")


@task(takes_context=True)
def whoami(context, label: str) -> dict:  # type: ignore[no-untyped-def]
    """The context Django gives a task that asks for it."""
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task()
async def double(x: int) -> int:
    """An async task."""
    return 2 * x
