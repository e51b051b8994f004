"""Does a Celery job worker keep its accelerator fed? 500 jobs on 3 s clips (one batch through the API; Postgres,
Redis, SeaweedFS) run by one worker whose engine is the SLEEPING STAND-IN (bench.standin, benchmark only: 200 ms a
request under one lock, the CPU free meanwhile), as `omnimedia worker` runs job queues (threads pool, two jobs at a
time: one in the engine, the next one fetched and decoded), against one job at a time (prefork, concurrency 1), in
the same run. Busy = engine time / wall time from the first job's start to the last one's end. Last line: busy
fractions (goal >= 0.95) and their ratio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy import create_engine, func, select, text

from core.schema import BatchItem, Job
from tests.stack import running_stack
from tests.support import postgres_database, private_redis, seaweedfs, stop, wait_for

JOBS = int(os.environ.get("BENCH_JOBS", "500"))
STAND_IN = "sleep:0.2"
POOLS = {"threads x2 (omnimedia worker)": ["-P", "threads", "-c", "2"], "prefork x1": ["-P", "prefork", "-c", "1"]}


def clips(root: Path, count: int = 8) -> list[Path]:
    t = np.arange(3 * 16_000) / 16_000
    made = []
    for i in range(count):
        path = root / f"clip{i}.flac"
        sf.write(path, (0.2 * np.sin(2 * np.pi * (200 + 40 * i) * t)).astype(np.float32), 16_000)
        made.append(path)
    return made


def busy(stack, engine, uploads: list[str], pool: list[str], name: str) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM job_segments"))
    # caption_audio: tones are not speech, and transcribe skips the engine where silero-vad hears none
    lines = "\n".join(
        json.dumps({"custom_id": f"{name}-{i}", "task": "caption_audio", "input": uploads[i % len(uploads)]})
        for i in range(JOBS)
    )
    response = stack.api.post("/v1/batches", content=lines.encode(), headers={"Content-Type": "application/jsonl"})
    assert response.status_code == 202, response.text
    batch = response.json()["id"]
    log = (stack.logs / f"worker-{pool[1]}.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "bench.standin",
        STAND_IN,
        "-Q",
        "thinker",
        *pool,
        "-n",
        f"{pool[1]}@localhost",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]
    worker = subprocess.Popen(cmd, env=stack.env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: stack.api.get(f"/v1/batches/{batch}").json()["state"] == "completed", 900, "the batch", 0.5)
    finally:
        stop(worker)
        log.close()
    with engine.connect() as conn:
        batch_jobs = select(BatchItem.job_id).where(BatchItem.batch_id == batch)
        first, last = conn.execute(
            select(func.min(Job.started_at), func.max(Job.finished_at)).where(Job.id.in_(batch_jobs))
        ).one()
        engine_s = float(conn.execute(text("SELECT sum(engine_seconds) FROM job_segments")).scalar_one())
    wall = (last - first).total_seconds()
    return engine_s / wall, wall, engine_s


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name, postgres_database() as db_url:
        tmp = Path(tmp_name)
        with (
            seaweedfs(tmp / "s3") as s3,
            private_redis(tmp / "redis") as server,
            running_stack(tmp, db_url, s3, tmp / "no-model", server.url(), "bench-feeding") as stack,
        ):
            uploads = [
                stack.api.post("/v1/uploads", files={"file": (p.name, p.read_bytes())}).json()["id"] for p in clips(tmp)
            ]
            engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
            results = {
                name: busy(stack, engine, uploads, pool, f"b{i}") for i, (name, pool) in enumerate(POOLS.items())
            }
            engine.dispose()
    for name, (fraction, wall, engine_s) in results.items():
        print(f"{name}: jobs={JOBS} wall_s={wall:.1f} engine_s={engine_s:.1f} busy={fraction:.3f}")
    ours, base = results["threads x2 (omnimedia worker)"], results["prefork x1"]
    print(
        f"busy={ours[0]:.3f} busy_one_at_a_time={base[0]:.3f} ratio={ours[0] / base[0]:.2f} "
        f"ours_s={ours[1]:.1f} baseline_s={base[1]:.1f}"
    )


if __name__ == "__main__":
    main()
