"""A real webhook receiver for tests: uvicorn on loopback in a thread, verifying every request's Standard
Webhooks signature with the `standardwebhooks` library, answering from a script of status codes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import free_port, wait_for


@dataclass
class Received:
    webhook_id: str
    verified: bool
    payload: dict[str, Any]
    status: int
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Receiver:
    """Answers each POST with the next scripted (status, headers, delay_s); 200 once the script runs out."""

    secrets: list[str] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    tls: tuple[Path, Path] | None = None  # (certificate, key): serve https
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hook"

    def answer(self, *statuses: int, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> None:
        with self._lock:
            self.script.extend((status, headers or {}, delay_s) for status in statuses)

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = False
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                continue
        with self._lock:
            status, extra, delay = self.script.pop(0) if self.script else (200, {}, 0.0)
            self.received.append(Received(headers.get("webhook-id", ""), verified, json.loads(body), status, headers))
        if delay:
            await asyncio.sleep(delay)
        return Response(status_code=status, headers=extra)

    def start(self) -> Receiver:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        cert, key = self.tls or (None, None)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server is not None and self._server.started, 10, "the webhook receiver")
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def ids(self, status: int | None = None) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.received if status is None or r.status == status]

    def wait(self, count: int, timeout_s: float = 30, status: int | None = 200) -> list[Received]:
        wait_for(lambda: len(self.ids(status)) >= count, timeout_s, f"{count} webhook requests")
        time.sleep(0.2)  # let a duplicate, if any, arrive
        with self._lock:
            return list(self.received)


def make_certificate(folder: Path, hostname: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for `hostname` signed by it, with the openssl CLI: (ca, cert, key)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=omnimedia test CA")
    openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", f"/CN={hostname}")
    (folder / "leaf.ext").write_text(f"subjectAltName=DNS:{hostname}\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    )
    return folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"


if __name__ == "__main__":  # `python -m tests.receiver PORT`: a receiver that answers 200 (for benchmarks)
    import sys

    hook = Receiver(port=int(sys.argv[1])).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hook.stop()
