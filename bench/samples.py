"""Make a small folder of sample media (speech, a video with that speech as its audio, a two-tone chord, an image):
speech from espeak-ng, everything else written in-process (PyAV, soundfile, Pillow), so the quick start needs no
ffmpeg binary.

python -m bench.samples OUT_DIR
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from models.decoding import SAMPLE_RATE, decode_audio

SENTENCE = "Welcome to omnimedia. This sample sentence is spoken by a speech synthesiser."


def write_speech(path: Path, text: str = SENTENCE) -> Path:
    """espeak-ng speech resampled to 16 kHz mono (espeak-ng itself writes 22.05 kHz)."""
    raw = path.with_name(path.stem + "-22k.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True, timeout=120)
    audio, _ = decode_audio(raw)
    raw.unlink()
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path


def write_video(path: Path, audio: np.ndarray, seconds: float, size: tuple[int, int] = (640, 360)) -> Path:
    """A moving test card at 25 fps (H.264) with `audio` (16 kHz mono) as its AAC track."""
    width, height = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for index in range(int(seconds * 25)):
            picture = np.zeros((height, width, 3), dtype=np.uint8)
            picture[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
            picture[:, (index * 8) % width : (index * 8) % width + 40, 1] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        chunk = 1024
        for start in range(0, audio.size, chunk):
            frame = av.AudioFrame.from_ndarray(
                audio[None, start : start + chunk].astype(np.float32), format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
            for packet in sound.encode(frame):
                out.mux(packet)
        for stream in (video, sound):
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def make_samples(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    speech = out / "speech.wav"
    if not speech.exists():
        write_speech(speech)
    if not (out / "talk.mp4").exists():
        audio, _ = sf.read(speech, dtype="float32")
        write_video(out / "talk.mp4", audio, audio.size / SAMPLE_RATE)
    if not (out / "tone.flac").exists():
        t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
        chord = 0.3 * np.sin(2 * np.pi * 262 * t) + 0.3 * np.sin(2 * np.pi * 392 * t)
        sf.write(out / "tone.flac", chord.astype(np.float32), SAMPLE_RATE)
    if not (out / "card.png").exists():
        card = Image.new("RGB", (320, 120), "white")
        ImageDraw.Draw(card).text((20, 50), "omnimedia sample card", fill="black")
        card.save(out / "card.png")
    return sorted(out.iterdir())


if __name__ == "__main__":
    for path in make_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "samples")):
        print(path)
