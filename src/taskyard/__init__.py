"""taskyard: a Python task server — durable job queue, workers, distributed cron, services,
a health and management HTTP API and a dashboard, on SQLite, PostgreSQL or Redis.
"""

from taskyard.app import EnqueueItem, Taskyard
from taskyard.clock import FakeClock
from taskyard.context import JobContext
from taskyard.core.job import Job, JobStatus
from taskyard.core.queue import RateLimit
from taskyard.core.retry import Retry, exponential
from taskyard.core.schedule import MisfirePolicy, Schedule
from taskyard.core.workflow import Policy, Workflow, WorkflowStatus
from taskyard.errors import (
    BackendError,
    BackendUnavailable,
    Cancel,
    ConfigError,
    InvalidNameError,
    InvalidTransitionError,
    JobNotFound,
    JobTimeoutError,
    LeaseLost,
    MemoryLimitExceeded,
    PayloadError,
    RetryLater,
    ScheduleError,
    StepFailedError,
    TaskyardError,
    UnknownTaskError,
    WorkflowNotFound,
)
from taskyard.services.base import Service, ServiceStatus
from taskyard.services.periodic import PeriodicService, PeriodicServiceConfig
from taskyard.task import JobOptions, Task
from taskyard.workflow import MapRef, StepRef, WorkflowBuilder

__version__ = "0.1.0"

__all__ = (
    "BackendError",
    "BackendUnavailable",
    "Cancel",
    "ConfigError",
    "EnqueueItem",
    "FakeClock",
    "InvalidNameError",
    "InvalidTransitionError",
    "Job",
    "JobContext",
    "JobNotFound",
    "JobOptions",
    "JobStatus",
    "JobTimeoutError",
    "LeaseLost",
    "MapRef",
    "MemoryLimitExceeded",
    "MisfirePolicy",
    "PayloadError",
    "PeriodicService",
    "PeriodicServiceConfig",
    "Policy",
    "RateLimit",
    "Retry",
    "RetryLater",
    "Schedule",
    "ScheduleError",
    "Service",
    "ServiceStatus",
    "StepFailedError",
    "StepRef",
    "Task",
    "Taskyard",
    "TaskyardError",
    "UnknownTaskError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowNotFound",
    "WorkflowStatus",
    "__version__",
    "exponential",
)
