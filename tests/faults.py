"""A fault run on real parts, for tests/test_faults.py (about 200 jobs) and bench/faults.py (1,000).

A private Postgres cluster (initdb, free port) and a private redis-server without persistence, so crashing them
touches nothing else; SeaweedFS; the API (uvicorn); two job workers, a webhooks worker and a maintenance worker with
beat, each under `omnimedia worker`'s supervisor; a webhook receiver that checks every signature. Jobs are submitted
with Idempotency-Keys by clients that retry what did not get an answer, as a real client would. While they run:
SIGKILL a job worker twice (two different ones), the webhooks worker once, the API once (this harness restarts it,
as compose's restart policy would), kill -9 Redis once (all its data gone) and crash-restart Postgres once
(`pg_ctl -m immediate`). Then it waits for every job to finish and every final event to arrive, and reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core import migrate
from core.schema import IdempotencyKey, Job, JobEvent, as_utc, utcnow
from core.states import FINAL_JOB_STATES
from tests.receiver import Receiver
from tests.support import (
    PrivatePostgres,
    PrivateRedis,
    SeaweedS3,
    env_for,
    free_port,
    http_ok,
    private_postgres,
    private_redis,
    supervised_workers,
    wait_for,
)

TENANT = "faults"
FINAL_EVENTS = {"job.succeeded", "job.failed", "job.canceled"}


@dataclass
class Service:
    """A long-running process of the stack, its output appended to one log file."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    logs: Path
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    def start(self) -> None:
        with (self.logs / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.logs, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def kill_worker_child(self) -> int:
        """SIGKILL the Celery worker under this supervisor (its supervisor should start a new one). A worker that
        an earlier fault already brought down (kombu can exit after a Redis kill) is waited for first: its
        supervisor restarts it within its backoff, and then it is the one killed."""
        assert self.proc is not None
        supervisor = self.proc.pid
        children = wait_for(lambda: supervised_workers(supervisor), 90, f"a {self.name} worker process", 0.2)
        for child in children:
            for grandchild in child.children(recursive=True):  # the prefork pool process running the job
                grandchild.kill()
            child.kill()
        return len(children)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
            self.proc.wait()


@dataclass
class FaultReport:
    jobs: int
    accepted: int = 0  # keys the clients got a 202/200 for
    lost: int = 0  # keys without a job in a final state
    failed: int = 0
    double_landed: int = 0  # jobs with more than one final event, or outputs not from the run that committed
    delivered: int = 0  # jobs whose final event arrived, signed
    duplicate_deliveries: int = 0  # jobs whose final event arrived under more than one webhook-id
    unverified: int = 0
    keys_bound_wrong: int = 0  # keys not bound to exactly one job of the tenant, or jobs without a key
    last_fault_to_last_delivery_s: float = 0.0
    broker_recovery_s: float = 0.0  # Redis back -> every job queued at its loss published again
    wall_s: float = 0.0
    faults: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"jobs={self.jobs} lost={self.lost} double_landed={self.double_landed} failed={self.failed} "
            f"webhooks_delivered={self.delivered} duplicate_webhooks={self.duplicate_deliveries} "
            f"keys_bound_wrong={self.keys_bound_wrong} last_fault_to_last_delivery_s="
            f"{self.last_fault_to_last_delivery_s:.1f} broker_recovery_s={self.broker_recovery_s:.1f} "
            f"wall_s={self.wall_s:.1f}"
        )


class Submitter:
    """Clients that submit jobs with Idempotency-Keys and retry until the service answers (a 202, or the 200 of
    a replay): connection errors, 5xx and 429 are retried after a pause, as a client would."""

    def __init__(self, base_url: str, key: str, upload: str, count: int, clients: int = 8) -> None:
        self.base_url, self.key, self.upload, self.count, self.clients = base_url, key, upload, count, clients
        self.accepted: dict[str, str] = {}  # idempotency key -> job id
        self.answers: dict[int, int] = defaultdict(int)
        self.done = threading.Event()

    def _submit(self, index: int) -> None:
        key = f"fault-{index}"
        with httpx.Client(base_url=self.base_url, timeout=30, headers={"Authorization": f"Bearer {self.key}"}) as api:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                try:
                    response = api.post(
                        "/v1/jobs",
                        json={"task": "ocr", "input": self.upload, "formats": ["json"]},
                        headers={"Idempotency-Key": key},
                    )
                except httpx.HTTPError:
                    time.sleep(0.3)
                    continue
                self.answers[response.status_code] += 1
                if response.status_code in (200, 202):
                    self.accepted[key] = response.json()["id"]
                    return
                time.sleep(float(response.headers.get("Retry-After", "0.5")) if response.status_code >= 429 else 0.5)

    def run(self) -> None:
        with ThreadPoolExecutor(self.clients) as pool:
            list(pool.map(self._submit, range(self.count)))
        self.done.set()


T = TypeVar("T")


class Reader:
    """The harness's own reads of the database, each in a fresh session, retried while Postgres is down."""

    def __init__(self, url: str) -> None:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True)
        self._sessions = sessionmaker(engine)
        self._engine = engine

    def __call__(self, query: Callable[[Session], T], timeout_s: float = 60.0) -> T:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self._sessions() as session:
                    return query(session)
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        self._engine.dispose()


def _final_state_counts(db: Session) -> tuple[int, int]:
    jobs = db.scalars(select(Job.state).where(Job.tenant == TENANT)).all()
    return len(jobs), sum(1 for state in jobs if state in {s.value for s in FINAL_JOB_STATES})


def run_fault_run(
    workdir: Path,
    tiny_model: Path,
    s3: SeaweedS3,
    image: Path,
    jobs: int,
    fault_gap_s: float = 4.0,
    settle_s: float = 120.0,
) -> FaultReport:
    """Run the scenario (OCR jobs on `image`) and return what happened (the caller asserts)."""
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with private_postgres() as pg, private_redis(workdir / "redis") as broker:
        return _run(logs, pg, broker, tiny_model, s3, image, jobs, fault_gap_s, settle_s)


def _run(
    logs: Path,
    pg: PrivatePostgres,
    broker: PrivateRedis,
    tiny_model: Path,
    s3: SeaweedS3,
    image: Path,
    count: int,
    fault_gap_s: float,
    settle_s: float,
) -> FaultReport:
    started = time.monotonic()
    report = FaultReport(jobs=count)
    receiver = Receiver().start()
    bucket = f"faults-{os.getpid()}-{free_port()}"
    s3.client().create_bucket(Bucket=bucket)
    migrate.upgrade(pg.url)
    env = env_for(
        OMNIMEDIA_MODE="celery",
        OMNIMEDIA_DATABASE_URL=pg.url,
        OMNIMEDIA_BROKER_URL=broker.url(),
        OMNIMEDIA_STORAGE_BACKEND="s3",
        OMNIMEDIA_S3_ENDPOINT_URL=s3.endpoint,
        OMNIMEDIA_S3_BUCKET=bucket,
        OMNIMEDIA_S3_ACCESS_KEY=s3.access_key,
        OMNIMEDIA_S3_SECRET_KEY=s3.secret_key,
        OMNIMEDIA_MODEL=str(tiny_model),
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="4",
        OMNIMEDIA_MAX_ATTEMPTS="6",
        OMNIMEDIA_LEASE_S="3",
        OMNIMEDIA_RETRY_BACKOFF_S="0.5",
        OMNIMEDIA_RECONCILE_EVERY_S="2",
        OMNIMEDIA_QUEUED_DEADLINE_S="600",
        OMNIMEDIA_WEBHOOK_LOOPBACK_PORTS=f"[{receiver.port}]",
        OMNIMEDIA_WEBHOOK_RETRY_SCHEDULE_S="[0, 1, 2, 3, 5, 8, 13, 21]",
        OMNIMEDIA_WEBHOOK_SWEEP_EVERY_S="1",
        OMNIMEDIA_WEBHOOK_HANDOFF_GRACE_S="3",
        OMNIMEDIA_DB_POOL_TIMEOUT_S="5",
    )
    key = subprocess.run(
        [sys.executable, "-m", "cli", "keys", "create", "--tenant", TENANT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    port = free_port()
    cli = [sys.executable, "-m", "cli", "worker"]
    api = Service(
        "api", [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)], env, logs
    )
    services = [
        api,
        Service("jobs-1", [*cli, "--queues", "thinker", "--name", "jobs1@localhost"], env, logs),
        Service("jobs-2", [*cli, "--queues", "thinker", "--name", "jobs2@localhost"], env, logs),
        Service(
            "webhooks",
            [*cli, "--queues", "webhooks", "--pool", "threads", "--concurrency", "8", "--name", "hooks@localhost"],
            env,
            logs,
        ),
        Service(
            "maintenance",
            [*cli, "--queues", "maintenance", "--pool", "solo", "--beat", "--name", "maintenance@localhost"],
            env,
            logs,
        ),
    ]
    by_name = {s.name: s for s in services}
    base = f"http://127.0.0.1:{port}"
    read = Reader(pg.url)
    try:
        for service in services:
            service.start()
        client = httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"})
        wait_for(lambda: http_ok("/readyz", client), 60, "the API")
        hook = client.post("/v1/webhooks", json={"url": receiver.url})
        assert hook.status_code == 201, hook.text
        receiver.secrets.append(hook.json()["secret"])
        upload = client.post("/v1/uploads", files={"file": (image.name, image.read_bytes())}).json()["id"]
        # the job workers are up (their first job has run) before the clock starts
        warm = client.post("/v1/jobs", json={"task": "ocr", "input": upload}).json()["id"]
        wait_for(lambda: client.get(f"/v1/jobs/{warm}").json()["state"] == "succeeded", 180, "a warm-up job", 0.3)
        receiver.wait(1, timeout_s=60)

        submitter = Submitter(base, key, upload, count)
        threading.Thread(target=submitter.run, daemon=True).start()
        queued_at_loss: list[str] = []
        redis_back = lost_at = utcnow()

        def redis_kill() -> None:
            nonlocal redis_back, lost_at
            lost_at = utcnow()
            broker.kill()
            queued = select(Job.id).where(Job.tenant == TENANT, Job.state == "queued")
            queued_at_loss.extend(read(lambda db: list(db.scalars(queued))))
            time.sleep(1)
            broker.start()
            redis_back = utcnow()

        def api_kill() -> None:
            api.kill()
            time.sleep(1)
            api.start()  # what compose's `restart: unless-stopped` does

        plan: list[tuple[str, Callable[[], object]]] = [
            ("SIGKILL job worker 1", by_name["jobs-1"].kill_worker_child),
            ("SIGKILL the API", api_kill),
            ("kill -9 Redis (no persistence)", redis_kill),
            ("SIGKILL the webhooks worker", by_name["webhooks"].kill_worker_child),
            ("Postgres immediate restart", pg.crash_restart),
            ("SIGKILL job worker 2", by_name["jobs-2"].kill_worker_child),
        ]
        last_fault = time.monotonic()
        for what, fault in plan:
            time.sleep(fault_gap_s)
            fault()
            last_fault = time.monotonic()
            report.faults.append(f"{last_fault - started:.1f}s {what}")

        def settled() -> bool:
            if not submitter.done.is_set():
                return False
            total, final = read(_final_state_counts)
            finals = {r.payload["data"]["id"] for r in receiver.received if r.payload.get("type") in FINAL_EVENTS}
            return final == total and len(finals) >= total

        deadline = last_fault + settle_s
        while time.monotonic() < deadline and not settled():
            time.sleep(0.5)
        read(lambda db: _fill(report, db, receiver, submitter, warm))
        arrivals = [r.at for r in receiver.received if r.payload.get("type") in FINAL_EVENTS]
        report.last_fault_to_last_delivery_s = max(arrivals, default=last_fault) - last_fault
        report.broker_recovery_s = read(lambda db: _recovery(db, queued_at_loss, lost_at, redis_back))
        report.wall_s = time.monotonic() - started
        client.close()
        return report
    finally:
        read.close()
        for service in reversed(services):
            service.stop()
        receiver.stop()


def _recovery(db: Session, queued_at_loss: list[str], lost_at: datetime, redis_back: datetime) -> float:
    """Seconds from Redis being back to the last of the jobs queued when it died being published again (a "re-sent"
    event) or started after the loss (a message that survived, or one a worker had already taken and claims a moment
    later: counting only starts after Redis was back took that job, which was never lost, for unrecovered); inf if
    one never was."""
    if not queued_at_loss:
        return 0.0
    events = db.scalars(
        select(JobEvent).where(JobEvent.job_id.in_(queued_at_loss), JobEvent.at >= lost_at).order_by(JobEvent.id)
    ).all()
    first: dict[str, datetime] = {}
    for event in events:
        if event.to_state == "running" or (event.reason or "").startswith("re-sent"):
            first.setdefault(event.job_id, as_utc(event.at))
    if len(first) < len(set(queued_at_loss)):
        return float("inf")
    return max(0.0, max(first.values()).timestamp() - redis_back.timestamp())


def _fill(report: FaultReport, db: Session, receiver: Receiver, submitter: Submitter, warm: str) -> None:
    jobs = {j.id: j for j in db.scalars(select(Job).where(Job.tenant == TENANT, Job.id != warm))}
    keys = db.scalars(select(IdempotencyKey).where(IdempotencyKey.tenant == TENANT)).all()
    report.accepted = len(submitter.accepted)
    bound = [k.resource_id for k in keys]
    report.keys_bound_wrong = (
        sum(1 for k in keys if k.resource_id not in jobs)
        + (len(bound) - len(set(bound)))
        + sum(1 for job_id in jobs if job_id not in set(bound))
        + sum(
            1
            for k, job_id in submitter.accepted.items()
            if next((b.resource_id for b in keys if b.key == k), None) != job_id
        )
    )
    final_values = {s.value for s in FINAL_JOB_STATES}
    report.lost = report.jobs - sum(
        1 for k in keys if k.resource_id in jobs and jobs[k.resource_id].state in final_values
    )
    report.failed = sum(1 for j in jobs.values() if j.state == "failed")
    finals: dict[str, int] = defaultdict(int)
    for event in db.scalars(select(JobEvent).where(JobEvent.job_id.in_(list(jobs)))):
        if event.to_state in final_values:
            finals[event.job_id] += 1
    for job in jobs.values():
        from_winner = all(f"/attempt-{job.attempts}/" in key for key in (job.outputs or {}).values())
        if finals[job.id] != 1 or not from_winner or (job.state == "succeeded" and not job.outputs):
            report.double_landed += 1
    ids_by_job: dict[str, set[str]] = defaultdict(set)
    for received in receiver.received:
        if received.payload.get("type") in FINAL_EVENTS and received.payload["data"]["id"] in jobs:
            ids_by_job[received.payload["data"]["id"]].add(received.webhook_id)
            report.unverified += 0 if received.verified else 1
    report.delivered = len(ids_by_job)
    report.duplicate_deliveries = sum(1 for ids in ids_by_job.values() if len(ids) > 1)
