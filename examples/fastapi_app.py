"""A FastAPI app that enqueues taskyard jobs from its own routes and serves taskyard's management
API and dashboard under `/taskyard` (docs/integrations.md): the dashboard at
http://localhost:8000/taskyard/, every link of it under that prefix.

    uvicorn examples.fastapi_app:api --port 8000          # the web app (enqueues)
    taskyard --app examples.fastapi_app:app worker        # a worker (runs the jobs)

    curl -X POST localhost:8000/signup -H 'content-type: application/json' -d '{"email": "a@b.c"}'
    curl localhost:8000/taskyard/api/v1/jobs -H "Authorization: Bearer $KEY"

The backend is `TASKYARD_BACKEND` (else taskyard.toml's, else `sqlite:///taskyard.db`); the
management API's credentials and the Host check's port come from taskyard's settings, e.g.
`TASKYARD_HTTP__PORT=8000` and `TASKYARD_HTTP__API_KEYS='[{"key": "...", "role": "admin"}]'`.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from taskyard import Taskyard
from taskyard.http.asgi import lifespan, mount

app = Taskyard(name="fastapi-example")


class Welcome(BaseModel):
    """Payload of `welcome.send`."""

    email: str


@app.task("welcome.send", queue="emails")
async def send_welcome(welcome: Welcome) -> str:
    """Stands in for sending an e-mail."""
    return f"welcomed {welcome.email}"


#: The web app: taskyard's backend is opened at startup and closed at shutdown.
api = FastAPI(title="signup", lifespan=lifespan(app))


@api.post("/signup", status_code=202)
async def signup(welcome: Welcome) -> dict[str, str]:
    """Enqueue the welcome e-mail and answer at once."""
    job = await app.aenqueue("welcome.send", welcome)
    return {"job_id": job.id}


@api.get("/signup/{job_id}")
async def signup_status(job_id: str) -> dict[str, str | None]:
    """Where the welcome e-mail is."""
    job = await app.aget_job(job_id)
    return {"status": job.status.value if job else None}


mount(api, app, "/taskyard")
