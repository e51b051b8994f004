"""Decoding in-process (PyAV): audio to 16 kHz mono float32, streamed in chunks or as one window, and video to
frames at 2 fps with its own audio track in the same demuxing pass. A window [start, end) is reached by seeking,
never by decoding from the start. Each decode reports where its media really ended and whether the stream was
damaged, so callers can tell a short file from a truncated one (the header's duration is only a claim)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.logging
import numpy as np

from models.containers import Deadline, ffmpeg_error, open_media, public_reason
from models.errors import MediaError

SAMPLE_RATE = 16_000
VIDEO_FPS = 2.0  # the model card's evaluation setting
SPARSE_SAMPLING = 4  # at a source rate of this many times the sampling rate or more, skip non-reference frames
MAX_FRAME_GAP_S = 1.0  # ... unless that leaves gaps this long between decoded frames: then decode them all


@dataclass
class DecodeReport:
    """What a decode found: where the media it returned ends, and the first damage it decoded past."""

    end_s: float = 0.0
    damaged_at_s: float | None = None
    damage: str | None = None

    def damaged(self, at_s: float, exc: av.error.FFmpegError, logs: list[tuple[int, str, str]]) -> None:
        if self.damaged_at_s is None:
            said = next((message for _level, _name, message in logs if message.strip()), "")
            self.damaged_at_s, self.damage = at_s, public_reason(said or type(exc).__name__)


class _AudioWindow:
    """Resamples decoded frames to 16 kHz mono float32 and keeps the samples inside [start, end)."""

    def __init__(self, start_s: float, end_s: float | None) -> None:
        self.start_s, self.end_s = start_s, end_s
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self.position_s: float | None = None  # media time of the next resampled sample

    @property
    def done(self) -> bool:
        return self.end_s is not None and self.position_s is not None and self.position_s >= self.end_s

    def push(self, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
        if self.position_s is None and frame is not None:
            self.position_s = float(frame.time) if frame.time is not None else 0.0
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1)
            begin = self.position_s or 0.0
            self.position_s = begin + samples.size / SAMPLE_RATE
            lo = max(0, round((self.start_s - begin) * SAMPLE_RATE))
            hi = samples.size if self.end_s is None else min(samples.size, round((self.end_s - begin) * SAMPLE_RATE))
            if hi > lo:
                yield samples[lo:hi]

    def flush(self) -> Iterator[np.ndarray]:
        if self.position_s is not None:
            yield from self.push(None)


def _seek(container: av.container.InputContainer, stream: av.stream.Stream, start_s: float) -> None:
    if start_s > 0 and stream.time_base:
        container.seek(int(start_s / stream.time_base), stream=stream, backward=True)


class AudioReader:
    """The first audio stream of a file (or its [start, end) window) as chunks of 16 kHz mono float32; after the
    iteration, `report` says where the audio really ended and whether it was damaged."""

    def __init__(
        self, path: str | Path, start_s: float = 0.0, end_s: float | None = None, deadline: Deadline | None = None
    ) -> None:
        self.path, self.start_s, self.end_s = Path(path), start_s, end_s
        self.deadline = deadline or Deadline(120.0, "audio decoding")
        self.report = DecodeReport(end_s=start_s)

    def __iter__(self) -> Iterator[np.ndarray]:
        with open_media(self.path) as container:
            if not container.streams.audio:
                raise MediaError(f"{self.path.name}: the file has no audio stream")
            stream = container.streams.audio[0]
            window = _AudioWindow(self.start_s, self.end_s)
            logs: list[tuple[int, str, str]] = []
            try:
                with av.logging.Capture() as logs:  # FFmpeg's complaints become the report's, not stderr's
                    _seek(container, stream, self.start_s)
                    for packet in container.demux(stream):
                        self.deadline.check()
                        try:
                            frames = packet.decode()
                        except av.error.FFmpegError as exc:  # a damaged packet: FFmpeg goes on with the next one
                            self.report.damaged(window.position_s or self.start_s, exc, logs)
                            continue
                        for frame in frames:
                            yield from window.push(frame)
                        if window.done:
                            break
            except av.error.FFmpegError as exc:  # the container cannot be read past here
                if window.position_s is None:
                    raise ffmpeg_error(self.path.name, "audio decoding", exc) from exc
                self.report.damaged(window.position_s, exc, logs)
            yield from window.flush()
            end = window.position_s if window.position_s is not None else self.start_s
            self.report.end_s = max(self.start_s, end if self.end_s is None else min(end, self.end_s))


def decode_audio(
    path: str | Path, start_s: float = 0.0, end_s: float | None = None, deadline: Deadline | None = None
) -> tuple[np.ndarray, DecodeReport]:
    """The [start, end) window of the first audio stream as one 16 kHz mono float32 array."""
    reader = AudioReader(path, start_s, end_s, deadline)
    chunks = list(reader)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return audio.astype(np.float32, copy=False), reader.report


@dataclass
class VideoWindow:
    """Frames (uint8 [T, H, W, 3], T even) of a video window, its own audio if asked for, and what was found."""

    frames: np.ndarray | None
    audio: np.ndarray | None
    report: DecodeReport = field(default_factory=DecodeReport)


def decode_video(
    path: str | Path,
    size: tuple[int, int],
    start_s: float = 0.0,
    end_s: float | None = None,
    fps: float = VIDEO_FPS,
    with_audio: bool = True,
    deadline: Deadline | None = None,
) -> VideoWindow:
    """Frames at `fps` scaled to `size` (width, height) and, with `with_audio`, the first audio track, both from
    one demuxing pass over [start, end). Frames are decoded with FFmpeg's threads; only the frames kept are
    converted to RGB. Sampling sparsely, frames no other frame refers to are not decoded at all (about a fifth
    less work on typical H.264), unless a stream made of few reference frames would leave gaps: then every frame
    is decoded."""
    deadline = deadline or Deadline(120.0, "video decoding")
    window, gap_s = _decode_video(Path(path), size, start_s, end_s, fps, with_audio, deadline, skip=True)
    if gap_s > MAX_FRAME_GAP_S:
        window, _ = _decode_video(Path(path), size, start_s, end_s, fps, with_audio, deadline, skip=False)
    return window


def _decode_video(
    path: Path,
    size: tuple[int, int],
    start_s: float,
    end_s: float | None,
    fps: float,
    with_audio: bool,
    deadline: Deadline,
    skip: bool,
) -> tuple[VideoWindow, float]:
    """One decoding pass; also returns the longest gap between decoded frames in the window."""
    width, height = size
    with open_media(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path.name}: the file has no video stream")
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        rate = float(video.average_rate or video.guessed_rate or 25)
        if skip and rate >= SPARSE_SAMPLING * fps:  # only one in many frames is kept
            video.codec_context.skip_frame = "NONREF"
        audio = container.streams.audio[0] if with_audio and container.streams.audio else None
        window = _AudioWindow(start_s, end_s) if audio is not None else None
        slack = 0.5 / rate  # a frame stands for the half frame-time around it
        step = 1.0 / fps
        report = DecodeReport(end_s=start_s)
        frames: list[np.ndarray] = []
        audio_chunks: list[np.ndarray] = []
        next_s, count, video_done, last_t, gap_s = start_s, 0, False, start_s, 0.0
        logs: list[tuple[int, str, str]] = []
        try:
            with av.logging.Capture() as logs:
                _seek(container, video, start_s)
                streams = [video] if audio is None else [video, audio]
                for packet in container.demux(*streams):
                    deadline.check()
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError as exc:
                        report.damaged(max(next_s - step, start_s), exc, logs)
                        continue
                    for frame in decoded:
                        if isinstance(frame, av.AudioFrame):
                            audio_chunks.extend(window.push(frame))  # type: ignore[union-attr]
                            continue
                        if not isinstance(frame, av.VideoFrame):
                            continue
                        count += 1
                        t = float(frame.time) if frame.time is not None else start_s + count / rate
                        if t + slack < start_s or video_done:
                            continue
                        if end_s is not None and t >= end_s:
                            video_done = True
                            continue
                        gap_s, last_t = max(gap_s, t - last_t), t
                        picture: np.ndarray | None = None
                        while t + slack >= next_s and (end_s is None or next_s < end_s):
                            if picture is None:
                                picture = frame.to_ndarray(width=width, height=height, format="rgb24")
                            frames.append(picture)
                            next_s += step
                        report.end_s = max(report.end_s, t + 1.0 / rate)
                    if video_done and (window is None or window.done):
                        break
        except av.error.FFmpegError as exc:
            if not frames:
                raise ffmpeg_error(path.name, "video decoding", exc) from exc
            report.damaged(report.end_s, exc, logs)
        if window is not None:
            audio_chunks.extend(window.flush())
            report.end_s = max(report.end_s, window.position_s or start_s)
    if end_s is not None:
        report.end_s = min(report.end_s, end_s)
    if not frames:
        raise MediaError(f"{path.name}: the video stream decoded to no frames")
    if len(frames) % 2:  # the vision tower groups frames in pairs
        frames.append(frames[-1])
    track = np.concatenate(audio_chunks).astype(np.float32, copy=False) if audio_chunks else None
    return VideoWindow(np.stack(frames), track, report), gap_s
