"""What every backend shares (immich's load + predict split): `generate_batch` validates each request once and
loads the model on first use, then hands the batch to the backend's `_generate_batch`; the batch's size goes to
the loader's `on_batch` hook (metrics). A backend implements `load` and `_generate_batch`, and adds its own
checks to `validate`. The cross-job batcher validates each request in its caller's thread and then calls
`run_validated`, so a request is validated exactly once on every path."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from models.engine import Engine, EngineConfig, GenerationRequest, GenerationResult
from models.errors import EngineDown
from models.prompting import validate_request
from models.variants import Variant, detect_variant


class EngineBackend(ABC):
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._variant = config.variant or detect_variant(config.model)
        self.on_batch: Callable[[int], None] | None = None

    @property
    def variant(self) -> Variant:
        return self._variant

    @property
    def can_speak(self) -> bool:
        return self.config.enable_talker and self._variant.can_speak

    @abstractmethod
    def load(self) -> None:
        """Load the model (once; later calls return at once)."""

    @abstractmethod
    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Run validated requests on the loaded model."""

    def validate(self, request: GenerationRequest) -> None:
        """Raise the typed error (models.errors) for a request this backend cannot run."""
        validate_request(request, self._variant, self.config.enable_talker)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        for request in requests:
            self.validate(request)
        return self.run_validated(requests)

    def run_validated(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        load_or_down(self)
        results = self._generate_batch(requests)
        if self.on_batch is not None:
            self.on_batch(len(requests))
        return results


def load_or_down(engine: Engine | EngineBackend) -> None:
    """Load the model; a failure is the process's, not the job's (EngineDown: the worker makes way)."""
    try:
        engine.load()
    except EngineDown:
        raise
    except Exception as exc:
        raise EngineDown(f"the model did not load: {type(exc).__name__}: {exc}") from exc


class EngineFront:
    """What an engine in front of a backend (the cross-job batcher, vLLM's stepping loop) takes from it as it is:
    the checkpoint's variant and voice, validation and loading."""

    def __init__(self, inner: EngineBackend) -> None:
        self.inner = inner

    @property
    def variant(self) -> Variant:
        return self.inner.variant

    @property
    def can_speak(self) -> bool:
        return self.inner.can_speak

    def load(self) -> None:
        load_or_down(self.inner)

    def validate(self, request: GenerationRequest) -> None:
        self.inner.validate(request)
