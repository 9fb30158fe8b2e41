"""The web dashboard at `/`: server-rendered pages (Jinja2, SVG charts, local CSS/JS, no
build step), a cookie session made from a bearer token, and CSRF-checked forms for actions.

Every URL it emits (links, form actions, assets, redirects, the live stream, cookie paths)
starts with the request's ASGI `root_path`, so the dashboard works mounted under a prefix of
another app (`taskyard.http.asgi.mount`) or behind a proxy that strips one (uvicorn
`--root-path`) as well as at `/`.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from taskyard.core.names import NAME_PATTERN
from taskyard.errors import NotFoundError, TaskyardError
from taskyard.http.api import services as service_ops
from taskyard.http.api.access import client_address
from taskyard.http.api.queues import known_queue
from taskyard.http.api.schemas import ID_PATTERN
from taskyard.http.auth import (
    ANONYMOUS_ADMIN,
    AuthError,
    TooManyFailures,
    audit,
    check_bind,
    shared_authenticator,
)
from taskyard.http.bulk import (
    BULK_IDS_LIMIT,
    BulkAction,
    clean_queue,
    count_matching,
    drain_queue,
    run_bulk,
)
from taskyard.http.dashboard import live, pages, workflows
from taskyard.http.dashboard.history import ServiceHistory
from taskyard.http.dashboard.render import STATIC, Renderer
from taskyard.http.dashboard.session import COOKIE, Session, same_origin

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build_router",)

NAV = [("/", "Overview"), ("/queues", "Queues"), ("/jobs", "Jobs"), ("/workflows", "Workflows"),
       ("/schedules", "Schedules"), ("/services", "Services"), ("/workers", "Workers")]
LOGIN_COOKIE = "taskyard_login"
NOTICES = {
    "pause": "Paused.", "resume": "Resumed.", "retry": "Sent back to pending.",
    "retry-failed": "Failed jobs sent back to pending.", "cancel": "Cancelled.",
    "trigger": "Triggered: a job was enqueued.", "start": "Started.", "stop": "Stopped.",
    "restart": "Restarted.", "run": "Ran once.",
    "drain": "Drained: the queue's pending and scheduled jobs were cancelled.",
    "clean": "Cleaned: the queue's old finished jobs were deleted.",
    "wf-cancel": "Workflow cancelled: its unfinished steps were cancelled.",
    "wf-retry": "Workflow resumed: its failed and cancelled steps were sent back.",
}
ACTIONS = {
    "queues": ("pause", "resume", "retry-failed"),
    "jobs": ("cancel", "retry"),
    "workflows": ("cancel", "retry"),
    "schedules": ("pause", "resume", "trigger"),
    "services": service_ops.ACTIONS,
}
_NAME = re.compile(NAME_PATTERN)
_ID = re.compile(ID_PATTERN)


def root_of(request: Request) -> str:
    """The prefix the dashboard is served under (the ASGI `root_path`, e.g. `/ops`), or ''."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _safe_next(value: str | None, root: str, default: str = "/") -> str:
    """Only paths of this dashboard: under `root`, no scheme, no `//host`, no backslashes.
    `default` is relative to `root`."""
    if value and value.startswith(root + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return root + default


def cookie_path(request: Request) -> str:
    """The path of the dashboard's cookies: the prefix it is served under, else `/`."""
    return root_of(request) or "/"


def build_router(ctx: HttpContext) -> APIRouter:
    """The dashboard's routes (kept out of the OpenAPI document)."""
    http = ctx.settings.http
    check_bind(http.host, http.auth_enabled)
    auth = shared_authenticator(ctx)
    book = ctx.session_book()
    render = Renderer()
    refresh = max(1, int(http.dashboard_refresh_seconds))
    history = ServiceHistory()
    if ctx.manager is not None:
        ctx.manager.subscribe(history.record)
    # With authentication off (loopback only) everyone is admin; forms still carry a token.
    open_session = Session(principal=ANONYMOUS_ADMIN, expires=2**62, nonce=secrets.token_urlsafe(16))
    router = APIRouter(include_in_schema=False)

    def session_of(request: Request) -> Session | None:
        return open_session if not auth.enabled else book.read(request)

    def base(request: Request, session: Session | None, active: str = "") -> dict[str, Any]:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return {
            "root": root_of(request),
            "session": session,
            "csrf": book.csrf_token(session) if session else "",
            "can_act": bool(session and session.principal.is_admin),
            "auth_enabled": auth.enabled,
            "refresh": refresh,
            "nav": NAV,
            "active": active,
            "here": here,
            "notice": NOTICES.get(request.query_params.get("done", "")),
            "page_title": "",
        }

    def used(request: Request, session: Session, response: Response) -> Response:
        # Sliding idle timeout: a page the user asked for re-issues the cookie; the page's own
        # background refresh does not, so a tab left open still idles out.
        if auth.enabled and request.headers.get("x-taskyard-refresh") != "1":
            book.refresh(response, session, secure=request.url.scheme == "https", path=cookie_path(request))
        return response

    def to_login(request: Request) -> Response:
        root = root_of(request)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # Encoded, so the page's own query (`?queue=a&status=failed`) survives the round trip.
        login = root + "/login" + (f"?{urlencode({'next': target})}" if target not in (root, root + "/") else "")
        return render.secure(RedirectResponse(login, 303))

    def error(request: Request, session: Session | None, status: int, message: str) -> Response:
        return render.page("error.html", {**base(request, session), "status_code": status,
                                          "message": message, "page_title": str(status)}, status)

    def admin_refusal(request: Request, session: Session, form: Any) -> Response | None:
        """The answer to an action form that may not act (another site, a stale CSRF token,
        a viewer), or None when it may."""
        if not (same_origin(request) and book.check_csrf(session, str(form.get("csrf", "")))):
            return error(request, session, 403, "The form expired or came from another site; reload the page.")
        if not session.principal.is_admin:
            return error(request, session, 403, "The viewer role may only look.")
        return None

    async def page(request: Request, active: str, template: str, load: Any) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        try:
            data = await load()
        except NotFoundError as exc:
            return used(request, session, error(request, session, 404, str(exc)))
        return used(request, session, render.page(template, {**base(request, session, active), **data}))

    # -- static files and login --------------------------------------------------------------
    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        found = STATIC.get(name)
        if found is None:
            return Response("not found", 404, media_type="text/plain")
        body, media_type = found
        return Response(body, media_type=media_type, headers={
            "Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        if session_of(request) is not None:
            return render.secure(RedirectResponse(_safe_next(request.query_params.get("next"), root_of(request)), 303))
        return login_page(request, None, 200)

    def login_page(request: Request, message: str | None, status: int) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = render.page("login.html", {
            **base(request, None), "page_title": "Sign in", "error": message,
            "login_csrf": book.login_token(nonce),
            "dev_token_file": ctx.dev_token_file,
            "has_jwt_secret": ctx.settings.http.jwt_secret is not None,
            "next_url": _safe_next(request.query_params.get("next"), root_of(request)),
        }, status)
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=1800, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=root_of(request) + "/login")
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not (same_origin(request) and nonce and secrets.compare_digest(
                str(form.get("csrf", "")), book.login_token(nonce))):
            return login_page(request, "The form expired; please sign in again.", 403)
        try:
            principal = auth.authenticate_client(str(form.get("token", "")).strip(), client_address(request))
        except TooManyFailures as exc:
            response = login_page(request, f"Too many failed sign-ins; try again in {exc.retry_after}s.", 429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except AuthError:
            return login_page(request, "That token is not valid.", 401)
        response = RedirectResponse(_safe_next(str(form.get("next", "")), root_of(request)), 303)
        book.issue(response, principal, secure=request.url.scheme == "https", path=cookie_path(request))
        response.delete_cookie(LOGIN_COOKIE, path=root_of(request) + "/login")
        audit(principal, "dashboard.login", "dashboard")
        return render.secure(response)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = session_of(request)
        if session is not None:
            form = await request.form()
            if not (same_origin(request) and book.check_csrf(session, str(form.get("csrf", "")))):
                return error(request, session, 403, "The form expired or came from another site; reload the page.")
            if auth.enabled:
                book.revoke(session)
                audit(session.principal, "dashboard.logout", "dashboard")
        response = RedirectResponse(root_of(request) + "/login", 303)
        response.delete_cookie(COOKIE, path=cookie_path(request))
        return render.secure(response)

    # -- pages -------------------------------------------------------------------------------
    @router.get("/")
    async def overview(request: Request) -> Response:
        try:
            rng, by = pages.chart_view(dict(request.query_params))
        except ValueError as exc:
            session = session_of(request)
            if session is None:
                return to_login(request)
            return error(request, session, 400, str(exc))
        return await page(request, "/", "overview.html", lambda: pages.overview_page(ctx, rng, by))

    @router.get("/live")
    async def live_events(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return Response("sign in first", 401, media_type="text/plain")
        try:
            ids = live.job_ids(request.query_params.get("jobs"))
        except ValueError as exc:
            return Response(str(exc), 400, media_type="text/plain")
        body = live.stream(ctx, ids, float(refresh), request.is_disconnected)
        return StreamingResponse(body, media_type="text/event-stream", headers={
            "Cache-Control": "no-store", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})

    @router.get("/queues")
    async def queues(request: Request) -> Response:
        async def load() -> dict[str, Any]:
            return {
                "page_title": "Queues",
                "queues": await pages.list_queues(ctx.app),
                "unclaimable": await pages.unclaimable_tasks(ctx.app),
                "now": ctx.app.clock.now(),
            }
        return await page(request, "/queues", "queues.html", load)

    @router.get("/jobs")
    async def jobs(request: Request) -> Response:
        params = dict(request.query_params)
        return await page(request, "/jobs", "jobs.html", lambda: pages.jobs_page(ctx, params))

    @router.get("/jobs/count")
    async def jobs_count(request: Request) -> Response:
        """How many jobs a filter matches, up to the bulk cap (for the confirmation)."""
        session = session_of(request)
        if session is None:
            return JSONResponse({"error": "sign in again"}, 401)
        f = pages.job_filter_params(dict(request.query_params))
        count, more = await count_matching(ctx.app, pages.job_filter_of(f, ctx.app.clock.now()))
        return JSONResponse({"count": count, "more": more}, headers={"Cache-Control": "no-store"})

    @router.post("/jobs/bulk")
    async def jobs_bulk(request: Request) -> Response:
        """Retry, cancel or delete the checked jobs, or every job the view's filter matches."""
        session = session_of(request)
        if session is None:
            return to_login(request)
        form = await request.form()
        if (refused := admin_refusal(request, session, form)) is not None:
            return refused
        action = str(form.get("action", ""))
        if action not in {a.value for a in BulkAction}:
            return error(request, session, 400, f"unknown bulk action {action!r}: retry, cancel or delete")
        f = pages.job_filter_params({k: str(v) for k, v in form.items()})
        ids = [str(v) for v in form.getlist("ids")]
        if form.get("scope") == "filter":
            report = await run_bulk(ctx.app, BulkAction(action), job_filter=pages.job_filter_of(f, ctx.app.clock.now()))
            target = "filter"
        elif not ids or len(ids) > BULK_IDS_LIMIT or not all(_ID.fullmatch(i) for i in ids):
            return error(request, session, 400, f"select between 1 and {BULK_IDS_LIMIT} jobs")
        else:
            report = await run_bulk(ctx.app, BulkAction(action), ids=ids)
            target = f"{len(ids)} ids"
        audit(session.principal, f"jobs.bulk_{action}", target, [
            "via=dashboard", f"matched={report.matched}", f"done={report.done}",
            f"skipped={report.skipped_total}", *[f"{k}={v}" for k, v in f.items() if v and target == "filter"]])
        back = root_of(request) + pages.jobs_url(f, bulk=action, n_done=str(report.done), n_skipped=str(report.skipped_total))
        return used(request, session, render.secure(RedirectResponse(back, 303)))

    @router.post("/queues/{name}/drain")
    @router.post("/queues/{name}/clean")
    async def queue_tidy(request: Request, name: str) -> Response:
        """Drain: cancel the queue's pending and scheduled jobs. Clean: delete its finished
        jobs that finished more than `hours` ago."""
        session = session_of(request)
        if session is None:
            return to_login(request)
        form = await request.form()
        if (refused := admin_refusal(request, session, form)) is not None:
            return refused
        if not _NAME.fullmatch(name):
            return error(request, session, 404, "no such queue")
        try:
            await known_queue(ctx.app, name)
            if request.url.path.endswith("/drain"):
                action, n = "drain", await drain_queue(ctx.app, name)
            else:
                hours = str(form.get("hours", ""))
                if not hours.isdigit() or not 0 <= int(hours) <= 87600:
                    return error(request, session, 400, f"hours must be a whole number from 0 to 87600, not {hours!r}")
                action, n = "clean", await clean_queue(ctx.app, name, int(hours))
        except TaskyardError as exc:
            return error(request, session, 404 if isinstance(exc, NotFoundError) else 409, str(exc))
        audit(session.principal, f"queues.{action}", name, ["via=dashboard", f"jobs={n}"])
        done = RedirectResponse(f"{root_of(request)}/queues?done={action}&n={n}", 303)
        return used(request, session, render.secure(done))

    @router.get("/jobs/{job_id}")
    async def job(request: Request, job_id: str) -> Response:
        async def load() -> dict[str, Any]:
            found = await ctx.app.aget_job(job_id) if _ID.fullmatch(job_id) else None
            if found is None:
                raise NotFoundError(f"no job with id {job_id!r}")
            return await pages.job_page(ctx, found)
        return await page(request, "/jobs", "job.html", load)

    @router.get("/workflows")
    async def workflow_list(request: Request) -> Response:
        params = dict(request.query_params)
        return await page(request, "/workflows", "workflows.html", lambda: workflows.workflows_page(ctx, params))

    @router.get("/workflows/{workflow_id}")
    async def workflow(request: Request, workflow_id: str) -> Response:
        return await page(request, "/workflows", "workflow.html", lambda: workflows.workflow_page(ctx, workflow_id))

    @router.get("/workflows/{workflow_id}/steps/{step}")
    async def workflow_map(request: Request, workflow_id: str, step: str) -> Response:
        params = dict(request.query_params)
        return await page(request, "/workflows", "workflow_map.html",
                          lambda: workflows.map_page(ctx, workflow_id, step, params))

    @router.get("/schedules")
    async def schedules(request: Request) -> Response:
        return await page(request, "/schedules", "schedules.html", lambda: pages.schedules_page(ctx))

    @router.get("/services")
    async def services(request: Request) -> Response:
        return await page(request, "/services", "services.html", lambda: pages.services_page(ctx, history))

    @router.get("/workers")
    async def workers(request: Request) -> Response:
        async def load() -> dict[str, Any]:
            await ctx.app.open()
            return await pages.workers_page(ctx)
        return await page(request, "/workers", "workers.html", load)

    # -- actions -----------------------------------------------------------------------------
    @router.post("/{noun}/{target}/{action}")
    async def act(request: Request, noun: str, target: str, action: str) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        if action not in ACTIONS.get(noun, ()) or not _NAME.fullmatch(target):
            return error(request, session, 404, "no such action")
        form = await request.form()
        if (refused := admin_refusal(request, session, form)) is not None:
            return refused
        try:
            await _perform(ctx, noun, target, action)
        except TaskyardError as exc:
            status = 404 if isinstance(exc, NotFoundError) else 409
            return error(request, session, status, str(exc))
        audit(session.principal, f"{noun}.{action}", target, ["via=dashboard"])
        back = _safe_next(str(form.get("next", "")), root_of(request), f"/{noun}")
        back = re.sub(r"([?&])done=[^&]*&?", r"\1", back).rstrip("?&")
        notice = f"wf-{action}" if noun == "workflows" else action
        done = RedirectResponse(f"{back}{'&' if '?' in back else '?'}done={notice}", 303)
        return used(request, session, render.secure(done))

    return router


async def _perform(ctx: HttpContext, noun: str, target: str, action: str) -> None:
    """Do one dashboard action through the same operations the API uses."""
    app = ctx.app
    if noun == "queues":
        await known_queue(app, target)
        if action == "retry-failed":
            await app.aretry_failed(target)
        else:
            await (app.apause_queue if action == "pause" else app.aresume_queue)(target)
    elif noun == "jobs":
        if not _ID.fullmatch(target):
            raise NotFoundError(f"no job with id {target!r}")
        await (app.acancel_job if action == "cancel" else app.aretry_job)(target)
    elif noun == "workflows":
        if not _ID.fullmatch(target):
            raise NotFoundError(f"no workflow with id {target!r}")
        backend = await app.backend_for_loop()
        act = backend.workflow_cancel if action == "cancel" else backend.workflow_retry
        await act(workflow_id=target, now=app.clock.now())
    elif noun == "schedules":
        if await app.schedules.aget(target) is None:
            raise NotFoundError(f"no schedule named {target!r}")
        await getattr(app.schedules, f"a{action}")(target)
    else:
        await service_ops.act(ctx.manager, target, action)
