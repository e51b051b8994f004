"""Plan and load the segments of one input file: the unit of work, progress and checkpointing."""

from __future__ import annotations

from pathlib import Path

from models.chunking import Span, check_coverage, find_pauses, plan_segments
from models.media import DecodedMedia, MediaInfo, MediaKind, MediaLimits, decode_audio, load_media


def plan_file(path: str | Path, info: MediaInfo, max_len: float, limits: MediaLimits) -> list[Span]:
    """Segments covering the whole file; long media is cut at pauses (silero-vad) into pieces <= max_len s.
    Decoding the whole track for pause finding gets the configured timeout, like every other decode."""
    if info.kind is MediaKind.IMAGE:
        return [Span(0.0, 0.0)]
    if info.duration_s <= max_len:
        return [Span(0.0, info.duration_s)]
    # The header's duration (checked against the limits) bounds the decode, whatever the stream really holds.
    track = decode_audio(path, 0.0, info.duration_s, limits.timeout_s) if info.has_audio else None
    pauses = find_pauses(track) if track is not None else []
    segments = plan_segments(info.duration_s, pauses, max_len)
    check_coverage(segments, info.duration_s)
    return segments


def load_segment(
    path: str | Path, info: MediaInfo, span: Span, limits: MediaLimits, with_video_audio: bool = True
) -> DecodedMedia:
    if info.kind is MediaKind.IMAGE:
        return load_media(path, limits, info=info)
    return load_media(path, limits, span.start, span.end, with_video_audio=with_video_audio, info=info)
