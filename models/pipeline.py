"""The one front door for a file's media work, as vLLM's `LLM` stands over its engine: a process-wide pipeline
(the engine, the forced aligner, and the steps that come later) with two calls.

- `prepare(path, task, params, segment_s, stored_plan)`: probe the file, check the task can use it, fit the
  segment length to the model's context, and plan the segments (or take the stored plan: a retry or resumed job
  never decodes the file again to re-plan).
- `segment(prepared, index)`: decode one segment by seeking to its span, find its speech, run the engine, time
  the words (aligner or speech-bounded), and render the talker's audio.

It knows no database, Celery or HTTP: the job runner (core.jobs.runner) claims, fences, commits and settles, and
calls these two. A new step that works on media (speakers, translated tracks, descriptions) is added here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import description, translation
from models.aligner import ForcedAligner
from models.budget import encoder_budget, segment_budget_s
from models.chunking import Span, speech_regions
from models.description import Description
from models.engine import Engine, EngineConfig, GenerationRequest
from models.language import detect_language
from models.loader import load_engine
from models.media import DecodedMedia, MediaInfo, MediaKind, MediaLimits, load_media, probe, text_media
from models.planning import Planning
from models.segments import Plan, PlanScan, load_segment
from models.speakers import SpeakerBounds, SpeakerEmbedder, Speakers, Voices, find_speakers, speech_windows
from models.speech import wav_bytes
from models.tasks import SubtitlesParams, TaskParams, TaskSpec, check_media, get_task, parse_params
from models.timing import Word, segment_words, speech_in

NO_SPEECH = "none"  # the timing of a spoken-text segment in which silero-vad heard no speech: the engine did not run


@dataclass(frozen=True)
class Prepared:
    """A file ready to be worked through segment by segment."""

    path: Path
    spec: TaskSpec
    params: TaskParams
    info: MediaInfo
    planning: Planning  # the plan, grown by a scan beside the engine until complete

    @property
    def plan(self) -> Plan:
        return self.planning.plan

    @property
    def spans(self) -> list[Span]:
        """The settled segments (all of them once the plan is complete)."""
        return self.planning.spans

    @property
    def segment_s(self) -> float:
        """The segment length planned with (the context's limit applied)."""
        return self.planning.segment_s

    @property
    def kind(self) -> MediaKind:
        return self.info.kind

    def plan_json(self) -> dict[str, Any]:
        return self.plan.to_json()

    def duration_s(self, last_end_s: float) -> float:
        """The media's length: what the plan decoded, else how far its segments reached (an image: 0)."""
        if self.info.kind is MediaKind.IMAGE:
            return 0.0
        return self.plan.duration_s if self.plan.decoded else last_end_s


@dataclass(frozen=True)
class SegmentOutput:
    """What one segment gave: its text and timing, the engine's accounting, and the talker's WAV if any."""

    index: int
    start_s: float
    end_s: float  # never past what decoded
    text: str
    reasoning: str | None
    engine_seconds: float
    warnings: list[str] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    timing: str | None = None  # aligner | speech | NO_SPEECH, for spoken text
    tokens: int = 0
    prompt_tokens: int = 0
    finish: str | None = None  # stop | length
    speech: bytes | None = None  # 24 kHz WAV
    voices: Voices | None = None  # speaker embeddings of its speech, when the job asked who spoke
    descriptions: list[Description] | None = None  # audio description cues in its pauses, when asked


@dataclass(frozen=True)
class Translated:
    """A track's lines, one per cue, and the tokens the engine read and wrote for them."""

    lines: list[str]
    prompt_tokens: int
    tokens: int


class MediaPipeline:
    """A file's media work over one engine (and aligner), loaded once per process."""

    def __init__(
        self,
        engine: Engine,
        limits: MediaLimits,
        max_model_len: int,
        max_new_tokens_cap: int,
        aligner: ForcedAligner | None = None,
        embedder: SpeakerEmbedder | None = None,
        max_item_tokens: int = 0,
        segments_in_flight: int = 1,
        segments_per_process: int = 0,
    ) -> None:
        self.segments_in_flight = segments_in_flight  # one job's segments at once
        self._slots = threading.BoundedSemaphore(segments_per_process) if segments_per_process else None
        self.max_item_tokens = max_item_tokens  # the engine's max_num_batched_tokens (0: max_model_len)
        self.engine = engine
        self.limits = limits
        self.max_model_len = max_model_len
        self.max_new_tokens_cap = max_new_tokens_cap
        self.aligner = aligner  # word times for transcripts; without it they are shared out over speech
        self.embedder = embedder or SpeakerEmbedder()  # loads on the first job that asks who spoke

    @property
    def variant(self) -> str:
        return self.engine.variant.value

    @property
    def can_speak(self) -> bool:
        return self.engine.can_speak

    def prepare(
        self,
        path: Path | None,
        task: str,
        params: dict[str, Any],
        segment_s: float,
        stored_plan: dict[str, Any] | None,
    ) -> Prepared:
        """Probe, check and start planning a file (raises MediaError, TaskInputError): a stored plan is taken as it
        is, or scanned on from where it stopped; a long file's scan runs beside the engine (`Prepared.planning`,
        closed by the caller)."""
        spec, parsed = get_task(task), parse_params(task, params)
        if path is None:  # a text-only request: one segment, no media
            check_media(spec, MediaKind.TEXT, False)
            text = text_media()
            return Prepared(
                Path(), spec, parsed, text.info, Planning(PlanScan(Path(), text.info, 1.0, self.limits), 1.0)
            )
        info = probe(path, self.limits)
        check_media(spec, info.kind, info.has_audio)
        answer = min(parsed.max_new_tokens, self.max_new_tokens_cap)
        item = encoder_budget(self.max_model_len, self.max_item_tokens)
        fits = segment_budget_s(info, self.limits, self.max_model_len, answer, item)  # the context and encoder cache
        segment_s = min(segment_s, fits or float("inf"))
        stored = Plan.from_json(stored_plan) if stored_plan else None
        planning = Planning(PlanScan(path, info, segment_s, self.limits, stored), segment_s)
        return Prepared(path, spec, parsed, info, planning)

    def segment(self, prepared: Prepared, index: int) -> SegmentOutput:
        """Decode segment `index` and run every step on it (raises MediaError when it does not decode, and the
        engine's typed errors)."""
        if self._slots is None:
            return self._segment(prepared, index)
        with self._slots:
            return self._segment(prepared, index)

    def _segment(self, prepared: Prepared, index: int) -> SegmentOutput:
        span, plan = prepared.spans[index], prepared.plan
        if prepared.kind is MediaKind.TEXT:
            media = text_media()
        else:
            media = load_segment(prepared.path, prepared.info, span, self.limits)
        end = span.end if media.kind is MediaKind.IMAGE else min(span.end, media.end_s)  # never past what decoded
        decoded = Span(span.start, round(end, 3))
        spec, params = prepared.spec, prepared.params
        speech: list[Span] = []
        if spec.spoken and media.audio is not None:  # cues follow the speech: silero-vad bounds every word
            speech = speech_in(plan.pauses, decoded) if plan.decoded else speech_regions(media.audio, span.start)
            if not speech:  # nothing said here: no words to write, and none for the model to make up
                return SegmentOutput(index, decoded.start, decoded.end, "", None, 0.0, media.warnings, timing=NO_SPEECH)
        if getattr(params, "audio_description", False):
            return self._describe(prepared, index, media, decoded)
        started = time.perf_counter()
        result = self.engine.generate(GenerationRequest(spec, params, media))
        engine_s = result.engine_seconds or (time.perf_counter() - started)
        words: list[Word] = []
        timing: str | None = None
        voices: Voices | None = None
        if speech:
            aligner = self.aligner if spec.word_timed else None
            language = getattr(params, "language", None)
            words, timing = segment_words(result.text, media.audio, decoded, speech, aligner, language)
            if getattr(params, "diarize", False) and media.audio is not None:
                windows = speech_windows(speech)
                voices = Voices(speech, windows, self.embedder.embed(media.audio, media.start_s, windows))
        return SegmentOutput(
            index,
            decoded.start,
            decoded.end,
            result.text,
            result.reasoning,
            engine_s,
            media.warnings,
            words=words,
            timing=timing,
            tokens=result.new_tokens,
            prompt_tokens=result.prompt_tokens,
            finish=result.finish,
            speech=wav_bytes(result.audio) if result.audio is not None else None,
            voices=voices,
        )

    def _describe(self, prepared: Prepared, index: int, media: DecodedMedia, decoded: Span) -> SegmentOutput:
        """Audio description of one segment: its pauses in speech long enough for a description, each described
        to fit, and with a voice the narration as a 24 kHz track as long as the segment (silence elsewhere)."""
        plan, params = prepared.plan, prepared.params
        speech: list[Span] = []
        if media.audio is not None:
            speech = speech_in(plan.pauses, decoded) if plan.decoded else speech_regions(media.audio, decoded.start)
        min_gap = getattr(params, "description_min_gap_s", description.MIN_GAP_S)
        gaps = description.description_gaps(decoded.start, decoded.end, speech, [], min_gap)
        started = time.perf_counter()
        found, placed, notes = description.describe_pauses(self.engine, prepared.spec, params, media, gaps)
        narration = None
        if params.voice is not None:
            narration = wav_bytes(description.description_track(decoded.end - decoded.start, placed, decoded.start))
        text = " ".join(d.text for d in found)
        engine_s = time.perf_counter() - started if found else 0.0
        warnings = [*media.warnings, *notes]
        return SegmentOutput(
            index, decoded.start, decoded.end, text, None, engine_s, warnings, speech=narration, descriptions=found
        )

    def translate(self, texts: list[str], source: str | None, params: TaskParams) -> Translated:
        """Subtitle lines translated into `params.target_language` (a SubtitlesParams), one out for each in:
        text-only requests of cues in batches, each with its neighbours as context, all handed to the engine
        together (it batches them)."""
        spec = get_task("subtitles")
        assert isinstance(params, SubtitlesParams)
        target = params.target_language
        parts = translation.batches(texts)
        requests = [
            GenerationRequest(
                spec, params.model_copy(update={"text": translation.batch_prompt(b, source, target)}), text_media()
            )
            for b in parts
        ]
        results = self.engine.generate_batch(requests) if requests else []
        lines: list[str] = []
        for part, result in zip(parts, results, strict=True):
            lines += translation.parse_lines(result.text, len(part.texts))
        prompt_tokens, tokens = sum(r.prompt_tokens for r in results), sum(r.new_tokens for r in results)
        return Translated(lines, prompt_tokens, tokens)

    def voice_of(self, path: Path) -> np.ndarray | None:
        """One voice's embedding from a clip of it (a named reference, an enrolled voice); None: no speech in it."""
        media = load_media(path, self.limits)
        if media.audio is None:
            return None
        return self.embedder.embed_clip(media.audio, speech_regions(media.audio, 0.0))

    def speakers(self, prepared: Prepared, voices: list[Voices], known: list[tuple[str, np.ndarray]]) -> Speakers:
        """Who spoke when over the whole file (one clustering of every segment's windows), named where a known
        voice (the request's references first, then the tenant's enrolled voices) matches."""
        params = prepared.params
        bounds = SpeakerBounds(
            getattr(params, "num_speakers", None),
            getattr(params, "min_speakers", None),
            getattr(params, "max_speakers", None),
        )
        return find_speakers(voices, bounds, known)

    @staticmethod
    def language(prepared: Prepared, text: str) -> str | None:
        """The language asked for, or for spoken text asked in none, the one its transcript is written in."""
        params = prepared.params
        asked = getattr(params, "language", None) or getattr(params, "target_language", None)
        if asked is None and prepared.spec.spoken:
            return detect_language(text)
        return asked


def build_pipeline(
    config: EngineConfig,
    aligner: str | None,
    on_batch: Callable[[int], None] | None = None,
    speaker_model: str | None = None,
) -> MediaPipeline:
    """A process's pipeline: its engine from the one loader (weights load on first use), the forced aligner beside
    it when one is configured, and the speaker model (CAM++; loaded when a job first asks who spoke)."""
    found = ForcedAligner(aligner, config.device) if aligner else None
    embedder = SpeakerEmbedder(speaker_model, config.device)
    return pipeline_over(load_engine(config, on_batch=on_batch), config, found, embedder)


def pipeline_over(
    engine: Engine, config: EngineConfig, aligner: ForcedAligner | None = None, embedder: SpeakerEmbedder | None = None
) -> MediaPipeline:
    """A pipeline over an engine already at hand (benchmarks and tests wrap engines)."""
    return MediaPipeline(
        engine,
        config.limits,
        config.max_model_len,
        config.max_new_tokens_cap,
        aligner,
        embedder,
        config.max_num_batched_tokens,
        config.segments_per_job(),
        config.segments_per_process(),
    )
