"""Prometheus metrics shared by the API and the workers (prometheus-client, multiprocess-safe).

Set PROMETHEUS_MULTIPROC_DIR before this module is imported (workers.main does) and every process's samples
are aggregated at scrape time by `render()`."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

HTTP_REQUESTS = Counter("omnimedia_http_requests", "API requests", ["route", "method", "status"])
HTTP_SECONDS = Histogram("omnimedia_http_request_seconds", "API request latency", ["route", "method"])
JOBS = Counter("omnimedia_jobs", "Jobs that reached a final state on a worker", ["task", "state"])
ENGINE_SECONDS = Counter("omnimedia_engine_seconds", "Seconds the engine spent on jobs", ["task"])
MEDIA_SECONDS = Counter("omnimedia_media_seconds", "Seconds of media processed", ["task"])
QUEUE_WAIT = Histogram(
    "omnimedia_queue_wait_seconds",
    "Time from queued to started",
    ["task"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf")),
)
BATCH_SIZE = Histogram("omnimedia_batch_size", "Requests per engine generate call", buckets=(1, 2, 4, 8, 16, 32, 64))
WEBHOOK_ATTEMPTS = Counter("omnimedia_webhook_attempts", "Webhook delivery attempts by result", ["result"])
WEBHOOK_SECONDS = Histogram(
    "omnimedia_webhook_attempt_seconds",
    "Webhook attempt latency",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, float("inf")),
)
QUEUE_CONSUMERS = Gauge("omnimedia_queue_consumers", "Workers consuming each queue (-1: unknown)", ["queue"])
QUEUE_DEPTH = Gauge("omnimedia_queue_depth", "Messages waiting in the broker per queue", ["queue"])
QUEUE_OLDEST_SECONDS = Gauge("omnimedia_queue_oldest_job_seconds", "Age of the oldest queued job", ["queue"])
WEBHOOKS_PENDING = Gauge("omnimedia_webhooks_pending", "Webhook deliveries due and not yet delivered")
MAINTENANCE_AGE_SECONDS = Gauge("omnimedia_maintenance_age_seconds", "Seconds since the last maintenance pass")
GPU_MEMORY = Gauge("omnimedia_gpu_memory_bytes", "GPU memory allocated by this worker", multiprocess_mode="max")


def render() -> tuple[bytes, str]:
    """The exposition body for /metrics, aggregated across processes when in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def record_gpu_memory() -> None:
    import sys

    torch = sys.modules.get("torch")  # only where the engine already imported it
    if torch is None or getattr(torch.__spec__, "_initializing", False):
        return  # absent, or still being imported by another thread (a prefetching decoder): nothing to read yet
    if torch.cuda.is_available():
        GPU_MEMORY.set(torch.cuda.memory_allocated())
