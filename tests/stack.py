"""The service on real parts for tests: a uvicorn API subprocess on a free port against Postgres, the test run's
own Redis (a database of it per stack) and SeaweedFS."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from core import migrate
from tests.support import SeaweedS3, env_for, free_port, http_ok, stop, wait_for

ADMIN_TOKEN = "stack-admin-token"


@dataclass
class Stack:
    api: httpx.Client
    env: dict[str, str]
    key: str
    db_url: str
    s3: SeaweedS3
    logs: Path

    def db(self) -> Session:
        return Session(create_engine(self.db_url.replace("postgresql://", "postgresql+psycopg://")))


@contextmanager
def running_stack(
    logs: Path,
    pg_url: str,
    s3: SeaweedS3,
    tiny_model: Path,
    broker: str,
    bucket: str,
    tenant: str = "e2e",
    **extra_env: str,
) -> Iterator[Stack]:
    redis.Redis.from_url(broker).flushdb()
    migrate.upgrade(pg_url)
    env = env_for(
        OMNIMEDIA_MODE="celery",
        OMNIMEDIA_DATABASE_URL=pg_url,
        OMNIMEDIA_BROKER_URL=broker,
        OMNIMEDIA_STORAGE_BACKEND="s3",
        OMNIMEDIA_S3_ENDPOINT_URL=s3.endpoint,
        OMNIMEDIA_S3_BUCKET=bucket,
        OMNIMEDIA_S3_ACCESS_KEY=s3.access_key,
        OMNIMEDIA_S3_SECRET_KEY=s3.secret_key,
        OMNIMEDIA_MODEL=str(tiny_model),
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="6",
        OMNIMEDIA_TALKER_MAX_NEW_TOKENS="30",
        OMNIMEDIA_TALKER_DO_SAMPLE="false",
        OMNIMEDIA_TALKER_WORKERS="true",
        OMNIMEDIA_LEASE_S="2",
        OMNIMEDIA_RETRY_BACKOFF_S="0.2",
        OMNIMEDIA_ADMIN_TOKEN=ADMIN_TOKEN,
        **extra_env,
    )
    key = subprocess.run(
        [sys.executable, "-m", "cli", "keys", "create", "--tenant", tenant],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    port = free_port()
    api_log = (logs / "api.log").open("wb")
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=api_log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"})

    wait_for(lambda: http_ok("/readyz", client), 60, "the API")
    try:
        yield Stack(client, env, key, pg_url, s3, logs)
    finally:
        client.close()
        stop(api)
        api_log.close()
