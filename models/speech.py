"""Talker output as 24 kHz mono WAV."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from models.engine import TALKER_SAMPLE_RATE


def wav_bytes(audio: np.ndarray, sample_rate: int = TALKER_SAMPLE_RATE) -> bytes:
    """Encode float32 mono samples as a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    clipped = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    sf.write(buffer, clipped, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
