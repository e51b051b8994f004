"""Webhooks on real parts: uvicorn API, a GPU-queue Celery worker running jobs, a separate CPU Celery worker on
the webhooks queue (with beat for the sweeper), Postgres, Redis, SeaweedFS and a real receiver verifying every
signature with the standardwebhooks library. The retry schedule is shortened by a setting."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.schema import WebhookAttempt, WebhookDelivery
from tests.receiver import Receiver
from tests.stack import Stack, running_stack
from tests.support import PrivateRedis, SeaweedS3, free_port, stop, wait_for

pytestmark = pytest.mark.slow
REDIS_DB = 7
BUCKET = "omnimedia-hooks"
SCHEDULE = "[0, 1, 2, 3, 5, 8, 10, 15, 20, 30]"  # production: [0, 5, 300, 1800, 7200, 18000, 36000, ...]
FLAKY, DOWN = free_port(), free_port()  # the receivers' ports: the only loopback ports the service may call


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, s3: SeaweedS3, tiny_model: Path, redis_server: PrivateRedis
) -> Iterator[Stack]:
    env = {
        "OMNIMEDIA_WEBHOOK_LOOPBACK_PORTS": f"[{FLAKY}, {DOWN}]",
        "OMNIMEDIA_WEBHOOK_RETRY_SCHEDULE_S": SCHEDULE,
        "OMNIMEDIA_WEBHOOK_REDISPATCH_S": "20",
        "OMNIMEDIA_WEBHOOK_SWEEP_EVERY_S": "1",
        "OMNIMEDIA_RECONCILE_EVERY_S": "3600",
    }
    logs = tmp_path_factory.mktemp("hooks-logs")
    with running_stack(logs, pg_url, s3, tiny_model, redis_server.url(REDIS_DB), BUCKET, tenant="hooks", **env) as api:
        yield api


@pytest.fixture(scope="module")
def workers(stack: Stack) -> Iterator[None]:
    """One worker for jobs, one CPU worker (threads) for webhooks plus beat: the two never share a process."""
    procs = []
    for name, args in (
        ("jobs", ["--queues", "thinker", "--pool", "prefork", "--concurrency", "2"]),
        ("webhooks", ["--queues", "webhooks", "--pool", "threads", "--concurrency", "8", "--beat"]),
    ):
        log = (stack.logs / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "workers.main", *args, "--name", f"{name}@localhost", "--loglevel", "INFO"],
                env=stack.env,
                cwd=stack.logs,
                stdout=log,
                stderr=subprocess.STDOUT,  # beat writes its schedule file here
            )
        )
    yield
    for proc in procs:
        stop(proc)


def register(stack: Stack, receiver: Receiver) -> dict[str, Any]:
    response = stack.api.post("/v1/webhooks", json={"url": receiver.url})
    assert response.status_code == 201, response.text
    receiver.secrets.append(response.json()["secret"])
    return dict(response.json())


def submit_ocr(stack: Stack, media: dict[str, Path], count: int) -> list[str]:
    image = media["image_png"]
    upload = stack.api.post("/v1/uploads", files={"file": (image.name, image.read_bytes())}).json()["id"]
    ids = []
    for _ in range(count):
        response = stack.api.post("/v1/jobs", json={"task": "ocr", "input": upload})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def test_three_500s_then_200_is_delivered_once_with_four_attempts_logged(
    stack: Stack, workers: None, media: dict[str, Path]
) -> None:
    receiver = Receiver(port=FLAKY).start()
    endpoint = register(stack, receiver)
    try:
        receiver.answer(500, 500, 500)
        (job_id,) = submit_ocr(stack, media, 1)
        got = receiver.wait(1, timeout_s=90)
    finally:
        receiver.stop()
    assert [r.status for r in got] == [500, 500, 500, 200]
    assert all(r.verified for r in got), "every attempt carries a valid Standard Webhooks signature"
    assert len({r.webhook_id for r in got}) == 1, "the webhook-id is the same on every attempt"
    assert got[-1].payload["type"] == "job.succeeded" and got[-1].payload["data"]["id"] == job_id
    with stack.db() as session:  # the attempt log lives in Postgres
        delivery = session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint["id"])).one()
        attempts = session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.number)
        ).all()
    assert delivery.state == "succeeded" and [a.status_code for a in attempts] == [500, 500, 500, 200]
    assert [a.number for a in attempts] == [1, 2, 3, 4] and all(a.latency_ms is not None for a in attempts)
    assert [a.next_attempt_at is not None for a in attempts] == [True, True, True, False]
    assert stack.api.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 204


def test_receiver_down_for_a_burst_of_50_jobs_then_up(stack: Stack, workers: None, media: dict[str, Path]) -> None:
    receiver = Receiver(port=DOWN)
    endpoint = register(stack, receiver)  # registered while nothing listens on its port
    job_ids = submit_ocr(stack, media, 50)

    def all_final() -> bool:
        states = {stack.api.get(f"/v1/jobs/{job_id}").json()["state"] for job_id in job_ids}
        return states <= {"succeeded", "failed", "canceled"}

    wait_for(all_final, 240, "the 50 jobs", every_s=1)
    log = stack.api.get("/v1/webhooks/deliveries", params={"endpoint_id": endpoint["id"], "limit": 100}).json()
    assert len(log) == 50 and all(d["state"] in ("pending", "sending") for d in log), "nothing got through yet"
    assert any(d["attempts"] >= 2 for d in log), "attempts were made while the receiver was down"
    assert all("connection failed" in a["error"] for d in log for a in d["attempt_log"])
    receiver.start()
    try:
        got = receiver.wait(50, timeout_s=120)
        with stack.db() as session:
            query = select(WebhookDelivery.state).where(WebhookDelivery.endpoint_id == endpoint["id"])
            states = list(session.scalars(query))
    finally:
        receiver.stop()
        stack.api.delete(f"/v1/webhooks/{endpoint['id']}")
    ids = [r.webhook_id for r in got]
    assert len(ids) == len(set(ids)) == 50, "each event arrived exactly once (by webhook-id)"
    assert all(r.verified for r in got)
    assert sorted(r.payload["data"]["id"] for r in got) == sorted(job_ids)
    assert states == ["succeeded"] * 50
