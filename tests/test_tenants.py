"""API keys and tenants: keys are stored hashed, every /v1 route needs one, and tenants never see each other."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.embedded import clear_caches, use_embedded


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> Iterator[tuple[TestClient, dict]]:
    use_embedded(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_ALLOW_ANONYMOUS="false")
    from api.app import create_app
    from core.db import get_sessionmaker
    from core.keys import create_key

    with get_sessionmaker()() as session:
        keys = {tenant: create_key(session, tenant)[1] for tenant in ("alpha", "beta")}
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client, {t: {"Authorization": f"Bearer {k}"} for t, k in keys.items()}
    clear_caches()


def test_keys_are_hashed_and_required(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.db import get_sessionmaker
    from core.keys import revoke_key
    from core.schema import ApiKey

    client, headers = setup
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer omk_nope"}).status_code == 401
    assert client.get("/healthz").status_code == 200
    token = headers["alpha"]["Authorization"].removeprefix("Bearer ")
    with get_sessionmaker()() as session:
        rows = session.scalars(select(ApiKey)).all()
        assert all(token.rsplit("_", 1)[-1] not in (r.secret_sha256 + r.id) for r in rows)
        assert revoke_key(session, token.split("_")[1])
    assert client.get("/v1/jobs", headers=headers["alpha"]).status_code == 401


def test_tenants_cannot_see_each_other(setup, media: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    client, headers = setup
    a, b = headers["alpha"], headers["beta"]
    upload = client.post("/v1/uploads", files={"file": ("s.wav", media["speech_wav"].read_bytes())}, headers=a).json()
    job = client.post("/v1/jobs", json={"task": "transcribe", "input": upload["id"]}, headers=a).json()
    batch_body = json.dumps({"custom_id": "x", "task": "transcribe", "input": upload["id"]})
    batch = client.post("/v1/batches", content=batch_body, headers={**a, "content-type": "application/jsonl"}).json()
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job['id']}", headers=a).json()["state"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for method, path in [
        ("GET", f"/v1/jobs/{job['id']}"),
        ("GET", f"/v1/jobs/{job['id']}/events"),
        ("GET", f"/v1/jobs/{job['id']}/result"),
        ("GET", f"/v1/jobs/{job['id']}/audio"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
        ("POST", f"/v1/jobs/{job['id']}/retry"),
        ("GET", f"/v1/uploads/{upload['id']}"),
        ("POST", f"/v1/uploads/{upload['id']}/confirm"),
        ("GET", f"/v1/batches/{batch['id']}"),
        ("GET", f"/v1/batches/{batch['id']}/results"),
        ("POST", f"/v1/batches/{batch['id']}/cancel"),
    ]:
        response = client.request(method, path, headers=b)
        assert response.status_code == 404, (method, path, response.status_code)
    stolen = client.post("/v1/jobs", json={"task": "transcribe", "input": upload["id"]}, headers=b)
    assert stolen.status_code == 404, "another tenant's upload cannot be used as input"
    assert client.get("/v1/jobs", headers=b).json()["data"] == []
    assert [j["id"] for j in client.get("/v1/jobs", headers=a).json()["data"]] != []
    assert client.get(f"/v1/jobs/{job['id']}/result", headers=a).status_code == 200


def test_quota_of_active_jobs_is_429(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path, media: dict[str, Path]
) -> None:
    # celery mode with no reachable broker: submitted jobs stay queued (the reconciler would re-send them)
    use_embedded(
        monkeypatch,
        tmp_path / "data",
        tiny_model,
        OMNIMEDIA_MODE="celery",
        OMNIMEDIA_ALLOW_ANONYMOUS="true",
        OMNIMEDIA_BROKER_URL="redis://127.0.0.1:1/0",
        OMNIMEDIA_TENANT_MAX_ACTIVE_JOBS="2",
    )
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        upload = client.post("/v1/uploads", files={"file": ("s.wav", media["speech_wav"].read_bytes())}).json()["id"]
        body = {"task": "transcribe", "input": upload}
        assert [client.post("/v1/jobs", json=body).status_code for _ in range(2)] == [202, 202]
        refused = client.post("/v1/jobs", json=body)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
        assert refused.json()["type"] == "/problems/quota-exceeded"
        batch = json.dumps({"custom_id": "a", "task": "transcribe", "input": upload})
        assert (
            client.post("/v1/batches", content=batch, headers={"content-type": "application/jsonl"}).status_code == 429
        )
    clear_caches()


def test_per_tenant_size_and_storage_quotas_are_413(setup, media: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    from core.db import get_sessionmaker
    from core.quotas import set_limits

    client, headers = setup
    wav = media["speech_wav"].read_bytes()
    with get_sessionmaker()() as session:
        set_limits(session, "alpha", max_upload_bytes=len(wav) // 2)
    too_big = client.post("/v1/uploads", files={"file": ("s.wav", wav)}, headers=headers["alpha"])
    assert too_big.status_code == 413 and too_big.json()["type"] == "/problems/upload-too-large"
    assert too_big.headers["content-type"] == "application/problem+json"
    presign = client.post(
        "/v1/uploads/presign", json={"filename": "s.wav", "size_bytes": len(wav)}, headers=headers["alpha"]
    )
    assert presign.status_code == 413
    assert client.post("/v1/uploads", files={"file": ("s.wav", wav)}, headers=headers["beta"]).status_code == 201
    with get_sessionmaker()() as session:
        set_limits(session, "beta", max_storage_bytes=int(len(wav) * 1.5))
    second = client.post("/v1/uploads", files={"file": ("s.wav", wav)}, headers=headers["beta"])
    assert second.status_code == 413 and "storage left" in second.json()["detail"]
    with get_sessionmaker()() as session:
        set_limits(session, "beta", max_storage_bytes=len(wav))
    full = client.post("/v1/uploads", files={"file": ("s.wav", wav)}, headers=headers["beta"])
    assert full.status_code == 413 and full.json()["type"] == "/problems/storage-quota-exceeded"


def test_active_job_quota_holds_under_concurrent_submits_on_postgres(pg_url: str) -> None:
    """Twenty sessions insert a job and check the quota at once; the tenant's counter, updated conditionally just
    before each commit, lets exactly the limit through (the first submits also race to create the counter)."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import create_engine, func
    from sqlalchemy.orm import Session

    from core import migrate
    from core.config import Settings
    from core.jobs import active
    from core.jobs.rows import JobRequest, add_jobs, queued_job
    from core.quotas import QuotaExceeded, enforce_active_jobs
    from core.schema import Job, new_id

    migrate.upgrade(pg_url)
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"), pool_size=20)
    settings = Settings(tenant_max_active_jobs=5)
    tenant = f"race-{new_id()[:8]}"

    def submit(_: int) -> bool:
        with Session(engine) as session:
            add_jobs(session, [queued_job(settings, JobRequest(tenant, "ocr"), "upload:x")])
            try:
                enforce_active_jobs(session, settings, tenant)
            except QuotaExceeded:
                session.rollback()
                return False
            session.commit()
            return True

    with ThreadPoolExecutor(20) as pool:
        accepted = sum(pool.map(submit, range(20)))
    with Session(engine) as session:
        stored = session.scalar(select(func.count()).select_from(Job).where(Job.tenant == tenant))
        counted = active.count_of(session, tenant)
    engine.dispose()
    assert accepted == stored == counted == 5


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_active_job_counter_follows_every_state_change(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The counter the quota reads is the number of the tenant's queued, running and retrying jobs after every
    kind of change: inserts (one and many), start, take-over, retry later, success, failure, cancel, user retry,
    reclaim, a refused submit and a rolled-back one."""
    from sqlalchemy import create_engine, func
    from sqlalchemy.orm import Session

    from core import migrate
    from core.config import Settings
    from core.jobs import active, machine
    from core.jobs.machine import Transition
    from core.jobs.rows import JobRequest, add_jobs, queued_job
    from core.quotas import QuotaExceeded, enforce_active_jobs
    from core.schema import Job, new_id
    from core.states import ACTIVE_JOB_STATES

    url = f"sqlite:///{tmp_path / 'c.db'}" if database == "sqlite" else request.getfixturevalue("pg_url")
    migrate.upgrade(url)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    settings = Settings(tenant_max_active_jobs=4)
    tenant = f"count-{new_id()[:8]}"

    def check(session: Session) -> int:
        really = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.tenant == tenant, Job.state.in_([s.value for s in ACTIVE_JOB_STATES]))
        )
        assert active.count_of(session, tenant) == really
        return int(really or 0)

    def new(session: Session, count: int) -> list[str]:
        jobs = [queued_job(settings, JobRequest(tenant, "ocr"), "upload:x") for _ in range(count)]
        add_jobs(session, jobs)
        return [job.id for job in jobs]

    with Session(engine, expire_on_commit=False) as session:
        a, b, c = new(session, 3)
        session.commit()
        assert check(session) == 3
        new(session, 1)
        session.rollback()  # a submit that failed after its insert
        assert check(session) == 3
        new(session, 2)
        with pytest.raises(QuotaExceeded):  # 3 + 2 > 4
            enforce_active_jobs(session, settings, tenant)
        session.rollback()
        assert check(session) == 3
        assert machine.start(session, a, "w1", 60)
        assert machine.transition(session, a, Transition.TAKE_OVER, "taken over", "w2")
        assert machine.transition(session, a, Transition.RETRY_LATER, "later", "w2")
        assert check(session) == 3
        assert machine.start(session, a, "w2", 60) and machine.transition(session, a, Transition.SUCCEED)
        assert check(session) == 2
        assert machine.transition(session, b, Transition.FAIL, "bad")
        assert machine.request_cancel(session, c) is not None
        assert check(session) == 0
        assert machine.requeue(session, b)
        assert check(session) == 1
        assert machine.start(session, b, "w1", 60)
        assert machine.transition(session, b, Transition.RECLAIM, "worker lost", "reconciler")
        assert check(session) == 1
        new(session, 3)
        enforce_active_jobs(session, settings, tenant)  # 1 + 3 fits
        session.commit()
        assert check(session) == 4
    engine.dispose()
