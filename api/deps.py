"""Dependencies as typed aliases, so route signatures read like sentences."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Concatenate, ParamSpec, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.problems import Problem
from core.config import Settings, get_settings
from core.db import get_sessionmaker
from core.errors import ProblemKind
from core.storage import Storage, get_storage

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class _SessionGate:
    """How many request sessions may be open at once, and threads to close them on.

    Every open session may hold a pooled connection, and a sync route's response is serialised on a route thread
    while its session is still open; the caller guard also takes a thread and a connection for its key lookup.
    So at most (pool size + overflow - route threads) sessions are open at once: however many requests wait,
    the guard and every open session always find a connection, and no request holds one while it queues for a
    thread (that wait ran into the pool timeout under load). Waiting for a slot costs no thread, only memory;
    the load shedder (api.overload) bounds how many wait."""

    slots: anyio.CapacityLimiter
    closers: anyio.CapacityLimiter


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SessionGate] = weakref.WeakKeyDictionary()


def _gate() -> _SessionGate:
    loop = asyncio.get_running_loop()  # anyio primitives belong to one event loop: tests run several
    gate = _GATES.get(loop)
    if gate is None:
        sessions = get_settings().resolved_api_sessions()
        gate = _GATES[loop] = _SessionGate(anyio.CapacityLimiter(sessions), anyio.CapacityLimiter(sessions))
    return gate


async def _session() -> AsyncIterator[Session]:
    gate = _gate()
    async with gate.slots:
        session = get_sessionmaker()()  # no connection yet: the first query takes one, in the route's thread
        try:
            yield session
        finally:
            await anyio.to_thread.run_sync(session.close, limiter=gate.closers)


SessionDep = Annotated[Session, Depends(_session, scope="function")]  # closed before the response is sent


async def with_session(work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking `work(session, ...)` on a route thread with a request session taken under the gate only now:
    for routes that first wait on something slow (media arriving from a URL) and must hold no session meanwhile."""
    gate = _gate()
    async with gate.slots:

        def call() -> T:
            with get_sessionmaker()() as session:
                return work(session, *args, **kwargs)

        return await anyio.to_thread.run_sync(call)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def _tenant(request: Request) -> str:
    """The caller's tenant, settled from the headers by api.guard.CallerGuard before the body was read."""
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:  # only reachable if a /v1 route were served without the guard
        raise Problem(401, ProblemKind.UNAUTHORIZED, "API key required", "the caller could not be identified")
    return str(tenant)


TenantDep = Annotated[str, Depends(_tenant)]
