"""Orchestration overhead with a NO-OP ENGINE (bench.standin, benchmark only): N jobs on 1-3 s clips submitted
through the HTTP API (Postgres, Redis, SeaweedFS) and completed by a Celery worker running our job pipeline (fetch
from S3, probe + decode in-process, plan, result JSON to S3, state machine), against raw Celery no-op tasks drained
by the same kind of worker, in the same run. Also: the worker's CPU milliseconds per job (all of it is outside the
engine, which does nothing; goal <= 20 ms) and database transactions per job, API submit included (Postgres'
own counters). Last line: ratio=ours/raw jobs per second (goal >= 0.2)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf
from sqlalchemy import create_engine, func, select, text

from core import migrate
from core.schema import Job
from tests.support import env_for, free_port, http_ok, postgres_database, private_redis, seaweedfs, stop, wait_for

N = int(os.environ.get("BENCH_JOBS", "300"))
# transcribe runs silero-vad on every segment (cues follow speech); caption_audio shows the path without it
TASK = os.environ.get("BENCH_TASK", "transcribe")
WORKER_ARGS = ["--pool=prefork", "--concurrency=1", "--loglevel=WARNING", "--without-gossip", "--without-mingle"]


def raw_celery_rate(tmp: Path, broker: str) -> float:
    env = env_for(RAW_CELERY_BROKER=broker)
    log = (tmp / "raw.log").open("wb")
    cmd = [sys.executable, "-m", "celery", "-A", "bench.raw_celery", "worker", "-Q", "raw", "-n", "raw@localhost"]
    worker = subprocess.Popen([*cmd, *WORKER_ARGS], env=env, stdout=log, stderr=subprocess.STDOUT)
    os.environ["RAW_CELERY_BROKER"] = broker
    try:
        from bench.raw_celery import noop

        noop.apply_async(args=[0]).get(timeout=60)  # worker is up
        start = time.perf_counter()
        results = [noop.apply_async(args=[i]) for i in range(N)]
        for result in results:
            result.get(timeout=120)
        return N / (time.perf_counter() - start)
    finally:
        stop(worker)
        log.close()


def clips(tmp: Path) -> list[Path]:
    """Eight speech-like clips of 1 to 3 s (tones with pauses)."""
    made = []
    for i in range(8):
        seconds = 1.0 + 2.0 * i / 7
        t = np.arange(int(seconds * 16_000)) / 16_000
        tone = 0.3 * np.sin(2 * np.pi * (220 + 30 * i) * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
        path = tmp / f"clip{i}.wav"
        sf.write(path, tone.astype(np.float32), 16_000, subtype="PCM_16")
        made.append(path)
    return made


def busy_cpu_s() -> float:
    """CPU seconds the whole machine spent busy so far (every process: API, worker, Postgres, Redis, SeaweedFS)."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0))


def cpu_s(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def transactions(engine) -> int:  # type: ignore[no-untyped-def]
    """Committed and rolled-back transactions of this database so far (Postgres' statistics)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(
            text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        ).scalar_one()
    return int(row)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name, postgres_database() as db_url:
        tmp = Path(tmp_name)
        with private_redis(tmp / "redis") as server, seaweedfs(tmp / "s3") as s3:
            raw_rate = raw_celery_rate(tmp, server.url(1))
            migrate.upgrade(db_url)
            env = env_for(
                OMNIMEDIA_MODE="celery",
                OMNIMEDIA_DATABASE_URL=db_url,
                OMNIMEDIA_BROKER_URL=server.url(0),
                OMNIMEDIA_STORAGE_BACKEND="s3",
                OMNIMEDIA_S3_ENDPOINT_URL=s3.endpoint,
                OMNIMEDIA_S3_ACCESS_KEY=s3.access_key,
                OMNIMEDIA_S3_SECRET_KEY=s3.secret_key,
                OMNIMEDIA_S3_BUCKET="bench",
                OMNIMEDIA_MODEL="noop",
            )
            key = subprocess.run(
                [sys.executable, "-m", "cli", "keys", "create", "--tenant", "bench"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            port = free_port()
            api = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port), "--log-level", "warning"], env=env
            )
            worker = subprocess.Popen(
                [sys.executable, "-m", "bench.standin", "noop", "-Q", "thinker", "-n", "noop@localhost", *WORKER_ARGS],
                env=env,
            )
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {key}"}
            )
            engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
            try:
                wait_for(lambda: http_ok("/readyz", client), 60, "API")
                uploads = [
                    client.post("/v1/uploads", files={"file": (p.name, p.read_bytes())}).json()["id"]
                    for p in clips(tmp)
                ]
                assert client.post("/v1/jobs", json={"task": TASK, "input": uploads[0]}).status_code == 202
                wait_for(lambda: _done(engine) >= 1, 120, "warm-up job")
                time.sleep(1.0)  # let the statistics of the warm-up settle
                xacts_before, cpu_before = transactions(engine), cpu_s(psutil.Process(worker.pid))
                machine_before = busy_cpu_s()
                polls_before = POLLS[0]
                latencies = []
                start = time.perf_counter()
                for i in range(N):
                    t0 = time.perf_counter()
                    response = client.post("/v1/jobs", json={"task": TASK, "input": uploads[i % len(uploads)]})
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 202, response.text
                wait_for(lambda: _done(engine) >= N + 1, 600, "all jobs", 0.05)
                ours_rate = N / (time.perf_counter() - start)
                worker_ms = (cpu_s(psutil.Process(worker.pid)) - cpu_before) * 1000 / N
                stack_ms = (busy_cpu_s() - machine_before) * 1000 / N  # this bench's own client included
                time.sleep(1.0)  # Postgres publishes its counters at most once a second
                own = POLLS[0] - polls_before + 1  # its polls and one counter read
                xacts = (transactions(engine) - xacts_before - own) / N
            finally:
                client.close()
                engine.dispose()
                stop(worker)
                stop(api)
    latencies.sort()
    p50, p99 = statistics.median(latencies) * 1000, latencies[int(0.99 * (len(latencies) - 1))] * 1000
    print(f"engine=NO-OP (benchmark only) jobs={N} task={TASK} on 1-3 s clips")
    print(
        f"ours_jobs_s={ours_rate:.1f} raw_celery_jobs_s={raw_rate:.1f} worker_cpu_ms_per_job={worker_ms:.1f} "
        f"db_transactions_per_job={xacts:.1f}"
    )
    print(
        f"ratio={ours_rate / raw_rate:.3f} ours_jobs_s={ours_rate:.1f} baseline_jobs_s={raw_rate:.1f} "
        f"worker_cpu_ms_per_job={worker_ms:.1f} stack_cpu_ms_per_job={stack_ms:.1f} "
        f"db_transactions_per_job={xacts:.1f} "
        f"submit_p50_ms={p50:.1f} submit_p99_ms={p99:.1f}"
    )


POLLS = [0]  # this bench's own reads, taken out of the transaction count


def _done(engine) -> int:  # type: ignore[no-untyped-def]
    POLLS[0] += 1
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Job).where(Job.state == "succeeded")).scalar_one())


if __name__ == "__main__":
    main()
