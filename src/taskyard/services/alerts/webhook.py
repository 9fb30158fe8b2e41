"""`WebhookNotifier`: each alert event as a JSON POST, with a timeout and a few retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from taskyard.core.alert import AlertEvent

__all__ = ("WebhookError", "WebhookNotifier")

log = logging.getLogger("taskyard.alerts")


class WebhookError(Exception):
    """The webhook refused the event or could not be reached, after every attempt."""


class WebhookNotifier:
    """POST `event.to_json()` to `url`. Transport errors, 5xx and 429 are retried up to
    `retries` times (`retry_delay` seconds, doubling); any other non-2xx is final.
    `headers` values are secrets (tokens): they are sent, never logged.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        retry_delay: float = 1.0,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be an http:// or https:// URL with a host")
        self.url = url
        # Logged instead of the URL, whose path often holds a token.
        self.target = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.headers = {"User-Agent": "taskyard-alerts", **(headers or {})}
        self._sleep = sleep

    async def notify(self, event: AlertEvent) -> None:
        import httpx  # here: a worker that never sends an alert does not load an HTTP client

        body = event.to_json()
        problem = ""
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    await self._sleep(self.retry_delay * 2 ** (attempt - 1))
                try:
                    response = await client.post(self.url, json=body)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                else:
                    if response.is_success:
                        return
                    problem = f"HTTP {response.status_code}"
                    if response.status_code != 429 and response.status_code < 500:
                        break
                log.debug("webhook %s attempt %d failed: %s", self.target, attempt + 1, problem)
        raise WebhookError(f"webhook {self.target} refused alert {event.name!r}: {problem}")
