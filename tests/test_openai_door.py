"""The OpenAI-compatible door and the caller guard, tried as an attacker would, on real parts (uvicorn, SQLite,
real sockets on loopback): tenant URLs never reach this machine, outbound calls and request bodies stop at their
deadlines, one tenant's slow or many requests never starve another, the guard holds at any mount point, no body
answers 500, secrets are encrypted at rest, and pages send security headers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import openai
import psutil
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.embedded import clear_caches, use_embedded
from tests.peers import GzipBomb, Peer, Trickle
from tests.support import free_port, stream_until_answered, wait_for

PNG_URL = "data:image/png;base64,iVBORw0KGgo="


@dataclass
class Served:
    base: str
    keys: dict[str, dict[str, str]]


def _keys() -> dict[str, dict[str, str]]:
    from core.db import get_sessionmaker
    from core.keys import create_key

    with get_sessionmaker()() as session:
        return {t: {"Authorization": f"Bearer {create_key(session, t)[1]}"} for t in ("alpha", "beta")}


@contextmanager
def serving(
    monkeypatch: pytest.MonkeyPatch, data: Path, model: Path, root_path: str = "", **env: str
) -> Iterator[Served]:
    """The API on a real uvicorn in a thread of this process (so a test can widen the media guard to a port)."""
    use_embedded(monkeypatch, data, model, OMNIMEDIA_ALLOW_ANONYMOUS="false", **env)
    from api.app import create_app

    keys = _keys()
    port = free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning", root_path=root_path)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn")
    try:
        yield Served(f"http://127.0.0.1:{port}", keys)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        clear_caches()


def _chat(url: str, **part: object) -> dict[str, object]:
    content = [part or {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is it?"}]
    return {"model": "tiny-instruct0", "messages": [{"role": "user", "content": content}]}


def _raw(port: int, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode())
    return sock


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> Iterator[TestClient]:
    use_embedded(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_ADMIN_TOKEN="door-admin")
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
    clear_caches()


# -- 1. tenant URLs never reach this machine -------------------------------------------------------------------


def test_a_tenant_media_url_never_reaches_loopback_even_where_webhooks_may(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    listener = Peer().start()
    try:
        # Both the old setting (loopback for every URL, every port) and the new one (the operator's webhook ports).
        loopback = {"OMNIMEDIA_ALLOW_LOOPBACK_URLS": "true", "OMNIMEDIA_WEBHOOK_LOOPBACK_PORTS": f"[{listener.port}]"}
        use_embedded(monkeypatch, tmp_path / "data", tiny_model, **loopback)
        from api.app import create_app

        with TestClient(create_app(), raise_server_exceptions=False) as api:
            for host in ("127.0.0.1", "localhost", "[::1]", "127.1", "[::ffff:127.0.0.1]"):
                answer = api.post("/v1/chat/completions", json=_chat(f"http://{host}:{listener.port}/admin"))
                assert answer.status_code == 400, answer.text
                assert "loopback" in answer.json()["error"]["message"]
        clear_caches()
    finally:
        listener.stop()
    assert listener.connections == 0, "the listener saw no connection"


# -- 3. outbound calls stop at one wall-clock deadline ---------------------------------------------------------


def test_a_media_fetch_stops_within_a_second_of_its_overall_deadline() -> None:
    from core import outbound
    from core.netguard import system_resolver

    trickle = Trickle(every_s=0.2).start()
    guard = outbound.Guard(system_resolver, [80], loopback_ports=[trickle.port])
    received: list[bytes] = []
    started = time.monotonic()
    try:
        with pytest.raises(outbound.OutboundError) as stopped:
            anyio.run(lambda: outbound.request("GET", trickle.url, guard, 1.5, 10**6, received.append))
    finally:
        trickle.stop()
    elapsed = time.monotonic() - started
    assert stopped.value.kind == "timeout" and 1.5 <= elapsed < 2.5, elapsed
    assert received, "the trickle was being read (each read well inside any per-read timeout) when it was cut"


def test_a_webhook_delivery_stops_within_a_second_of_its_overall_deadline() -> None:
    from core.config import Settings
    from core.webhooks.delivery import post
    from core.webhooks.signing import new_secret

    trickle = Trickle(every_s=0.2).start()
    settings = Settings(webhook_timeout_s=1.5, webhook_loopback_ports=[trickle.port])
    started = time.monotonic()
    try:
        result = post(trickle.url, "msg_1", "{}", [new_secret()], settings)
    finally:
        trickle.stop()
    elapsed = time.monotonic() - started
    assert result.error == "timed out after 1.5 s" and 1.5 <= elapsed < 2.5, (result, elapsed)


def test_a_gzip_answer_is_refused_having_counted_only_wire_bytes() -> None:
    """256 MiB of zeros in ~256 KiB of gzip: refused at its header for media; where it is read (a webhook's answer)
    the bytes counted are the wire's and nothing is inflated."""
    from core import outbound
    from core.netguard import system_resolver

    bomb = GzipBomb().start()
    guard = outbound.Guard(system_resolver, [80], loopback_ports=[bomb.port])
    rss = psutil.Process().memory_info().rss
    try:
        with pytest.raises(outbound.OutboundError) as refused:
            anyio.run(lambda: outbound.request("GET", bomb.url, guard, 10, 10 * 1024**2, bytearray().extend))
        kept = bytearray()
        reply = anyio.run(
            lambda: outbound.request("GET", bomb.url, guard, 10, 10 * 1024**2, kept.extend, refuse_encoded=False)
        )
    finally:
        bomb.stop()
    assert refused.value.kind == "encoding" and "gzip" in refused.value.reason
    assert reply.received == len(kept) == bomb.sent < 1024**2, "wire bytes, not 256 MiB inflated"
    assert psutil.Process().memory_info().rss - rss < 64 * 1024**2


# -- 3 and 4. slow and many requests of one tenant cost that tenant only ---------------------------------------


def test_trickling_media_urls_of_one_tenant_leave_another_answered_within_a_second(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    from core import outbound, remote_media
    from core.netguard import system_resolver

    trickle = Trickle(every_s=0.2).start()
    widened = outbound.Guard(system_resolver, [80], loopback_ports=[trickle.port])
    monkeypatch.setattr(remote_media, "media_guard", lambda settings: widened)
    env = {"OMNIMEDIA_MEDIA_FETCH_TIMEOUT_S": "4", "OMNIMEDIA_SERVED_MODEL_NAME": "tiny-instruct0"}
    try:
        with serving(monkeypatch, tmp_path / "data", tiny_model, **env) as api, ThreadPoolExecutor(10) as pool:
            started = time.monotonic()
            url, alpha = f"{api.base}/v1/chat/completions", api.keys["alpha"]
            slow = [pool.submit(httpx.post, url, json=_chat(trickle.url), headers=alpha, timeout=30) for _ in range(10)]
            time.sleep(0.5)  # the fetches are under way
            waits = []
            for _ in range(5):
                asked = time.monotonic()
                answer = httpx.get(f"{api.base}/v1/jobs", headers=api.keys["beta"], timeout=10)
                waits.append(time.monotonic() - asked)
                assert answer.status_code == 200
            answers = [future.result() for future in slow]
            ended = time.monotonic() - started
    finally:
        trickle.stop()
    assert max(waits) < 1.0, waits
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [400, 400] + [429] * 8, "two fetches at once per tenant; the rest refused at once"
    assert all("no complete answer within 4 s" in a.json()["error"]["message"] for a in answers if a.status_code == 400)
    assert ended < 4 + 1.5, "every fetch ended at its deadline"


def test_a_slow_body_is_cut_at_its_read_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    env = {"OMNIMEDIA_API_BODY_TIMEOUT_S": "2", "OMNIMEDIA_API_BODY_IDLE_S": "1"}
    with serving(monkeypatch, tmp_path / "data", tiny_model, **env) as api:
        port = int(api.base.rsplit(":", 1)[1])
        auth = api.keys["alpha"]["Authorization"]
        head = f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
        for trickle_s, deadline_s in ((0.3, 2.0), (None, 1.0)):  # a byte every 0.3 s; nothing at all
            started = time.monotonic()
            with _raw(port, head + "Content-Length: 5000\r\n\r\n") as sock:
                sock.settimeout(0.1)
                answer = b""
                while not answer and time.monotonic() - started < 10:
                    if trickle_s:
                        sock.sendall(b" ")
                    try:
                        answer = sock.recv(4096)
                    except TimeoutError:
                        time.sleep(trickle_s or 0)
            elapsed = time.monotonic() - started
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"body-timeout" in answer and deadline_s <= elapsed < deadline_s + 1.0, elapsed


def test_a_tenant_at_its_in_flight_share_gets_429_while_another_is_served(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    with serving(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_API_TENANT_MAX_IN_FLIGHT="2") as api:
        port = int(api.base.rsplit(":", 1)[1])
        auth = api.keys["alpha"]["Authorization"]
        head = f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n{{"
        held = [_raw(port, head) for _ in range(2)]  # two bodies that never finish
        try:
            time.sleep(0.5)
            refused = httpx.get(f"{api.base}/v1/jobs", headers=api.keys["alpha"])
            served = httpx.get(f"{api.base}/v1/jobs", headers=api.keys["beta"])
        finally:
            for sock in held:
                sock.close()
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["type"] == "/problems/too-many-requests"
        assert served.status_code == 200
        wait_for(
            lambda: httpx.get(f"{api.base}/v1/jobs", headers=api.keys["alpha"]).status_code == 200,
            10,
            "alpha's share back once its requests ended",
        )


# -- 5. the guard at any mount point ---------------------------------------------------------------------------


def test_the_guard_holds_under_a_root_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> None:
    size = 30 * 1024 * 1024
    with serving(monkeypatch, tmp_path / "data", tiny_model, root_path="/api") as api:
        port = int(api.base.rsplit(":", 1)[1])
        # uvicorn serves the app at /api: a request for /v1/uploads reaches it with path /api/v1/uploads and
        # root_path /api, which the guard used to miss, reading the whole body before the route's 401.
        head = (
            "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {size}\r\n\r\n"
        )
        sent, answer = stream_until_answered(port, head, size)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
        assert sent <= 1024 * 1024, "at most one read chunk before the answer"
        auth = api.keys["alpha"]["Authorization"]
        started = time.monotonic()
        head = (
            f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n"
        )
        with _raw(port, head) as sock:
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 2
        # the OpenAI routes answer in OpenAI's error shape under a mount point too (decided by the route's path)
        refused = httpx.post(f"{api.base}/v1/chat/completions", content=b"{", headers=api.keys["alpha"], timeout=30)
        assert refused.status_code == 400 and "error" in refused.json() and "type" not in refused.json(), refused.text


# -- 6. anonymous access ends for good -------------------------------------------------------------------------


def test_anonymous_access_stays_closed_after_every_key_is_revoked(client: TestClient) -> None:
    from core.db import get_sessionmaker
    from core.keys import create_key, revoke_key

    assert client.get("/v1/jobs").status_code == 200, "the embedded default starts open"
    with get_sessionmaker()() as session:
        keys = [create_key(session, "alpha")[0].id, create_key(session, "beta")[0].id]
        assert all(revoke_key(session, key) for key in keys)
    answer = client.get("/v1/jobs")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"


# -- 7. no 500 from any body -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"model": "m", "messages": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper"),
        ('{"model": "m", "messages": [' + "1," * 30000 + "1]}", "more than"),
        (json.dumps(_chat("", type="image_url", image_url="http://example.com/a.png")), "image_url"),
        (json.dumps(_chat("", type="video_url", video_url="http://example.com/a.mp4")), "video_url"),
        (json.dumps(_chat("", type="input_audio", input_audio="UklGRg==")), "input_audio"),
        (json.dumps(_chat("", type="file", file={})), "type"),
        ('{"model": "m", "messages": [{"role": "user", "content": "hi"}', "not valid JSON"),
        ("\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_chat_bodies_answer_400_in_openai_shape(client: TestClient, body: str, says: str) -> None:
    answer = client.post(
        "/v1/chat/completions",
        content=body.encode("latin-1" if "\xff" in body else "utf-8"),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and says in error["message"]


def test_deeply_nested_batches_answer_4xx(client: TestClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    lines = json.dumps({"custom_id": "ok", "task": "ocr", "input": "upload:" + "0" * 32}) + "\n" + deep + "\n"
    as_lines = client.post("/v1/batches", content=lines, headers={"content-type": "application/jsonl"})
    as_json = client.post(
        "/v1/batches", content='{"input_prefix": ' + deep + "}", headers={"content-type": "application/json"}
    )
    assert 400 <= as_lines.status_code < 500 and 400 <= as_json.status_code < 500, (as_lines.text, as_json.text)
    assert "nested deeper" in as_lines.text and "nested deeper" in as_json.text


# -- 8. hardening ----------------------------------------------------------------------------------------------


def test_signing_secrets_are_encrypted_at_rest_and_rotate(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli.main import app as cli
    from core import sealed
    from core.config import get_settings
    from core.db import get_engine
    from core.webhooks import delivery as delivery_module

    monkeypatch.setattr(delivery_module, "resolve", lambda host, port: ["93.184.216.34"])
    created = client.post("/v1/webhooks", json={"url": "https://hooks.example.com/in"}).json()
    plain = created["secret"]
    with get_engine().connect() as connection:
        stored = connection.execute(text("select secret from webhook_endpoints")).scalar_one()
    assert stored.startswith("fernet:") and plain not in stored and plain[6:] not in stored
    old = (get_settings().data_dir / "secret.key").read_text().strip()
    new = sealed.new_key()
    monkeypatch.setenv("OMNIMEDIA_SECRET_KEY", new)
    monkeypatch.setenv("OMNIMEDIA_SECRET_KEYS_OLD", json.dumps([old]))
    clear_caches()
    assert CliRunner().invoke(cli, ["secrets", "rotate"]).exit_code == 0
    with get_engine().connect() as connection:
        rotated = connection.execute(text("select secret from webhook_endpoints")).scalar_one()
    monkeypatch.setenv("OMNIMEDIA_SECRET_KEYS_OLD", "[]")
    clear_caches()
    assert rotated != stored and sealed.unseal(rotated) == plain, "the new key alone decrypts it"


def test_pages_send_security_headers(client: TestClient) -> None:
    health = client.get("/healthz")
    page = client.get("/admin/stats", headers={"Authorization": "Bearer door-admin"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for answer in (health, page):
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "script-src 'self'" in policy


# -- 9. faithful to the contract -------------------------------------------------------------------------------


def test_speech_where_no_talker_can_run_is_a_400_before_any_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    use_embedded(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_ENABLE_TALKER="false")
    from api.app import create_app

    token = _keys()["alpha"]["Authorization"].removeprefix("Bearer ")
    with TestClient(create_app(), raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"}) as api:
        oa = openai.OpenAI(base_url="http://testserver/v1", api_key=token, http_client=api, max_retries=0)
        with pytest.raises(openai.BadRequestError) as refused:
            oa.chat.completions.create(
                model=tiny_model.name,
                modalities=["text", "audio"],
                audio={"voice": "Ethan", "format": "wav"},
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}],
            )
        assert "no talker" in refused.value.message
        assert api.get("/v1/jobs").json()["data"] == [], "no job was created"
        job = api.post("/v1/jobs", json={"task": "ocr", "input": "upload:" + "0" * 32, "params": {"voice": "Ethan"}})
        assert job.status_code == 422 and job.json()["type"] == "/problems/speech-unavailable"
    clear_caches()


def test_the_language_of_a_transcript_is_detected_when_none_was_asked() -> None:
    from models.language import detect_language

    assert detect_language("Where in these four thousand hours did anyone say flood barrier?") == "en"
    assert detect_language("Der Hochwasserschutz wurde gestern endlich fertiggestellt.") == "de"
    assert detect_language("ok") is None, "too little text to tell"
