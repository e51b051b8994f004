"""Orchestration overhead with a NO-OP ENGINE: N jobs submitted through the HTTP API (Postgres, Redis, SeaweedFS)
and completed by a Celery worker running our job pipeline (fetch from S3, ffprobe + decode, segment plan, outputs
to S3, state machine), against raw Celery no-op tasks drained by the same kind of worker, in the same run.
Last line: ratio=ours/raw jobs per second (goal >= 0.5) and API submit latency p50/p99 (goal p50 <= 10 ms)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, func, select

from core import migrate
from core.schema import Job
from tests.support import env_for, free_port, http_ok, postgres_database, seaweedfs, wait_for

N = int(os.environ.get("BENCH_JOBS", "200"))
BROKER = "redis://127.0.0.1:6379/10"
WORKER_ARGS = ["--pool=prefork", "--concurrency=1", "--loglevel=WARNING", "--without-gossip", "--without-mingle"]


def raw_celery_rate(tmp: Path) -> float:
    env = env_for(RAW_CELERY_BROKER=BROKER)
    log = (tmp / "raw.log").open("wb")
    cmd = [sys.executable, "-m", "celery", "-A", "bench.raw_celery", "worker", "-Q", "raw", "-n", "raw@localhost"]
    worker = subprocess.Popen([*cmd, *WORKER_ARGS], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        from bench.raw_celery import noop

        noop.apply_async(args=[0]).get(timeout=60)  # worker is up
        start = time.perf_counter()
        results = [noop.apply_async(args=[i]) for i in range(N)]
        for result in results:
            result.get(timeout=120)
        return N / (time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main() -> None:
    redis.Redis.from_url(BROKER).flushdb()
    with tempfile.TemporaryDirectory() as tmp_name, postgres_database() as db_url:
        tmp = Path(tmp_name)
        raw_rate = raw_celery_rate(tmp)
        redis.Redis.from_url(BROKER).flushdb()
        migrate.upgrade(db_url)
        with seaweedfs(tmp / "s3") as s3:
            env = env_for(
                OMNIMEDIA_MODE="celery", OMNIMEDIA_DATABASE_URL=db_url, OMNIMEDIA_BROKER_URL=BROKER,
                OMNIMEDIA_STORAGE_BACKEND="s3", OMNIMEDIA_S3_ENDPOINT_URL=s3.endpoint,
                OMNIMEDIA_S3_ACCESS_KEY=s3.access_key, OMNIMEDIA_S3_SECRET_KEY=s3.secret_key,
                OMNIMEDIA_S3_BUCKET="bench", OMNIMEDIA_MODEL="noop",
            )  # fmt: skip
            key = subprocess.run([sys.executable, "-m", "cli", "keys", "create", "--tenant", "bench"], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
            port = free_port()
            api = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port),
                                    "--log-level", "warning"], env=env)  # fmt: skip
            worker = subprocess.Popen([sys.executable, "-m", "bench.noop_worker", "-Q", "thinker", "-n",
                                       "noop@localhost", *WORKER_ARGS], env=env)  # fmt: skip
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                  headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            try:
                wait_for(lambda: http_ok("/readyz", client), 60, "API")
                media = tmp / "one.wav"
                subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-ar",
                                "16000", str(media)], check=True)  # fmt: skip
                upload_id = client.post("/v1/uploads", files={"file": ("one.wav", media.read_bytes())}).json()["id"]
                body = {"task": "transcribe", "input": upload_id}
                assert client.post("/v1/jobs", json=body).status_code == 202  # warm-up job
                engine = create_engine(db_url.replace("postgresql+psycopg", "postgresql+psycopg"))
                wait_for(lambda: _done(engine) >= 1, 120, "warm-up job")
                latencies = []
                start = time.perf_counter()
                for _ in range(N):
                    t0 = time.perf_counter()
                    response = client.post("/v1/jobs", json=body)
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 202, response.text
                wait_for(lambda: _done(engine) >= N + 1, 600, "all jobs", 0.05)
                ours_rate = N / (time.perf_counter() - start)
                media_ms = _media_ms(media)
            finally:
                client.close()
                worker.terminate()
                api.terminate()
                worker.wait(timeout=30)
                api.wait(timeout=30)
    latencies.sort()
    p50, p99 = statistics.median(latencies) * 1000, latencies[int(0.99 * (len(latencies) - 1))] * 1000
    print(f"engine=NO-OP (benchmark only) jobs={N}")
    print(f"ours_jobs_s={ours_rate:.1f} raw_celery_jobs_s={raw_rate:.1f}")
    print(f"of which ffprobe + ffmpeg decode per job: {media_ms:.1f} ms (process start-up dominates on short files)")
    print(f"ratio={ours_rate / raw_rate:.3f} ours_jobs_s={ours_rate:.1f} baseline_jobs_s={raw_rate:.1f} "
          f"submit_p50_ms={p50:.1f} submit_p99_ms={p99:.1f}")  # fmt: skip


def _media_ms(path: Path) -> float:
    from models.media import load_media

    start = time.perf_counter()
    for _ in range(10):
        load_media(path)
    return (time.perf_counter() - start) * 100


def _done(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Job).where(Job.state == "succeeded")).scalar_one())


if __name__ == "__main__":
    main()
