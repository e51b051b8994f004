"""`omnimedia worker --gpus` on CPU with two fake device ids: two supervised processes with distinct
CUDA_VISIBLE_DEVICES and hostnames consume the same queue."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.stack import Stack, running_stack
from tests.support import SeaweedS3, wait_for
from workers.fleet import gpu_slots

pytestmark = pytest.mark.slow


def test_gpu_slots() -> None:
    assert gpu_slots("0,1,2,3", 2) == ["0,1", "2,3"]
    assert gpu_slots("5") == ["5"]
    assert gpu_slots("") == [None]
    with pytest.raises(ValueError, match="slots of 2"):
        gpu_slots("0,1,2", 2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pg_url: str, s3: SeaweedS3, tiny_model: Path) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("fleet"), pg_url, s3, tiny_model, 8, "omnimedia-fleet") as api:
        yield api


def test_two_fake_gpus_two_workers(stack: Stack, media: dict[str, Path]) -> None:
    log = (stack.logs / "fleet.log").open("wb")
    fleet = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "worker", "--gpus", "7,9", "--queues", "thinker", "--pool", "prefork"],
        env=stack.env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
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
        job_ids = [stack.api.post("/v1/jobs", json={"task": "ocr", "input": upload["id"]}).json()["id"]
                   for _ in range(12)]  # fmt: skip

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
        fleet.send_signal(signal.SIGTERM)
        try:
            fleet.wait(timeout=60)
        except subprocess.TimeoutExpired:
            fleet.kill()
        log.close()
    assert time.time() > 0
