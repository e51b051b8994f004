"""RFC 9457 problem details: every error the API returns is application/problem+json with a stable type."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from api.openai_errors import OPENAI_PATHS, openai_error
from core.errors import ProblemKind, Refusal, Refused
from core.storage import StorageError
from models.errors import TaskInputError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from a route: becomes a problem+json response."""

    def __init__(self, status: int, kind: str, title: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.kind, self.title, self.detail, self.extra = status, kind, title, detail, extra
        self.headers: dict[str, str] = {}

    def response(self, instance: str, route: str | None = None) -> JSONResponse:
        """The problem+json response, for a route's exception handler or a middleware answering on its own."""
        return problem_response(
            self.status, self.kind, self.title, self.detail, instance, self.headers, route, **self.extra
        )


@dataclass(frozen=True)
class BodyLimit:
    bytes: int
    kind: str
    title: str
    reason: str


class BodyTooLarge(StarletteHTTPException):
    """Raised from the body stream: FastAPI passes HTTP exceptions through its body parsing untouched."""

    def __init__(self, limit: BodyLimit) -> None:
        super().__init__(413, limit.reason)
        self.limit = limit

    def problem(self) -> Problem:
        return Problem(413, self.limit.kind, self.limit.title, self.limit.reason, limit_bytes=self.limit.bytes)


class BodyTimeout(StarletteHTTPException):
    """Raised from the body stream when the body is not in by its deadline (api.guard)."""

    def __init__(self, total_s: float, idle_s: float) -> None:
        reason = f"the request body must arrive within {total_s:g} s, with no pause over {idle_s:g} s"
        super().__init__(408, reason, headers={"Connection": "close"})

    def problem(self) -> Problem:
        problem = Problem(408, ProblemKind.BODY_TIMEOUT, "The request body arrived too slowly", str(self.detail))
        problem.headers["Connection"] = "close"
        return problem


REFUSAL_STATUS: dict[Refusal, int] = {
    Refusal.INVALID_INPUT: 422,
    Refusal.INPUT_NOT_FOUND: 404,
    Refusal.EMPTY_INPUT: 422,
    Refusal.UPLOAD_NOT_READY: 422,
    Refusal.UPLOAD_TOO_LARGE: 413,
    Refusal.EMPTY_UPLOAD: 422,
    Refusal.UPLOAD_MISSING: 409,
    Refusal.PRESIGN_UNSUPPORTED: 409,
    Refusal.QUOTA_EXCEEDED: 429,
    Refusal.STORAGE_QUOTA_EXCEEDED: 413,
    Refusal.INVALID_WEBHOOK_URL: 422,
    Refusal.WEBHOOK_SECRET_MISSING: 422,
    Refusal.TOO_MANY_ENDPOINTS: 409,
    Refusal.ENDPOINT_DISABLED: 409,
    Refusal.EVENT_EXPIRED: 410,
    Refusal.INVALID_BATCH: 422,
    Refusal.IDEMPOTENCY_KEY_REUSED: 422,
    Refusal.REPLAY_RATE_LIMITED: 429,
    Refusal.RATE_LIMITED: 429,
    Refusal.VOICE_EXISTS: 409,
    Refusal.TOO_MANY_VOICES: 409,
    Refusal.SPEECH_UNAVAILABLE: 422,
    Refusal.REVISION_CONFLICT: 409,
    Refusal.TRANSCRIPT_LOCKED: 409,
}


def refusal_problem(exc: Refused) -> Problem:
    """The problem+json for a request core refused: the status comes from the one table above."""
    problem = Problem(REFUSAL_STATUS[exc.kind], exc.kind.value, exc.title, exc.reason, **exc.extra)
    if exc.retry_after_s is not None:
        problem.headers["Retry-After"] = str(exc.retry_after_s)
    return problem


UNAVAILABLE = (StorageError, OperationalError, PoolTimeout)


def unavailable_problem(exc: Exception) -> Problem:
    """503 + Retry-After for a dependency that is down (storage, database) or busy (no pooled connection free in
    db_pool_timeout_s): the client retries; it never sees a 500 for a fault that passes."""
    if isinstance(exc, PoolTimeout):
        problem = Problem(
            503, ProblemKind.DATABASE_BUSY, "The service is busy", "no database connection came free in time"
        )
        problem.headers["Retry-After"] = "1"
        return problem
    what = "storage" if isinstance(exc, StorageError) else "database"
    kind = ProblemKind.STORAGE_UNAVAILABLE if what == "storage" else ProblemKind.DATABASE_UNAVAILABLE
    problem = Problem(503, kind, f"{what.capitalize()} is unavailable", "try again shortly")
    problem.headers["Retry-After"] = "5"
    return problem


def overloaded_problem() -> Problem:
    problem = Problem(
        503, ProblemKind.OVERLOADED, "The service is overloaded", "too many requests in flight; retry shortly"
    )
    problem.headers["Retry-After"] = "1"
    return problem


def route_path(scope: Scope) -> str:
    """The path the router matches: the request path less the mount point (as Starlette's router computes it)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :]
    return str(path)


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str | None,
    instance: str,
    headers: dict[str, str] | None = None,
    route: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """`instance`: the path asked for; `route`: the router's path (no mount point), which tells an OpenAI route."""
    if (route or instance).startswith(OPENAI_PATHS):  # OpenAI-compatible routes answer in OpenAI's error shape
        status, error = openai_error(status, kind, title, detail)
        return JSONResponse(error, status_code=status, headers=headers)
    body = {
        "type": f"/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _allowed_methods(request: Request) -> str:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request.url.path, route_path(request.scope))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return await _problem(request, exc.problem())

    @app.exception_handler(BodyTimeout)
    async def _body_timeout(request: Request, exc: BodyTimeout) -> JSONResponse:
        return await _problem(request, exc.problem())

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return await _problem(request, refusal_problem(exc))

    @app.exception_handler(TaskInputError)
    async def _task_input(request: Request, exc: TaskInputError) -> JSONResponse:
        problem = Problem(422, ProblemKind.INVALID_PARAMS, "Task parameters are not valid", exc.reason)
        return await _problem(request, problem)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(x) for x in err.get("loc", ())], "msg": str(err.get("msg")), "type": str(err.get("type"))}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(
            422,
            ProblemKind.VALIDATION_ERROR,
            "Request is not valid",
            detail,
            request.url.path,
            route=route_path(request.scope),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        known = {404: ProblemKind.NOT_FOUND, 405: ProblemKind.METHOD_NOT_ALLOWED, 413: ProblemKind.TOO_LARGE}
        kind = known.get(exc.status_code, ProblemKind.HTTP_ERROR)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow lists every method of the path, not only the first route's
            headers["Allow"] = _allowed_methods(request)
        return problem_response(
            exc.status_code, kind, str(exc.detail), None, request.url.path, headers, route_path(request.scope)
        )

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("answering 503 on %s: %s: %s", request.url.path, type(exc).__name__, exc)
        return unavailable_problem(exc).response(request.url.path, route_path(request.scope))

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            500,
            ProblemKind.INTERNAL_ERROR,
            "Internal error",
            "the error was logged",
            request.url.path,
            route=route_path(request.scope),
        )


_ERRORS = (
    (400, "Malformed request (the body cannot be parsed)"),
    (401, "API key missing, wrong or revoked"),
    (403, "Not allowed"),
    (404, "Not found"),
    (409, "Conflict with the resource's state"),
    (413, "Body over the route's limit, or over the tenant's storage"),
    (415, "Unsupported content type"),
    (422, "Invalid request"),
    (429, "Over a tenant limit: retry after Retry-After"),
    (503, "Overloaded, or storage or database briefly unavailable: retry after Retry-After"),
)
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}
    for code, text in _ERRORS
}
