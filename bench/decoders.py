"""The two in-process decoders the media issue weighed, on the same work in the same run: PyAV (ours:
models.media.load_media, FFmpeg's libraries bundled in its wheel) against torchcodec (PyTorch's decoder over the
system's FFmpeg; not a dependency of omnimedia: put it on PYTHONPATH to compare, e.g.
`pip install --no-deps --target /tmp/tc torchcodec && PYTHONPATH=/tmp/tc python -m bench.decoders`).

- the 60 s 1280x720 video of bench/decode.py: frames at 2 fps scaled to 640x360 and the audio at 16 kHz mono;
- a 2 s WAV (a short clip): open, decode and resample to 16 kHz mono, 20 times.
Last line: ratio=torchcodec/pyav seconds for the video, and both candidates' times (short clips in ms)."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.decode import make_video
from models.media import MediaLimits, frame_size, load_media, probe

REPEATS = 5
CLIPS = 20


def timed(work: Callable[[], object], repeats: int) -> float:
    """Median seconds of `repeats` runs of `work`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pyav_media(path: Path, limits: MediaLimits) -> tuple[int, int]:
    decoded = load_media(path, limits, info=probe(path, limits))
    assert decoded.audio is not None
    return (0 if decoded.frames is None else int(decoded.frames.shape[0])), int(decoded.audio.size)


def torchcodec_media(path: Path, size: tuple[int, int] | None, seconds: float) -> tuple[int, int]:
    """torchcodec's best shot at the same work: FFmpeg's own threads, approximate seeks, the scaling done in the
    decoder (its Resize transform), frames picked at 2 fps by time."""
    from torchcodec.decoders import AudioDecoder, VideoDecoder
    from torchcodec.transforms import Resize

    frames = 0
    if size is not None:
        width, height = size
        video = VideoDecoder(
            str(path),
            dimension_order="NHWC",
            num_ffmpeg_threads=0,
            seek_mode="approximate",
            transforms=[Resize((height, width))],
        )
        batch = video.get_frames_played_at(seconds=[i / 2 for i in range(int(seconds * 2))])
        frames = int(batch.data.shape[0])
    audio = AudioDecoder(str(path), sample_rate=16_000, num_channels=1).get_all_samples()
    return frames, int(audio.data.shape[-1])


def make_clip(path: Path) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:duration=2",
            "-ar",
            "22050",
            str(path),
        ],
        check=True,
    )


def main() -> None:
    try:
        import torchcodec
    except ImportError:  # reported, not a failure: it is not one of our dependencies
        torchcodec = None
    limits = MediaLimits(max_frame_pixels=640 * 360)
    with tempfile.TemporaryDirectory() as tmp:
        video, clip = Path(tmp) / "in.mp4", Path(tmp) / "clip.wav"
        make_video(video)
        make_clip(clip)
        info = probe(video, limits)
        size = frame_size(info.width, info.height, limits.max_frame_pixels)
        print(f"pyav: frames, samples = {pyav_media(video, limits)}")
        pyav_video = timed(lambda: pyav_media(video, limits), REPEATS)
        pyav_clip = timed(lambda: pyav_media(clip, limits), CLIPS)
        if torchcodec is None:
            print("torchcodec is not importable here: only PyAV measured")
            print(f"pyav_video_s={pyav_video:.3f} pyav_clip_ms={pyav_clip * 1000:.1f}")
            return
        print(f"torchcodec {torchcodec.__version__}: frames, samples = {torchcodec_media(video, size, 60.0)}")
        tc_video = timed(lambda: torchcodec_media(video, size, 60.0), REPEATS)
        tc_clip = timed(lambda: torchcodec_media(clip, None, 2.0), CLIPS)
        same = np.isclose(pyav_media(clip, limits)[1], torchcodec_media(clip, None, 2.0)[1], rtol=0.01)
        print(f"short clip sample counts agree within 1%: {bool(same)}")
        print(
            f"ratio={tc_video / pyav_video:.3f} pyav_video_s={pyav_video:.3f} torchcodec_video_s={tc_video:.3f} "
            f"pyav_clip_ms={pyav_clip * 1000:.1f} torchcodec_clip_ms={tc_clip * 1000:.1f}"
        )


if __name__ == "__main__":
    main()
