"""Settings: precedence (defaults < taskyard.toml < TASKYARD_* < flags) and one-line errors."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from taskyard.config import DEFAULT_BACKEND_URL, default_backend_url, load_settings
from taskyard.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(clean_env: Path) -> Path:
    """Every test here runs with the shared `clean_env` (tests/conftest.py)."""
    return clean_env


def write_toml(path: Path, text: str) -> Path:
    target = path / "taskyard.toml"
    target.write_text(text)
    return target


def test_defaults() -> None:
    s = load_settings()
    assert s.backend == DEFAULT_BACKEND_URL == default_backend_url()
    assert (s.http.host, s.http.port, s.http.auth_enabled) == ("127.0.0.1", 5050, True)
    assert s.worker.concurrency == 10 and s.worker.queues is None
    assert s.maintenance.rescue_interval == 5.0
    assert s.maintenance.retention.completed.keep_last == 1000
    assert s.scheduler.leader_ttl == 15.0


def test_precedence_toml_then_env_then_flags(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(clean_env, '[worker]\nconcurrency = 4\nlease = 30\n[http]\nport = 6000\n')
    s = load_settings()
    assert (s.worker.concurrency, s.worker.lease, s.http.port) == (4, 30.0, 6000)
    monkeypatch.setenv("TASKYARD_WORKER__CONCURRENCY", "7")
    s = load_settings()
    assert (s.worker.concurrency, s.worker.lease) == (7, 30.0)
    s = load_settings(worker={"concurrency": 2})
    assert (s.worker.concurrency, s.worker.lease, s.http.port) == (2, 30.0, 6000)


def test_backend_from_toml_reaches_default_backend_url(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(clean_env, 'backend = "memory://"\n')
    assert default_backend_url() == "memory://"
    monkeypatch.setenv("TASKYARD_BACKEND", "sqlite:///other.db")
    assert default_backend_url() == "sqlite:///other.db"
    assert load_settings().backend == "sqlite:///other.db"


def test_explicit_config_file(tmp_path: Path) -> None:
    other = tmp_path / "conf"
    other.mkdir()
    path = write_toml(other, '[logging]\nlevel = "debug"\nformat = "json"\n')
    s = load_settings(path)
    assert (s.logging.level, s.logging.format) == ("DEBUG", "json")
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_queues_from_env_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKYARD_WORKER__QUEUES", '["a","b"]')
    assert load_settings().worker.queues == ["a", "b"]
    assert load_settings(worker={"queues": "x, y"}).worker.queues == ["x", "y"]


def test_service_options_are_free_form(clean_env: Path) -> None:
    write_toml(clean_env, '[services.csv-import]\ninterval = "*/10 * * * *"\nbatchSize = 10\n')
    assert load_settings().services == {"csv-import": {"interval": "*/10 * * * *", "batchSize": 10}}


def test_a_service_option_from_the_environment_overrides_any_spelling_in_the_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(clean_env, '[services.csv-import]\nbatchSize = 10\nmax_concurrency = 2\ntimeout = 5\n')
    monkeypatch.setenv("TASKYARD_SERVICES__CSV_IMPORT__BATCHSIZE", "20")
    monkeypatch.setenv("TASKYARD_SERVICES__CSV_IMPORT__MAXCONCURRENCY", "4")
    settings = load_settings(services={"CSV_IMPORT": {"Timeout": 9}})
    # Each option once, as the strongest source spelled it, with that source's value.
    assert settings.services == {"csv-import": {"batchsize": "20", "maxconcurrency": "4", "Timeout": 9}}


def test_one_source_spelling_an_option_twice_is_refused(clean_env: Path) -> None:
    write_toml(clean_env, '[services.csv-import]\nbatchSize = 10\nbatch_size = 20\n')
    with pytest.raises(ConfigError, match=r"'services\.csv-import' has option 'batchSize' twice"):
        load_settings()


@pytest.mark.parametrize(
    ("overrides", "env", "expected"),
    [
        ({"worker": {"concurrency": -1}}, {}, "invalid setting 'worker.concurrency' [TASKYARD_WORKER__CONCURRENCY]"),
        ({}, {"TASKYARD_WORKER__CONCURRENCY": "0"}, "'worker.concurrency'"),
        ({}, {"TASKYARD_BACKEND": "nonsense"}, "invalid setting 'backend'"),
        ({}, {"TASKYARD_BACKEND": "mongodb://db/x"}, "'mongodb://db/x' is not a backend URL"),
        ({"worker": {"concurency": 3}}, {}, "unknown setting 'worker.concurency'; did you mean 'worker.concurrency'?"),
        ({"htp": {}}, {}, "unknown setting 'htp'; did you mean 'http'?"),
        ({"http": {"port": 70000}}, {}, "'http.port'"),
        ({"logging": {"level": "loud"}}, {}, "'logging.level'"),
        ({"maintenance": {"retention": {"running": {"keep_last": 1}}}}, {}, "'maintenance.retention.running'"),
    ],
)
def test_errors_are_one_line_and_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, overrides: dict, env: dict, expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_secrets_and_passwords_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKYARD_BACKEND", "mongodb://user:hunter2@db/x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    monkeypatch.delenv("TASKYARD_BACKEND")
    secret, key = secrets.token_urlsafe(48), secrets.token_urlsafe(40)
    s = load_settings(http={"jwt_secret": secret, "api_keys": [{"key": key, "role": "admin", "name": "ci"}]})
    assert secret not in repr(s) and key not in repr(s)


def test_bad_toml_is_a_config_error(clean_env: Path) -> None:
    write_toml(clean_env, "[worker\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_a_list_setting_from_the_environment_that_is_not_json_is_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKYARD_HTTP__API_KEYS", "not-json-s3cret")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid setting 'http'") and "TASKYARD_HTTP__" in message
    assert "s3cret" not in message and "\n" not in message
