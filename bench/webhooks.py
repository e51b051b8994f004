"""Webhook delivery cost per event: our path (claim UPDATE, SSRF check, Standard Webhooks signature, pinned POST
without redirects, attempt INSERT + state UPDATE on Postgres) against a raw signed httpx POST of the same body to
the same receiver (a uvicorn subprocess on loopback), sequentially, in the same run. The raw baseline opens a new
connection per POST, as we must (each delivery connects to the address the guard just approved), with a shared
TLS context; a naive `httpx.post` (new context each time) and a keep-alive client are printed for reference.
Last line: ratio=ours/raw milliseconds per delivery."""

from __future__ import annotations

import json
import os
import ssl
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from core import migrate
from core.config import Settings
from core.db import make_engine
from core.schema import WebhookDelivery, WebhookEndpoint, WebhookEvent, utcnow
from core.states import EventType
from core.webhooks.delivery import deliver
from core.webhooks.outbox import emit
from core.webhooks.signing import new_secret
from tests.support import env_for, free_port, postgres_database, stop, wait_for

N = int(os.environ.get("BENCH_DELIVERIES", "300"))


def main() -> None:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "tests.receiver", str(port)], env=env_for())
    url = f"http://127.0.0.1:{port}/hook"
    try:
        wait_for(lambda: _up(url), 30, "the receiver")
        with postgres_database() as db_url:
            migrate.upgrade(db_url)
            ours_ms, bodies, secret = _ours(db_url, url)
        raw_ms = _raw(url, bodies, secret, "fresh")
        naive_ms = _raw(url, bodies, secret, "naive")
        keepalive_ms = _raw(url, bodies, secret, "keepalive")
    finally:
        stop(receiver)
    runs = {"ours": ours_ms, "raw": raw_ms, "naive_httpx_post": naive_ms, "keepalive": keepalive_ms}
    p50 = {name: statistics.median(ms) for name, ms in runs.items()}
    print(f"deliveries={N} p50 ms: " + " ".join(f"{name}={value:.2f}" for name, value in p50.items()))
    ratio = statistics.mean(ours_ms) / statistics.mean(raw_ms)
    print(f"ratio={ratio:.2f} ours_ms={statistics.mean(ours_ms):.2f} raw_ms={statistics.mean(raw_ms):.2f} n={N}")


def _up(url: str) -> bool:
    try:
        return httpx.post(url, content=b"{}", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _ours(db_url: str, url: str) -> tuple[list[float], list[tuple[str, str]], str]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    settings = Settings(webhook_loopback_ports=[urlsplit(url).port or 80], database_url=db_url)
    engine = make_engine(db_url)
    secret = new_secret()
    with Session(engine) as session:
        now = utcnow()
        session.add(
            WebhookEndpoint(
                id="bench",
                tenant="bench",
                url=url,
                event_types=[],
                enabled=True,
                secret=secret,
                created_at=now,
                updated_at=now,
            )
        )
        session.commit()
        for i in range(N):
            emit(
                session, "bench", EventType.JOB_SUCCEEDED, {"id": f"job{i:05d}", "object": "job", "state": "succeeded"}
            )
        session.info.clear()  # measure delivery only: nothing is handed to a sender
        session.commit()
        rows = session.execute(select(WebhookDelivery.id, WebhookDelivery.event_id)).all()
        payloads = {e.id: json.dumps(e.payload, separators=(",", ":")) for e in session.scalars(select(WebhookEvent))}
        timings = []
        for delivery_id, _ in rows:
            started = time.perf_counter()
            outcome = deliver(session, delivery_id, settings)
            timings.append((time.perf_counter() - started) * 1000)
            assert outcome.state == "succeeded", outcome
    engine.dispose()
    return timings, [(event_id, payloads[event_id]) for _, event_id in rows], secret


def _raw(url: str, bodies: list[tuple[str, str]], secret: str, mode: str) -> list[float]:
    signer = Webhook(secret)
    timings = []
    tls = ssl.create_default_context()
    client = httpx.Client(timeout=15) if mode == "keepalive" else None
    for msg_id, body in bodies:
        started = time.perf_counter()
        stamp = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signer.sign(msg_id, stamp, body),
        }
        if client is not None:
            response = client.post(url, content=body, headers=headers)
        elif mode == "naive":
            response = httpx.post(url, content=body, headers=headers, timeout=15)
        else:
            with httpx.Client(timeout=15, verify=tls) as once:
                response = once.post(url, content=body, headers=headers)
        assert response.status_code == 200
        timings.append((time.perf_counter() - started) * 1000)
    if client is not None:
        client.close()
    return timings


if __name__ == "__main__":
    main()
