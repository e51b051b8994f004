"""Database engine and sessions, made once per process."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings, get_settings


def make_engine(url: str, settings: Settings | None = None) -> Engine:
    """SQLite (one writer at a time) with SQLAlchemy's default pool; a server database with the pool sized by
    settings, so a request waits db_pool_timeout_s at most for a connection (then the API answers 503), and its
    idle connections checked before use."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):  # type: ignore[no-untyped-def]
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    settings = settings or get_settings()
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
    )
    _ping_idle_connections(engine)
    return engine


IDLE_PING_S = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle for a second or more: a connection the server
    dropped (a restart, an idle timeout) is replaced before a caller meets it, and busy workers do not pay a round
    trip (and a transaction) per checkout, as with pool_pre_ping. A connection used a moment before a restart fails
    its next statement once, and the pool then replaces all of them (SQLAlchemy's disconnect handling)."""

    @event.listens_for(engine, "connect")
    def _connected(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as exc:
            raise DisconnectionError("the pooled connection is gone") from exc  # the pool connects again


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().resolved_database_url())


@lru_cache
def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)
