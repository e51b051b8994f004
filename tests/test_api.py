"""The HTTP API on the embedded default: the full job flow and every kind of bad request (never a 500)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.embedded import clear_caches, use_embedded

PROBLEM = "application/problem+json"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> Iterator[TestClient]:
    use_embedded(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_MAX_UPLOAD_BYTES=str(2 * 1024**2))
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
    clear_caches()


def upload(client: TestClient, path: Path) -> str:
    response = client.post("/v1/uploads", files={"file": (path.name, path.read_bytes(), "application/octet-stream")})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_final(client: TestClient, job_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            return dict(job)
        time.sleep(0.1)
    raise TimeoutError(job_id)


def test_job_flow_and_results(client: TestClient, media: dict[str, Path]) -> None:
    response = client.post("/v1/jobs", json={"task": "transcribe", "input": upload(client, media["speech_wav"])})
    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    job = wait_final(client, response.json()["id"])
    assert job["state"] == "succeeded" and job["progress"] == 1.0
    assert set(job["result_formats"]) == {"json", "txt", "srt", "vtt"}
    srt = client.get(f"/v1/jobs/{job['id']}/result", params={"format": "srt"})
    assert srt.status_code == 200 and "-->" in srt.text
    vtt = client.get(f"/v1/jobs/{job['id']}/result", params={"format": "vtt"})
    assert vtt.text.startswith("WEBVTT")
    body = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert body["task"] == "transcribe" and body["segments"]
    listing = client.get("/v1/jobs", params={"state": "succeeded", "task": "transcribe"}).json()
    assert [j["id"] for j in listing["data"]] == [job["id"]]
    events = [e["to_state"] for e in client.get(f"/v1/jobs/{job['id']}/events").json()]
    assert events == ["queued", "running", "succeeded"]


def test_cursor_pagination(client: TestClient, media: dict[str, Path]) -> None:
    upload_id = upload(client, media["image_png"])
    ids = {client.post("/v1/jobs", json={"task": "ocr", "input": upload_id}).json()["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        page = client.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_bad_media_fails_with_reason_and_no_retry(client: TestClient, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    job_id = client.post("/v1/jobs", json={"task": "describe_video", "input": upload(client, corrupt)}).json()["id"]
    job = wait_final(client, job_id)
    assert job["state"] == "failed" and job["failure_class"] == "media" and job["attempts"] == 1
    assert "not a media file" in job["failure_reason"]
    retried = client.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202
    assert wait_final(client, job_id)["state"] == "failed"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"task": "paint", "input": "x"}, 422, "validation-error"),
        ({"task": "transcribe", "input": "abc123", "params": {"max_new_tokens": "many"}}, 422, "invalid-params"),
        ({"task": "ask", "input": "abc123", "params": {}}, 422, "invalid-params"),
        ({"task": "transcribe", "input": "abc123", "params": {"voice": "Bob"}}, 422, "invalid-params"),
        ({"task": "transcribe", "input": "nosuchupload"}, 404, "input-not-found"),
        ({"task": "transcribe", "input": "s3://not-allowed/key.wav"}, 404, "input-not-found"),  # local storage
        ({"task": "transcribe", "input": "s3://"}, 422, "invalid-input"),
        ({"task": "transcribe"}, 422, "validation-error"),
        ({"task": "transcribe", "input": "x", "extra": 1}, 422, "validation-error"),
    ],
)
def test_bad_job_requests_are_problems(client: TestClient, body: dict, status: int, kind: str) -> None:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"] == f"/problems/{kind}" and response.json()["detail"]


def test_bad_uploads_and_lookups(client: TestClient, tmp_path: Path) -> None:
    empty = client.post("/v1/uploads", files={"file": ("empty.wav", b"", "audio/wav")})
    assert empty.status_code == 422 and empty.json()["type"] == "/problems/empty-upload"
    big = client.post("/v1/uploads", files={"file": ("big.bin", b"x" * (3 * 1024**2), "audio/wav")})
    assert big.status_code == 413 and big.headers["content-type"].startswith(PROBLEM)
    no_file = client.post("/v1/uploads", files={"other": ("a.wav", b"RIFF", "audio/wav")}, data={"x": "1"})
    assert no_file.status_code == 422 and no_file.headers["content-type"].startswith(PROBLEM)
    assert (
        client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    )
    for path in ("/v1/jobs/doesnotexist", "/v1/jobs/../etc", "/v1/uploads/zzz", "/v1/jobs/abc/result"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith(PROBLEM), path
    presign = client.post("/v1/uploads/presign", json={"filename": "a.wav", "size_bytes": 100})
    assert presign.status_code == 409 and presign.json()["type"] == "/problems/presign-unsupported"


def test_result_before_finish_and_cancel_of_finished(client: TestClient, media: dict[str, Path]) -> None:
    job_id = client.post("/v1/jobs", json={"task": "ocr", "input": upload(client, media["image_png"])}).json()["id"]
    job = wait_final(client, job_id)
    assert job["state"] == "succeeded"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert client.get(f"/v1/jobs/{job_id}/audio").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/result", params={"format": "srt"}).status_code == 404  # images: no SRT
    assert client.get(f"/v1/jobs/{job_id}/result", params={"format": "exe"}).status_code == 422


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "storage": "ok"}
    spec = client.get("/openapi.json").json()
    paths = {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/uploads",
        "/v1/uploads/presign",
        "/v1/jobs/{job_id}/result",
        "/v1/jobs/{job_id}/audio",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/retry",
    }
    assert paths <= set(spec["paths"])
    assert "ProblemDetails" in spec["components"]["schemas"]
    tasks = {t["name"] for t in client.get("/v1/tasks").json()}
    assert tasks == {
        "transcribe",
        "translate",
        "caption_audio",
        "describe_video",
        "ocr",
        "ask",
        "analyze_music",
        "custom",
        "subtitles",
    }


def test_batch_jsonl_openai_and_short_forms(client: TestClient, media: dict[str, Path]) -> None:
    audio, image = upload(client, media["speech_wav"]), upload(client, media["image_png"])
    lines = [
        {"custom_id": "a", "method": "POST", "url": "/v1/jobs", "body": {"task": "transcribe", "input": audio}},
        {"custom_id": "b", "task": "ocr", "input": image},
        {"custom_id": "c", "task": "ocr", "input": "nosuchupload"},
        {"custom_id": "d", "task": "transcribe", "input": audio, "params": {"max_new_tokens": "x"}},
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n{broken json\n"
    response = client.post("/v1/batches", content=body, headers={"content-type": "application/jsonl"})
    assert response.status_code == 202, response.text
    batch = response.json()
    assert batch["jobs"] == 2 and batch["invalid_lines"] == 3
    assert [e["line"] for e in batch["errors"]] == [3, 4, 5]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/batches/{batch['id']}").json()["state"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = client.get(f"/v1/batches/{batch['id']}").json()
    assert status["counts"]["succeeded"] == 2 and status["progress"] == 1.0 and status["media_seconds_done"] > 0
    results = client.get(f"/v1/batches/{batch['id']}/results")
    assert results.headers["content-type"].startswith("application/jsonl")
    by_id = {r["custom_id"]: r for r in map(json.loads, results.text.splitlines())}
    assert by_id["a"]["response"]["status_code"] == 200 and by_id["a"]["response"]["body"]["result"]["text"]
    assert by_id["b"]["error"] is None
    assert by_id["c"]["error"]["line"] == 3 and "no upload" in by_id["c"]["error"]["message"]
    assert by_id["line-5"]["error"]["code"] == "invalid_line"


def test_batch_rejections(client: TestClient, media: dict[str, Path]) -> None:
    audio = upload(client, media["speech_wav"])
    dup = "\n".join(json.dumps({"custom_id": "same", "task": "transcribe", "input": audio}) for _ in range(2))
    response = client.post("/v1/batches", content=dup, headers={"content-type": "application/jsonl"})
    assert response.status_code == 422 and "duplicate custom_id" in response.json()["detail"]
    none_valid = json.dumps({"custom_id": "x", "task": "paint", "input": audio})
    response = client.post("/v1/batches", content=none_valid, headers={"content-type": "application/jsonl"})
    assert response.status_code == 422 and response.json()["errors"][0]["line"] == 1
    assert client.post("/v1/batches", content=b"x", headers={"content-type": "image/png"}).status_code == 415
    assert client.get("/v1/batches/nope").status_code == 404


def test_batch_is_one_transaction_made_off_the_event_loop(
    client: TestClient, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating a batch used to run blocking database calls on the event loop and commit once per line."""
    import asyncio

    from sqlalchemy import event

    from core import intake as route  # the one door for batches, as for jobs

    image = upload(client, media["image_png"])
    commits: list[int] = []
    seen: dict[str, object] = {}
    original_create, original_enqueue = route.create_batch, route.enqueue

    def watched(session, *args, **kwargs):  # type: ignore[no-untyped-def]
        event.listen(session.get_bind(), "commit", lambda _conn: commits.append(1))
        try:
            asyncio.get_running_loop()
            seen["on_loop"] = True
        except RuntimeError:
            seen["on_loop"] = False
        return original_create(session, *args, **kwargs)

    def publish(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.setdefault("commits", len(commits))  # commits from the batch's start to its first job's publish
        return original_enqueue(*args, **kwargs)

    monkeypatch.setattr(route, "create_batch", watched)
    monkeypatch.setattr(route, "enqueue", publish)
    body = "\n".join(json.dumps({"custom_id": f"c{i}", "task": "ocr", "input": image}) for i in range(20))
    response = client.post("/v1/batches", content=body, headers={"content-type": "application/jsonl"})
    assert response.status_code == 202, response.text
    assert response.json()["jobs"] == 20
    assert seen == {"on_loop": False, "commits": 1}


def test_storage_outage_is_503_not_500(client: TestClient, media: dict[str, Path]) -> None:
    import shutil

    from core.config import get_settings
    from core.storage import get_storage

    get_storage()
    root = get_settings().resolved_storage_root()
    shutil.rmtree(root)
    root.write_text("not a folder any more")  # the local backend can no longer write
    response = client.post("/v1/uploads", files={"file": ("a.wav", media["speech_wav"].read_bytes())})
    assert response.status_code == 503 and response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"] == "/problems/storage-unavailable" and response.headers["retry-after"] == "5"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["storage"].startswith("error")


def test_a_submit_that_fails_unexpectedly_leaves_its_idempotency_key_free(
    client: TestClient, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is written in the job's own transaction: an error before the commit leaves neither behind, and the
    retry is served at once (it used to wait 30 s on the stranded key, then answer 409)."""
    from core import intake as route

    body = {"task": "transcribe", "input": upload(client, media["speech_wav"])}
    headers = {"Idempotency-Key": "order-7"}
    original = route.prepare_job

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        original(*args, **kwargs)  # the job row is written into the transaction, then the request fails
        raise RuntimeError("unexpected failure after the insert")

    monkeypatch.setattr(route, "prepare_job", broken)
    assert client.post("/v1/jobs", json=body, headers=headers).status_code == 500
    assert client.get("/v1/jobs").json()["data"] == [], "the failed request left no job"
    monkeypatch.setattr(route, "prepare_job", original)
    started = time.monotonic()
    first = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == 202 and time.monotonic() - started < 5
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/jobs", json={**body, "params": {"language": "en"}}, headers=headers)
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    found = client.get("/v1/jobs", params={"idempotency_key": "order-7"}).json()["data"]
    assert [job["id"] for job in found] == [first.json()["id"]], "a client that lost its 202 finds its job by key"
    assert client.get("/v1/jobs", params={"idempotency_key": "never-sent"}).json()["data"] == []


def test_a_replayed_submit_publishes_a_job_that_is_still_queued_again(
    client: TestClient, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that lost its 202 (the API died between the commit and the publish) sends the same request again:
    the job it created is published again while it is still queued, and not once a worker has it."""
    from core import intake as route
    from core.db import get_sessionmaker
    from core.jobs import machine

    sent: list[str] = []
    monkeypatch.setattr(route, "enqueue", lambda job_id, _queue, _settings: sent.append(job_id))
    body = {"task": "transcribe", "input": upload(client, media["speech_wav"])}
    headers = {"Idempotency-Key": "lost-202"}
    job_id = client.post("/v1/jobs", json=body, headers=headers).json()["id"]
    assert client.post("/v1/jobs", json=body, headers=headers).json()["id"] == job_id
    assert sent == [job_id, job_id]
    with get_sessionmaker()() as session:
        assert machine.start(session, job_id, "worker-1", 60)
    assert client.post("/v1/jobs", json=body, headers=headers).json()["id"] == job_id
    assert sent == [job_id, job_id], "a job a worker holds is not published again"
