"""The cost of word timing: the forced aligner's time per audio minute against the thinker's time for the same
segments (transcribe, 32 new tokens), on the tiny checkpoints (both random, both through the real transformers
classes), in the same run. Last line: ratio=aligner/thinker seconds, and both per audio minute."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from models.aligner import ForcedAligner
from models.decoding import SAMPLE_RATE, decode_audio
from models.engine import EngineConfig, GenerationRequest
from models.fixtures.tiny import build
from models.fixtures.tiny_aligner import build_aligner
from models.loader import load_engine
from models.media import DecodedMedia, MediaInfo, MediaKind
from models.tasks import get_task, parse_params
from tests.support import speech

SEGMENT_S = float(os.environ.get("BENCH_SEGMENT_S", "30"))
SEGMENTS = int(os.environ.get("BENCH_SEGMENTS", "6"))
TEXT = "The tide came in slowly over the flat grey sand while nobody on the pier saw the boat leave. " * 3


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        thinker = load_engine(EngineConfig(str(build(tmp / "tiny")), max_new_tokens_cap=32))
        aligner = ForcedAligner(str(build_aligner(tmp / "aligner")))
        clip, _ = decode_audio(speech(tmp / "speech.wav", TEXT))
        audio = np.resize(clip, int(SEGMENT_S * SAMPLE_RATE)).astype(np.float32)  # the clip looped to a segment
        spec, params = get_task("transcribe"), parse_params("transcribe", {"max_new_tokens": 32, "language": "en"})
        media = DecodedMedia(MediaInfo(MediaKind.AUDIO, SEGMENT_S, True), audio=audio, end_s=SEGMENT_S)
        thinker.generate(GenerationRequest(spec, params, media))  # warm both up
        aligner.align(audio, TEXT, "en")
        thinker_s = aligner_s = 0.0
        for _ in range(SEGMENTS):
            started = time.perf_counter()
            text = thinker.generate(GenerationRequest(spec, params, media)).text
            thinker_s += time.perf_counter() - started
            started = time.perf_counter()
            found = aligner.align(audio, TEXT, "en")  # the words a real thinker would have transcribed
            aligner_s += time.perf_counter() - started
            assert found is not None and text is not None
    minutes = SEGMENTS * SEGMENT_S / 60
    print(f"segments={SEGMENTS} x {SEGMENT_S:.0f} s, {len(TEXT.split())} words each; tiny checkpoints on the CPU")
    print(
        f"ratio={aligner_s / thinker_s:.3f} aligner_s_per_audio_min={aligner_s / minutes:.3f} "
        f"thinker_s_per_audio_min={thinker_s / minutes:.3f}"
    )


if __name__ == "__main__":
    main()
