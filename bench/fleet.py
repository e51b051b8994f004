"""64 jobs on the tiny model through the real stack (API, Postgres, Redis, SeaweedFS, one Celery worker with a
16-thread pool), cross-job batching on against off, in the same run. Last line: ratio=on/off jobs per second."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from models.fixtures.tiny import build
from tests.stack import running_stack
from tests.support import ffmpeg, postgres_database, private_redis, seaweedfs, wait_for

JOBS = int(os.environ.get("BENCH_JOBS", "64"))


def run_jobs(stack, tmp: Path, batching: bool, uploads: list[str]) -> float:  # type: ignore[no-untyped-def]
    env = {**stack.env, "OMNIMEDIA_BATCH_MAX_WAIT_MS": "50" if batching else "0", "OMNIMEDIA_MAX_NEW_TOKENS_CAP": "32"}
    log = (tmp / f"worker-{batching}.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.main",
            "--queues",
            "thinker",
            "--pool",
            "threads",
            "--concurrency",
            "16",
            "--name",
            f"bench-{batching}@localhost",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        warm = stack.api.post("/v1/jobs", json={"task": "transcribe", "input": uploads[0]}).json()["id"]
        wait_for(lambda: stack.api.get(f"/v1/jobs/{warm}").json()["state"] == "succeeded", 120, "warm-up", 0.2)
        start = time.perf_counter()
        ids = [
            stack.api.post("/v1/jobs", json={"task": "transcribe", "input": uploads[i % len(uploads)]}).json()["id"]
            for i in range(JOBS)
        ]
        wait_for(
            lambda: all(stack.api.get(f"/v1/jobs/{j}").json()["state"] == "succeeded" for j in ids),
            900,
            "all jobs",
            0.5,
        )
        return JOBS / (time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name, postgres_database() as db_url:
        tmp = Path(tmp_name)
        model = build(tmp / "tiny")
        with (
            seaweedfs(tmp / "s3") as s3,
            private_redis(tmp / "redis") as broker,
            running_stack(tmp, db_url, s3, model, broker.url(), "bench-fleet") as stack,
        ):
            uploads = []
            for i in range(8):
                path = tmp / f"a{i}.wav"
                ffmpeg("-f", "lavfi", "-i", f"sine=frequency={300 + 40 * i}:duration=3", "-ar", "16000", str(path))
                uploads.append(
                    stack.api.post("/v1/uploads", files={"file": (path.name, path.read_bytes())}).json()["id"]
                )
            on = run_jobs(stack, tmp, True, uploads)
            off = run_jobs(stack, tmp, False, uploads)
    print(f"jobs={JOBS} batching_on_jobs_s={on:.2f} batching_off_jobs_s={off:.2f}")
    print(f"ratio={on / off:.2f} ours_jobs_s={on:.2f} baseline_jobs_s={off:.2f}")


if __name__ == "__main__":
    main()
