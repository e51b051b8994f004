"""Plan and load the segments of one input file: the unit of work, progress and checkpointing.

A plan is made once per file and stored with its job (`Plan.to_json`), so a resumed or retried job never decodes
the file again to re-plan; its segments follow from it and the segment length (`Plan.segments`), so a retry with
smaller segments re-plans from the stored pauses alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.chunking import Span, SpeechFinder, check_coverage, pauses_between, plan_segments
from models.containers import Deadline
from models.decoding import AudioReader
from models.errors import MediaError
from models.media import DecodedMedia, MediaInfo, MediaKind, MediaLimits, load_media, window_warnings


@dataclass(frozen=True)
class Plan:
    """How long a file really is and where it pauses: everything its segments are cut from."""

    duration_s: float  # what decoded, when the plan decoded the file; else the header's claim; scanning: how far
    pauses: list[Span] = field(default_factory=list)  # scanning: the last may be a silence that runs on
    warnings: list[str] = field(default_factory=list)
    decoded: bool = False  # the duration was measured by decoding, not taken from the header
    complete: bool = True  # False while the file is still being scanned: only its settled segments are known
    speech_end_s: float = 0.0  # scanning: where the last speech heard so far ends

    def segments(self, max_len_s: float) -> list[Span]:
        """The segments of the file, or of a plan still scanning, those whose ends are settled."""
        if not self.complete:
            return plan_segments(self.duration_s, self.pauses, max_len_s, open_from_s=self.speech_end_s)
        if self.duration_s <= 0:
            return [Span(0.0, 0.0)]  # an image: one segment
        segments = plan_segments(self.duration_s, self.pauses, max_len_s)
        check_coverage(segments, self.duration_s)
        return segments

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "duration_s": self.duration_s,
            "pauses": [[p.start, p.end] for p in self.pauses],
            "warnings": self.warnings,
            "decoded": self.decoded,
        }
        if not self.complete:
            data.update(complete=False, speech_end_s=self.speech_end_s)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            float(data["duration_s"]),
            [Span(float(a), float(b)) for a, b in data.get("pauses", [])],
            list(data.get("warnings", [])),
            bool(data.get("decoded", False)),
            bool(data.get("complete", True)),
            float(data.get("speech_end_s", 0.0)),
        )


def plan_file(path: str | Path, info: MediaInfo, max_len: float, limits: MediaLimits) -> Plan:
    """The whole plan of a file, in this thread (models.planning streams it beside the engine instead)."""
    scan = PlanScan(Path(path), info, max_len, limits)
    if scan.plan.complete:
        return scan.plan
    for _plan in scan.run():
        pass
    return scan.plan


class PlanScan:
    """A file's plan as its audio is scanned. Media no longer than one segment is not decoded (its one segment's
    decode tells its real length); longer media with audio streams its audio once, in windows, to find the pauses
    and its real length, in bounded memory, within the configured timeout. A scan can go on from a stored partial
    plan (`start`): it seeks to where that one stopped."""

    def __init__(self, path: Path, info: MediaInfo, max_len: float, limits: MediaLimits, start: Plan | None = None):
        self.path, self.info, self.limits = path, info, limits
        if start is not None:
            self.plan = start
        elif info.kind is MediaKind.IMAGE:
            self.plan = Plan(0.0)
        elif info.duration_s <= max_len or not info.has_audio:
            self.plan = Plan(info.duration_s)
        else:
            self.plan = Plan(0.0, decoded=True, complete=False)

    def run(self, stopped: Callable[[], bool] = lambda: False) -> Iterator[Plan]:
        """Scan on, yielding the plan each time it grows (the last one complete); stops early when `stopped()`."""
        begun = self.plan
        if begun.complete:
            return
        heard = [p for p in begun.pauses if p.end <= begun.speech_end_s]  # closed pauses: a silence may run on
        deadline = Deadline(self.limits.timeout_s, "audio decoding for planning")
        reader = AudioReader(self.path, begun.duration_s, self.info.duration_s, deadline)
        finder = SpeechFinder(offset_s=begun.duration_s)
        for chunk in reader:
            if finder.feed(chunk):
                if stopped():
                    return
                self.plan = self._grown(begun, heard, finder.regions, finder.heard_to_s)
                yield self.plan
        speech = finder.finish()
        decoded_s = round(finder.heard_to_s, 3)
        if decoded_s < self.limits.min_duration_s:
            claimed = self.info.duration_s
            raise MediaError(
                f"{self.path.name}: decoded only {decoded_s:.2f} s of the {claimed:.1f} s its header claims"
            )
        pauses = [*heard, *pauses_between(speech, decoded_s, from_s=begun.speech_end_s)]
        warnings = [*begun.warnings, *window_warnings(self.path.name, reader.report, 0.0, self.info.duration_s)]
        self.plan = Plan(decoded_s, pauses, warnings, decoded=True)
        yield self.plan

    @staticmethod
    def _grown(begun: Plan, heard: list[Span], regions: list[Span], heard_to_s: float) -> Plan:
        speech_end = regions[-1].end if regions else begun.speech_end_s
        pauses = [*heard, *pauses_between(regions, heard_to_s, from_s=begun.speech_end_s)]
        return Plan(round(heard_to_s, 3), pauses, begun.warnings, True, False, speech_end)


def load_segment(
    path: str | Path, info: MediaInfo, span: Span, limits: MediaLimits, with_video_audio: bool = True
) -> DecodedMedia:
    """Decode one planned segment (seeking to it)."""
    if info.kind is MediaKind.IMAGE:
        return load_media(path, limits, info=info)
    return load_media(path, limits, span.start, span.end, with_video_audio=with_video_audio, info=info)
