"""Webhooks on the embedded service (SQLite, in-process worker and sender) against a real uvicorn receiver that
verifies every signature with the standardwebhooks library."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.embedded import clear_caches, use_embedded
from tests.receiver import Receiver
from tests.support import free_port, wait_for

Client = tuple[TestClient, dict[str, dict[str, str]]]
SCHEDULE = "[0, 0.2, 0.2, 0.2, 0.2]"
# The receivers' loopback ports, the only ones the service may call on this machine (OMNIMEDIA_WEBHOOK_LOOPBACK_PORTS).
HOOK, WATCHER, TARGET, TLS = (free_port() for _ in range(4))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> Iterator[Client]:
    use_embedded(
        monkeypatch,
        tmp_path / "data",
        tiny_model,
        OMNIMEDIA_ALLOW_ANONYMOUS="false",
        OMNIMEDIA_WEBHOOK_LOOPBACK_PORTS=json.dumps([HOOK, WATCHER, TARGET, TLS]),
        OMNIMEDIA_WEBHOOK_RETRY_SCHEDULE_S=SCHEDULE,
        OMNIMEDIA_WEBHOOK_JITTER="0",
        OMNIMEDIA_WEBHOOK_SWEEP_EVERY_S="0.1",
        OMNIMEDIA_WEBHOOK_TIMEOUT_S="1",
        OMNIMEDIA_PUBLIC_URL="https://media.example.com",
    )
    from api.app import create_app
    from core.db import get_sessionmaker
    from core.keys import create_key

    with get_sessionmaker()() as session:
        keys = {tenant: create_key(session, tenant)[1] for tenant in ("alpha", "beta")}
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client, {t: {"Authorization": f"Bearer {k}"} for t, k in keys.items()}
    clear_caches()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(port=HOOK).start()
    yield hook
    hook.stop()


def register(client: TestClient, headers: dict[str, str], receiver: Receiver, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": receiver.url, **body}, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    receiver.secrets.append(created["secret"])
    return dict(created)


def upload(client: TestClient, headers: dict[str, str], path: Path) -> str:
    response = client.post("/v1/uploads", files={"file": (path.name, path.read_bytes())}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(client: TestClient, headers: dict[str, str], upload_id: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"task": "ocr", "input": upload_id, **extra}, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def deliveries(client: TestClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/webhooks/deliveries", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def settled(client: TestClient, headers: dict[str, str], count: int = 1, **params: str) -> list[dict[str, Any]]:
    """Wait until `count` deliveries are no longer pending or sending."""

    def done() -> list[dict[str, Any]] | None:
        rows = [d for d in deliveries(client, headers, **params) if d["state"] not in ("pending", "sending")]
        return rows if len(rows) >= count else None

    return wait_for(done, 60, f"{count} settled deliveries")  # type: ignore[no-any-return]


def test_retries_until_the_receiver_accepts(api: Client, receiver: Receiver, media: dict[str, Path]) -> None:
    from prometheus_client import REGISTRY

    def attempts_counted(result: str) -> float:
        return REGISTRY.get_sample_value("omnimedia_webhook_attempts_total", {"result": result}) or 0.0

    before = {result: attempts_counted(result) for result in ("2xx", "5xx")}
    client, keys = api
    register(client, keys["alpha"], receiver)
    receiver.answer(500, 500, 500)
    job = submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    (delivery,) = settled(client, keys["alpha"])
    assert {r: attempts_counted(r) - before[r] for r in before} == {"2xx": 1, "5xx": 3}, "Prometheus counts attempts"
    assert delivery["state"] == "succeeded" and delivery["attempts"] == 4
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 500, 500, 200]
    assert all(a["latency_ms"] is not None for a in log)
    assert [a["next_attempt_at"] is not None for a in log] == [True, True, True, False]
    got = receiver.wait(1)
    assert len(got) == 4 and all(r.verified for r in got), "every attempt is signed with the endpoint secret"
    assert {r.webhook_id for r in got} == {delivery["event_id"]}, "webhook-id is stable across retries"
    assert receiver.ids(200) == [delivery["event_id"]], "delivered once"
    payload = got[-1].payload
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job["id"]
    assert payload["data"]["result_url"] == f"https://media.example.com/v1/jobs/{job['id']}/result"
    assert set(payload) == {"type", "timestamp", "data"} and len(json.dumps(payload)) < 20_000
    assert got[-1].headers["content-type"] == "application/json"


def test_failed_job_reason_and_event_filter(
    api: Client, receiver: Receiver, media: dict[str, Path], tmp_path: Path
) -> None:
    client, keys = api
    register(client, keys["alpha"], receiver, events=["job.failed"])
    good = submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    bad_file = tmp_path / "broken.png"
    bad_file.write_bytes(media["image_png"].read_bytes()[:60])
    bad = submit(client, keys["alpha"], upload(client, keys["alpha"], bad_file))
    (delivery,) = settled(client, keys["alpha"])
    assert client.get(f"/v1/jobs/{good['id']}", headers=keys["alpha"]).json()["state"] == "succeeded"
    got = receiver.wait(1)
    assert len(got) == 1, "the filter drops job.succeeded"
    data = got[0].payload["data"]
    assert delivery["event_type"] == "job.failed" and data["id"] == bad["id"] and data["state"] == "failed"
    assert data["failure_reason"] and data["failure_class"] and "result_url" not in data


def test_410_disables_the_endpoint_and_tells_the_tenant(
    api: Client, receiver: Receiver, media: dict[str, Path]
) -> None:
    client, keys = api
    gone = register(client, keys["alpha"], receiver, events=["job.succeeded"])
    watcher = Receiver(port=WATCHER).start()
    try:
        response = client.post(
            "/v1/webhooks", json={"url": watcher.url, "events": ["webhook.disabled"]}, headers=keys["alpha"]
        )
        watcher.secrets.append(response.json()["secret"])
        receiver.answer(410)
        submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
        notice = watcher.wait(1)[0]
    finally:
        watcher.stop()
    assert notice.verified and notice.payload["type"] == "webhook.disabled"
    assert notice.payload["data"]["id"] == gone["id"] and "410" in notice.payload["data"]["reason"]
    endpoint = client.get(f"/v1/webhooks/{gone['id']}", headers=keys["alpha"]).json()
    assert endpoint["enabled"] is False and "410" in endpoint["disabled_reason"]
    events = client.get("/v1/webhooks/events", params={"type": "webhook.disabled"}, headers=keys["alpha"]).json()
    assert [e["payload"]["data"]["id"] for e in events] == [gone["id"]]
    assert len(receiver.ids()) == 1, "no retry after 410"
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    time.sleep(1.5)
    assert len(receiver.ids()) == 1, "a disabled endpoint gets nothing"
    assert client.patch(f"/v1/webhooks/{gone['id']}", json={"enabled": True}, headers=keys["alpha"]).json()["enabled"]


def test_retry_after_is_honoured_and_redirects_are_failures(
    api: Client, receiver: Receiver, media: dict[str, Path]
) -> None:
    client, keys = api
    register(client, keys["alpha"], receiver)
    target = Receiver(port=TARGET).start()
    try:
        receiver.answer(302, headers={"location": target.url})
        receiver.answer(429, headers={"retry-after": "2"})
        submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
        (delivery,) = settled(client, keys["alpha"])
        assert target.received == [], "redirects are never followed"
    finally:
        target.stop()
    first, second, third = delivery["attempt_log"]
    assert first["status_code"] == 302 and "redirects are not followed" in first["error"]
    assert second["status_code"] == 429 and third["status_code"] == 200
    from datetime import datetime

    waited = datetime.fromisoformat(third["at"]) - datetime.fromisoformat(second["at"])
    assert waited >= timedelta(seconds=2), f"Retry-After: 2 beats the 0.2 s schedule step (waited {waited})"


def test_timeouts_and_exhausted_schedule_fail_the_delivery(
    api: Client, receiver: Receiver, media: dict[str, Path]
) -> None:
    client, keys = api
    register(client, keys["alpha"], receiver)
    receiver.answer(200, delay_s=2.0)  # longer than the 1 s timeout
    receiver.answer(503, 503, 503, 503)
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    (delivery,) = settled(client, keys["alpha"])
    assert delivery["state"] == "failed" and delivery["attempts"] == 5, "the schedule has 5 entries"
    assert "timed out" in delivery["attempt_log"][0]["error"]
    assert delivery["attempt_log"][-1]["next_attempt_at"] is None


def test_endpoint_failing_for_days_is_disabled(api: Client, receiver: Receiver, media: dict[str, Path]) -> None:
    from core.db import get_sessionmaker
    from core.schema import WebhookEndpoint, utcnow

    client, keys = api
    endpoint = register(client, keys["alpha"], receiver)
    with get_sessionmaker()() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint["id"])
            .values(failing_since=utcnow() - timedelta(days=6))
        )
        session.commit()
    receiver.answer(500)
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    (delivery,) = settled(client, keys["alpha"], endpoint_id=endpoint["id"])
    assert delivery["state"] == "failed" and delivery["attempts"] == 1
    shown = client.get(f"/v1/webhooks/{endpoint['id']}", headers=keys["alpha"]).json()
    assert shown["enabled"] is False and "days" in shown["disabled_reason"]
    types = [e["type"] for e in client.get("/v1/webhooks/events", headers=keys["alpha"]).json()]
    assert "webhook.disabled" in types


def test_dns_rebinding_is_caught_at_connect_time(
    api: Client, receiver: Receiver, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import get_settings
    from core.webhooks import delivery as delivery_module

    client, keys = api
    monkeypatch.setenv("OMNIMEDIA_WEBHOOK_PORTS", f"[80, 443, {receiver.port}]")  # the receiver's port, allowed
    get_settings.cache_clear()
    answers = {"hooks.example.test": ["93.184.215.14"]}  # public at registration
    monkeypatch.setattr(delivery_module, "resolve", lambda host, port: answers[host])
    url = f"http://hooks.example.test:{receiver.port}/hook"
    created = client.post("/v1/webhooks", json={"url": url}, headers=keys["alpha"])
    assert created.status_code == 201, created.text
    receiver.secrets.append(created.json()["secret"])
    answers["hooks.example.test"] = ["10.0.0.7"]  # then the name rebinds to a private address
    upload_id = upload(client, keys["alpha"], media["image_png"])
    submit(client, keys["alpha"], upload_id)
    (delivery,) = settled(client, keys["alpha"])
    assert delivery["state"] == "failed" and delivery["attempts"] == 5, "every attempt re-resolves and is refused"
    for attempt in delivery["attempt_log"]:
        assert attempt["status_code"] is None and "10.0.0.7 is a private address" in attempt["error"]
    assert receiver.received == [], "no connection was made"
    answers["hooks.example.test"] = ["127.0.0.1"]  # loopback is allowed in this setup: the pinned address is used
    assert client.post(f"/v1/webhooks/deliveries/{delivery['id']}/replay", headers=keys["alpha"]).status_code == 202
    got = receiver.wait(1)
    assert got[-1].verified and got[-1].headers["host"] == f"hooks.example.test:{receiver.port}"


def test_https_delivery_is_pinned_and_still_verifies_the_certificate(
    api: Client, media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the address the guard approved, while TLS checks the certificate against the URL's
    host name (SNI): a certificate for another name is refused."""
    import ssl

    from core import outbound
    from core.webhooks import delivery as delivery_module
    from tests.receiver import make_certificate

    ca, cert, key = make_certificate(tmp_path, "hooks.example.test")
    monkeypatch.setattr(delivery_module, "resolve", lambda host, port: ["127.0.0.1"])
    monkeypatch.setattr(outbound, "tls_context", lambda: ssl.create_default_context(cafile=str(ca)))
    receiver = Receiver(port=TLS, tls=(cert, key)).start()
    try:
        client, keys = api
        for name in ("hooks.example.test", "impostor.example.test"):
            created = client.post(
                "/v1/webhooks", json={"url": f"https://{name}:{receiver.port}/hook"}, headers=keys["alpha"]
            )
            assert created.status_code == 201, created.text
            receiver.secrets.append(created.json()["secret"])
        submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
        got = receiver.wait(1)
        refused = settled(client, keys["alpha"], count=2)
    finally:
        receiver.stop()
    assert len(got) == 1 and got[0].verified and got[0].headers["host"] == f"hooks.example.test:{receiver.port}"
    by_url = {d["state"]: d for d in refused}
    assert set(by_url) == {"succeeded", "failed"}
    assert all("CERTIFICATE_VERIFY_FAILED" in a["error"] for a in by_url["failed"]["attempt_log"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("ftp://example.com/hook", "scheme 'ftp'"),
        ("http://[::ffff:192.168.1.1]/hook", "private"),
        ("http://user:pw@example.com/hook", "credentials"),
    ],
)
def test_unsafe_urls_are_refused_at_registration(api: Client, url: str, reason: str) -> None:
    client, keys = api
    response = client.post("/v1/webhooks", json={"url": url}, headers=keys["alpha"])
    assert response.status_code == 422 and reason in response.json()["detail"], response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_job_webhook_url_needs_the_tenant_secret(api: Client, receiver: Receiver, media: dict[str, Path]) -> None:
    client, keys = api
    upload_id = upload(client, keys["alpha"], media["image_png"])
    refused = client.post(
        "/v1/jobs", json={"task": "ocr", "input": upload_id, "webhook_url": receiver.url}, headers=keys["alpha"]
    )
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/webhook-secret-missing"
    secret = client.post("/v1/webhooks/secret", headers=keys["alpha"])
    assert secret.status_code == 201 and secret.json()["secret"].startswith("whsec_")
    receiver.secrets.append(secret.json()["secret"])
    body = {"task": "ocr", "input": upload_id, "webhook_url": "http://169.254.169.254/"}
    metadata = client.post("/v1/jobs", json=body, headers=keys["alpha"])
    assert metadata.status_code == 422 and "link-local" in metadata.json()["detail"]
    job = submit(client, keys["alpha"], upload_id, webhook_url=receiver.url)
    assert job["webhook_url"] == receiver.url
    got = receiver.wait(1)
    assert got[0].verified and got[0].payload["data"]["id"] == job["id"]


def test_replays_to_a_job_webhook_url_are_rate_limited(
    api: Client, receiver: Receiver, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's webhook_url is a URL no one registered: replays to it are capped per tenant and hour (429)."""
    from core.config import get_settings

    client, keys = api
    receiver.secrets.append(client.post("/v1/webhooks/secret", headers=keys["alpha"]).json()["secret"])
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]), webhook_url=receiver.url)
    (delivery,) = settled(client, keys["alpha"])
    monkeypatch.setenv("OMNIMEDIA_WEBHOOK_REPLAYS_PER_HOUR", "2")
    get_settings.cache_clear()
    path = f"/v1/webhooks/deliveries/{delivery['id']}/replay"
    time.sleep(1.1)  # a replay is a delivery made later than its event
    answers = [client.post(path, headers=keys["alpha"]) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["type"] == "/problems/replay-rate-limited"
    assert 0 < int(answers[2].headers["retry-after"]) <= 3600


def test_replays_to_a_registered_endpoint_are_rate_limited_too(
    api: Client, receiver: Receiver, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import get_settings

    client, keys = api
    register(client, keys["alpha"], receiver)
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    (delivery,) = settled(client, keys["alpha"])
    monkeypatch.setenv("OMNIMEDIA_WEBHOOK_REPLAYS_PER_HOUR", "2")
    get_settings.cache_clear()
    time.sleep(1.1)  # a replay is a delivery made later than its event
    path = f"/v1/webhooks/deliveries/{delivery['id']}/replay"
    answers = [client.post(path, headers=keys["alpha"]) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["type"] == "/problems/replay-rate-limited"


def test_batch_completed_is_sent_once(api: Client, receiver: Receiver, media: dict[str, Path]) -> None:
    client, keys = api
    receiver.secrets.append(client.post("/v1/webhooks/secret", headers=keys["alpha"]).json()["secret"])
    upload_id = upload(client, keys["alpha"], media["image_png"])
    lines = "\n".join(json.dumps({"custom_id": f"c{i}", "task": "ocr", "input": upload_id}) for i in range(3))
    response = client.post(
        "/v1/batches",
        content=lines,
        params={"webhook_url": receiver.url},
        headers={**keys["alpha"], "content-type": "application/jsonl"},
    )
    assert response.status_code == 202, response.text
    got = receiver.wait(1)
    assert len(got) == 1 and got[0].verified
    data = got[0].payload["data"]
    assert got[0].payload["type"] == "batch.completed" and data["id"] == response.json()["id"]
    assert data["counts"] == {"succeeded": 3} and data["state"] == "completed"
    assert client.get(f"/v1/batches/{data['id']}", headers=keys["alpha"]).json()["state"] == "completed"
    time.sleep(0.5)
    assert len(receiver.ids()) == 1, "job events went nowhere: no endpoint, and batch jobs carry no webhook_url"


def test_secret_rotation_signs_with_both_then_replay_resends(
    api: Client, receiver: Receiver, media: dict[str, Path]
) -> None:
    client, keys = api
    endpoint = register(client, keys["alpha"], receiver)
    old = receiver.secrets.pop()
    rotated = client.post(f"/v1/webhooks/{endpoint['id']}/secret", headers=keys["alpha"])
    assert rotated.status_code == 201 and rotated.json()["previous_secret_expires_at"]
    new = rotated.json()["secret"]
    assert new != old
    upload_id = upload(client, keys["alpha"], media["image_png"])
    submit(client, keys["alpha"], upload_id)
    signatures = receiver.wait(1, status=None)[0].headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    from standardwebhooks import Webhook

    sent = receiver.received[0]
    body = json.dumps(sent.payload, separators=(",", ":"))
    for secret in (old, new):  # either secret verifies during the grace period
        Webhook(secret).verify(body, sent.headers)
    assert "secret" not in client.get(f"/v1/webhooks/{endpoint['id']}", headers=keys["alpha"]).json()
    (delivery,) = settled(client, keys["alpha"])
    receiver.secrets.append(new)
    replay = client.post(f"/v1/webhooks/deliveries/{delivery['id']}/replay", headers=keys["alpha"])
    assert replay.status_code == 202 and replay.json()["event_id"] == delivery["event_id"]
    got = receiver.wait(2)
    assert [r.webhook_id for r in got] == [delivery["event_id"]] * 2 and got[-1].verified


def test_tenants_never_see_each_others_webhooks(api: Client, receiver: Receiver, media: dict[str, Path]) -> None:
    client, keys = api
    endpoint = register(client, keys["alpha"], receiver)
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    (delivery,) = settled(client, keys["alpha"])
    beta = keys["beta"]
    for method, path in [
        ("GET", f"/v1/webhooks/{endpoint['id']}"),
        ("PATCH", f"/v1/webhooks/{endpoint['id']}"),
        ("DELETE", f"/v1/webhooks/{endpoint['id']}"),
        ("POST", f"/v1/webhooks/{endpoint['id']}/secret"),
        ("POST", f"/v1/webhooks/deliveries/{delivery['id']}/replay"),
    ]:
        response = client.request(method, path, headers=beta, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path, response.status_code)
    assert client.get("/v1/webhooks", headers=beta).json() == []
    assert client.get("/v1/webhooks/deliveries", headers=beta).json() == []
    assert client.get("/v1/webhooks/events", headers=beta).json() == []
    assert client.get("/v1/webhooks", headers={}).status_code == 401
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=keys["alpha"]).status_code == 204


def test_deleting_an_endpoint_during_an_attempt(api: Client, receiver: Receiver, media: dict[str, Path]) -> None:
    client, keys = api
    endpoint = register(client, keys["alpha"], receiver)
    receiver.answer(500, delay_s=1.0)
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    wait_for(lambda: receiver.ids(None), 30, "the first attempt")  # the receiver is still answering it
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=keys["alpha"]).status_code == 204
    time.sleep(1.5)
    assert deliveries(client, keys["alpha"]) == [], "its deliveries went with it"
    register(client, keys["alpha"], receiver)
    submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    assert receiver.wait(1)[-1].verified, "the sender carried on"


def test_outbox_event_commits_with_the_final_state(
    api: Client, monkeypatch: pytest.MonkeyPatch, receiver: Receiver, media: dict[str, Path]
) -> None:
    """If the event cannot be written, the job does not become final either (one transaction); and a delivery
    whose hand-off to the sender was lost is found and sent by the sweeper."""
    from core.config import get_settings
    from core.db import get_sessionmaker
    from core.jobs import machine as jobs
    from core.jobs.machine import Transition
    from core.schema import Job, WebhookDelivery, WebhookEvent
    from core.webhooks import outbox
    from core.webhooks.sweeper import sweep

    client, keys = api
    register(client, keys["alpha"], receiver)
    monkeypatch.setenv("OMNIMEDIA_MODE", "celery")  # no worker: the job stays queued
    monkeypatch.setenv("OMNIMEDIA_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    job = submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    with get_sessionmaker()() as session:
        with monkeypatch.context() as patch:
            patch.setattr(outbox, "emit", broken)
            with pytest.raises(RuntimeError):
                jobs.transition(session, job["id"], Transition.CANCEL, "test")
        session.rollback()
        assert session.get(Job, job["id"], populate_existing=True).state == "queued"  # type: ignore[union-attr]
        assert session.scalars(select(WebhookEvent)).all() == []
        assert session.scalars(select(WebhookDelivery)).all() == [], "deliveries and attempts go with their event"
        assert jobs.transition(session, job["id"], Transition.CANCEL, "test")  # hand-off fails: no broker
        (pending,) = session.scalars(select(WebhookDelivery)).all()
        assert pending.state == "pending"
        sent: list[str] = []
        settings = get_settings().model_copy(update={"webhook_redispatch_s": 0.0})
        report = sweep(session, settings, sent.extend)
        assert report.sent == [pending.id] == sent


def test_a_lost_hand_off_is_swept_within_seconds(
    api: Client, monkeypatch: pytest.MonkeyPatch, receiver: Receiver, media: dict[str, Path]
) -> None:
    """A first attempt whose message never reached the broker is re-sent once its hand-off grace has passed, not
    after the 5-minute countdown horizon that retries use."""
    from core.config import get_settings
    from core.db import get_sessionmaker
    from core.jobs import machine
    from core.jobs.machine import Transition
    from core.schema import WebhookDelivery
    from core.webhooks.sweeper import sweep

    client, keys = api
    register(client, keys["alpha"], receiver)
    monkeypatch.setenv("OMNIMEDIA_MODE", "celery")  # no worker and no broker: the hand-off fails
    monkeypatch.setenv("OMNIMEDIA_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    job = submit(client, keys["alpha"], upload(client, keys["alpha"], media["image_png"]))
    with get_sessionmaker()() as session:
        assert machine.transition(session, job["id"], Transition.CANCEL, "test")
        (pending,) = session.scalars(select(WebhookDelivery)).all()
        assert pending.state == "pending" and pending.attempts == 0
        settings = get_settings().model_copy(update={"webhook_redispatch_s": 300.0})
        sent: list[str] = []
        early = settings.model_copy(update={"webhook_handoff_grace_s": 60.0})
        assert sweep(session, early, sent.extend).sent == [], "within the grace the message may still arrive"
        time.sleep(0.3)
        late = settings.model_copy(update={"webhook_handoff_grace_s": 0.2})
        assert sweep(session, late, sent.extend).sent == [pending.id] == sent


def test_production_schedule_jitter_and_retry_after_parsing() -> None:
    from email.utils import format_datetime

    from core.config import Settings
    from core.schema import utcnow
    from core.webhooks.delivery import next_delay, parse_retry_after

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.webhook_retry_schedule_s == [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    assert settings.webhook_timeout_s == 15
    for made, base in enumerate(settings.webhook_retry_schedule_s):
        delays = {next_delay(made, settings) for _ in range(20)}
        assert all(d is not None and base <= d <= base * (1 + settings.webhook_jitter) for d in delays)
        assert base == 0 or len(delays) > 1, "jitter spreads the retries of a burst"
    assert next_delay(len(settings.webhook_retry_schedule_s), settings) is None
    assert 120 <= (next_delay(1, settings, retry_after_s=120.0) or 0) < 300
    assert parse_retry_after("7") == 7.0 and parse_retry_after("soon") is None and parse_retry_after(None) is None
    in_a_minute = format_datetime(utcnow() + timedelta(seconds=60), usegmt=True)
    assert 55 <= (parse_retry_after(in_a_minute) or 0) <= 60


def test_reconciler_completes_a_missed_batch_and_purges_old_events(
    api: Client, receiver: Receiver, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import get_settings
    from core.db import get_sessionmaker
    from core.maintenance import run_maintenance as reconcile
    from core.schema import BatchItem, Job, WebhookDelivery, WebhookEvent

    client, keys = api
    register(client, keys["alpha"], receiver, events=["batch.completed"])
    monkeypatch.setenv("OMNIMEDIA_MODE", "celery")  # no worker: jobs stay queued
    monkeypatch.setenv("OMNIMEDIA_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    upload_id = upload(client, keys["alpha"], media["image_png"])
    line = json.dumps({"custom_id": "only", "task": "ocr", "input": upload_id})
    batch = client.post("/v1/batches", content=line, headers={**keys["alpha"], "content-type": "application/jsonl"})
    batch_id = batch.json()["id"]
    with get_sessionmaker()() as session:
        job_ids = select(BatchItem.job_id).where(BatchItem.batch_id == batch_id)
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(state="succeeded"))  # behind the outbox's back
        session.commit()
        report = reconcile(session, get_settings(), lambda job_id, queue: None)
        assert report.batches_completed == [batch_id]
        (event,) = session.scalars(select(WebhookEvent)).all()
        assert event.type == "batch.completed" and event.payload["data"]["id"] == batch_id
        assert reconcile(session, get_settings(), lambda job_id, queue: None).batches_completed == []
        expired = get_settings().model_copy(update={"webhook_retention_s": -1.0})
        reconcile(session, expired, lambda job_id, queue: None)
        assert session.scalars(select(WebhookEvent)).all() == []
        assert session.scalars(select(WebhookDelivery)).all() == [], "deliveries and attempts go with their event"
