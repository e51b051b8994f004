"""What an accepted request body costs the API in memory: a real uvicorn API (celery mode, so no job runs inside it;
a private Redis holds the queued jobs), its peak resident set reset before each request (/proc/PID/clear_refs)
and read after it (VmHWM). Used by tests/test_body_memory.py and bench/body_rss.py."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from core import migrate
from tests.support import api_key, env_for, running_api

MIB = 1024 * 1024


@dataclass
class MeasuredApi:
    pid: int
    base: str
    headers: dict[str, str]
    model: str

    def _status(self) -> dict[str, int]:
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields

    def peak_rise(self, send: Callable[[], int]) -> tuple[int, int]:
        """(bytes the peak RSS rose above the RSS before the request, the HTTP status)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # the peak starts again from the current RSS
        before = self._status()["VmRSS"]
        status = send()
        return self._status()["VmHWM"] - before, status

    def chat(self, mib: float) -> int:
        payload = base64.b64encode(os.urandom(int(mib * MIB * 3 / 4))).decode()
        part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{payload}"}}
        body = {"model": self.model, "messages": [{"role": "user", "content": [part, {"type": "text", "text": "?"}]}]}
        raw = json.dumps(body).encode()
        del payload, body
        return httpx.post(
            f"{self.base}/v1/chat/completions",
            content=raw,
            headers={**self.headers, "content-type": "application/json"},
            timeout=120,
        ).status_code

    def transcription(self, mib: float) -> int:
        files = {"file": ("a.wav", os.urandom(int(mib * MIB)), "audio/wav")}
        return httpx.post(
            f"{self.base}/v1/audio/transcriptions",
            files=files,
            data={"model": self.model},
            headers=self.headers,
            timeout=120,
        ).status_code

    def upload(self, mib: float) -> int:
        files = {"file": ("a.wav", os.urandom(int(mib * MIB)), "audio/wav")}
        return httpx.post(f"{self.base}/v1/uploads", files=files, headers=self.headers, timeout=120).status_code


@contextmanager
def measured_api(workdir: Path, redis_url: str) -> Iterator[MeasuredApi]:
    data = workdir / "data"
    data.mkdir(parents=True)
    migrate.upgrade(f"sqlite:///{data / 'omnimedia.db'}")
    env = env_for(
        OMNIMEDIA_MODE="celery",
        OMNIMEDIA_DATA_DIR=str(data),
        OMNIMEDIA_BROKER_URL=redis_url,
        OMNIMEDIA_MODEL=str(workdir / "tiny-model"),
        OMNIMEDIA_OPENAI_WAIT_S="0.5",
        OMNIMEDIA_ALLOW_ANONYMOUS="false",
    )
    key = api_key(env, "memory")
    with running_api(env, workdir / "api.log") as running:
        api = MeasuredApi(running.pid, running.base, {"Authorization": f"Bearer {key}"}, "tiny-model")
        for warm in (api.chat, api.transcription, api.upload):  # imports, parsers and pools: paid once
            warm(1)
        yield api
