"""Uploaded media is decoded as itself only: a playlist or concat script, whatever it is called, fails as media
with a reason, never opens the file or URL it names (a loopback listener sees no connection), and puts no byte of
them into any output."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.errors import MediaError
from models.media import load_media, probe
from tests.embedded import clear_caches, use_embedded
from tests.hostile_corpus import hostile_media, png_claiming
from tests.support import ffmpeg


class Listener:
    """A TCP listener on loopback that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/segment.ts"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, listener: Listener) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    secret = root / "server-secret.flac"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(secret))
    return secret, hostile_media(root / "uploads", secret, listener.url)


def test_playlists_under_any_name_fail_as_media_and_open_nothing(
    corpus: tuple[Path, dict[str, Path]], listener: Listener
) -> None:
    _secret, files = corpus
    assert len(files) == 30
    for name, path in files.items():
        with pytest.raises(MediaError) as probed:
            probe(path)
        assert probed.value.reason.startswith(name), probed.value.reason
        if name.startswith("hls"):
            assert "hls playlist or script that refers to other files" in probed.value.reason
        with pytest.raises(MediaError):
            load_media(path)
    time.sleep(0.5)
    assert listener.connections == 0


def test_a_disguised_playlist_upload_fails_its_job_with_a_media_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path, corpus: tuple[Path, dict[str, Path]]
) -> None:
    _secret, files = corpus
    use_embedded(monkeypatch, tmp_path / "data", tiny_model)
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        body = files["hls-local.mp4"].read_bytes()
        upload = client.post("/v1/uploads", files={"file": ("talk.mp4", body, "video/mp4")}).json()
        job = client.post("/v1/jobs", json={"task": "transcribe", "input": upload["id"]}).json()
        deadline = time.monotonic() + 60
        while (state := client.get(f"/v1/jobs/{job['id']}").json())["state"] not in ("failed", "succeeded"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert state["state"] == "failed" and state["failure_class"] == "media"
    assert "playlist" in state["failure_reason"] and state["result_formats"] == []
    clear_caches()


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (12_000, 9_000)])
def test_an_image_claiming_huge_dimensions_fails_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    """Checked from the header (PIL's own bomb limit, or ours below it): a media failure, never an internal one."""
    bomb = png_claiming(tmp_path / "bomb.png", width, height)
    with pytest.raises(MediaError, match="pixels"):
        load_media(bomb)


def test_batches_are_bounded_while_they_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    from core import batches

    use_embedded(monkeypatch, tmp_path / "data", tiny_model)
    from api.app import create_app

    jsonl = {"content-type": "application/jsonl"}
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        monkeypatch.setattr(batches, "MAX_LINES", 3)
        four = "\n".join(f'{{"custom_id": "c{i}", "task": "ocr", "input": "x"}}' for i in range(4))
        over = client.post("/v1/batches", content=four, headers=jsonl)
        assert over.status_code == 422 and "line 4 is one more" in over.json()["detail"]
        monkeypatch.setattr(batches, "MAX_BATCH_BYTES", 100)
        big = client.post("/v1/uploads", files={"file": ("batch.jsonl", four.encode(), "application/jsonl")}).json()
        by_file = client.post("/v1/batches", json={"input_file_id": big["id"]})
        assert by_file.status_code == 422 and "at most 100 bytes" in by_file.json()["detail"]
    clear_caches()
