"""BENCHMARK-ONLY stand-ins for the model, never used by tests or the service.

- `NoopEngine`: generates nothing at once; isolates queue, database, storage and media overhead.
- `SleepingEngine`: holds one lock and sleeps a fixed time per request, as a GPU frees the CPU while it works: shows
  whether decoding, storage and database work keep a real accelerator fed on this 2-core machine.
- `ServingStepper`: a continuous-batching server (vLLM's add/step), up to N requests at once, each a fixed time,
  behind the service's own stepping loop (models.stepping, as the vLLM backend runs): shows whether the workers
  keep N requests in flight. Logs "time in_flight" at every change to $BENCH_ENGINE_LOG.

A Celery worker with a stand-in engine:  python -m bench.standin noop|sleep:SECONDS|serve:N:SECONDS [celery args...]
The omnimedia command with one:           python -m bench.standin noop|sleep:SECONDS --cli caption ..."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, cast

from models.backend import EngineBackend
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


class ServingStepper:
    """Benchmark-only: up to `slots` requests at once, each done `seconds` after it was admitted (FIFO)."""

    def __init__(self, slots: int, seconds: float, log_path: str | None) -> None:
        self.slots, self.seconds = slots, seconds
        self.waiting: list[str] = []
        self.running: dict[str, float] = {}
        self._log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115 (the process's life)

    def add(self, request_id: str, request: GenerationRequest) -> None:
        self.waiting.append(request_id)

    def step(self) -> list[tuple[str, GenerationResult]]:
        now = time.perf_counter()
        while self.waiting and len(self.running) < self.slots:
            self.running[self.waiting.pop(0)] = now
            self._note()
        time.sleep(0.005)
        now = time.perf_counter()
        done = [rid for rid, at in self.running.items() if now - at >= self.seconds]
        for rid in done:
            del self.running[rid]
        if done:
            self._note()
        return [(rid, GenerationResult(text="served", new_tokens=1, engine_seconds=self.seconds)) for rid in done]

    def unfinished(self) -> int:
        return len(self.waiting) + len(self.running)

    def _note(self) -> None:
        if self._log is not None:
            self._log.write(f"{time.time():.4f} {len(self.running)}\n")


def engine_for(spec: str) -> Any:
    """`noop`, `sleep:SECONDS` or `serve:N:SECONDS`."""
    if spec == "noop":
        return NoopEngine()
    if spec.startswith("serve:"):
        from models.stepping import SteppingEngine

        _, slots, seconds = spec.split(":")
        stepper = ServingStepper(int(slots), float(seconds), os.environ.get("BENCH_ENGINE_LOG"))
        return SteppingEngine(cast(EngineBackend, NoopEngine()), stepper)
    kind, _, seconds = spec.partition(":")
    if kind != "sleep" or not seconds:
        raise SystemExit(f"unknown stand-in engine {spec!r}: noop or sleep:SECONDS")
    return SleepingEngine(float(seconds))


def main() -> None:
    import models.pipeline

    engine = engine_for(sys.argv[1])

    def stand_in(config: EngineConfig, on_batch: object = None) -> Any:
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
