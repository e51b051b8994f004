"""The floor for bench/submit_load.py: a minimal FastAPI route that does one INSERT and one Redis push per request
on a pool sized like the service's (core.db.make_engine, the same settings), run by the same uvicorn. Nothing
here is the service: it is what a submit costs at the least, on this machine, in this run."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import redis
from fastapi import FastAPI
from sqlalchemy import text

from core.config import get_settings
from core.db import make_engine

settings = get_settings()
engine = make_engine(settings.resolved_database_url(), settings)
broker = redis.Redis.from_url(settings.broker_url)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.resolved_api_threads()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS floor_jobs (id varchar(32) PRIMARY KEY, body text)"))
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/floor", status_code=202)
def submit(body: dict[str, object]) -> dict[str, str]:
    job_id = uuid.uuid4().hex
    with engine.begin() as conn:
        insert = text("INSERT INTO floor_jobs (id, body) VALUES (:id, :body)")
        conn.execute(insert, {"id": job_id, "body": json.dumps(body)})
    broker.lpush("floor", job_id)
    return {"id": job_id}
