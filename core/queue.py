"""The only publisher: hands a queued job, or webhook deliveries, to whoever runs them.

In celery mode that is a Celery message by task name (the API never imports workers/). On the embedded default it
is the in-process executor that the entry point started (`core.embedded.start`); a process that started none (a
CLI command that only writes rows) leaves the work in the database, where `omnimedia serve` resumes it."""

from __future__ import annotations

import base64
import json
import logging
from typing import Protocol

import redis

from core.celery_app import DELIVER_WEBHOOK, RUN_JOB, WEBHOOK_QUEUE, app
from core.config import Settings, get_settings

log = logging.getLogger(__name__)
BROKER_MARKER = "omnimedia:broker-marker"  # never expires: its absence means the broker's data is gone


class InProcessExecutor(Protocol):
    """What the embedded default runs in this process instead of Celery workers."""

    def run_job(self, job_id: str) -> None: ...

    def wake_webhooks(self) -> None: ...


_in_process: InProcessExecutor | None = None


def use_in_process(executor: InProcessExecutor | None) -> None:
    """Route embedded-mode work of this process to `executor` (None: leave it in the database)."""
    global _in_process
    _in_process = executor


def _broker(settings: Settings) -> redis.Redis | None:
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5)


def broker_was_reset(settings: Settings) -> bool:
    """Whether the broker lost its data (a restart without persistence, a failover): the marker this service keeps
    in it is gone. A Redis broker only; True before the first `mark_broker`. The caller re-sends what waited and
    then puts the marker back, so a pass that fails half-way is repeated by the next one."""
    client = _broker(settings)
    if client is None:
        return False
    try:
        return not client.exists(BROKER_MARKER)
    except redis.RedisError:  # unreachable now: nothing can be re-sent anyway; the next pass asks again
        log.warning("broker unreachable while checking its marker", exc_info=True)
        return False
    finally:
        client.close()


UNACKED = "unacked"  # kombu's Redis transport keeps delivered, unacknowledged messages in this hash
SCAN_PAGE = 1000


def held_job_ids(settings: Settings, queues: tuple[str, ...]) -> set[str] | None:
    """The job ids whose messages the broker holds now (waiting in a queue, or delivered and unacknowledged);
    None when that cannot be known (not Redis, or unreachable). A broker without the marker may be a new one that
    has been receiving messages all along: what it holds need not be sent again."""
    client = _broker(settings)
    if client is None:
        return None
    held: set[str] = set()
    try:
        for name in queues:
            for start in range(0, int(client.llen(name)), SCAN_PAGE):
                held |= {_job_of(raw) for raw in client.lrange(name, start, start + SCAN_PAGE - 1)}
        for _, raw in client.hscan_iter(UNACKED, count=SCAN_PAGE):
            held.add(_job_of(raw))
    except redis.RedisError:
        log.warning("broker unreachable while listing what it holds")
        return None
    finally:
        client.close()
    held.discard("")
    return held


def _job_of(raw: bytes | str) -> str:
    """The job id a Celery message (protocol 2, JSON) carries as its first argument; "" if it carries none."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # the unacked hash keeps [message, exchange, routing key]
            message = message[0]
        if message.get("headers", {}).get("task") != RUN_JOB:
            return ""
        args = json.loads(base64.b64decode(message["body"]))[0]
        return str(args[0]) if args else ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def mark_broker(settings: Settings) -> None:
    """Put the marker in the broker: every message that waited before this moment has been sent again."""
    client = _broker(settings)
    if client is not None:
        try:
            client.set(BROKER_MARKER, "omnimedia")
        finally:
            client.close()


def enqueue(job_id: str, queue: str, settings: Settings | None = None) -> None:
    """Publish a queued job. A failed publish is logged, not raised: the row stays queued and the reconciler
    publishes it again."""
    settings = settings or get_settings()
    if settings.mode == "celery":
        try:
            app.send_task(
                RUN_JOB, args=[job_id], queue=queue, retry=True, retry_policy={"max_retries": 3}, ignore_result=True
            )
        except Exception as exc:  # one line: the reconciler handles it, a traceback per job would drown the log
            log.warning(
                "could not publish job %s (%s: %s); the reconciler will re-send it", job_id, type(exc).__name__, exc
            )
    elif _in_process is not None:
        _in_process.run_job(job_id)
    else:
        log.info("job %s stays queued: no in-process worker runs in this process", job_id)


def send_deliveries(delivery_ids: list[str], countdown: float | None = None) -> None:
    """Hand deliveries to the sender: after the commit that wrote them (the outbox), for a retry soon, or from the
    sweeper. In embedded mode the in-process sender picks up whatever is due."""
    if get_settings().mode == "celery":
        for delivery_id in delivery_ids:
            app.send_task(
                DELIVER_WEBHOOK,
                args=[delivery_id],
                queue=WEBHOOK_QUEUE,
                countdown=countdown or None,
                retry=True,
                retry_policy={"max_retries": 2},
                ignore_result=True,
            )
    elif _in_process is not None:
        _in_process.wake_webhooks()
