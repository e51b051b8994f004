"""Plan and load the segments of one input file: the unit of work, progress and checkpointing.

A plan is made once per file and stored with its job (`Plan.to_json`), so a resumed or retried job never decodes
the file again to re-plan; its segments follow from it and the segment length (`Plan.segments`), so a retry with
smaller segments re-plans from the stored pauses alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.chunking import Span, SpeechFinder, check_coverage, pauses_between, plan_segments
from models.containers import Deadline
from models.decoding import SAMPLE_RATE, AudioReader
from models.errors import MediaError
from models.media import DecodedMedia, MediaInfo, MediaKind, MediaLimits, load_media, window_warnings


@dataclass(frozen=True)
class Plan:
    """How long a file really is and where it pauses: everything its segments are cut from."""

    duration_s: float  # what decoded, when the plan decoded the file; else the header's claim
    pauses: list[Span] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    decoded: bool = False  # the duration was measured by decoding, not taken from the header

    def segments(self, max_len_s: float) -> list[Span]:
        if self.duration_s <= 0:
            return [Span(0.0, 0.0)]  # an image: one segment
        segments = plan_segments(self.duration_s, self.pauses, max_len_s)
        check_coverage(segments, self.duration_s)
        return segments

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "pauses": [[p.start, p.end] for p in self.pauses],
            "warnings": self.warnings,
            "decoded": self.decoded,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            float(data["duration_s"]),
            [Span(float(a), float(b)) for a, b in data.get("pauses", [])],
            list(data.get("warnings", [])),
            bool(data.get("decoded", False)),
        )


def plan_file(path: str | Path, info: MediaInfo, max_len: float, limits: MediaLimits) -> Plan:
    """The plan of a file. Media no longer than one segment is not decoded here (its one segment's decode tells
    its real length); longer media with audio streams its audio once, in windows, to find the pauses and its
    real length, in bounded memory, within the configured timeout."""
    path = Path(path)
    if info.kind is MediaKind.IMAGE:
        return Plan(0.0)
    if info.duration_s <= max_len or not info.has_audio:
        return Plan(info.duration_s)
    reader = AudioReader(path, 0.0, info.duration_s, Deadline(limits.timeout_s, "audio decoding for planning"))
    finder = SpeechFinder()
    for chunk in reader:
        finder.feed(chunk)
    speech = finder.finish()
    decoded_s = round(finder.samples / SAMPLE_RATE, 3)
    if decoded_s < limits.min_duration_s:
        raise MediaError(
            f"{path.name}: decoded only {decoded_s:.2f} s of the {info.duration_s:.1f} s its header claims"
        )
    warnings = window_warnings(path.name, reader.report, 0.0, info.duration_s)
    return Plan(decoded_s, pauses_between(speech, decoded_s), warnings, decoded=True)


def load_segment(
    path: str | Path, info: MediaInfo, span: Span, limits: MediaLimits, with_video_audio: bool = True
) -> DecodedMedia:
    """Decode one planned segment (seeking to it)."""
    if info.kind is MediaKind.IMAGE:
        return load_media(path, limits, info=info)
    return load_media(path, limits, span.start, span.end, with_video_audio=with_video_audio, info=info)
