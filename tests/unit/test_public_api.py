"""The public API is pinned: removing or renaming a name is a deliberate change."""

import taskyard

EXPECTED = {
    "BackendError", "BackendUnavailable", "Cancel", "ConfigError", "EnqueueItem", "FakeClock",
    "InvalidTransitionError", "Job", "JobContext", "JobNotFound", "JobStatus", "JobTimeoutError",
    "LeaseLost", "MemoryLimitExceeded",
    "MisfirePolicy", "PayloadError", "PeriodicService", "PeriodicServiceConfig", "RateLimit",
    "Retry", "RetryLater", "Schedule", "ScheduleError", "Service", "ServiceStatus", "Taskyard",
    "Task", "TaskyardError", "UnknownTaskError", "__version__", "exponential", "JobOptions",
    "MapRef", "Policy", "StepFailedError", "StepRef", "Workflow", "WorkflowBuilder",
    "WorkflowNotFound", "WorkflowStatus",
}


def test_all_is_a_pinned_tuple() -> None:
    assert isinstance(taskyard.__all__, tuple)
    assert set(taskyard.__all__) >= EXPECTED
    for name in taskyard.__all__:
        assert hasattr(taskyard, name), name


def test_job_status_values() -> None:
    assert [s.value for s in taskyard.JobStatus] == [
        "blocked", "scheduled", "pending", "running", "completed", "failed", "cancelled",
    ]
