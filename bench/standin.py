"""BENCHMARK-ONLY stand-ins for the model, never used by tests or the service.

- `NoopEngine`: generates nothing at once; isolates queue, database, storage and media overhead.
- `SleepingEngine`: holds one lock and sleeps a fixed time per request, as a GPU frees the CPU while it works: shows
  whether decoding, storage and database work keep a real accelerator fed on this 2-core machine.

A Celery worker with a stand-in engine:  python -m bench.standin noop|sleep:SECONDS [celery worker args...]
The omnimedia command with one:           python -m bench.standin noop|sleep:SECONDS --cli caption ..."""

from __future__ import annotations

import sys
import threading
import time

from models.engine import EngineConfig, GenerationRequest, GenerationResult
from models.tasks import check_media
from models.variants import Variant


class NoopEngine:
    """Benchmark-only: validates like the real engine, generates nothing."""

    variant = Variant.INSTRUCT
    can_speak = False

    def load(self) -> None:
        return None

    def validate(self, request: GenerationRequest) -> None:
        check_media(request.task, request.media.kind, request.media.audio is not None)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return GenerationResult(text="noop", new_tokens=1)

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return [self.generate(r) for r in requests]


class SleepingEngine(NoopEngine):
    """Benchmark-only: one request at a time (a lock, like one GPU), `seconds` each, sleeping (no CPU). Counts the
    time it was busy, so a benchmark can tell how much of the wall time the "accelerator" worked."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.busy_s = 0.0
        self.requests = 0
        self._lock = threading.Lock()

    def generate(self, request: GenerationRequest) -> GenerationResult:
        with self._lock:
            started = time.perf_counter()
            time.sleep(self.seconds)
            self.busy_s += time.perf_counter() - started
            self.requests += 1
        return GenerationResult(text="sleep", new_tokens=1, engine_seconds=self.seconds)


def engine_for(spec: str) -> NoopEngine:
    """`noop` or `sleep:SECONDS`."""
    if spec == "noop":
        return NoopEngine()
    kind, _, seconds = spec.partition(":")
    if kind != "sleep" or not seconds:
        raise SystemExit(f"unknown stand-in engine {spec!r}: noop or sleep:SECONDS")
    return SleepingEngine(float(seconds))


def main() -> None:
    import models.pipeline

    engine = engine_for(sys.argv[1])

    def stand_in(config: EngineConfig, on_batch: object = None) -> NoopEngine:
        return engine

    models.pipeline.load_engine = stand_in  # type: ignore[assignment]
    if sys.argv[2:3] == ["--cli"]:
        from cli.main import app as cli

        cli(sys.argv[3:])
        return
    from core.celery_app import app

    app.worker_main(["worker", *sys.argv[2:]])


if __name__ == "__main__":
    main()
