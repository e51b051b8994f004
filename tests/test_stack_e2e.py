"""End to end on real parts: uvicorn API + Celery worker subprocesses, Postgres, Redis and SeaweedFS.

Order matters inside this module: the first test runs before any worker exists, so its job stays queued."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import soundfile as sf
from celery import Celery
from sqlalchemy import select

from core.schema import JobEvent, JobSegment
from tests.stack import Stack, running_stack
from tests.support import PrivateRedis, SeaweedS3, free_port, http_ok, stop, wait_for

pytestmark = pytest.mark.slow
BUCKET = "omnimedia-e2e"
REDIS_DB = 9
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, s3: SeaweedS3, tiny_model: Path, redis_server: PrivateRedis
) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("stack-logs"), pg_url, s3, tiny_model, redis_server.url(REDIS_DB), BUCKET
    ) as api:
        yield api


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[subprocess.Popen[bytes]]:
    stack.env["OMNIMEDIA_WORKER_METRICS_PORT"] = str(METRICS_PORT)
    log = (stack.logs / "worker.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.main",
            "--queues",
            "thinker,talker",
            "--pool",
            "prefork",
            "--name",
            "e2e@localhost",
            "--loglevel",
            "INFO",
        ],
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    del stack.env["OMNIMEDIA_WORKER_METRICS_PORT"]
    yield proc
    stop(proc)
    log.close()


def upload(stack: Stack, path: Path) -> str:
    response = stack.api.post("/v1/uploads", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(stack: Stack, task: str, path: Path, formats: list[str] | None = None, **params: object) -> str:
    body = {"task": task, "input": upload(stack, path), "params": params}
    response = stack.api.post("/v1/jobs", json=body if formats is None else {**body, "formats": formats})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def final(stack: Stack, job_id: str, timeout_s: float = 120) -> dict:
    def done() -> dict | None:
        job = stack.api.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in ("succeeded", "failed", "canceled") else None

    return dict(wait_for(done, timeout_s, f"job {job_id}", 0.2))


def events(stack: Stack, job_id: str) -> list[str]:
    return [e["to_state"] for e in stack.api.get(f"/v1/jobs/{job_id}/events").json()]


def test_cancel_queued_job(stack: Stack, media: dict[str, Path]) -> None:
    job_id = submit(stack, "ocr", media["image_png"])
    response = stack.api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "canceled"
    stack.__dict__["canceled_job"] = job_id


def stored(stack: Stack, job: dict) -> set[str]:
    """The result files a job wrote to S3, as names under its committing run's prefix."""
    listing = stack.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"tenants/e2e/jobs/{job['id']}/")
    run = f"tenants/e2e/jobs/{job['id']}/attempt-{job['attempts']}/"  # outputs are scoped by the committing run
    return {o["Key"].removeprefix(run) for o in listing.get("Contents", []) if o["Key"].startswith(run)}


def test_transcribe_to_srt_and_vtt(stack: Stack, worker: object, media: dict[str, Path]) -> None:
    """Every format is rendered on request; storage gets the formats the job asked for (by default none)."""
    job = final(stack, submit(stack, "transcribe", media["speech_wav"]))
    assert job["state"] == "succeeded", job
    srt = stack.api.get(f"/v1/jobs/{job['id']}/result", params={"format": "srt"})
    vtt = stack.api.get(f"/v1/jobs/{job['id']}/result", params={"format": "vtt"})
    assert srt.status_code == 200 and "00:00:00,000 -->" in srt.text
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert stored(stack, job) == set()
    asked = final(stack, submit(stack, "transcribe", media["speech_wav"], formats=["srt", "vtt"]))
    assert stored(stack, asked) == {"result.srt", "result.vtt"}
    file = stack.s3.client().get_object(Bucket=BUCKET, Key=f"tenants/e2e/jobs/{asked['id']}/attempt-1/result.srt")
    assert file["Body"].read().decode() == stack.api.get(f"/v1/jobs/{asked['id']}/result?format=srt").text


def test_describe_video(stack: Stack, worker: object, media: dict[str, Path]) -> None:
    job = final(stack, submit(stack, "describe_video", media["video_av"]))
    assert job["state"] == "succeeded" and job["result_formats"] == ["json", "srt", "txt", "vtt"]


def test_speech_job_writes_24k_wav_to_s3(stack: Stack, worker: object, media: dict[str, Path]) -> None:
    job = final(stack, submit(stack, "ask", media["speech_wav"], question="Say it back.", voice="Chelsie"))
    assert job["state"] == "succeeded", job
    assert job["queue"] == "talker"
    wav = stack.api.get(f"/v1/jobs/{job['id']}/audio")
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    audio, rate = sf.read(io.BytesIO(wav.content))
    assert rate == 24_000 and audio.ndim == 1 and audio.size > 10_000
    key = f"tenants/e2e/jobs/{job['id']}/attempt-{job['attempts']}/speech.wav"
    stored = stack.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored == wav.content


def test_corrupt_upload_fails_once_with_media_reason(stack: Stack, worker: object, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 40)
    job = final(stack, submit(stack, "transcribe", corrupt))
    assert job["state"] == "failed" and job["failure_class"] == "media" and job["attempts"] == 1
    assert "not a media file" in job["failure_reason"]
    assert events(stack, job["id"]) == ["queued", "running", "failed"]


def test_retry_canceled_job(stack: Stack, worker: object) -> None:
    job_id = stack.__dict__["canceled_job"]
    assert stack.api.post(f"/v1/jobs/{job_id}/retry").status_code == 202
    job = final(stack, job_id)
    assert job["state"] == "succeeded"
    assert events(stack, job_id) == ["queued", "canceled", "queued", "running", "succeeded"]


def test_same_job_published_twice_runs_once(stack: Stack, worker: object, media: dict[str, Path]) -> None:
    job_id = submit(stack, "ocr", media["image_png"])
    celery = Celery(broker=stack.env["OMNIMEDIA_BROKER_URL"])
    celery.send_task("omnimedia.run_job", args=[job_id], queue="thinker")
    celery.send_task("omnimedia.run_job", args=[job_id], queue="thinker")
    assert final(stack, job_id)["state"] == "succeeded"
    time.sleep(3)  # let the duplicate deliveries arrive and be dropped
    assert events(stack, job_id) == ["queued", "running", "succeeded"]


def test_sigkill_mid_job_resumes_finished_segments(
    stack: Stack, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    from tests.support import ffmpeg

    long_audio = tmp_path / "long.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=60", "-ar", "16000", str(long_audio))
    job_id = submit(stack, "caption_audio", long_audio, segment_seconds=5)  # every segment runs the engine

    def segments_done() -> bool:
        job = stack.api.get(f"/v1/jobs/{job_id}").json()
        return 2 <= job["segments_done"] < 10

    wait_for(segments_done, 120, "two finished segments", 0.05)
    children = psutil.Process(worker.pid).children()
    assert children, "prefork pool child not found"
    killed_at = time.time()
    for child in children:
        child.send_signal(signal.SIGKILL)
    job = final(stack, job_id, 180)
    assert job["state"] == "succeeded" and job["segments_done"] == job["segments_planned"] == 12
    with stack.db() as session:
        rows = session.scalars(select(JobSegment).where(JobSegment.job_id == job_id)).all()
        history = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
    assert len(rows) == 12
    before_kill = [r for r in rows if r.created_at.timestamp() < killed_at]
    assert len(before_kill) >= 2, "segments finished before the kill were kept, not redone"
    assert [e.to_state for e in history].count("succeeded") == 1
    assert any("taken over" in (e.reason or "") for e in history)


def test_archive_through_batches_api(stack: Stack, worker: object, tmp_path: Path) -> None:
    import json

    from tests.archive_corpus import build_archive

    archive = build_archive(tmp_path / "archive")
    s3 = stack.s3.client()
    files = sorted(archive.good + archive.bad + ["notes/README.txt"])
    lines = []
    for n, rel in enumerate(files):
        key = f"tenants/e2e/archive/{rel}"  # the tenant's own prefix: other keys of the bucket are not its to name
        s3.put_object(Bucket=BUCKET, Key=key, Body=(archive.root / rel).read_bytes())
        request = {"task": "custom", "input": f"s3://{BUCKET}/{key}", "params": {"prompt": "Describe this."}}
        if n % 2:
            lines.append({"custom_id": rel, "method": "POST", "url": "/v1/jobs", "body": request})
        else:
            lines.append({"custom_id": rel, **request})
    body = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    response = stack.api.post("/v1/batches", content=body.encode(), headers={"content-type": "application/jsonl"})
    assert response.status_code == 202, response.text
    batch = response.json()
    empty_line = files.index("broken/empty.wav") + 1
    assert [(e["line"], e["custom_id"]) for e in batch["errors"]] == [(empty_line, "broken/empty.wav")]

    def completed() -> dict | None:
        status = stack.api.get(f"/v1/batches/{batch['id']}").json()
        return status if status["state"] == "completed" else None

    status = wait_for(completed, 300, "batch completion", 0.5)
    assert status["counts"]["succeeded"] == len(archive.good)
    results = {
        r["custom_id"]: r
        for r in map(json.loads, stack.api.get(f"/v1/batches/{batch['id']}/results").text.splitlines())
    }
    assert set(results) == set(files)
    for rel in archive.good:
        assert results[rel]["response"]["status_code"] == 200 and results[rel]["response"]["body"]["result"]["text"]
    for rel in [*archive.bad, "notes/README.txt"]:
        assert results[rel]["response"] is None and results[rel]["error"]["message"], rel
    duplicate_copy, original = archive.duplicates[0]
    assert (
        results[duplicate_copy]["response"]["body"]["result"]["text"]
        == results[original]["response"]["body"]["result"]["text"]
    )


def test_caption_cli_against_the_server(stack: Stack, worker: object, media: dict[str, Path], tmp_path: Path) -> None:
    import json
    import shutil

    from sqlalchemy import func

    from core.schema import Job

    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    shutil.copy(media["speech_wav"], source / "speech.wav")
    shutil.copy(media["speech_wav"], source / "nested" / "same speech.wav")
    shutil.copy(media["video_av"], source / "nested" / "clip.mp4")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "caption",
        str(source),
        "--task",
        "transcribe",
        "--out",
        str(out),
        "--server",
        str(stack.api.base_url),
        "--api-key",
        stack.key,
        "--json",
        "--subtitle-languages",
        "de",
    ]
    env = {k: v for k, v in stack.env.items() if k != "OMNIMEDIA_MODE"}

    def count_jobs() -> int:
        with stack.db() as session:
            return int(session.scalar(select(func.count()).select_from(Job)) or 0)

    before = count_jobs()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert count_jobs() - before == 4, "two unique contents, two jobs, and a German track of each"
    rows = {r["path"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert all(r["state"] == "succeeded" for r in rows.values()) and len(rows) == 3
    assert (out / "nested" / "same speech.srt").read_bytes() == (out / "speech.srt").read_bytes()
    german = (out / "speech.de.srt").read_text()  # made by a worker, published by the worker that transcribed
    assert [t for t in german.splitlines() if "-->" in t] == [
        t for t in (out / "speech.srt").read_text().splitlines() if "-->" in t
    ]
    assert "speech.de.srt" in rows["speech.wav"]["outputs"]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and count_jobs() - before == 4, "a rerun submits nothing"


def test_presigned_upload_then_job(stack: Stack, worker: object, media: dict[str, Path]) -> None:
    size = media["speech_wav"].stat().st_size
    request = {"filename": "talk.wav", "content_type": "audio/wav", "size_bytes": size}
    presign = stack.api.post("/v1/uploads/presign", json=request)
    assert presign.status_code == 201, presign.text
    body = presign.json()
    assert body["upload"]["state"] == "pending"
    early = stack.api.post("/v1/jobs", json={"task": "transcribe", "input": body["upload"]["id"]})
    assert early.status_code == 422 and early.json()["type"] == "/problems/upload-not-ready"
    put = httpx.put(body["url"], content=media["speech_wav"].read_bytes(), headers=body["headers"])
    assert put.status_code == 200
    confirmed = stack.api.post(f"/v1/uploads/{body['upload']['id']}/confirm").json()
    assert confirmed["state"] == "ready" and confirmed["size_bytes"] == media["speech_wav"].stat().st_size
    job = stack.api.post("/v1/jobs", json={"task": "transcribe", "input": body["upload"]["id"]}).json()
    assert final(stack, job["id"])["state"] == "succeeded"
    assert (
        stack.api.post("/v1/jobs", json={"task": "transcribe", "input": f"s3://{BUCKET}/nope.wav"}).status_code == 404
    )


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_match_the_job_table(stack: Stack, worker: object) -> None:
    from sqlalchemy import func

    from core.schema import Job

    scraped = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).text
    counted = _samples(scraped, "omnimedia_jobs_total")
    with stack.db() as session:
        rows = session.execute(
            select(Job.task, Job.state, func.count())
            .where(Job.worker == "e2e@localhost", Job.state.in_(["succeeded", "failed"]))
            .group_by(Job.task, Job.state)
        ).all()
    expected = {(("state", state), ("task", task)): float(n) for task, state, n in rows}
    assert expected and counted == expected
    assert sum(_samples(scraped, "omnimedia_media_seconds_total").values()) > 0
    assert _samples(scraped, "omnimedia_queue_wait_seconds_count")
    from tests.stack import ADMIN_TOKEN

    assert stack.api.get("/metrics").status_code == 401, "a tenant's key does not open /metrics"
    api = stack.api.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
    posted = _samples(api, "omnimedia_http_requests_total")
    assert posted[(("method", "POST"), ("route", "/v1/jobs"), ("status", "202"))] >= 10
    assert _samples(api, "omnimedia_http_request_seconds_count")


def test_flower_and_stats_page_in_chromium(stack: Stack, worker: object, tmp_path: Path) -> None:
    import re

    from sqlalchemy import func

    from core.schema import Job
    from tests.stack import ADMIN_TOKEN
    from tests.support import chromium

    port = free_port()
    log = (stack.logs / "flower.log").open("wb")
    env = {**stack.env, "OMNIMEDIA_FLOWER_USER": "ops", "OMNIMEDIA_FLOWER_PASSWORD": "flower-secret"}
    flower = subprocess.Popen(
        [sys.executable, "-m", "cli", "flower", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/healthcheck"), 180, "flower")
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 401, "basic auth is on"

        def dashboard() -> str | None:
            dom = chromium(f"http://ops:flower-secret@127.0.0.1:{port}/workers", tmp_path, "flower")
            return dom if "e2e@localhost" in dom else None

        assert wait_for(dashboard, 90, "the worker in Flower's dashboard", 2.0)
        assert (tmp_path / "flower.png").stat().st_size > 10_000
    finally:
        stop(flower)
        log.close()
    api = str(stack.api.base_url).replace("http://", f"http://admin:{ADMIN_TOKEN}@")
    dom = chromium(f"{api}/admin/stats", tmp_path, "stats")
    assert (tmp_path / "stats.png").stat().st_size > 10_000
    with stack.db() as session:
        succeeded = session.scalar(select(func.count()).select_from(Job).where(Job.state == "succeeded"))
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "omnimedia job stats" in text
    assert re.search(rf"succeeded\s+{succeeded}\b", text), text[:2000]
    assert stack.api.get("/v1/admin/jobs/stats").status_code == 401
    stats = stack.api.get("/v1/admin/jobs/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert stats["states_now"]["succeeded"] == succeeded and stats["windows"]["1h"]["engine_seconds_p50"] > 0


def test_idempotent_submits(stack: Stack, worker: object, media: dict[str, Path]) -> None:
    import json
    from concurrent.futures import ThreadPoolExecutor

    upload_id = upload(stack, media["image_png"])
    body = {"task": "ocr", "input": upload_id}
    headers = {"Idempotency-Key": "order-42"}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.api.base_url, headers=stack.api.headers, timeout=60) as client:
            return client.post("/v1/jobs", json=body, headers=headers)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1, ids
    (job_id,) = ids
    assert final(stack, job_id)["state"] == "succeeded"
    assert events(stack, job_id).count("running") == 1, "enqueued once"
    other = stack.api.post("/v1/jobs", json={**body, "params": {"max_new_tokens": 3}}, headers=headers)
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    jsonl = json.dumps({"custom_id": "a", "task": "ocr", "input": upload_id})
    batch_headers = {"content-type": "application/jsonl", "Idempotency-Key": "batch-42"}
    first = stack.api.post("/v1/batches", content=jsonl, headers=batch_headers)
    again = stack.api.post("/v1/batches", content=jsonl, headers=batch_headers)
    assert first.status_code == 202 and again.json()["id"] == first.json()["id"]


def test_health_view_shows_consumers_backlog_and_a_queue_nobody_serves(stack: Stack, worker: object) -> None:
    from tests.stack import ADMIN_TOKEN

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert stack.api.get("/v1/admin/health").status_code == 401, "a tenant's key does not open it"

    def served() -> dict | None:
        view = stack.api.get("/v1/admin/health", headers=admin).json()
        return view if view["queues"]["thinker"]["consumers"] else None

    view = wait_for(served, 60, "the worker to answer Celery's broadcast", 1.0)
    queues = view["queues"]
    assert queues["thinker"]["consumers"] >= 1 and queues["talker"]["consumers"] >= 1
    assert queues["webhooks"]["consumers"] == 0, "this stack runs no webhooks worker: the view says so"
    assert all(isinstance(q["depth"], int) for q in queues.values()) and view["webhooks_pending"] >= 0

    def gauges() -> dict | None:  # a broadcast reply can miss its second on a loaded machine: ask again
        consumers = _samples(stack.api.get("/metrics", headers=admin).text, "omnimedia_queue_consumers")
        return consumers if consumers.get((("queue", "thinker"),), 0) >= 1 else None

    consumers = wait_for(gauges, 60, "the consumer gauges", 1.0)
    assert consumers[(("queue", "webhooks"),)] == 0


def test_the_openai_client_against_the_real_stack(stack: Stack, worker: object, media: dict[str, Path]) -> None:
    """The official openai client on Postgres, Redis, SeaweedFS and a Celery worker: a transcription with word
    timestamps and a chat completion with an image, each a job the worker ran."""
    import base64

    import openai

    key = stack.api.headers["Authorization"].removeprefix("Bearer ")
    client = openai.OpenAI(base_url=f"{stack.api.base_url}/v1", api_key=key, max_retries=0, timeout=180)
    model = client.models.list().data[0].id
    words = client.audio.transcriptions.create(
        model=model,
        file=media["speech_wav"].open("rb"),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert words.words and words.segments and words.text
    image = base64.b64encode(media["image_png"].read_bytes()).decode()
    chat = client.chat.completions.create(
        model=model,
        max_tokens=6,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
                    {"type": "text", "text": "Read it."},
                ],
            }
        ],
    )
    job_id = chat.id.removeprefix("chatcmpl-")
    ran = [e for e in stack.api.get(f"/v1/jobs/{job_id}/events").json() if e["to_state"] == "running"]
    assert ran and ran[0]["worker"] == "e2e@localhost" and chat.choices[0].message.content
