"""A Celery worker whose engine is a NO-OP (benchmark only): isolates queue, database, storage and media overhead.

python -m bench.noop_worker [celery worker args...]
"""

from __future__ import annotations

import sys

from models.engine import EngineConfig, GenerationRequest, GenerationResult
from models.tasks import check_media
from models.variants import Variant


class NoopEngine:
    """Benchmark-only stand-in: validates like the real engine, generates nothing."""

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


def main() -> None:
    import core.jobs.runner

    def noop_engine(config: EngineConfig, on_batch: object = None) -> NoopEngine:
        return NoopEngine()

    core.jobs.runner.load_engine = noop_engine  # type: ignore[assignment]
    from core.celery_app import app

    app.worker_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    main()
