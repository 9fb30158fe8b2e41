"""Every operation of /api/v1 has a clean, stable operationId and tags, so that generated
clients get readable names (`enqueue_job`, not `enqueue_api_v1_jobs_post`)."""

from __future__ import annotations

import re

from tests.e2e.conftest import Env

#: Ids clients are built on: renaming one breaks every generated client.
STABLE = {
    "enqueueJob", "listJobs", "getJob", "cancelJob", "retryJob",
    "listQueues", "getQueue", "pauseQueue", "resumeQueue", "updateQueue", "retryFailedJobs",
    "listSchedules", "createSchedule", "getSchedule", "updateSchedule", "deleteSchedule",
    "pauseSchedule", "resumeSchedule", "triggerSchedule", "applyScheduleSet", "removeScheduleOwner",
    "listServices", "startAllServices", "getService", "startService", "stopService",
    "restartService", "pauseService", "resumeService", "runService",
    "listLeaders", "listWorkers", "listTasks", "listAlerts",
    "listWorkflows", "getWorkflow", "cancelWorkflow", "retryWorkflow",
}
CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z]+)*$")


async def test_every_api_operation_has_a_unique_camel_case_id_and_tags(env: Env) -> None:
    response = await env.client.get("/api/v1/openapi.json", headers=env.creds.viewer_key)
    assert response.status_code == 200
    operations = [
        (method.upper(), path, op)
        for path, item in response.json()["paths"].items() if path.startswith("/api/v1/")
        for method, op in item.items()
    ]
    assert operations
    ids = [op.get("operationId") for _, _, op in operations]
    # FastAPI's generated default (`enqueue_api_v1_jobs_post`) fails this: each is declared.
    for method, path, op in operations:
        assert CAMEL.match(op.get("operationId") or ""), f"{method} {path}: operationId {op.get('operationId')!r}"
        assert op.get("tags"), f"{method} {path} has no tags"
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert set(ids) >= STABLE, STABLE - set(ids)

