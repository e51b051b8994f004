"""A finished job's result: the record stored on the job (text, timed segments, warnings), every result format
rendered from it on request (JSON, text, SRT, WebVTT), and the files written to storage: the formats the job
asked for, and its speech (keys from core.storage.keys)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import soundfile as sf

from core.jobs.work import Segment
from core.storage import Storage
from core.storage.keys import output_key
from models.captions import TimedText, join_text, to_srt, to_vtt
from models.engine import TALKER_SAMPLE_RATE
from models.media import MediaKind
from models.speech import wav_bytes
from models.tasks import TaskSpec
from models.timing import Word

TEXT_FORMATS = ("json", "txt", "srt", "vtt")
TIMED_FORMATS = ("srt", "vtt")  # only for media with a timeline
CONTENT_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "wav": "audio/wav",
}
DEFAULT_FORMATS: tuple[str, ...] = ()  # written to storage unless the job asks otherwise: none (results are rendered)


def result_record(
    spec: TaskSpec,
    language: str | None,
    media_kind: MediaKind,
    duration_s: float,
    variant: str,
    segments: list[Segment],
    warnings: list[str],
) -> dict[str, Any]:
    """What a finished job's result is, stored on the job; every format is rendered from it. Spoken text carries
    its words with their times in each segment (they place the cues), and for a transcript also as one list;
    `word_timing` says where the times come from: the aligner, or speech (shared out over what silero-vad heard)."""
    timed = [TimedText(s.start_s, s.end_s, s.text) for s in segments]
    record: dict[str, Any] = {
        "text": join_text(timed),
        "reasoning": "\n\n".join(s.reasoning for s in segments if s.reasoning) or None,
        "language": language,
        "segments": [_segment(s) for s in segments],
        "media_kind": media_kind.value,
        "duration_s": duration_s,
        "variant": variant,
        "tokens": sum(s.tokens for s in segments),
        "prompt_tokens": sum(s.prompt_tokens for s in segments),
        "finish": "length" if any(s.finish == "length" for s in segments) else "stop",
        "warnings": warnings,
    }
    if spec.spoken:
        timings = {s.timing for s in segments if s.timing and s.words}
        record["word_timing"] = timings.pop() if len(timings) == 1 else "mixed" if timings else None
    if spec.word_timed:
        record["words"] = [w.as_json() for s in segments for w in s.words]
    return record


def _segment(segment: Segment) -> dict[str, Any]:
    found: dict[str, Any] = {"start": segment.start_s, "end": segment.end_s, "text": segment.text}
    if segment.words:
        found["words"] = [w.as_json() for w in segment.words]
    return found


def timed_segments(result: dict[str, Any]) -> list[TimedText]:
    """A result's segments, with their words where it has them, for caption files."""
    return [
        TimedText(
            s["start"], s["end"], s["text"], tuple(Word(w["start"], w["end"], w["word"]) for w in s.get("words", []))
        )
        for s in result.get("segments", [])
    ]


def formats_for(result: dict[str, Any]) -> list[str]:
    """The text formats a result can be rendered in (no subtitles for an image)."""
    timed = result.get("media_kind") != MediaKind.IMAGE.value
    return [fmt for fmt in TEXT_FORMATS if timed or fmt not in TIMED_FORMATS]


def render(job_id: str, task: str, result: dict[str, Any], fmt: str) -> bytes:
    """One format of a result. Raises KeyError for a format the result has not (subtitles of an image)."""
    if fmt not in formats_for(result):
        raise KeyError(fmt)
    timed = timed_segments(result)
    if fmt == "json":
        body = {"job_id": job_id, "task": task, **{k: v for k, v in result.items() if v is not None}}
        return json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")
    if fmt == "txt":
        return (result.get("text", "") + "\n").encode("utf-8")
    return (to_srt(timed) if fmt == "srt" else to_vtt(timed)).encode("utf-8")


def write_outputs(
    storage: Storage,
    tenant: str,
    job_id: str,
    attempt: int,
    task: str,
    result: dict[str, Any],
    formats: list[str],
    speech: list[bytes | str],
) -> dict[str, str]:
    """Write the formats the job asked for, and its speech as one WAV (each segment's WAV, or the storage key it
    was written to); return the storage key of each file."""
    outputs: dict[str, str] = {}
    for fmt in (f for f in formats if f in formats_for(result)):
        outputs[fmt] = output_key(tenant, job_id, f"result.{fmt}", attempt)
        storage.put_bytes(outputs[fmt], render(job_id, task, result, fmt), CONTENT_TYPES[fmt])
    if speech:
        outputs["wav"] = output_key(tenant, job_id, "speech.wav", attempt)
        parts = [part if isinstance(part, bytes) else storage.get_bytes(part) for part in speech]
        storage.put_bytes(outputs["wav"], parts[0] if len(parts) == 1 else _join_wavs(parts), CONTENT_TYPES["wav"])
    return outputs


def _join_wavs(parts: list[bytes]) -> bytes:
    audio = [sf.read(io.BytesIO(part), dtype="float32")[0] for part in parts]
    return wav_bytes(np.concatenate(audio), TALKER_SAMPLE_RATE)
