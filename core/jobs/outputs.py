"""A finished job's outputs: result files rendered from its segments and written to storage (keys from
core.storage.keys), and the result record stored on the job."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile as sf

from core.schema import JobSegment
from core.storage import Storage
from core.storage.keys import output_key
from models.captions import TimedText, join_text, to_json, to_srt, to_vtt
from models.engine import TALKER_SAMPLE_RATE
from models.media import MediaInfo, MediaKind
from models.speech import wav_bytes
from models.tasks import TaskSpec
from models.variants import Variant


def write_outputs(
    storage: Storage,
    tenant: str,
    job_id: str,
    attempt: int,
    spec: TaskSpec,
    info: MediaInfo,
    variant: Variant,
    segments: list[JobSegment],
) -> tuple[dict[str, str], dict[str, Any]]:
    """Write JSON, text, and for timed media SRT and VTT (and the joined speech WAV, if any); return the storage
    key of each format and the job's result record."""
    timed = [TimedText(s.start_s, s.end_s, s.text) for s in segments]
    reasoning = "\n\n".join(s.reasoning for s in segments if s.reasoning) or None
    meta: dict[str, Any] = {"job_id": job_id, "task": spec.name.value, "media_kind": info.kind.value,
                            "duration_s": info.duration_s, "variant": variant.value}  # fmt: skip
    if reasoning:
        meta["reasoning"] = reasoning
    files = {
        "json": ("result.json", to_json(timed, **meta), "application/json"),
        "txt": ("result.txt", join_text(timed) + "\n", "text/plain; charset=utf-8"),
    }
    if info.kind is not MediaKind.IMAGE:
        files["srt"] = ("result.srt", to_srt(timed), "application/x-subrip")
        files["vtt"] = ("result.vtt", to_vtt(timed), "text/vtt")
    outputs: dict[str, str] = {}
    for fmt, (name, body, content_type) in files.items():
        outputs[fmt] = output_key(tenant, job_id, name, attempt)
        storage.put_bytes(outputs[fmt], body.encode("utf-8"), content_type)
    audio_keys = [s.audio_key for s in segments if s.audio_key]
    if audio_keys:
        outputs["wav"] = output_key(tenant, job_id, "speech.wav", attempt)
        storage.put_bytes(outputs["wav"], _join_wavs(storage, audio_keys), "audio/wav")
    result = {
        "text": join_text(timed),
        "reasoning": reasoning,
        "segments": [{"start": t.start, "end": t.end, "text": t.text} for t in timed],
        "media_kind": info.kind.value,
        "duration_s": info.duration_s,
        "variant": variant.value,
    }
    return outputs, result


def _join_wavs(storage: Storage, keys: list[str]) -> bytes:
    parts = [sf.read(io.BytesIO(storage.get_bytes(k)), dtype="float32")[0] for k in keys]
    return wav_bytes(np.concatenate(parts), TALKER_SAMPLE_RATE)
