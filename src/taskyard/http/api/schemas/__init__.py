"""Request and response bodies of the API (pydantic), and their conversions from the core model.

By subject: `fields` (shared field types), `jobs` (jobs and queues), `schedules`, `workflows`, `cluster`
(services, leaders, alerts, workers, tasks); everything is importable from here.
"""

from __future__ import annotations

from taskyard.http.api.schemas.cluster import (
    AlertOut,
    AlertsOut,
    LeaderOut,
    LeaseOut,
    ServiceOut,
    TaskOut,
    WorkerOut,
)
from taskyard.http.api.schemas.fields import ID_PATTERN, NAME_PATTERN, Name, UtcDatetime
from taskyard.http.api.schemas.jobs import (
    BulkOut,
    BulkRequest,
    BulkSkippedOut,
    EnqueueRequest,
    JobOut,
    JobPageOut,
    QueueOut,
    QueueSettingsPatch,
    RateLimitIn,
    RetriedOut,
    SearchText,
)
from taskyard.http.api.schemas.schedules import (
    ApplySetRequest,
    RemovedOut,
    ScheduleCreate,
    ScheduleOut,
    SchedulePatch,
)
from taskyard.http.api.schemas.workflows import (
    EdgeOut,
    WorkflowOut,
    WorkflowPageOut,
    WorkflowSummaryOut,
)

__all__ = (
    "ID_PATTERN",
    "NAME_PATTERN",
    "AlertOut",
    "AlertsOut",
    "ApplySetRequest",
    "BulkOut",
    "BulkRequest",
    "BulkSkippedOut",
    "EdgeOut",
    "EnqueueRequest",
    "JobOut",
    "JobPageOut",
    "LeaderOut",
    "LeaseOut",
    "Name",
    "QueueOut",
    "QueueSettingsPatch",
    "RateLimitIn",
    "RemovedOut",
    "RetriedOut",
    "ScheduleCreate",
    "ScheduleOut",
    "SchedulePatch",
    "SearchText",
    "ServiceOut",
    "TaskOut",
    "UtcDatetime",
    "WorkerOut",
    "WorkflowOut",
    "WorkflowPageOut",
    "WorkflowSummaryOut",
)
