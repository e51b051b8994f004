"""Opening media in-process through FFmpeg's libraries (PyAV), and only as itself.

Every open goes through `open_media`: the file protocol only, and only self-contained containers (no demuxer that
reads other files or URLs named inside the upload: hls, dash, concat, ...), whatever the file is called; the
container FFmpeg picked is checked against the same allowlist again. FFmpeg's errors become MediaError with a
reason a tenant may read (no server paths)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import av.logging

from models.errors import MediaError

ALLOWED_FORMATS = (
    "mov",
    "matroska",
    "avi",
    "mpegts",
    "mpeg",
    "flv",
    "asf",
    "ogg",
    "wav",
    "w64",
    "aiff",
    "caf",
    "au",
    "mp3",
    "flac",
    "aac",
    "ac3",
    "eac3",
    "amr",
    "wv",
    "ape",
    "gif",
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
    "tiff_pipe",
    "bmp_pipe",
    "jpegls_pipe",
)
INPUT_GUARD = {"protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_FORMATS)}
# FFmpeg reads up to 2,500 packets to describe the streams: a 2 s WAV took 3 ms to open. A few packets describe
# every container we tried (MP4, MPEG-TS, Matroska, WebM, AVI, FLAC, Ogg, M4A, WAV, MP3); a file they do not
# describe is opened again with FFmpeg's defaults.
QUICK_PROBE = {"max_probe_packets": "4"}
_DIRECTORIES = re.compile(r"/(?:[^/\s:'\"]+/)+(?=[^/\s:'\"]+)")
_logging_ready = False


class Deadline:
    """A decode's time budget: long decodes check it between packets and stop with a clear reason."""

    def __init__(self, timeout_s: float, what: str = "decoding") -> None:
        self.timeout_s = timeout_s
        self.what = what
        self._ends = time.monotonic() + timeout_s

    def check(self) -> None:
        if time.monotonic() > self._ends:
            raise MediaError(f"{self.what} took longer than {self.timeout_s:.0f} s and was stopped")


def public_reason(message: str) -> str:
    """An FFmpeg message without the folders of any path in it: reasons reach tenants, server paths must not."""
    return _DIRECTORIES.sub("", message.strip())[:300] or "no error message"


def _format_refused(logs: list[tuple[int, str, str]]) -> str | None:
    """The playlist format FFmpeg recognised and refused, from its log: off the allowlist, or (FFmpeg 8) an HLS
    playlist under a file name that is not .m3u8."""
    for _level, name, message in logs:
        if "not on whitelist" in message:
            return name or "playlist"
        if "Not detecting m3u8/hls" in message:
            return "hls"
    return None


def _ffmpeg_message(exc: av.error.FFmpegError) -> str:
    return public_reason(str(getattr(exc, "strerror", None) or exc).split("; last error log:")[0])


@contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open a local file for demuxing, as a self-contained container through the file protocol only."""
    global _logging_ready
    if not _logging_ready:  # FFmpeg's own errors are captured below; quieter levels are not worth the callbacks
        av.logging.set_level(av.logging.ERROR)
        av.logging.set_skip_repeated(False)  # every open must see its own messages, even one seen just before
        # FFmpeg's threads log damage they decode past to the "libav" loggers: into the service's logs when it has
        # them configured, never to a CLI user's terminal (the decode reports them as warnings instead).
        logging.getLogger("libav").addHandler(logging.NullHandler())
        _logging_ready = True
    name = Path(path).name
    container = _open(path, name, QUICK_PROBE)
    if not _described(container):  # a stream whose parameters come late: probe as long as FFmpeg likes
        container.close()
        container = _open(path, name, {})
    try:
        if not set(container.format.name.split(",")) & set(ALLOWED_FORMATS):
            raise MediaError(f"{name}: the {container.format.name} container is not accepted")
        yield container
    finally:
        container.close()


def _open(path: str | Path, name: str, probing: dict[str, str]) -> av.container.InputContainer:
    logs: list[tuple[int, str, str]] = []
    try:
        with av.logging.Capture() as captured:
            container = av.open(str(path), mode="r", options={**INPUT_GUARD, **probing})
        logs = list(captured)
    except av.error.FFmpegError as exc:
        logs = list(captured)
        refused = _format_refused(logs)
        if refused:
            raise _playlist(name, refused) from exc
        raise MediaError(f"{name}: not a media file FFmpeg can read ({_ffmpeg_message(exc)})") from exc
    refused = _format_refused(logs)  # FFmpeg saw a playlist, then opened the bytes as something else
    if refused:
        container.close()
        raise _playlist(name, refused)
    return container


def _described(container: av.container.InputContainer) -> bool:
    """Whether every audio stream has its sample rate and every video stream its frame size."""
    audio = all(s.codec_context is None or s.codec_context.sample_rate for s in container.streams.audio)
    video = all(
        s.codec_context is None or (s.codec_context.width and s.codec_context.height) for s in container.streams.video
    )
    return bool(audio and video)


def _playlist(name: str, kind: str) -> MediaError:
    return MediaError(
        f"{name}: it is a {kind} playlist or script that refers to other files or URLs; only self-contained media "
        "files are accepted"
    )


def ffmpeg_error(name: str, what: str, exc: av.error.FFmpegError) -> MediaError:
    return MediaError(f"{name}: {what} failed ({_ffmpeg_message(exc)})")
