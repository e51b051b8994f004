"""Speaker diarization cost and quality on this machine: a generated 10-minute two-speaker conversation (Festival
voices of two real people, turns of 2-6 s, gaps of 0.3-2 s) and a 75-minute file (the conversation seven and a half
times over), diarized as a job does it: segment by segment (300 s of audio decoded at a time), the speech regions
taken as the plan found them (silero-vad, not timed here), CAM++ embeddings of 1.5 s windows every 0.75 s, one
clustering of the whole file at the end. Prints the diarization error rate (pyannote.metrics, 0.25 s collar) and
peak RSS after each length. Last line: s_per_audio_hour=... der=... (goal: <= 120 s, <= 0.05)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import soundfile as sf

from models.chunking import Span, speech_regions
from models.speakers import SpeakerBounds, SpeakerEmbedder, Voices, find_speakers, speech_windows
from tests.voices import conversation, der

SEGMENT_S = 300.0


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from the current RSS


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def diarize(path: Path, speech: list[Span], embedder: SpeakerEmbedder) -> tuple[float, list[tuple[float, float, str]]]:
    """Seconds spent (embedding + clustering) and the speaker turns, reading the file a segment at a time."""
    info = sf.info(path)
    spent, voices = 0.0, []
    start = 0.0
    while start < info.duration:
        end = min(start + SEGMENT_S, info.duration)
        audio, _ = sf.read(path, start=int(start * 16000), stop=int(end * 16000), dtype="float32")
        mine = [Span(max(r.start, start), min(r.end, end)) for r in speech if r.end > start and r.start < end]
        began = time.perf_counter()
        windows = speech_windows(mine)
        voices.append(Voices(mine, windows, embedder.embed(audio, start, windows)))
        spent += time.perf_counter() - began
        start = end
    began = time.perf_counter()
    speakers = find_speakers(voices, SpeakerBounds(), [])
    spent += time.perf_counter() - began
    return spent, [(t.start, t.end, speakers.labels[t.speaker]) for t in speakers.turns]


def main() -> None:
    embedder = SpeakerEmbedder()
    embedder.load()
    with tempfile.TemporaryDirectory() as tmp:
        ten = Path(tmp) / "ten.wav"
        said = conversation(ten, ["kal", "slt"], 120, seed=5)
        audio, _ = sf.read(ten, dtype="float32")
        seconds = len(audio) / 16000
        speech = speech_regions(audio, 0.0)
        long, repeats = Path(tmp) / "long.wav", 7.5
        with sf.SoundFile(long, "w", 16000, 1) as out:  # written a copy at a time: never whole in memory
            for copy in range(8):
                out.write(audio[: int(len(audio) * min(1.0, repeats - copy))])
        long_speech = [
            Span(r.start + k * seconds, r.end + k * seconds)
            for k in range(8)
            for r in speech
            if r.end + k * seconds <= seconds * repeats
        ]
        del audio
        _reset_peak()
        spent, turns = diarize(ten, speech, embedder)
        short_peak = _peak_mb()
        error = der(said, turns)
        per_hour = spent / (seconds / 3600)
        print(
            f"{seconds / 60:.1f} min: {spent:.1f} s ({per_hour:.0f} s per audio hour), DER {error:.4f}, "
            f"peak RSS {short_peak:.0f} MB",
            flush=True,
        )
        _reset_peak()
        long_spent, _ = diarize(long, long_speech, embedder)
        long_peak = _peak_mb()
        long_per_hour = long_spent / (seconds * repeats / 3600)
        print(
            f"{seconds * repeats / 60:.0f} min: {long_spent:.1f} s ({long_per_hour:.0f} s per audio hour), "
            f"peak RSS {long_peak:.0f} MB",
            flush=True,
        )
    print(
        f"s_per_audio_hour={per_hour:.1f} der={error:.4f} long_s_per_audio_hour={long_per_hour:.1f} "
        f"peak_rss_10min_mb={short_peak:.0f} peak_rss_75min_mb={long_peak:.0f}"
    )


if __name__ == "__main__":
    main()
