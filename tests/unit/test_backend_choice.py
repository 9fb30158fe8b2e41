"""An app's backend is chosen once: its URL read when first needed (an operator's
`use_backend` > the app's argument > `TASKYARD_BACKEND`/taskyard.toml > the default), the
instance built once, and another URL after that a clear error. Each backend class says whether
one instance may serve several loops; the sync facade asks it instead of reading the URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from taskyard import Taskyard
from taskyard.backends.memory import MemoryBackend
from taskyard.backends.postgres import PostgresBackend
from taskyard.backends.redis import RedisBackend
from taskyard.backends.sqlite import SqliteBackend
from taskyard.config import load_settings
from taskyard.errors import ConfigError
from taskyard.server import TaskServer


def test_the_url_is_read_when_first_needed_and_then_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKYARD_BACKEND", raising=False)
    app = Taskyard()  # nothing read yet: the environment may still change
    monkeypatch.setenv("TASKYARD_BACKEND", "memory://first")
    backend = app.backend
    assert isinstance(backend, MemoryBackend) and backend.url == "memory://first"
    monkeypatch.setenv("TASKYARD_BACKEND", "memory://second")
    assert app.backend is backend and app.backend_url == "memory://first"


def test_use_backend_before_first_use_wins_over_the_apps_own_url(tmp_path: Path) -> None:
    app = Taskyard(f"sqlite:///{tmp_path / 'never.db'}")
    app.use_backend("memory://chosen")
    assert isinstance(app.backend, MemoryBackend) and app.backend.url == "memory://chosen"
    app.close()
    assert not (tmp_path / "never.db").exists()


def test_the_same_url_after_first_use_is_fine() -> None:
    app = Taskyard("memory://")
    backend = app.backend
    app.use_backend("memory://")
    assert app.backend is backend


def test_another_url_after_first_use_is_a_clear_error_without_the_password() -> None:
    app = Taskyard("memory://")
    backend = app.backend
    with pytest.raises(ConfigError) as caught:
        app.use_backend("postgresql://user:hunter2@db.example/jobs")
    message = str(caught.value)
    assert "memory://" in message and "postgresql://user:***@db.example/jobs" in message
    assert "hunter2" not in message and "before the app's first use" in message
    assert app.backend is backend


def test_a_backend_instance_given_to_the_app_is_already_chosen() -> None:
    given = MemoryBackend("memory://given")
    app = Taskyard(given)
    with pytest.raises(ConfigError, match="cannot switch"):
        app.use_backend("memory://other")
    assert app.backend is given


def test_each_backend_class_says_whether_loops_may_share_it() -> None:
    assert MemoryBackend.shared_across_loops is True
    assert SqliteBackend.shared_across_loops is False
    assert PostgresBackend.shared_across_loops is False
    assert RedisBackend.shared_across_loops is False


def test_the_sync_facade_shares_a_memory_backend() -> None:
    app = Taskyard("memory://")
    try:
        assert app.run_sync(app.backend_for_loop) is app.backend
    finally:
        app.close()


def test_the_sync_facade_builds_its_own_backend_of_an_unshared_class(tmp_path: Path) -> None:
    app = Taskyard(f"sqlite:///{tmp_path / 'facade.db'}")
    try:
        own = app.run_sync(app.backend_for_loop)  # another instance, on the same file
        assert isinstance(own, SqliteBackend)
        assert own is not app.backend and own.url == app.backend.url
    finally:
        app.close()


def test_the_sync_facade_and_the_async_api_see_one_store(tmp_path: Path) -> None:
    app = Taskyard(f"sqlite:///{tmp_path / 'one.db'}")

    @app.task("noop")
    def noop() -> None: ...

    try:
        job = app.enqueue("noop")

        async def read() -> str | None:
            try:
                found = await app.aget_job(job.id)
                return found.id if found is not None else None
            finally:
                await app.aclose()

        assert asyncio.run(read()) == job.id
    finally:
        app.close()


def test_the_server_hands_its_backend_setting_to_an_app_not_yet_built() -> None:
    app = Taskyard("memory://app")
    server = TaskServer(app, load_settings(backend="memory://setting", http={"enabled": False}))
    server.build()
    assert app.backend.url == "memory://setting"


def test_the_server_refuses_a_backend_setting_other_than_the_one_the_app_built() -> None:
    app = Taskyard("memory://app")
    assert app.backend.url == "memory://app"
    server = TaskServer(app, load_settings(backend="memory://setting", http={"enabled": False}))
    with pytest.raises(ConfigError, match="cannot switch to memory://setting"):
        server.build()
