"""Our decode of a 60 s 1280x720 video (2 fps frames + 16 kHz mono audio) against the raw ffmpeg CLI doing the
same work into raw files, measured in the same run. Last line: ratio=ours/baseline (goal <= 1.1)."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from models.media import MediaLimits, frame_size, load_media, probe

REPEATS = 5


def make_video(path: Path) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25:duration=60",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=60",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )


def main() -> None:
    limits = MediaLimits(max_frame_pixels=640 * 360)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "in.mp4"
        make_video(video)
        info = probe(video, limits)
        w, h = frame_size(info.width, info.height, limits.max_frame_pixels)
        baseline_cmd = [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(video),
            "-map",
            "0:v:0",
            "-vf",
            f"fps=2,scale={w}:{h}",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            str(Path(tmp) / "frames.raw"),
            "-map",
            "0:a:0",
            "-ac",
            "1",
            "-ar",
            "16000",
            "-f",
            "f32le",
            str(Path(tmp) / "audio.raw"),
        ]
        ours, baseline = [], []
        for _ in range(REPEATS):
            start = time.perf_counter()
            subprocess.run(baseline_cmd, check=True)
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            decoded = load_media(video, limits, info=info)
            ours.append(time.perf_counter() - start)
        assert decoded.frames is not None and decoded.audio is not None
        ours_s, base_s = statistics.median(ours), statistics.median(baseline)
        print(f"frames={decoded.frames.shape} audio_samples={decoded.audio.size} (median of {REPEATS})")
        print(f"ratio={ours_s / base_s:.3f} ours_s={ours_s:.3f} baseline_s={base_s:.3f}")


if __name__ == "__main__":
    main()
