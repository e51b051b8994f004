"""Continuous batching in front of a stepped engine (vLLM's `LLMEngine`): requests join the running batch at the
engine's next step instead of waiting for a whole `generate` call to end.

Many threads call `generate`; each request is validated in its caller's thread, then handed to the one loop thread
that owns the engine: it adds what arrived, steps the engine, and hands each finished output back. A request the
engine refuses fails alone. A step that raises means the engine is dead (vLLM's EngineDeadError; its engine
process is gone and stays gone): every request in flight and every later one fails with EngineDown, and the worker
makes way for a fresh process."""

from __future__ import annotations

import itertools
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from models.backend import EngineBackend, EngineFront
from models.engine import GenerationRequest, GenerationResult
from models.errors import EngineDown


class Stepper(Protocol):
    """An engine that takes requests one by one and advances all of them a step at a time."""

    def add(self, request_id: str, request: GenerationRequest) -> None:
        """Queue a request (raises when the engine refuses it, e.g. too long)."""

    def step(self) -> list[tuple[str, GenerationResult]]:
        """Advance every running request; the ones that finished (raises: the engine is dead)."""

    def unfinished(self) -> int:
        """Requests added and not yet returned by `step`."""


@dataclass
class _Pending:
    request: GenerationRequest
    future: Future[GenerationResult]


class SteppingEngine(EngineFront):
    """The engine interface over a backend (validation, loading) and its stepper (generation)."""

    def __init__(self, inner: EngineBackend, stepper: Stepper | None = None) -> None:
        super().__init__(inner)
        self.stepper = stepper
        self.dead: str | None = None  # why the engine died
        self._inbox: queue.Queue[_Pending] = queue.Queue()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def load(self) -> None:
        super().load()
        with self._start_lock:
            if self.stepper is None:
                self.stepper = self.inner.stepper()  # type: ignore[attr-defined]
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="omnimedia-engine-loop", daemon=True)
                self._thread.start()

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.inner.validate(request)  # a bad request fails here, in its caller, before it reaches the engine
        self.load()
        if self.dead is not None:
            raise EngineDown(self.dead)
        pending = _Pending(request, Future())
        self._inbox.put(pending)
        return pending.future.result()

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        futures = [_Pending(r, Future()) for r in requests]
        for request in requests:
            self.inner.validate(request)
        self.load()
        for pending in futures:
            self._inbox.put(pending)
        return [p.future.result() for p in futures]

    def _loop(self) -> None:
        assert self.stepper is not None
        stepper = self.stepper
        running: dict[str, _Pending] = {}
        while True:
            arrivals = [self._inbox.get()] if not running else []  # idle: wait for work
            while True:
                try:
                    arrivals.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            for pending in arrivals:
                if self.dead is not None:
                    pending.future.set_exception(EngineDown(self.dead))
                    continue
                request_id = f"omnimedia-{next(self._ids)}"
                try:
                    stepper.add(request_id, pending.request)
                except Exception as exc:  # refused alone (too long, bad media for the engine)
                    pending.future.set_exception(exc)
                    continue
                running[request_id] = pending
            if not running:
                continue
            try:
                finished = stepper.step()
            except Exception as exc:
                self.dead = f"the engine died: {type(exc).__name__}: {exc}"
                for pending in running.values():
                    pending.future.set_exception(EngineDown(self.dead))
                running.clear()
                continue
            for request_id, result in finished:
                done = running.pop(request_id, None)
                if done is not None:
                    done.future.set_result(result)
