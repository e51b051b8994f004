"""Is a continuous-batching engine kept full? One job worker in front of the SERVING STAND-IN (bench.standin,
benchmark only: a vLLM-like server, up to N=8 requests at once, each 2 s, behind the service's own stepping loop),
run as `omnimedia worker` runs a vLLM worker (threads pool, concurrency = max_num_seqs, a job's segments in
parallel), against the vLLM worker as it was (two jobs at a time, one segment each), in the same run; Postgres,
Redis and SeaweedFS are real. Under a backlog of short clips: the mean number of requests in flight at the engine
(goal >= 0.9 N) and the share of the time it held any (goal >= 95%), from the first request to the last one admitted.
Then one 75-minute speech file alone: the time from the job's start to its first request at the engine (goal
<= 10 s; planning streams beside the engine). Last line: in-flight means, busy, their ratio and first_segment_s."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

from sqlalchemy import create_engine, select

from bench.feeding import clips
from core.schema import Job
from tests.stack import Stack, running_stack
from tests.support import long_speech, postgres_database, private_redis, seaweedfs, stop, wait_for

SLOTS, REQUEST_S = 8, 2.0
JOBS = int(os.environ.get("BENCH_JOBS", "96"))
MINUTES = float(os.environ.get("BENCH_MINUTES", "75"))
SETUPS = {
    "ours (concurrency 8, segments in parallel)": {"-c": "8", "OMNIMEDIA_SEGMENTS_IN_FLIGHT": "0"},
    "before (concurrency 2, one segment at a time)": {"-c": "2", "OMNIMEDIA_SEGMENTS_IN_FLIGHT": "1"},
}


def worker(stack: Stack, name: str, concurrency: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.standin", f"serve:{SLOTS}:{REQUEST_S}", "-Q", "thinker", "-P", "threads"]
    cmd += ["-c", concurrency, "-n", f"{name}@localhost", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    full_env = {**stack.env, "OMNIMEDIA_BACKEND": "vllm", "OMNIMEDIA_VLLM_MAX_NUM_SEQS": str(SLOTS), **env}
    return subprocess.Popen(cmd, env=full_env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def timeline(path: Path) -> list[tuple[float, int]]:
    return [(float(t), int(n)) for t, n in (line.split() for line in path.read_text().splitlines())]


def fill(events: list[tuple[float, int]]) -> tuple[float, float, float]:
    """Mean in flight and busy share from the first admission to the last one; the window's length."""
    rises = [t for (t, n), (_, before) in zip(events[1:], events, strict=False) if n > before]
    start, end = events[0][0], max(rises)
    area = busy = 0.0
    for (t, n), (t_next, _) in zip(events, [*events[1:], (end, 0)], strict=True):
        span = max(0.0, min(t_next, end) - max(t, start))
        area += n * span
        busy += span if n > 0 else 0.0
    return area / (end - start), busy / (end - start), end - start


def backlog(stack: Stack, uploads: list[str], name: str, setup: dict[str, str], tmp: Path) -> tuple[float, ...]:
    log = tmp / f"{name}.engine"
    ids = [
        stack.api.post("/v1/jobs", json={"task": "caption_audio", "input": uploads[i % len(uploads)]}).json()["id"]
        for i in range(JOBS)
    ]
    env = {k: v for k, v in setup.items() if k.startswith("OMNIMEDIA_")} | {"BENCH_ENGINE_LOG": str(log)}
    proc = worker(stack, name, setup["-c"], env, tmp / f"{name}.log")
    try:
        done = {"succeeded"}
        wait_for(lambda: all(stack.api.get(f"/v1/jobs/{j}").json()["state"] in done for j in ids), 900, name, 1.0)
    finally:
        stop(proc)
    return fill(timeline(log))


def first_segment(stack: Stack, db_url: str, tmp: Path) -> float:
    path = long_speech(tmp, MINUTES, "lecture.flac")
    upload = stack.api.post("/v1/uploads", files={"file": (path.name, path.read_bytes())}).json()["id"]
    log = tmp / "long.engine"
    proc = worker(stack, "long", "8", {"BENCH_ENGINE_LOG": str(log)}, tmp / "long.log")
    try:
        time.sleep(3)  # the worker is up and idle before the job arrives
        job_id = stack.api.post("/v1/jobs", json={"task": "transcribe", "input": upload}).json()["id"]
        wait_for(lambda: log.exists() and log.read_text().strip(), 120, "the first request", 0.1)
        engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            started = conn.execute(select(Job.started_at).where(Job.id == job_id)).scalar_one()
        engine.dispose()
        stack.api.post(f"/v1/jobs/{job_id}/cancel")
        assert started is not None
    finally:
        stop(proc)
    return timeline(log)[0][0] - started.replace(tzinfo=UTC).timestamp()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name, postgres_database() as db_url:
        tmp = Path(tmp_name)
        with (
            seaweedfs(tmp / "s3") as s3,
            private_redis(tmp / "redis") as server,
            running_stack(tmp, db_url, s3, tmp / "no-model", server.url(), "bench-fill") as stack,
        ):
            uploads = [
                stack.api.post("/v1/uploads", files={"file": (p.name, p.read_bytes())}).json()["id"] for p in clips(tmp)
            ]
            results = {name: backlog(stack, uploads, f"b{i}", s, tmp) for i, (name, s) in enumerate(SETUPS.items())}
            first_s = first_segment(stack, db_url, tmp)
    for name, (in_flight, busy, window) in results.items():
        print(f"{name}: jobs={JOBS} window_s={window:.1f} in_flight={in_flight:.2f} of {SLOTS} busy={busy:.3f}")
    print(f"first segment of a {MINUTES:.0f}-minute file at the engine {first_s:.1f} s after the job started")
    (ours, ours_busy, _), (before, _, _) = results.values()
    print(
        f"in_flight={ours:.2f} in_flight_share={ours / SLOTS:.3f} busy={ours_busy:.3f} "
        f"in_flight_before={before:.2f} ratio={ours / before:.2f} first_segment_s={first_s:.1f}"
    )


if __name__ == "__main__":
    main()
