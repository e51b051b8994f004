"""The described copy of a video: the programme with its audio-description narration mixed in (the programme's
audio ducked under it) as one more audio stream, every source stream copied packet for packet (models.description).
Written to storage beside the job's other outputs."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from core.config import Settings
from core.schema import Job
from core.storage import Storage
from core.storage.keys import output_key
from models.decoding import SAMPLE_RATE, decode_audio
from models.description import OUTPUT_RATE, ducked_mix, remux_with_description


def described_copy(
    storage: Storage, settings: Settings, job: Job, attempt: int, source: Path, narration_key: str
) -> str:
    """Mix, remux and store the described copy; its storage key."""
    narration, _rate = sf.read(io.BytesIO(storage.get_bytes(narration_key)), dtype="float32")
    programme, _report = decode_audio(source)
    positions = np.arange(int(programme.size * OUTPUT_RATE / SAMPLE_RATE)) * SAMPLE_RATE / OUTPUT_RATE
    programme = np.interp(positions, np.arange(programme.size), programme).astype(np.float32)
    mixed = ducked_mix(programme, np.asarray(narration, dtype=np.float32).reshape(-1))
    key = output_key(job.tenant, job.id, "described.mp4", attempt)
    with tempfile.TemporaryDirectory(prefix="omnimedia-described-") as tmp:
        out = Path(tmp) / "described.mp4"
        remux_with_description(source, mixed, out)
        with out.open("rb") as body:
            storage.upload_stream(key, body, max_bytes=settings.max_upload_bytes * 2, content_type="video/mp4")
    return key
