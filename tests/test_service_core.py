"""Core on real Postgres and SeaweedFS: migrations, the state machine under races, storage backends."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select

from core import migrate
from core.config import Settings
from core.db import make_engine
from core.jobs import machine as jobs
from core.jobs.machine import Transition
from core.schema import Job, JobEvent, metadata, new_id, utcnow
from core.states import JobState
from core.storage import LocalStorage, S3Storage, TooLarge
from tests.support import SeaweedS3

TABLES = set(metadata.tables)


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'm.db'}"


def test_migrations_up_down_up(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    for name, table in metadata.tables.items():  # the migrations build exactly the schema the code maps
        assert {c["name"] for c in inspect(engine).get_columns(name)} == {c.name for c in table.columns}, name
    migrate.downgrade(db_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    migrate.upgrade(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


@pytest.fixture(scope="module")
def pg_sessions(pg_url: str):  # type: ignore[no-untyped-def]
    from sqlalchemy.orm import sessionmaker

    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _queued_job(sessions) -> str:  # type: ignore[no-untyped-def]
    with sessions() as session:
        job = Job(
            id=new_id(),
            task="transcribe",
            params={},
            input_ref="upload:x",
            queue="thinker",
            state="queued",
            created_at=utcnow(),
            queued_at=utcnow(),
            max_attempts=3,
        )
        session.add(job)
        session.commit()
        return job.id


def test_concurrent_start_has_one_winner(pg_sessions) -> None:  # type: ignore[no-untyped-def]
    job_id = _queued_job(pg_sessions)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        with pg_sessions() as session:
            barrier.wait()
            wins.append(jobs.start(session, job_id, f"w{i}", lease_s=60))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    with pg_sessions() as session:
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
        assert [e.to_state for e in events] == ["running"]
        assert session.get(Job, job_id).attempts == 1


def test_finished_jobs_never_run_again(pg_sessions) -> None:  # type: ignore[no-untyped-def]
    job_id = _queued_job(pg_sessions)
    with pg_sessions() as session:
        assert jobs.start(session, job_id, "w", 60)
        assert jobs.transition(session, job_id, Transition.SUCCEED, "done", result={"text": "a"})
        assert not jobs.start(session, job_id, "late", 0)
        assert not jobs.transition(session, job_id, Transition.SUCCEED, "again", result={"text": "b"})
        assert not jobs.transition(session, job_id, Transition.CANCEL)
        assert session.get(Job, job_id).result == {"text": "a"}


def _race_start_and_cancel(sessions, job_id: str) -> bool:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(2)
    outcome: dict[str, bool] = {}

    def do_start() -> None:
        with sessions() as session:
            barrier.wait()
            outcome["started"] = jobs.start(session, job_id, "w", 60)

    def do_cancel() -> None:
        with sessions() as session:
            barrier.wait()
            jobs.request_cancel(session, job_id)

    threads = [threading.Thread(target=do_start), threading.Thread(target=do_cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome["started"]


def test_cancel_race_with_start(pg_sessions) -> None:  # type: ignore[no-untyped-def]
    for _ in range(10):
        job_id = _queued_job(pg_sessions)
        started = _race_start_and_cancel(pg_sessions, job_id)
        with pg_sessions() as session:
            job = session.get(Job, job_id)
            if started:
                assert job.state == JobState.RUNNING.value and job.cancel_requested
            else:
                assert job.state == JobState.CANCELED.value


def test_lease_take_over_only_when_stale(pg_sessions) -> None:  # type: ignore[no-untyped-def]
    job_id = _queued_job(pg_sessions)
    with pg_sessions() as session:
        assert jobs.start(session, job_id, "a", lease_s=60)
        assert not jobs.start(session, job_id, "b", lease_s=60)
        assert jobs.start(session, job_id, "b", lease_s=0)
        assert session.get(Job, job_id).worker == "b"


def _s3_settings(s3: SeaweedS3) -> Settings:
    return Settings(
        storage_backend="s3",
        s3_endpoint_url=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_bucket="omnimedia-core-test",
        upload_part_bytes=5 * 1024**2,
    )


@pytest.fixture(params=["s3", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "s3":
        store = S3Storage(_s3_settings(request.getfixturevalue("s3")))
        store.ensure_bucket()
        return store
    return LocalStorage(tmp_path / "store", 5 * 1024**2)


def test_streamed_upload_in_parts(storage) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * (20 * 1024**2 // 256 + 7)
    stored = storage.upload_stream("uploads/big", io.BytesIO(data), max_bytes=len(data))
    assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert storage.size("uploads/big") == len(data)
    assert storage.sha256("uploads/big") == stored.sha256
    assert "uploads/big" in list(storage.list("uploads/"))
    with pytest.raises(TooLarge):
        storage.upload_stream("uploads/toobig", io.BytesIO(data), max_bytes=len(data) - 1)
    assert storage.size("uploads/toobig") is None


def test_s3_presigned_put_and_auth(s3: SeaweedS3) -> None:
    store = S3Storage(_s3_settings(s3))
    store.ensure_bucket()
    url = store.presign_put("uploads/presigned", 300, len(b"media bytes"))
    assert url is not None
    assert httpx.put(url, content=b"media bytes").status_code == 200
    assert store.get_bytes("uploads/presigned") == b"media bytes"
    bad = S3Storage(
        Settings(
            storage_backend="s3",
            s3_endpoint_url=s3.endpoint,
            s3_access_key="nobody",
            s3_secret_key="wrong",
            s3_bucket="omnimedia-core-test",
        )
    )
    with pytest.raises(Exception, match=r"InvalidAccessKeyId|AccessDenied|403"):
        bad.get_bytes("uploads/presigned")


def test_reconciler_requeues_lost_workers_and_messages(pg_sessions) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from sqlalchemy import update

    from core.jobs.reconcile import reconcile_jobs as reconcile

    settings = Settings(lease_s=10, queued_deadline_s=60)  # the lost ones are an hour old; the healthy one beat now
    lost_worker, lost_message, exhausted, healthy = (_queued_job(pg_sessions) for _ in range(4))
    long_ago = utcnow() - timedelta(hours=1)
    with pg_sessions() as session:
        for job_id in (lost_worker, exhausted, healthy):
            assert jobs.start(session, job_id, "dead-worker", lease_s=60)
        session.execute(update(Job).where(Job.id.in_([lost_worker, exhausted])).values(heartbeat_at=long_ago))
        session.execute(update(Job).where(Job.id == exhausted).values(attempts=3))
        session.execute(update(Job).where(Job.id == lost_message).values(queued_at=long_ago))
        session.commit()
        sent: list[tuple[str, str]] = []
        report = reconcile(session, settings, lambda job_id, queue: sent.append((job_id, queue)))
    assert report.requeued == [lost_worker] and report.resent == [lost_message] and report.failed == [exhausted]
    assert sorted(sent) == sorted([(lost_worker, "thinker"), (lost_message, "thinker")])
    with pg_sessions() as session:
        assert session.get(Job, lost_worker).state == "queued"
        assert session.get(Job, exhausted).state == "failed"
        assert session.get(Job, healthy).state == "running"
        reasons = [e.reason for e in session.scalars(select(JobEvent).where(JobEvent.job_id == lost_message))]
        assert "re-sent by reconciler" in reasons


def test_abandoned_presigned_uploads_are_purged(pg_sessions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A presigned upload never confirmed stops holding quota: its row and any object go once its URL is long dead."""
    from datetime import timedelta

    from core.schema import Upload
    from core.storage import LocalStorage
    from core.uploads import purge_abandoned

    storage = LocalStorage(tmp_path / "store")
    settings = Settings(presign_expiry_s=60)
    with pg_sessions() as session:
        for age_s, upload_id in ((3 * 3600, new_id()), (60, new_id())):
            key = f"tenants/p/uploads/{upload_id}"
            storage.put_bytes(key, b"partial")
            session.add(
                Upload(
                    id=upload_id,
                    tenant="p",
                    filename="a.wav",
                    storage_key=key,
                    state="pending",
                    size_bytes=100,
                    created_at=utcnow() - timedelta(seconds=age_s),
                )
            )
        session.commit()
        assert purge_abandoned(session, storage, settings) == 1
        left = session.scalars(select(Upload).where(Upload.tenant == "p")).all()
    assert len(left) == 1 and storage.size(left[0].storage_key) == len(b"partial")
    assert len(list(storage.list("tenants/p/uploads/"))) == 1


def test_a_broker_reset_re_sends_every_waiting_job_at_once(pg_sessions, redis_server) -> None:  # type: ignore[no-untyped-def]
    """Redis lost its data (restart without persistence, failover): the waiting jobs' messages are gone. The marker
    the service keeps in the broker is gone too, so the next pass re-sends them all, not after the queued deadline."""
    import redis

    from core import queue
    from core.jobs.reconcile import reconcile_jobs

    settings = Settings(broker_url=redis_server.url(12), queued_deadline_s=3600)
    broker = redis.Redis.from_url(settings.broker_url)
    broker.delete(queue.BROKER_MARKER)
    waiting = sorted(_queued_job(pg_sessions) for _ in range(3))
    sent: list[str] = []
    with pg_sessions() as session:
        assert queue.broker_was_reset(settings), "no marker yet"
        assert queue.broker_was_reset(settings), "still none: a pass that failed before marking is repeated"
        queue.mark_broker(settings)
        assert not queue.broker_was_reset(settings), "the marker is back"
        healthy = reconcile_jobs(session, settings, lambda job_id, _q: sent.append(job_id), broker_reset=False)
        assert healthy.resent == [] and sent == [], "a healthy backlog is not sent twice"
        broker.delete(queue.BROKER_MARKER)  # what a restart without persistence does
        reset = queue.broker_was_reset(settings)
        report = reconcile_jobs(session, settings, lambda job_id, _q: sent.append(job_id), broker_reset=reset)
    assert reset and set(waiting) <= set(report.resent) and set(waiting) <= set(sent)
    broker.delete(queue.BROKER_MARKER)


def test_the_last_maintenance_pass_is_in_the_health_view(pg_sessions, redis_server) -> None:  # type: ignore[no-untyped-def]
    from core.health import MAINTENANCE_MARKER, record_maintenance, service_health

    settings = Settings(mode="celery", broker_url=redis_server.url(12))
    with pg_sessions() as session:
        import redis

        redis.Redis.from_url(settings.broker_url).delete(MAINTENANCE_MARKER)
        assert service_health(session, settings).maintenance_age_s is None
        record_maintenance(settings)
        view = service_health(session, settings)
    assert view.maintenance_age_s is not None and 0 <= view.maintenance_age_s < 30
    assert set(view.queues) == {"thinker", "talker", "maintenance", "webhooks"}


def test_a_maintenance_pass_that_fails_half_way_through_a_broker_reset_is_repeated(pg_sessions, redis_server) -> None:  # type: ignore[no-untyped-def]
    """The marker goes back only once every waiting job was sent again: a pass that died half-way (Postgres
    restarted under it) leaves it missing, so the next pass sends the rest instead of leaving them for an hour."""
    import redis

    from core import queue
    from core.maintenance import run_maintenance

    settings = Settings(mode="celery", broker_url=redis_server.url(12), queued_deadline_s=3600)
    broker = redis.Redis.from_url(settings.broker_url)
    broker.delete(queue.BROKER_MARKER)
    waiting = {_queued_job(pg_sessions) for _ in range(3)}
    sent: list[str] = []

    def dies_on_the_second(job_id: str, _queue: str) -> None:
        if sent:
            raise ConnectionError("database went away")
        sent.append(job_id)

    with pg_sessions() as session, pytest.raises(ConnectionError):
        run_maintenance(session, settings, dies_on_the_second)
    assert queue.broker_was_reset(settings), "the marker is still missing"
    with pg_sessions() as session:
        run_maintenance(session, settings, lambda job_id, _q: sent.append(job_id))
    assert waiting <= set(sent) and not queue.broker_was_reset(settings)
    broker.delete(queue.BROKER_MARKER)


def test_a_retry_due_a_lease_ago_that_nobody_started_is_sent_again(pg_sessions) -> None:  # type: ignore[no-untyped-def]
    """A retry waits in a delayed message held by the worker that scheduled it; when that worker is killed the
    message is gone for the broker's visibility timeout (hours). A retry due for a whole lease is sent again;
    one not yet due, and a plain queued backlog, are not."""
    from datetime import timedelta

    from sqlalchemy import update

    from core.jobs.reconcile import reconcile_jobs

    settings = Settings(lease_s=30, queued_deadline_s=3600)
    overdue, not_due, backlog = (_queued_job(pg_sessions) for _ in range(3))
    with pg_sessions() as session:
        now = utcnow()
        for job_id, due in ((overdue, now - timedelta(seconds=45)), (not_due, now + timedelta(seconds=20))):
            session.execute(update(Job).where(Job.id == job_id).values(state="retrying", attempts=1, queued_at=due))
        session.execute(update(Job).where(Job.id == backlog).values(queued_at=now - timedelta(seconds=600)))
        session.commit()
        sent: list[str] = []
        report = reconcile_jobs(session, settings, lambda job_id, _q: sent.append(job_id))
    assert overdue in sent and overdue in report.resent
    assert not_due not in sent and backlog not in sent


def test_a_new_broker_that_holds_the_backlog_gets_none_of_it_again(pg_sessions, redis_server) -> None:  # type: ignore[no-untyped-def]
    """A brand-new Redis (first start, a replaced broker) has no marker, yet it holds every message sent to it: the
    first maintenance pass re-sends only the waiting jobs it does not hold (it used to re-send the whole backlog:
    1,036 re-sends for 1,000 jobs)."""
    import json

    import redis
    from celery import Celery

    from core import queue
    from core.celery_app import RUN_JOB
    from core.maintenance import run_maintenance

    settings = Settings(mode="celery", broker_url=redis_server.url(13), queued_deadline_s=3600)
    broker = redis.Redis.from_url(settings.broker_url)
    broker.flushdb()
    held = [_queued_job(pg_sessions) for _ in range(5)]
    lost = [_queued_job(pg_sessions) for _ in range(2)]
    publisher = Celery(broker=settings.broker_url)
    for job_id in held[:4]:
        publisher.send_task(RUN_JOB, args=[job_id], queue="thinker")
    delivered = broker.lpop("thinker")  # one message a worker took and has not acknowledged yet
    broker.hset("unacked", "tag-1", json.dumps([json.loads(delivered), "", "thinker"]))
    publisher.send_task(RUN_JOB, args=[held[4]], queue="talker")
    publisher.close()
    assert queue.held_job_ids(settings, ("thinker", "talker")) == set(held)
    sent: list[str] = []
    with pg_sessions() as session:
        run_maintenance(session, settings, lambda job_id, _queue: sent.append(job_id))
    assert set(lost) <= set(sent) and not set(held) & set(sent)
    assert not queue.broker_was_reset(settings), "the marker is set once the lost ones were sent"
    broker.flushdb()
