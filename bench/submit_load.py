"""Submit load: 2,000 POST /v1/jobs at concurrency 64 from one tenant to one API process (celery mode on Postgres,
Redis and SeaweedFS; no worker), against the floor in the same run: a minimal FastAPI route doing one INSERT and one
Redis push on a pool of the same size (bench/floor_api.py). Then a 10,000-line batch: time until every job is queued
in the broker. Last line: ratio=ours/floor submits per second, errors, p50/p99, batch time."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from tests.stack import running_stack
from tests.support import env_for, free_port, http_ok, postgres_database, private_redis, seaweedfs, stop, wait_for

SUBMITS = int(os.environ.get("BENCH_SUBMITS", "2000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
BATCH_LINES = int(os.environ.get("BENCH_BATCH_LINES", "10000"))


@dataclass
class Load:
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # "202", "503", ... or "dropped"
    failures: list[str] = field(default_factory=list)  # the first few, to say what went wrong

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.wall_s

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status not in ("200", "202"))

    def pct(self, q: float) -> float:
        return statistics.quantiles(self.latencies_ms, n=100)[int(q) - 1] if len(self.latencies_ms) > 1 else 0.0


async def _load(base_url: str, path: str, headers: dict[str, str], body: dict[str, object]) -> Load:
    result = Load()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=120) as client:
        todo = iter(range(SUBMITS))

        async def client_loop() -> None:
            for _ in todo:
                started = time.perf_counter()
                try:
                    response = await client.post(path, json=body)
                    result.statuses[str(response.status_code)] += 1
                    if response.status_code >= 300 and len(result.failures) < 5:
                        result.failures.append(f"{response.status_code} {response.text[:300]}")
                except httpx.HTTPError as exc:
                    result.statuses["dropped"] += 1
                    if len(result.failures) < 5:
                        result.failures.append(f"dropped: {type(exc).__name__}: {exc}")
                result.latencies_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
        result.wall_s = time.perf_counter() - started
    return result


def floor(tmp: Path, env: dict[str, str]) -> Load:
    port = free_port()
    log = (tmp / "floor.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.floor_api:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{base}/openapi.json"), 60, "the floor API")
        return asyncio.run(_load(base, "/floor", {}, {"task": "ocr", "input": "x"}))
    finally:
        stop(proc)
        log.close()


def batch_time(stack, upload: str, broker: redis.Redis) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds until the batch answered, and until all its jobs were in the broker's queue."""
    broker.delete("thinker")
    lines = "\n".join(json.dumps({"custom_id": f"c{i}", "task": "ocr", "input": upload}) for i in range(BATCH_LINES))
    started = time.perf_counter()
    response = stack.api.post(
        "/v1/batches", content=lines.encode(), headers={"Content-Type": "application/jsonl"}, timeout=600
    )
    answered = time.perf_counter() - started
    assert response.status_code == 202, response.text[:500]
    wait_for(lambda: broker.llen("thinker") >= BATCH_LINES, 600, "the batch's jobs in the broker", 0.05)
    return answered, time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name, postgres_database() as db_url:
        tmp = Path(tmp_name)
        with seaweedfs(tmp / "s3") as s3, private_redis(tmp / "redis") as server:
            limits = {"OMNIMEDIA_TENANT_MAX_ACTIVE_JOBS": str(10 * (SUBMITS + BATCH_LINES))}
            with running_stack(tmp, db_url, s3, tmp / "no-model", server.url(), "bench-load", **limits) as stack:
                image = tmp / "page.png"
                subprocess.run(
                    [
                        "ffmpeg",
                        "-y",
                        "-v",
                        "error",
                        "-f",
                        "lavfi",
                        "-i",
                        "testsrc=size=320x240",
                        "-frames:v",
                        "1",
                        str(image),
                    ],
                    check=True,
                )
                upload = stack.api.post("/v1/uploads", files={"file": (image.name, image.read_bytes())}).json()["id"]
                headers = {"Authorization": f"Bearer {stack.key}"}
                job = {"task": "ocr", "input": upload}
                ours = asyncio.run(_load(str(stack.api.base_url), "/v1/jobs", headers, job))
                answered_s, queued_s = batch_time(stack, upload, redis.Redis.from_url(server.url()))
                base = floor(tmp, env_for(**{k: v for k, v in stack.env.items() if k.startswith("OMNIMEDIA_")}))
    print(f"ours: {ours.rate:.1f}/s {dict(ours.statuses)}  floor: {base.rate:.1f}/s {dict(base.statuses)}")
    for failure in ours.failures + base.failures:
        print("failure:", failure)
    print(f"batch of {BATCH_LINES}: answered in {answered_s:.1f} s, all queued in {queued_s:.1f} s")
    print(
        f"ratio={ours.rate / base.rate:.2f} ours_submits_s={ours.rate:.1f} floor_submits_s={base.rate:.1f} "
        f"errors={ours.errors} p50_ms={ours.pct(50):.0f} p99_ms={ours.pct(99):.0f} floor_p99_ms={base.pct(99):.0f} "
        f"batch_lines={BATCH_LINES} batch_queued_s={queued_s:.1f}"
    )


if __name__ == "__main__":
    main()
