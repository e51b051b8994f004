"""Nothing is read before the caller is known, and no body grows past its route's limit (api.guard)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core import migrate
from tests.embedded import clear_caches, use_embedded
from tests.support import env_for, free_port, http_ok, stop, stream_until_answered, wait_for

HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A real uvicorn API (embedded mode, keys required) whose data folder the test can inspect."""
    data = tmp_path_factory.mktemp("guard-data")
    migrate.upgrade(f"sqlite:///{data / 'omnimedia.db'}")
    port = free_port()
    env = env_for(OMNIMEDIA_DATA_DIR=str(data), OMNIMEDIA_ALLOW_ANONYMOUS="false", TMPDIR=str(data / "tmp"))
    (data / "tmp").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 60, "the API")
    yield port, data
    stop(proc)


def _headers_only(port: int, headers: str) -> tuple[str, float]:
    """Send a request's head and no body; return the status line and how long the answer took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(headers.encode())
        answer = sock.recv(4096).decode("latin-1")
    return answer.split("\r\n", 1)[0], time.monotonic() - started


@pytest.mark.parametrize("framing", [f"Content-Length: {HUNDRED_MB}", "Transfer-Encoding: chunked"])
def test_a_bad_key_is_refused_before_any_body_byte(server: tuple[int, Path], framing: str) -> None:
    port, data = server
    head = (
        f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer omk_{'0' * 32}_{'x' * 30}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\n{framing}\r\n\r\n"
    )
    status, seconds = _headers_only(port, head)
    assert status.startswith("HTTP/1.1 401") and seconds < 5
    assert not [p for p in (data / "tmp").rglob("*") if p.is_file()], "nothing spooled to the temp folder"


def test_a_100_mb_upload_with_a_bad_key_is_answered_after_at_most_one_part(server: tuple[int, Path]) -> None:
    """The client streams 1 MB parts and reads the answer after each: the 401 is there after the first."""
    port, data = server
    head = (
        f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {HUNDRED_MB}\r\n\r\n"
    )
    sent, answer = stream_until_answered(port, head, HUNDRED_MB)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert sent <= 1024 * 1024
    assert not list((data / "storage").rglob("uploads/*"))


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> Iterator[TestClient]:
    use_embedded(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_MAX_UPLOAD_BYTES=str(256 * 1024))
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
    clear_caches()


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def test_chunked_bodies_stop_at_the_routes_limit(client: TestClient) -> None:
    """No Content-Length to check up front: the stream itself is cut off once it passes the limit."""
    big_json = client.post("/v1/jobs", content=_chunks(3 * 1024 * 1024), headers={"content-type": "application/json"})
    assert big_json.status_code == 413 and big_json.json()["type"] == "/problems/too-large"
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'

    def multipart() -> Iterator[bytes]:
        yield body
        yield from _chunks(2 * 1024 * 1024)
        yield b"\r\n--b--\r\n"

    upload = client.post(
        "/v1/uploads", content=multipart(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert upload.status_code == 413 and upload.json()["type"] == "/problems/upload-too-large"
    assert upload.json()["limit_bytes"] > 256 * 1024


def test_anonymous_access_ends_with_the_first_key(client: TestClient) -> None:
    from core.db import get_sessionmaker
    from core.keys import create_key

    assert client.get("/v1/jobs").status_code == 200, "the embedded default starts open"
    with get_sessionmaker()() as session:
        with pytest.raises(ValueError, match="reserved"):
            create_key(session, "local")
        _, token = create_key(session, "alpha")
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
