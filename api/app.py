"""The FastAPI application."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import fastapi_offline
from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import openapi as api_openapi
from api import problems
from api.deps import SessionDep, SettingsDep
from api.guard import CallerGuard
from api.headers import SecurityHeaders
from api.overload import LoadShedder
from api.routes import (
    admin,
    batches,
    health,
    jobs,
    openai_audio,
    openai_chat,
    review,
    search,
    speakers,
    tasks,
    uploads,
    webhooks,
)
from api.routes.admin import require_admin
from core import embedded, metrics
from core.config import get_settings
from core.health import publish_gauges, service_health


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """On the embedded default the API process also runs the jobs and sends the webhooks: start that executor,
    resume what an earlier run left queued or due, and stop it on shutdown. In celery mode there is nothing to do."""
    settings = get_settings()
    # Blocking route work (database, storage) runs on this many threads, sized with the database pool.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.resolved_api_threads()
    if settings.mode != "embedded":
        yield
        return
    executor = embedded.start(settings)
    executor.resume()
    try:
        yield
    finally:
        embedded.stop(executor)


def create_app() -> FastAPI:
    app = FastAPI(
        title="omnimedia",
        version="0.1.0",
        description="Media archives to text and speech with Qwen3-Omni: uploads, jobs, results.",
        lifespan=lifespan,
        docs_url=None,  # served below from the package's own assets: no CDN, so they work offline
        redoc_url=None,
    )
    install_docs(app)
    problems.install(app)
    # Middleware added last runs first: metrics (counts everything), security headers, load shedding, then the
    # caller guard.
    app.add_middleware(CallerGuard)
    app.add_middleware(LoadShedder, max_in_flight=get_settings().api_max_in_flight)
    app.add_middleware(SecurityHeaders)
    install_metrics(app)
    routers = (
        health,
        tasks,
        uploads,
        jobs,
        review,
        batches,
        speakers,
        search,
        webhooks,
        admin,
        openai_audio,
        openai_chat,
    )
    for module in routers:
        app.include_router(module.router)
    original = app.openapi

    def openapi() -> dict:  # type: ignore[type-arg]
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(api_openapi.components())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from assets in the fastapi-offline package (FastAPI's self-hosting recipe):
    the pages need no host but this one."""
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def _docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def _redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs-assets/favicon.png",
            with_google_fonts=False,
        )


class RequestMetrics:
    """Requests by route template and status, and their latency (a plain ASGI middleware: Starlette's
    BaseHTTPMiddleware costs a task group and a stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before it starts a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
            metrics.HTTP_SECONDS.labels(route, scope["method"]).observe(time.perf_counter() - started)


def install_metrics(app: FastAPI) -> None:
    """Request metrics on every request, and GET /metrics."""
    app.add_middleware(RequestMetrics)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_admin)])
    def _metrics(session: SessionDep, settings: SettingsDep) -> Response:
        """Prometheus exposition, for the admin token only (request counts by route tell a lot about tenants),
        with the queue and webhook gauges taken now."""
        publish_gauges(service_health(session, settings))
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


app = create_app()
