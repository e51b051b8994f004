"""Media probing and model-ready decoding, in-process through FFmpeg's libraries (PyAV; models.containers opens,
models.decoding decodes): audio to 16 kHz mono float32, video to 2 fps frames plus its own audio track, images with
EXIF rotation applied. The kind is decided by probing, never by name.

The header's duration is a claim: what counts is what decodes. A window that decodes to less than it should
carries a warning and its real end (`DecodedMedia.end_s`), so no cue is ever placed past the decoded media."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.containers import Deadline, open_media
from models.decoding import SAMPLE_RATE, VIDEO_FPS, DecodeReport, decode_audio, decode_video
from models.errors import MediaError

__all__ = ["SAMPLE_RATE", "VIDEO_FPS"]

# Frame sides are multiples of patch (16) x merge (2) so no patch is padded.
FRAME_ALIGN = 32
IMAGE_CODECS = {"png", "mjpeg", "jpeg2000", "webp", "tiff", "bmp", "gif", "jpegls"}
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "tiff_pipe", "bmp_pipe", "gif", "jpegls_pipe"}
MAX_PLAUSIBLE_SECONDS = 7 * 24 * 3600.0
SHORT_BY_S = 0.5  # a window that decodes this much short of its end is reported (a frame's or packet's slack)


class MediaKind(str, enum.Enum):
    AUDIO = "audio"
    VIDEO = "video"
    IMAGE = "image"
    TEXT = "text"  # no media: a text-only request (a chat turn, a subtitle track's translation)


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
    """What the container says about a file (its duration is the header's claim)."""

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
    end_s: float = 0.0  # where the decoded media of this window really ends
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> MediaKind:
        return self.info.kind


def _seconds(value: int | None, base: Fraction | None) -> float | None:
    if value is None or base is None:
        return None
    seconds = float(value * base)
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def probe(path: str | Path, limits: MediaLimits | None = None) -> MediaInfo:
    """Identify a file by its content and check it against the limits; raise MediaError if unusable."""
    limits = limits or MediaLimits()
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path.name}: file not found")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: the file is empty (0 bytes)")
    with open_media(path) as container:
        return _classify(path.name, container, limits)


def _classify(name: str, container: av.container.InputContainer, limits: MediaLimits) -> MediaInfo:
    format_name = container.format.name
    audio = [s for s in container.streams.audio if s.codec_context is not None]
    video = [s for s in container.streams.video if s.codec_context is not None]
    if not audio and not video:
        raise MediaError(f"{name}: no decodable audio or video stream (format {format_name or 'unknown'})")
    single_frame = bool(video) and video[0].frames in (0, 1) and not container.duration
    still = bool(video) and not audio and video[0].codec_context.name in IMAGE_CODECS
    if still and (set(format_name.split(",")) & IMAGE_FORMATS or single_frame):
        width, height = video[0].codec_context.width, video[0].codec_context.height
        _check_pixels(name, width, height, limits)
        return MediaInfo(MediaKind.IMAGE, 0.0, False, width, height, format_name)
    durations = [_seconds(container.duration, Fraction(1, av.time_base))]
    durations += [_seconds(s.duration, s.time_base) for s in [*audio, *video]]
    known = [d for d in durations if d is not None]
    if not known:
        raise MediaError(f"{name}: the file has no readable duration")
    duration = max(known)
    if duration > MAX_PLAUSIBLE_SECONDS:
        raise MediaError(f"{name}: implausible duration in the header ({duration:.0f} s)")
    if duration < limits.min_duration_s:
        raise MediaError(f"{name}: too short ({duration:.2f} s; at least {limits.min_duration_s:.1f} s needed)")
    if duration > limits.max_duration_s:
        raise MediaError(
            f"{name}: too long ({duration / 60:.1f} min; the limit is {limits.max_duration_s / 60:.0f} min)"
        )
    real_video = [s for s in video if not s.disposition & av.stream.Disposition.attached_pic]
    if real_video:
        v = real_video[0].codec_context
        _check_frame(name, v.width, v.height, limits)
        return MediaInfo(MediaKind.VIDEO, duration, bool(audio), v.width, v.height, format_name)
    return MediaInfo(MediaKind.AUDIO, duration, True, format_name=format_name)


def frame_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Scale (width, height) to at most max_pixels, sides multiples of FRAME_ALIGN, aspect kept."""
    if width <= 0 or height <= 0:
        raise MediaError(f"invalid frame size {width}x{height}")
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    w = max(FRAME_ALIGN, int(width * scale) // FRAME_ALIGN * FRAME_ALIGN)
    h = max(FRAME_ALIGN, int(height * scale) // FRAME_ALIGN * FRAME_ALIGN)
    return w, h


def _check_pixels(name: str, width: int, height: int, limits: MediaLimits) -> None:
    if width * height > limits.max_decoded_image_pixels:
        raise MediaError(
            f"{name}: the image is {width}x{height}; at most {limits.max_decoded_image_pixels} pixels are accepted"
        )


def _check_frame(name: str, width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise MediaError(f"{name}: the video stream has no frame size")
    _check_pixels(name, width, height, limits)


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


def window_warnings(name: str, report: DecodeReport, start_s: float, end_s: float) -> list[str]:
    """What a tenant should know about a window that did not decode whole (its result still stands)."""
    found: list[str] = []
    if report.damaged_at_s is not None:
        found.append(
            f"{name}: the stream is damaged at {report.damaged_at_s:.1f} s ({report.damage}); FFmpeg decoded past it"
        )
    if end_s - report.end_s > SHORT_BY_S:
        found.append(f"{name}: decoded {report.end_s:.1f} s of {end_s:.1f} s: the file is truncated or damaged")
    return found


def load_media(
    path: str | Path,
    limits: MediaLimits | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    with_video_audio: bool = True,
    info: MediaInfo | None = None,
) -> DecodedMedia:
    """Probe and decode a file (or one [start, end) window of it) into model-ready arrays. Raises MediaError when
    the window decodes to nothing; a window that decodes short of its end carries a warning and its real end."""
    limits = limits or MediaLimits()
    path = Path(path)
    info = info or probe(path, limits)
    if info.kind is MediaKind.IMAGE:
        return DecodedMedia(info, image=decode_image(path, limits))
    end = info.duration_s if end_s is None else min(end_s, info.duration_s)
    if info.kind is MediaKind.AUDIO:
        audio, report = decode_audio(path, start_s, end, Deadline(limits.timeout_s, "audio decoding"))
        if audio.size == 0:
            raise MediaError(f"{path.name}: the audio stream decoded to no samples")
        media = DecodedMedia(info, audio=audio, start_s=start_s, end_s=report.end_s)
    else:
        size = frame_size(info.width, info.height, limits.max_frame_pixels)
        with_audio = info.has_audio and with_video_audio
        window = decode_video(path, size, start_s, end, VIDEO_FPS, with_audio, Deadline(limits.timeout_s))
        track = window.audio if window.audio is not None and window.audio.size else None
        if with_audio and track is None:
            raise MediaError(f"{path.name}: the audio track decoded to no samples")
        media = DecodedMedia(info, audio=track, frames=window.frames, start_s=start_s, end_s=window.report.end_s)
        report = window.report
    media.warnings = window_warnings(path.name, report, start_s, end)
    return media


def text_media() -> DecodedMedia:
    """The media of a text-only request: none."""
    return DecodedMedia(MediaInfo(MediaKind.TEXT, 0.0, False))
