"""A run's segments: the record of a finished segment as job_segments stores it, and the segments of one run
(those earlier attempts finished, those it committed, and the last one, written with the job's success)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from core.schema import JobSegment
from models.pipeline import MediaPipeline, Prepared, SegmentOutput
from models.planning import Settled
from models.speakers import Voices
from models.timing import Word


@dataclass(frozen=True)
class Segment:
    """A finished segment, as job_segments stores it."""

    index: int
    start_s: float
    end_s: float
    text: str
    reasoning: str | None
    engine_seconds: float
    warnings: list[str] = field(default_factory=list)
    audio_key: str | None = None
    words: list[Word] = field(default_factory=list)
    timing: str | None = None  # aligner | speech, for spoken text
    tokens: int = 0
    prompt_tokens: int = 0
    finish: str | None = None  # stop | length
    voices: Voices | None = None  # speaker evidence, kept until the whole file is clustered
    descriptions: list[dict[str, Any]] | None = None  # audio description cues found in its pauses

    @classmethod
    def of_output(cls, out: SegmentOutput, audio_key: str | None = None) -> Segment:
        return cls(
            out.index,
            out.start_s,
            out.end_s,
            out.text,
            out.reasoning,
            out.engine_seconds,
            list(out.warnings),
            audio_key,
            list(out.words),
            out.timing,
            out.tokens,
            out.prompt_tokens,
            out.finish,
            out.voices,
            [asdict(d) for d in out.descriptions] if out.descriptions is not None else None,
        )

    @classmethod
    def of(cls, row: JobSegment) -> Segment:
        words = [Word(float(a), float(b), str(w)) for a, b, w in row.words or []]
        return cls(
            row.index,
            row.start_s,
            row.end_s,
            row.text,
            row.reasoning,
            row.engine_seconds,
            list(row.warnings or []),
            row.audio_key,
            words,
            row.timing,
            row.tokens or 0,
            row.prompt_tokens or 0,
            row.finish,
            Voices.from_json(row.voices) if row.voices else None,
            row.descriptions,
        )

    def row(self, job_id: str) -> JobSegment:
        return JobSegment(
            job_id=job_id,
            index=self.index,
            start_s=self.start_s,
            end_s=self.end_s,
            text=self.text,
            reasoning=self.reasoning,
            audio_key=self.audio_key,
            warnings=self.warnings or None,
            words=[[w.start, w.end, w.text] for w in self.words] or None,
            timing=self.timing,
            tokens=self.tokens,
            engine_seconds=self.engine_seconds,
            prompt_tokens=self.prompt_tokens,
            finish=self.finish,
            voices=self.voices.to_json() if self.voices else None,
            descriptions=self.descriptions,
        )


@dataclass
class Work:
    """A run's segments: those earlier attempts finished, those this run committed, and the last one, which is
    written with the job's success."""

    prepared: Prepared
    done: list[Segment]
    committed: list[Segment] = field(default_factory=list)
    last: Segment | None = None
    last_speech: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    stopped: bool = False  # decoding stopped part-way: the segments so far are the result

    @property
    def planned(self) -> int:
        return len(self.prepared.spans)

    def segments(self) -> list[Segment]:
        found = [*self.done, *self.committed, *([self.last] if self.last else [])]
        return sorted(found, key=lambda s: s.index)


class InFlight:
    """A job's segments being worked on, oldest first: up to the pipeline's `segments_in_flight` at once (on
    threads; one runs in the caller's thread), so a continuous-batching engine gets a long job's segments together."""

    def __init__(self, pipeline: MediaPipeline, prepared: Prepared) -> None:
        self.pipeline, self.prepared = pipeline, prepared
        self.limit = max(1, pipeline.segments_in_flight)
        self._pool = ThreadPoolExecutor(self.limit, "omnimedia-segment") if self.limit > 1 else None
        self._queue: deque[tuple[Settled, Future[SegmentOutput]]] = deque()

    def start(self, settled: Settled) -> None:
        if self._pool is not None:
            future = self._pool.submit(self.pipeline.segment, self.prepared, settled.index)
        else:
            future = Future()
            try:
                future.set_result(self.pipeline.segment(self.prepared, settled.index))
            except Exception as exc:
                future.set_exception(exc)
        self._queue.append((settled, future))

    @property
    def full(self) -> bool:
        return len(self._queue) >= self.limit

    @property
    def head_done(self) -> bool:
        return bool(self._queue) and self._queue[0][1].done()

    def pop(self) -> tuple[Settled, Future[SegmentOutput]]:
        return self._queue.popleft()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def close(self) -> None:
        """Drop what has not started; wait for what has (its result is not used)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
