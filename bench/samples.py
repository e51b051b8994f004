"""Make a small folder of sample media (speech, video with audio, music-like tone, image) with ffmpeg/espeak-ng.

python -m bench.samples OUT_DIR
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def make_samples(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    speech = out / "speech.wav"
    if not speech.exists():
        raw = out / "speech-22k.wav"
        _run("espeak-ng", "-s", "150", "-w", str(raw),
             "Welcome to omnimedia. This sample sentence is spoken by a speech synthesiser.")  # fmt: skip
        _run("sox", str(raw), "-r", "16000", "-c", "1", str(speech))
        raw.unlink()
    ff = ("ffmpeg", "-y", "-v", "error", "-nostdin")
    if not (out / "talk.mp4").exists():
        _run(*ff, "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25:duration=4", "-i", str(speech),
             "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out / "talk.mp4"))  # fmt: skip
    if not (out / "tone.flac").exists():
        _run(*ff, "-f", "lavfi", "-i", "sine=frequency=262:duration=3", "-f", "lavfi", "-i",
             "sine=frequency=392:duration=3", "-filter_complex", "amix=inputs=2", str(out / "tone.flac"))  # fmt: skip
    if not (out / "card.png").exists():
        _run(*ff, "-f", "lavfi", "-i", "color=c=white:size=320x120", "-frames:v", "1", str(out / "card.png"))
    return sorted(out.iterdir())


if __name__ == "__main__":
    for path in make_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "samples")):
        print(path)
