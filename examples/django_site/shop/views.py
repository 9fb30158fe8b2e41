"""A view that places an order and enqueues its receipt through `django.tasks`."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from shop.models import Order
from shop.tasks import send_receipt


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    """Store the order and enqueue its receipt in one transaction."""
    item = json.loads(request.body or b"{}").get("item", "a thing")
    with transaction.atomic():
        order = Order.objects.create(item=item)
        result = send_receipt.enqueue(order.pk)
    return JsonResponse({"order": order.pk, "result_id": result.id}, status=201)


@require_GET
def result(request: HttpRequest, result_id: str) -> JsonResponse:
    """A task result by id, as JSON."""
    found = send_receipt.get_backend().get_result(result_id)
    body = {"status": str(found.status), "attempts": found.attempts}
    if found.is_finished and not found.errors:
        body["return_value"] = found.return_value
    return JsonResponse(body)
