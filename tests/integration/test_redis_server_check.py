"""The start-up check of a Redis server's durability settings, on a server the test owns
(its settings are changed with CONFIG SET, which a shared server must not see)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from taskyard.backends import backend_from_url
from taskyard.errors import ConfigError
from tests.support.redis import owned_server


async def _check(url: str) -> list[str]:
    backend = backend_from_url(url)
    await backend.open()
    try:
        return await backend.server_check()
    finally:
        await backend.close()


async def test_eviction_is_refused_and_aof_off_is_a_warning() -> None:
    async with owned_server() as server:
        admin = aioredis.Redis.from_url(server.url)
        try:
            assert await _check(server.url) == []  # AOF on, noeviction: nothing to say

            await admin.config_set("maxmemory-policy", "allkeys-lru")
            with pytest.raises(ConfigError, match="maxmemory-policy allkeys-lru"):
                await _check(server.url)
            allowed = await _check(server.url + "?allow_eviction=true")
            assert len(allowed) == 1 and "allkeys-lru" in allowed[0]

            await admin.config_set("maxmemory-policy", "noeviction")
            await admin.config_set("appendonly", "no")
            warnings = await _check(server.url)
            assert len(warnings) == 1 and "appendonly no" in warnings[0]
        finally:
            await admin.aclose()


def test_allow_eviction_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="allow_eviction='maybe'"):
        backend_from_url("redis://127.0.0.1:6379/0?allow_eviction=maybe")
