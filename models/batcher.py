"""Cross-request dynamic batching: many threads call `generate`, one batcher thread runs them together.

Requests are collected until `max_batch_size` or until `max_wait_ms` after the first one arrived, then run
through the engine's `generate_batch` (which groups by compatible sampling settings). A request's result never
depends on its batch-mates (greedy outputs are identical alone and batched), and a bad item fails alone:
each request is validated on its own, and if a batch call still fails, its requests are retried one by one.
Speech requests bypass the batcher (the talker runs one request at a time)."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from models.backend import EngineBackend, EngineFront
from models.engine import GenerationRequest, GenerationResult


@dataclass
class _Pending:
    request: GenerationRequest
    future: Future[GenerationResult]


class BatchingEngine(EngineFront):
    """Wraps a backend; thread-safe `generate` calls are merged into one `run_validated` call on the batcher's
    thread (each request validated once, in its caller's thread; the backend reports the batch's size)."""

    def __init__(self, inner: EngineBackend, max_batch_size: int = 16, max_wait_ms: float = 20.0) -> None:
        super().__init__(inner)
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.batch_sizes: list[int] = []  # sizes of the batches run, for metrics and tests (most recent 1000)
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="omnimedia-batcher", daemon=True)
        self._thread.start()

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.inner.validate(request)  # a bad request fails here, in its caller, before it can join a batch
        if request.wants_speech:
            return self.inner.run_validated([request])[0]
        pending = _Pending(request, Future())
        self._queue.put(pending)
        return pending.future.result()

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return self.inner.generate_batch(requests)  # validates each, then runs them together

    def _collect(self) -> list[_Pending]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
            try:
                results = self.inner.run_validated([p.request for p in batch])
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].future.set_exception(exc)
                    continue
                for pending in batch:  # isolate the bad item: everyone else still gets a result
                    try:
                        pending.future.set_result(self.inner.run_validated([pending.request])[0])
                    except Exception as exc:
                        pending.future.set_exception(exc)
                continue
            for pending, result in zip(batch, results, strict=True):
                pending.future.set_result(result)
