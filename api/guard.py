"""The caller is known before any body byte is read, and no body grows past its route's limit.

An ASGI middleware in front of every /v1 route (the admin routes have their own token): it settles the tenant from
the Authorization header (401 at once, body unread) and the most bytes the route accepts (413 at once when the
declared length is over it), then counts the body as it streams in, chunked bodies included, and stops it with a
413 as soon as the limit is passed. Routes read the tenant it settled (`api.deps.TenantDep`)."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import UNAVAILABLE, BodyLimit, BodyTooLarge, Problem, refusal_problem, unavailable_problem
from core.batches import MAX_BATCH_BYTES
from core.config import get_settings
from core.db import get_sessionmaker
from core.errors import Refused
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
    problem = Problem(401, "unauthorized", "API key required", detail)
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
        if method == "POST" and route in MEDIA_ROUTES:  # a file, multipart or base64 in JSON (4 bytes per 3)
            limit, reason = upload_limit(session, settings, tenant)
            framed = limit * 4 // 3 + JSON_BODY_BYTES if route == CHAT_ROUTE else limit + FRAMING_SLACK_BYTES
            body = BodyLimit(framed, "upload-too-large", "Upload is too large", reason)
        elif method == "POST" and route == "/v1/batches":
            reason = f"the limit is {MAX_BATCH_BYTES} bytes"
            body = BodyLimit(MAX_BATCH_BYTES, "batch-too-large", "Batch body is too large", reason)
        else:
            body = BodyLimit(
                JSON_BODY_BYTES, "too-large", "Request body is too large", f"the limit is {JSON_BODY_BYTES} bytes"
            )
    return Caller(tenant, body)


def _limited(receive: Receive, limit: BodyLimit) -> Receive:
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit.bytes:
                raise BodyTooLarge(limit)
        return message

    return receive_within_limit


class CallerGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/") or path.startswith("/v1/admin/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
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
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > caller.body_limit.bytes:
            await self._answer(BodyTooLarge(caller.body_limit).problem(), scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = caller.tenant
        await self.app(scope, _limited(receive, caller.body_limit), send)

    @staticmethod
    async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
        await problem.response(scope.get("path", ""))(scope, receive, send)
