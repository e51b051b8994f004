"""`omnimedia worker --gpus` on CPU with two fake device ids: two supervised processes with distinct
CUDA_VISIBLE_DEVICES and hostnames consume the same queue."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.stack import Stack, running_stack
from tests.support import PrivateRedis, SeaweedS3, stop, supervised_workers, wait_for
from workers.fleet import gpu_slots

pytestmark = pytest.mark.slow


def test_gpu_slots() -> None:
    assert gpu_slots("0,1,2,3", 2) == ["0,1", "2,3"]
    assert gpu_slots("5") == ["5"]
    assert gpu_slots("") == [None]
    with pytest.raises(ValueError, match="slots of 2"):
        gpu_slots("0,1,2", 2)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, s3: SeaweedS3, tiny_model: Path, redis_server: PrivateRedis
) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("fleet"), pg_url, s3, tiny_model, redis_server.url(8), "omnimedia-fleet"
    ) as api:
        yield api


def test_two_fake_gpus_two_workers(stack: Stack, media: dict[str, Path]) -> None:
    log = (stack.logs / "fleet.log").open("wb")
    fleet = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--gpus", "7,9", "--queues", "thinker", "--pool", "prefork"],
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def pinned_workers() -> dict[str, str] | None:
            """The supervisor's direct children running workers.main, with their CUDA_VISIBLE_DEVICES."""
            found = {}
            for proc in psutil.Process(fleet.pid).children(recursive=True):
                try:
                    parent = proc.parent()
                    if (
                        "workers.main" in " ".join(proc.cmdline())
                        and parent
                        and "workers.fleet" in " ".join(parent.cmdline())
                    ):
                        found[str(proc.pid)] = proc.environ().get("CUDA_VISIBLE_DEVICES", "")
                except psutil.NoSuchProcess:
                    continue
            return found if len(found) == 2 else None

        devices = wait_for(pinned_workers, 60, "two worker processes")
        assert sorted(devices.values()) == ["7", "9"]
        upload = stack.api.post("/v1/uploads", files={"file": ("a.png", media["image_png"].read_bytes())}).json()
        job_ids = [
            stack.api.post("/v1/jobs", json={"task": "ocr", "input": upload["id"]}).json()["id"] for _ in range(12)
        ]

        def all_done() -> bool:
            return all(stack.api.get(f"/v1/jobs/{j}").json()["state"] == "succeeded" for j in job_ids)

        wait_for(all_done, 180, "jobs on the fleet", 0.5)
        workers = set()
        for job_id in job_ids:
            for event in stack.api.get(f"/v1/jobs/{job_id}/events").json():
                if event["to_state"] == "running":
                    workers.add(event["worker"].split("@")[0])
        assert workers == {"gpu7", "gpu9"}, workers
    finally:
        stop(fleet, 60)
        log.close()


def test_sixteen_jobs_batch_across_jobs(stack: Stack, media: dict[str, Path], tmp_path: Path) -> None:
    """A threads worker with the cross-job batcher: 16 jobs finish in fewer engine calls than 16, with the same
    outputs as unbatched runs, and a corrupt input fails alone."""
    import httpx

    from tests.support import free_port

    port = free_port()
    env = {**stack.env, "OMNIMEDIA_BATCH_MAX_WAIT_MS": "300", "OMNIMEDIA_WORKER_METRICS_PORT": str(port)}
    log = (stack.logs / "batching.log").open("wb")
    proc = subprocess.Popen(
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
            "batcher@localhost",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def upload(path: Path) -> str:
            return str(stack.api.post("/v1/uploads", files={"file": (path.name, path.read_bytes())}).json()["id"])

        speech, tone = upload(media["speech_wav"]), upload(media["tone_mp3"])
        corrupt = tmp_path / "corrupt.mp3"
        corrupt.write_bytes(b"ID3" + b"\x00" * 64 + b"not audio" * 50)
        warm = stack.api.post("/v1/jobs", json={"task": "transcribe", "input": speech}).json()["id"]
        wait_for(lambda: stack.api.get(f"/v1/jobs/{warm}").json()["state"] == "succeeded", 120, "warm-up", 0.2)
        inputs = [speech, tone] * 8
        inputs[5] = upload(corrupt)
        ids = [stack.api.post("/v1/jobs", json={"task": "transcribe", "input": i}).json()["id"] for i in inputs]
        wait_for(
            lambda: all(stack.api.get(f"/v1/jobs/{j}").json()["state"] in ("succeeded", "failed") for j in ids),
            180,
            "sixteen jobs",
            0.3,
        )
        jobs = [stack.api.get(f"/v1/jobs/{j}").json() for j in ids]
        assert [j["state"] for j in jobs].count("failed") == 1 and jobs[5]["failure_class"] == "media"
        texts = {
            i: stack.api.get(f"/v1/jobs/{j}/result", params={"format": "txt"}).text
            for i, j in zip(inputs, ids, strict=True)
            if i in (speech, tone)
        }
        solo = stack.api.get(f"/v1/jobs/{warm}/result", params={"format": "txt"}).text
        assert texts[speech] == solo, "a batched job's output equals the unbatched output"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        calls = next(
            float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("omnimedia_batch_size_count")
        )
        assert calls < 16, f"{calls} engine calls for 16 jobs (+1 warm-up)"
    finally:
        stop(proc, 60)
        log.close()


def _workers_of(supervisor: subprocess.Popen) -> list[int]:  # type: ignore[type-arg]
    """Pids of the supervisor's children that run workers.main."""
    return [proc.pid for proc in supervised_workers(supervisor.pid)]


def test_a_killed_worker_is_restarted_and_a_drained_one_finishes_its_job(stack: Stack, tmp_path: Path) -> None:
    """`omnimedia worker` on the CPU is supervised: SIGKILL its worker and a new one takes over. `omnimedia worker
    drain NAME` lets the running job finish (succeeded, not redelivered), takes no new job, and the supervisor exits
    0 without restarting it."""
    import os
    import signal

    from tests.support import ffmpeg

    name = "drain-me@localhost"
    env = {**stack.env, "OMNIMEDIA_SEGMENT_SECONDS": "4"}  # 40 s of audio: ten segments, a job of a few seconds
    log = (stack.logs / "supervised.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--queues", "thinker", "--name", name],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        first = wait_for(lambda: _workers_of(supervisor), 60, "the supervised worker")[0]
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: [p for p in _workers_of(supervisor) if p != first], 60, "a restarted worker")
        path = tmp_path / "long.wav"
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=40", "-ar", "16000", str(path))
        upload = stack.api.post("/v1/uploads", files={"file": (path.name, path.read_bytes())}).json()["id"]
        job = stack.api.post("/v1/jobs", json={"task": "transcribe", "input": upload}).json()["id"]
        wait_for(lambda: stack.api.get(f"/v1/jobs/{job}").json()["segments_done"] >= 1, 120, "the job under way", 0.05)
        drained = subprocess.run(
            [sys.executable, "-m", "cli", "worker", "drain", name], env=env, capture_output=True, text=True, timeout=60
        )
        assert drained.returncode == 0 and name in drained.stdout, drained.stderr
        assert supervisor.wait(timeout=120) == 0, "the supervisor exits once its drained worker has"
        after = stack.api.get(f"/v1/jobs/{job}").json()
        assert after["state"] == "succeeded" and after["attempts"] == 1, after
        late = stack.api.post("/v1/jobs", json={"task": "transcribe", "input": upload}).json()["id"]
        time.sleep(2)
        assert stack.api.get(f"/v1/jobs/{late}").json()["state"] == "queued", "a drained worker takes no new job"
    finally:
        if supervisor.poll() is None:
            stop(supervisor, 60)
        log.close()


def test_a_worker_exits_with_the_code_celery_stopped_with(tmp_path: Path) -> None:
    """The supervisor restarts a worker that exits non-zero and takes exit 0 for a drain, so the worker's exit must
    be Celery's. app.worker_main and app.start drop it (click returns it when not in standalone mode): a worker
    that stopped on an unrecoverable error (kombu after a Redis kill) exited 0 and was never restarted. Here the
    real worker command stops before it connects anywhere: a live process holds its pidfile (Celery: exit 73)."""
    import os

    from tests.support import env_for

    pidfile = tmp_path / "worker.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    args = ["worker", "--pool=solo", "--queues=webhooks", f"--pidfile={pidfile}"]
    code = f"from workers.main import run_celery\nraise SystemExit(run_celery({args!r}))"
    env = env_for(OMNIMEDIA_DATA_DIR=str(tmp_path), OMNIMEDIA_BROKER_URL="redis://127.0.0.1:1/0")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 73 and "already exists" in done.stderr, done.stderr[-2000:]


def test_a_worker_celery_stops_after_a_redis_kill_is_restarted(tmp_path: Path) -> None:
    """The issue's failure, on purpose: a webhooks worker holds unacknowledged messages (deliveries due later) when
    Redis is killed; kombu fails restoring them (AttributeError in _connparams) and Celery stops the worker with
    exit code 1. Its supervisor must restart it, not take it for drained (it did while that code was lost)."""
    from celery import Celery

    from tests.support import env_for, private_redis

    with private_redis(tmp_path / "redis") as server:
        env = env_for(OMNIMEDIA_BROKER_URL=server.url(0), OMNIMEDIA_DATA_DIR=str(tmp_path / "data"))
        log_path = tmp_path / "supervisor.log"
        with log_path.open("wb") as log:
            supervisor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "worker",
                    "--gpus",
                    "none",
                    "--queues",
                    "webhooks",
                    "--pool",
                    "threads",
                    "--concurrency",
                    "4",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            first = wait_for(lambda: _workers_of(supervisor), 60, "the webhooks worker")
            wait_for(lambda: b"ready." in log_path.read_bytes(), 60, "the worker to consume")
            broker = Celery(broker=server.url(0))
            for _ in range(5):  # held unacknowledged by the worker until they are due
                broker.send_task("omnimedia.deliver_webhook", args=["whd_none"], queue="webhooks", countdown=600)
            wait_for(lambda: log_path.read_bytes().count(b"received") >= 5, 30, "the worker to hold the deliveries")
            time.sleep(2)
            server.kill()
            wait_for(lambda: b"died (1)" in log_path.read_bytes(), 60, "the supervisor to see the worker die")
            server.start()  # the same port
            again = wait_for(lambda: _workers_of(supervisor), 60, "a restarted webhooks worker")
            assert again != first and b"drained" not in log_path.read_bytes()
            assert supervisor.poll() is None, log_path.read_text()[-3000:]
        finally:
            stop(supervisor)


def _damaged_copy(model: Path, into: Path) -> Path:
    """The tiny checkpoint with its weights cut in half: the model cannot load from it."""
    import shutil

    shutil.copytree(model, into)
    for weights in into.glob("*.safetensors"):
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    return into


def test_a_worker_whose_engine_cannot_load_exits_and_its_job_waits_for_a_healthy_one(
    stack: Stack, media: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    """A damaged checkpoint: a threads worker loads at start and exits 3 before taking any job; a prefork worker
    (which loads on its first job) puts that job back in the queue and exits 3. Both are restarted by the supervisor
    with back-off; the job then runs on a healthy worker."""
    damaged = _damaged_copy(tiny_model, tmp_path / "damaged")
    env = {**stack.env, "OMNIMEDIA_MODEL": str(damaged)}
    upload = stack.api.post("/v1/uploads", files={"file": ("a.png", media["image_png"].read_bytes())}).json()
    job_id = stack.api.post("/v1/jobs", json={"task": "ocr", "input": upload["id"]}).json()["id"]
    logs = {pool: tmp_path / f"{pool}.log" for pool in ("threads", "prefork")}
    fleets = {
        pool: subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--queues", "thinker", "--pool", pool, "--name", f"{pool}@broken"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for pool, log in logs.items()
    }
    try:
        for pool, log in logs.items():
            wait_for(lambda log=log: log.read_text().count("died (3); restarting") >= 2, 150, f"{pool} restarts", 0.5)
        assert "the model did not load" in logs["threads"].read_text()
        job = stack.api.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] in ("queued", "retrying"), job
        events = stack.api.get(f"/v1/jobs/{job_id}/events").json()
        assert any("back to the queue" in (e.get("reason") or "") for e in events), events
    finally:
        for fleet in fleets.values():
            stop(fleet, 60)
    healthy = subprocess.Popen(
        [sys.executable, "-m", "workers.main", "--queues", "thinker", "--pool", "threads", "--name", "healthy@h"],
        env=stack.env,
        stdout=(tmp_path / "healthy.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: stack.api.get(f"/v1/jobs/{job_id}").json()["state"] == "succeeded", 120, "the job", 0.3)
        assert stack.api.get(f"/v1/jobs/{job_id}").json()["attempts"] == 1, "a broken worker costs a job no attempt"
    finally:
        stop(healthy, 60)
