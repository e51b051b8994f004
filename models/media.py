"""Media probing and decoding with ffmpeg: audio to 16 kHz mono float32, video to 2 fps frames plus its
own audio track, images with EXIF rotation applied. The media kind is decided by probing, never by name."""

from __future__ import annotations

import enum
import json
import math
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ffmpeg
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import MediaError

SAMPLE_RATE = 16_000
VIDEO_FPS = 2.0  # the model card's evaluation setting
# Frame sides are multiples of patch (16) x merge (2) so no patch is padded.
FRAME_ALIGN = 32
IMAGE_CODECS = {"png", "mjpeg", "jpeg2000", "webp", "tiff", "bmp", "gif", "jpegls"}
IMAGE_FORMATS = {
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
    "tiff_pipe",
    "bmp_pipe",
    "gif",
    "jpegls_pipe",
}
MAX_PLAUSIBLE_SECONDS = 7 * 24 * 3600.0
# Only self-contained containers are opened, and only through the file protocol: never a demuxer that reads other
# files or URLs named inside the upload (hls, dash, concat, ...), whatever the file is called.
ALLOWED_FORMATS = (
    "mov", "matroska", "avi", "mpegts", "mpeg", "flv", "asf", "ogg", "wav", "w64", "aiff", "caf", "au", "mp3",
    "flac", "aac", "ac3", "eac3", "amr", "wv", "ape", "gif", "image2", "png_pipe", "jpeg_pipe", "webp_pipe",
    "tiff_pipe", "bmp_pipe", "jpegls_pipe",
)  # fmt: skip
INPUT_GUARD = {"protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_FORMATS)}
_NOT_ALLOWED = re.compile(r"\[(\w+) @ [^\]]*\] Format not on whitelist")


class MediaKind(str, enum.Enum):
    AUDIO = "audio"
    VIDEO = "video"
    IMAGE = "image"


@dataclass(frozen=True)
class MediaLimits:
    """Bounds applied to every input."""

    min_duration_s: float = 0.5
    max_duration_s: float = 4 * 3600.0
    max_frame_pixels: int = 640 * 360
    max_image_pixels: int = 1280 * 1280  # what the model sees: larger images are scaled down to this
    max_decoded_image_pixels: int = 40_000_000  # what is decoded at all: checked from the header first
    timeout_s: float = 120.0


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file."""

    kind: MediaKind
    duration_s: float  # 0.0 for images
    has_audio: bool
    width: int = 0
    height: int = 0
    format_name: str = ""


@dataclass
class DecodedMedia:
    """Model-ready media. Exactly one of audio-only, video (frames + optional audio) or image is set."""

    info: MediaInfo
    audio: np.ndarray | None = None  # float32 mono at SAMPLE_RATE
    frames: np.ndarray | None = None  # uint8 [T, H, W, 3], T even
    image: Image.Image | None = None
    fps: float = VIDEO_FPS
    start_s: float = 0.0
    end_s: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> MediaKind:
        return self.info.kind


def _run(cmd: list[str], timeout_s: float, what: str) -> bytes:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what} took longer than {timeout_s:.0f} s and was stopped") from exc
    if proc.returncode != 0:
        refused = _NOT_ALLOWED.search(proc.stderr.decode("utf-8", "replace"))
        if refused:
            raise MediaError(
                f"it is a {refused.group(1)} playlist or script that refers to other files or URLs; "
                "only self-contained media files are accepted"
            )
        raise MediaError(f"{what} failed: {_last_line(proc.stderr)}")
    return proc.stdout


_DIRECTORIES = re.compile(r"/(?:[^/\s:'\"]+/)+(?=[^/\s:'\"]+)")


def _last_line(stderr: bytes) -> str:
    """ffmpeg's last message, with the folders of any path removed: reasons reach tenants, server paths must not."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return _DIRECTORIES.sub("", lines[-1])[:300] if lines else "no error message"


def _float(value: object) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def probe(path: str | Path, limits: MediaLimits | None = None) -> MediaInfo:
    """Identify a file by its content and check it against the limits; raise MediaError if unusable."""
    limits = limits or MediaLimits()
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path.name}: file not found")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: the file is empty (0 bytes)")
    guard = [arg for option, value in INPUT_GUARD.items() for arg in (f"-{option}", value)]
    cmd = ["ffprobe", "-v", "error", *guard, "-show_format", "-show_streams", "-of", "json", str(path)]
    try:
        raw = _run(cmd, limits.timeout_s, "ffprobe")
        data = json.loads(raw or b"{}")
    except MediaError as exc:
        raise MediaError(f"{path.name}: not a media file ffmpeg can read ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise MediaError(f"{path.name}: ffprobe returned unreadable output") from exc
    return _classify(path.name, data, limits)


def _classify(name: str, data: dict, limits: MediaLimits) -> MediaInfo:
    fmt = data.get("format", {})
    streams = data.get("streams", [])
    format_name = str(fmt.get("format_name", ""))
    audio = [s for s in streams if s.get("codec_type") == "audio" and s.get("codec_name")]
    video = [s for s in streams if s.get("codec_type") == "video" and s.get("codec_name")]
    if not audio and not video:
        raise MediaError(f"{name}: no decodable audio or video stream (format {format_name or 'unknown'})")
    is_image = (
        bool(video)
        and not audio
        and video[0].get("codec_name") in IMAGE_CODECS
        and (format_name in IMAGE_FORMATS or _single_frame(video[0], fmt))
    )
    if is_image:
        v = video[0]
        width, height = int(v.get("width", 0)), int(v.get("height", 0))
        _check_pixels(name, width, height, limits)
        return MediaInfo(MediaKind.IMAGE, 0.0, False, width, height, format_name)
    durations = [_float(fmt.get("duration"))] + [_float(s.get("duration")) for s in streams]
    known = [d for d in durations if d is not None]
    if not known:
        raise MediaError(f"{name}: the file has no readable duration")
    duration = max(known)
    if duration > MAX_PLAUSIBLE_SECONDS or duration <= 0:
        raise MediaError(f"{name}: implausible duration in the header ({duration:.0f} s)")
    if duration < limits.min_duration_s:
        raise MediaError(f"{name}: too short ({duration:.2f} s; at least {limits.min_duration_s:.1f} s needed)")
    if duration > limits.max_duration_s:
        raise MediaError(
            f"{name}: too long ({duration / 60:.1f} min; the limit is {limits.max_duration_s / 60:.0f} min)"
        )
    real_video = [s for s in video if s.get("disposition", {}).get("attached_pic") != 1]
    if real_video:
        v = real_video[0]
        return MediaInfo(
            MediaKind.VIDEO,
            duration,
            bool(audio),
            int(v.get("width", 0)),
            int(v.get("height", 0)),
            format_name,
        )
    return MediaInfo(MediaKind.AUDIO, duration, True, format_name=format_name)


def _single_frame(stream: dict, fmt: dict) -> bool:
    frames = stream.get("nb_frames")
    return frames in ("1", 1) or (fmt.get("duration") is None and stream.get("codec_name") in IMAGE_CODECS)


def _input_options(start_s: float, end_s: float | None) -> dict[str, float | str]:
    """ffmpeg input options: the guard (self-contained containers, the file protocol only) and the time window."""
    options: dict[str, float | str] = dict(INPUT_GUARD)
    if start_s > 0:
        options["ss"] = start_s
    if end_s is not None:
        options["t"] = max(end_s - start_s, 0.0)
    return options


def decode_audio(
    path: str | Path, start_s: float = 0.0, end_s: float | None = None, timeout_s: float = 120.0
) -> np.ndarray:
    """Decode the first audio stream to 16 kHz mono float32 (optionally a [start, end) window)."""
    cmd = (
        ffmpeg.input(str(path), **_input_options(start_s, end_s))
        .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=SAMPLE_RATE, map="0:a:0")
        .global_args("-v", "error", "-nostdin")
        .compile()
    )
    raw = _run(cmd, timeout_s, "audio decoding")
    audio = np.frombuffer(raw, dtype=np.float32).copy()
    if audio.size == 0:
        raise MediaError(f"{Path(path).name}: the audio stream decoded to no samples")
    return audio


def frame_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Scale (width, height) to at most max_pixels, sides multiples of FRAME_ALIGN, aspect kept."""
    if width <= 0 or height <= 0:
        raise MediaError(f"invalid frame size {width}x{height}")
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    w = max(FRAME_ALIGN, int(width * scale) // FRAME_ALIGN * FRAME_ALIGN)
    h = max(FRAME_ALIGN, int(height * scale) // FRAME_ALIGN * FRAME_ALIGN)
    return w, h


def decode_frames(
    path: str | Path,
    info: MediaInfo,
    limits: MediaLimits,
    start_s: float = 0.0,
    end_s: float | None = None,
    fps: float = VIDEO_FPS,
) -> np.ndarray:
    """Decode frames at `fps` into uint8 [T, H, W, 3] with bounded pixels and an even T."""
    w, h = frame_size(info.width, info.height, limits.max_frame_pixels)
    cmd = (
        ffmpeg.input(str(path), **_input_options(start_s, end_s))
        .video.filter("fps", fps=fps)
        .filter("scale", w, h)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .global_args("-v", "error", "-nostdin")
        .compile()
    )
    raw = _run(cmd, limits.timeout_s, "video decoding")
    frame_bytes = w * h * 3
    count = len(raw) // frame_bytes
    if count == 0:
        raise MediaError(f"{Path(path).name}: the video stream decoded to no frames")
    frames = np.frombuffer(bytearray(raw[: count * frame_bytes]), dtype=np.uint8).reshape(count, h, w, 3)
    if count % 2:  # the vision tower groups frames in pairs
        frames = np.concatenate([frames, frames[-1:]], axis=0)
    return frames


def _check_pixels(name: str, width: int, height: int, limits: MediaLimits) -> None:
    if width * height > limits.max_decoded_image_pixels:
        raise MediaError(
            f"{name}: the image is {width}x{height}; at most {limits.max_decoded_image_pixels} pixels are accepted"
        )


def decode_image(path: str | Path, limits: MediaLimits) -> Image.Image:
    """Open an image, apply its EXIF rotation, convert to RGB and bound its pixel count. The size is checked from
    the header before a pixel is decoded."""
    name = Path(path).name
    try:
        with Image.open(path) as img:
            _check_pixels(name, img.width, img.height, limits)
            img.load()
            rotated = ImageOps.exif_transpose(img) or img
            image = rotated.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"{name}: the image cannot be decoded ({exc})") from exc
    if image.width * image.height > limits.max_image_pixels:
        scale = math.sqrt(limits.max_image_pixels / (image.width * image.height))
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    return image


def load_media(
    path: str | Path,
    limits: MediaLimits | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    with_video_audio: bool = True,
    info: MediaInfo | None = None,
) -> DecodedMedia:
    """Probe and decode a file (or one [start, end) window of it) into model-ready arrays."""
    limits = limits or MediaLimits()
    info = info or probe(path, limits)
    end = info.duration_s if end_s is None else min(end_s, info.duration_s)
    if info.kind is MediaKind.IMAGE:
        return DecodedMedia(info, image=decode_image(path, limits))
    if info.kind is MediaKind.AUDIO:
        audio = decode_audio(path, start_s, end, limits.timeout_s)
        return DecodedMedia(info, audio=audio, start_s=start_s, end_s=end)
    # Video: frames and the audio track decode in parallel ffmpeg processes.
    with ThreadPoolExecutor(max_workers=2) as pool:
        frames_f = pool.submit(decode_frames, path, info, limits, start_s, end)
        audio_f = (
            pool.submit(decode_audio, path, start_s, end, limits.timeout_s)
            if info.has_audio and with_video_audio
            else None
        )
        frames = frames_f.result()
        track = audio_f.result() if audio_f is not None else None
    return DecodedMedia(info, audio=track, frames=frames, start_s=start_s, end_s=end)
