"""A run's segments: the record of a finished segment as job_segments stores it, and the segments of one run
(those earlier attempts finished, those it committed, and the last one, written with the job's success)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.schema import JobSegment
from models.pipeline import Prepared, SegmentOutput
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

    @property
    def planned(self) -> int:
        return len(self.prepared.spans)

    def segments(self) -> list[Segment]:
        found = [*self.done, *self.committed, *([self.last] if self.last else [])]
        return sorted(found, key=lambda s: s.index)
