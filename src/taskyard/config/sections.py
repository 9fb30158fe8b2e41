"""The settings sections (`[worker]`, `[http]`, `[alerts]`, ...): frozen pydantic models,
each validated once where the settings are loaded (`taskyard.config.load_settings`)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from taskyard.core.alert import AlertRule, parse_rule
from taskyard.core.names import check_name

__all__ = (
    "AlertNotifiersSettings",
    "AlertsSettings",
    "ApiKey",
    "EmailSettings",
    "HttpSettings",
    "LoggingSettings",
    "MaintenanceSettings",
    "ManagerSettings",
    "QueueRetentionSettings",
    "RetentionSection",
    "RetentionSettings",
    "SchedulerSettings",
    "WebhookSettings",
    "WorkerSettings",
)


class _Section(BaseModel):
    """A settings section: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkerSettings(_Section):
    """`[worker]`: how this process claims and runs jobs."""

    concurrency: int = Field(default=10, ge=1, description="Jobs run at once.")
    queues: list[str] | None = Field(default=None, description="Queues to work (None: all).")
    lease: float = Field(default=60.0, gt=0, description="Seconds a claim holds a job between heartbeats.")
    heartbeat_interval: float = Field(default=5.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0, description="Seconds between polls when idle.")
    drain_timeout: float = Field(default=30.0, ge=0, description="Seconds in-flight jobs get on stop.")
    stop_grace: float = Field(
        default=5.0, ge=0,
        description="Seconds a sync handler's thread gets to end after its timeout before it is lost.",
    )
    max_lost_threads: int = Field(
        default=3, ge=0, description="Lost handler threads at which the worker recycles itself (0: never)."
    )
    isolation: Literal["task", "process"] = Field(
        default="task",
        description='Where handlers run: "task" = each task\'s own isolation, "process" = every job in a child process.',
    )
    max_jobs_per_child: int = Field(default=1000, ge=1, description="Jobs a child process runs before it is replaced.")
    max_memory_per_child: float | None = Field(
        default=None, gt=0, description="MB of RSS after which a child process is replaced (checked between jobs)."
    )
    memory_limit: float | None = Field(
        default=None, gt=0,
        description="MB of RSS a job in a child may use before it is killed (tasks without their own memory_limit).",
    )

    @field_validator("queues", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [q.strip() for q in value.split(",")] if value.strip() else None
        if isinstance(value, list | tuple):
            for queue in value:
                check_name("queue name", queue)
        return value


class SchedulerSettings(_Section):
    """`[scheduler]`: leader election and the cron scheduler."""

    leader_ttl: float = Field(default=15.0, gt=0, description="Seconds a leadership lease lasts.")
    tick_interval: float = Field(default=1.0, gt=0, description="Longest wait between due checks.")
    declared_grace: float = Field(
        default=300.0, ge=10,
        description="Seconds a schedule declared in code outlives its last declaring process.",
    )


class RetentionSettings(_Section):
    """Keep at most `keep_last` finished jobs of a status, none older than `max_age` seconds."""

    keep_last: int | None = Field(default=None, ge=0)
    max_age: float | None = Field(default=None, gt=0)


RetainedStatus = Literal["completed", "failed", "cancelled"]


class QueueRetentionSettings(_Section):
    """`[maintenance.retention.queues.<queue>.<status>]`: a queue's own rule for a finished
    status; it replaces the global rule of that status in that queue (unset = the global one)."""

    completed: RetentionSettings | None = None
    failed: RetentionSettings | None = None
    cancelled: RetentionSettings | None = None

    def rules(self) -> dict[RetainedStatus, RetentionSettings]:
        """The statuses this queue sets a rule for."""
        rules: dict[RetainedStatus, RetentionSettings] = {}
        if self.completed is not None:
            rules["completed"] = self.completed
        if self.failed is not None:
            rules["failed"] = self.failed
        if self.cancelled is not None:
            rules["cancelled"] = self.cancelled
        return rules


class RetentionSection(_Section):
    """`[maintenance.retention]`: a rule per finished status, and per queue
    (`[maintenance.retention.queues.sync.completed] keep_last = 10`)."""

    completed: RetentionSettings = RetentionSettings(keep_last=1000, max_age=86400.0)
    failed: RetentionSettings = RetentionSettings(keep_last=5000, max_age=7 * 86400.0)
    cancelled: RetentionSettings = RetentionSettings(keep_last=1000, max_age=86400.0)
    queues: dict[str, QueueRetentionSettings] = Field(default_factory=dict)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: dict[str, QueueRetentionSettings]) -> dict[str, QueueRetentionSettings]:
        for queue in value:
            check_name("queue name", queue)
        return value

    def rules(self) -> dict[RetainedStatus, RetentionSettings]:
        """The global rule of each finished status."""
        return {"completed": self.completed, "failed": self.failed, "cancelled": self.cancelled}


class MaintenanceSettings(_Section):
    """`[maintenance]`: leader-only upkeep intervals (seconds) and retention per status."""

    rescue_interval: float = Field(default=5.0, gt=0)
    promote_interval: float = Field(default=1.0, gt=0)
    prune_interval: float = Field(default=60.0, gt=0)
    reap_interval: float = Field(default=30.0, gt=0)
    worker_timeout: float = Field(default=120.0, gt=0, description="A worker silent this long is dead.")
    retention: RetentionSection = Field(default_factory=RetentionSection)
    workflow_retention: float | None = Field(
        default=7 * 86400.0, gt=0,
        description="Seconds a finished workflow (its steps and edges) is kept after its last step finished; null keeps them.",
    )


class ManagerSettings(_Section):
    """`[manager]`: restarts of critical services that fail."""

    auto_restart: bool = Field(
        default=True, description="Restart critical services that fail (the seed's SCHEDULER_AUTO_RESTART)."
    )
    restart_initial_delay: float = Field(default=1.0, ge=0, description="First restart delay (doubles).")
    restart_max_delay: float = Field(default=30.0, ge=0)
    max_restarts: int = Field(default=5, ge=0, description="Consecutive restarts before giving up.")
    stop_timeout: float = Field(default=10.0, gt=0, description="Seconds a service (not the worker) gets to stop.")


class ApiKey(_Section):
    """A static API key and the role it grants."""

    key: SecretStr
    role: Literal["viewer", "admin"] = "viewer"
    name: str = "api-key"


class HttpSettings(_Section):
    """`[http]`: the health/metrics/API server."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=5050, ge=0, le=65535)
    auth_enabled: bool = True
    jwt_secret: SecretStr | None = None
    api_keys: list[ApiKey] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    dashboard_refresh_seconds: int = Field(default=5, ge=1)
    jwt_audience: str | None = Field(default=None, min_length=1, description="Required `aud` of JWTs.")
    jwt_issuer: str | None = Field(default=None, min_length=1, description="Required `iss` of JWTs.")
    session_idle_seconds: int = Field(
        default=1800, ge=1, description="A dashboard session ends after this long unused."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Extra names the server may be reached by (the Host header): `name` (any port) or "
            "`name:port`; `*` allows any. Behind a proxy, list the public name."
        ),
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for host in value:
            if host != "*" and (not host or any(c in host for c in "/@ ,?#") or host.startswith(":")):
                raise ValueError(
                    f"{host!r} is not a host name: write `tasks.example.com` or "
                    "`tasks.example.com:8443` (no scheme, no path), or `*` for any"
                )
        return [h.lower() for h in value]


class LoggingSettings(_Section):
    """`[logging]`: level and format (`auto`: rich on a terminal, JSON otherwise), and the
    level of the worker's line per job (`jobs`)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["auto", "json", "rich", "plain"] = "auto"
    jobs: Literal["DEBUG", "INFO", "WARNING", "OFF"] = Field(
        default="INFO",
        description="Level of the line logged when a job ends (its start is logged at DEBUG); OFF for none.",
    )

    @field_validator("level", "jobs", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class WebhookSettings(_Section):
    """`[alerts.notifiers.webhook]`: POST each alert event as JSON to `url`."""

    url: str = Field(description="http:// or https:// URL that receives the events.")
    timeout: float = Field(default=5.0, gt=0, description="Seconds one POST may take.")
    retries: int = Field(default=2, ge=0, description="Extra attempts after a failed POST.")
    retry_delay: float = Field(default=1.0, ge=0, description="Seconds before the first retry (doubles).")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="Extra headers (tokens).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value


class EmailSettings(_Section):
    """`[alerts.notifiers.email]`: send each alert event by SMTP."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = Field(min_length=1, description="SMTP server.")
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(alias="from", min_length=3, description="The From address.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    username: str | None = Field(default=None, description="Log in as this user (after STARTTLS).")
    password: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0, description="Seconds the SMTP conversation may take.")
    subject_prefix: str = "[taskyard]"

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [a.strip() for a in value.split(",") if a.strip()]
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address:
                raise ValueError(f"{address!r} is not an e-mail address")
        return value

    @model_validator(mode="after")
    def _login(self) -> EmailSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class AlertNotifiersSettings(_Section):
    """`[alerts.notifiers]`: where events go besides the log (always on)."""

    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None


class AlertsSettings(_Section):
    """`[alerts]`: rules the leader evaluates every `interval` seconds, and the notifiers.

    `enabled` None means: on when any rule exists (here or declared with `app.alert`).
    """

    enabled: bool | None = None
    interval: float = Field(default=15.0, gt=0, description="Seconds between evaluations.")
    rules: list[dict[str, Any]] = Field(default_factory=list)
    notifiers: AlertNotifiersSettings = Field(default_factory=AlertNotifiersSettings)

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names: set[str] = set()
        for index, table in enumerate(value):
            try:
                rule = parse_rule(table)
            except ValueError as exc:
                # The messages name the rule; a rule without a usable name gets its position.
                message = str(exc).replace("alert rule:", f"rule #{index + 1}:")
                raise ValueError(message) from None
            if rule.name in names:
                raise ValueError(f"rule {rule.name!r} is declared twice")
            names.add(rule.name)
        return value

    def alert_rules(self) -> list[AlertRule]:
        """The rules as `AlertRule`s (validated already)."""
        return [parse_rule(table) for table in self.rules]
