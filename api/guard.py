"""The caller is known before any body byte is read, no body grows past its route's limit or its time, and no
tenant takes more than its share of the requests in flight.

An ASGI middleware in front of every route. For /v1 routes (the admin routes have their own token) it settles the
tenant from the Authorization header (401 at once, body unread), refuses a tenant already at its share of the
requests in flight (429 + Retry-After: the others go on being served), and sets the most bytes the route accepts
(413 at once when the declared length is over it). It then counts the body as it streams in, chunked bodies
included, and stops it with a 413 as soon as the limit is passed, or a 408 when it has not arrived within
api_body_timeout_s or a read waits past api_body_idle_s. Every other path (health, docs, admin) gets the JSON body
limit and the same deadlines. Paths are matched as the router matches them, with the mount point (root_path)
removed. Routes read the tenant it settled (`api.deps.TenantDep`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.openai_chat_body import CHAT_TEXT_BYTES
from api.problems import (
    UNAVAILABLE,
    BodyLimit,
    BodyTimeout,
    BodyTooLarge,
    Problem,
    refusal_problem,
    route_path,
    unavailable_problem,
)
from core.batches import MAX_BATCH_BYTES
from core.config import get_settings
from core.db import get_sessionmaker
from core.errors import ProblemKind, Refusal, Refused
from core.keys import anonymous_allowed, tenant_for_token
from core.quotas import upload_limit
from core.schema import LOCAL_TENANT
from core.uploads import FRAMING_SLACK_BYTES

JSON_BODY_BYTES = 1024 * 1024
CHAT_ROUTE = "/v1/chat/completions"
MEDIA_ROUTES = {"/v1/uploads", "/v1/audio/transcriptions", "/v1/audio/translations", CHAT_ROUTE}


@dataclass(frozen=True)
class Caller:
    tenant: str
    body_limit: BodyLimit


def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, ProblemKind.UNAUTHORIZED, "API key required", detail)
    problem.headers["WWW-Authenticate"] = "Bearer"
    return problem


def identify(authorization: str, method: str, path: str) -> Caller:
    """The caller's tenant and body limit from the request line and headers alone (blocking: database)."""
    settings = get_settings()
    with get_sessionmaker()() as session:
        if authorization.lower().startswith("bearer "):
            tenant = tenant_for_token(session, authorization[7:])
            if tenant is None:
                raise _unauthorized("the API key is not valid or was revoked")
        elif anonymous_allowed(session, settings):
            tenant = LOCAL_TENANT
        else:
            raise _unauthorized("send Authorization: Bearer <API key> (create one with `omnimedia keys create`)")
        route = path.rstrip("/")
        if method == "POST" and route == CHAT_ROUTE:  # JSON: its text, and inline media as base64 (4 bytes per 3)
            limit, reason = upload_limit(session, settings, tenant)
            if settings.openai_media_max_bytes < limit:
                limit = settings.openai_media_max_bytes
                reason = f"media in a chat call is at most {limit} bytes"
            body = BodyLimit(limit * 4 // 3 + CHAT_TEXT_BYTES, Refusal.UPLOAD_TOO_LARGE, "Upload is too large", reason)
        elif method == "POST" and route in MEDIA_ROUTES:  # a file in a multipart body
            limit, reason = upload_limit(session, settings, tenant)
            body = BodyLimit(limit + FRAMING_SLACK_BYTES, Refusal.UPLOAD_TOO_LARGE, "Upload is too large", reason)
        elif method == "POST" and route == "/v1/batches":
            reason = f"the limit is {MAX_BATCH_BYTES} bytes"
            body = BodyLimit(MAX_BATCH_BYTES, ProblemKind.BATCH_TOO_LARGE, "Batch body is too large", reason)
        else:
            body = JSON_LIMIT
    return Caller(tenant, body)


JSON_LIMIT = BodyLimit(
    JSON_BODY_BYTES, ProblemKind.TOO_LARGE, "Request body is too large", f"the limit is {JSON_BODY_BYTES} bytes"
)


def _declared(headers: Headers) -> int:
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


def over_share_problem(share: int) -> Problem:
    detail = f"this tenant has {share} requests in flight, its share of the service; retry shortly"
    problem = Problem(429, ProblemKind.TOO_MANY_REQUESTS, "Too many requests in flight", detail)
    problem.headers["Retry-After"] = "1"
    return problem


def _limited(receive: Receive, limit: BodyLimit, total_s: float, idle_s: float) -> Receive:
    """The body as it arrives, stopped past its size limit (413) or its deadlines (408). Once the body is
    complete, reads (a streaming response waiting for the client to leave) pass through untouched."""
    received = 0
    complete = False
    deadline = time.monotonic() + total_s

    async def receive_within_limits() -> Message:
        nonlocal received, complete
        if complete:
            return await receive()
        wait_s = min(idle_s, deadline - time.monotonic())
        message = None
        with anyio.move_on_after(max(wait_s, 0)):
            message = await receive()
        if message is None:
            raise BodyTimeout(total_s, idle_s)
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit.bytes:
                raise BodyTooLarge(limit)
            complete = not message.get("more_body", False)
        return message

    return receive_within_limits


class CallerGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight: Counter[str] = Counter()  # /v1 requests per tenant (one event loop: no lock needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        path = route_path(scope)
        headers = Headers(scope=scope)
        if not path.startswith("/v1/") or path.startswith("/v1/admin/"):  # no tenant here; bounded all the same
            if _declared(headers) > JSON_LIMIT.bytes:
                await self._answer(BodyTooLarge(JSON_LIMIT).problem(), scope, receive, send)
                return
            bounded = _limited(receive, JSON_LIMIT, settings.api_body_timeout_s, settings.api_body_idle_s)
            await self.app(scope, bounded, send)
            return
        try:
            caller = await anyio.to_thread.run_sync(identify, headers.get("authorization", ""), scope["method"], path)
        except Refused as refused:  # e.g. a tenant whose storage is full: no upload can fit
            await self._answer(refusal_problem(refused), scope, receive, send)
            return
        except Problem as problem:
            await self._answer(problem, scope, receive, send)
            return
        except UNAVAILABLE as exc:  # the key lookup met a database that is down or has no connection free
            await self._answer(unavailable_problem(exc), scope, receive, send)
            return
        if _declared(headers) > caller.body_limit.bytes:
            await self._answer(BodyTooLarge(caller.body_limit).problem(), scope, receive, send)
            return
        share = settings.resolved_tenant_in_flight()
        if self.in_flight[caller.tenant] >= share:
            await self._answer(over_share_problem(share), scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = caller.tenant
        self.in_flight[caller.tenant] += 1
        try:
            bounded = _limited(receive, caller.body_limit, settings.api_body_timeout_s, settings.api_body_idle_s)
            await self.app(scope, bounded, send)
        finally:
            self.in_flight[caller.tenant] -= 1
            if not self.in_flight[caller.tenant]:
                del self.in_flight[caller.tenant]

    @staticmethod
    async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
        await problem.response(route_path(scope))(scope, receive, send)
