"""A user's FastAPI app with taskyard's management API and dashboard mounted under `/ops`
(tests/e2e/test_fastapi.py serves it with uvicorn). Its tasks are the FastAPI example's, so
`taskyard --app examples.fastapi_app:app worker` runs its jobs.
"""

from __future__ import annotations

from examples.fastapi_app import Welcome, app
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from taskyard.http.asgi import lifespan, mount

api = FastAPI(title="shop", lifespan=lifespan(app))


@api.get("/", response_class=HTMLResponse)
async def home() -> str:
    """The user's own page at `/`, which taskyard's dashboard must not shadow."""
    return "<h1>the shop</h1>"


@api.post("/signup", status_code=202)
async def signup(welcome: Welcome) -> dict[str, str]:
    job = await app.aenqueue("welcome.send", welcome)
    return {"job_id": job.id}


mount(api, app, "/ops")
