"""A finished job's result: the record stored on the job (text, timed segments, warnings), every result format
rendered from it on request (JSON, text, SRT, WebVTT), and the files written to storage: the formats the job
asked for, and its speech (keys from core.storage.keys)."""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import replace
from typing import Any

import numpy as np
import soundfile as sf

from core import quality
from core.jobs.work import Segment
from core.storage import Storage
from core.storage.keys import output_key
from models.captions import TimedText, join_text, shape_cues, to_rttm, to_srt, to_vtt
from models.engine import TALKER_SAMPLE_RATE
from models.media import MediaKind
from models.pipeline import NO_SPEECH, MediaPipeline, Prepared
from models.speakers import Speakers
from models.speech import wav_bytes
from models.tasks import TaskSpec
from models.timing import Word

TEXT_FORMATS = ("json", "txt", "srt", "vtt", "rttm")
TIMED_FORMATS = ("srt", "vtt", "rttm")  # only for media with a timeline (rttm: only a diarized result)
CONTENT_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "rttm": "text/plain; charset=utf-8",
    "wav": "audio/wav",
}
DEFAULT_FORMATS: tuple[str, ...] = ()  # written to storage unless the job asks otherwise: none (results are rendered)


def finished_result(
    pipeline: MediaPipeline,
    prepared: Prepared,
    segments: list[Segment],
    run_warnings: list[str],
    speakers: Speakers | None = None,
) -> dict[str, Any]:
    """A finished job's result from its segments: what the media work found (duration, language, speakers) and every
    warning once (the plan's, the segments', the run's)."""
    found = [*prepared.plan.warnings, *(w for s in segments for w in s.warnings), *run_warnings]
    warnings = list(dict.fromkeys(found))
    if segments and all(s.timing == NO_SPEECH for s in segments):
        warnings.append("no speech was detected")
    duration = prepared.duration_s(max(s.end_s for s in segments))
    language = pipeline.language(prepared, " ".join(s.text for s in segments))
    kind, variant = prepared.kind, pipeline.variant
    record = result_record(prepared.spec, language, kind, duration, variant, segments, warnings, speakers)
    if getattr(prepared.params, "audio_description", False):
        return described(record, segments, getattr(prepared.params, "description_min_gap_s", 1.5))
    if kind not in (MediaKind.IMAGE, MediaKind.TEXT):  # what a person reviewing the captions should look at first
        plan = prepared.plan
        pauses = [(p.start, p.end) for p in plan.pauses] if plan.decoded else None
        record["quality"] = quality.counts(quality.check_cues(shape_cues(timed_segments(record)), pauses))
    return record


def described(record: dict[str, Any], segments: list[Segment], min_gap_s: float) -> dict[str, Any]:
    """An audio description's result: its cues (inside the pauses of speech) are the track, shown one to one."""
    cues = [d for s in segments for d in (s.descriptions or [])]
    record.update(
        segments=[{k: v for k, v in c.items() if v is not None} for c in cues],
        text=" ".join(c["text"] for c in cues),
        cue_track=True,
        audio_description=True,
    )
    if not cues:
        note = f"no pause in speech is {min_gap_s:g} s or longer: the descriptions track is empty"
        record["warnings"] = [*record.get("warnings", []), note]
    return record


def result_record(
    spec: TaskSpec,
    language: str | None,
    media_kind: MediaKind,
    duration_s: float,
    variant: str,
    segments: list[Segment],
    warnings: list[str],
    speakers: Speakers | None = None,
) -> dict[str, Any]:
    """What a finished job's result is, stored on the job; every format is rendered from it. Spoken text carries
    its words with their times in each segment (they place the cues), and for a transcript also as one list;
    `word_timing` says where the times come from: the aligner, or speech (shared out over what silero-vad heard).
    A diarized result gives every word its speaker (from the word's own time), splits segments where the speaker
    changes, and lists the speakers and their turns."""
    if speakers is not None:
        segments = [
            replace(s, words=[replace(w, speaker=speakers.label_at(w.start, w.end)) for w in s.words]) for s in segments
        ]
    timed = [TimedText(s.start_s, s.end_s, s.text) for s in segments]
    record: dict[str, Any] = {
        "text": join_text(timed),
        "reasoning": "\n\n".join(s.reasoning for s in segments if s.reasoning) or None,
        "language": language,
        "segments": [part for s in segments for part in _segment(s, speakers)],
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
    if speakers is not None:
        record["speakers"] = speakers.listing()
        record["speaker_turns"] = [[t.start, t.end, speakers.labels[t.speaker]] for t in speakers.turns]
    return record


def _segment(segment: Segment, speakers: Speakers | None) -> list[dict[str, Any]]:
    """The segment as the result shows it; diarized, one part per run of one speaker's words."""
    found: dict[str, Any] = {"start": segment.start_s, "end": segment.end_s, "text": segment.text}
    if speakers is None or not segment.words:
        if segment.words:
            found["words"] = [w.as_json() for w in segment.words]
        if speakers is not None:
            found["speaker"] = speakers.label_at(segment.start_s, segment.end_s)
        return [found]
    runs = [list(run) for _, run in itertools.groupby(segment.words, key=lambda w: w.speaker)]
    parts = []
    for index, run in enumerate(runs):
        start = segment.start_s if index == 0 else run[0].start
        end = segment.end_s if index == len(runs) - 1 else runs[index + 1][0].start
        parts.append(
            {
                "start": round(start, 3),
                "end": round(max(end, run[-1].end), 3),
                "text": " ".join(w.text for w in run),
                "speaker": run[0].speaker,
                "words": [w.as_json() for w in run],
            }
        )
    return parts


def timed_segments(result: dict[str, Any]) -> list[TimedText]:
    """A result's segments, with their words (and speakers) where it has them, for caption files."""
    return [
        TimedText(
            s["start"],
            s["end"],
            s["text"],
            tuple(Word(w["start"], w["end"], w["word"], w.get("speaker")) for w in s.get("words", [])),
            s.get("speaker"),
        )
        for s in result.get("segments", [])
    ]


def formats_for(result: dict[str, Any]) -> list[str]:
    """The text formats a result can be rendered in (no subtitles for an image; RTTM for a diarized result)."""
    timed = result.get("media_kind") not in (MediaKind.IMAGE.value, MediaKind.TEXT.value)
    found = [fmt for fmt in TEXT_FORMATS if timed or fmt not in TIMED_FORMATS]
    return [fmt for fmt in found if fmt != "rttm" or "speaker_turns" in result]


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
    if fmt == "rttm":
        return to_rttm(job_id, [(a, b, who) for a, b, who in result["speaker_turns"]]).encode("utf-8")
    shaped = bool(result.get("cue_track"))  # a translated track: its cues as they are, never re-cut
    return (to_srt(timed, shaped) if fmt == "srt" else to_vtt(timed, shaped)).encode("utf-8")


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
