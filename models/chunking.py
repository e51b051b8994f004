"""Long media: find pauses, plan segments of bounded length that cut at pauses, check coverage.

`plan_segments` is a pure function of (duration, pauses, limits) so the service can checkpoint per segment
and re-plan identically after a restart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.errors import CoverageError
from models.media import SAMPLE_RATE


@dataclass(frozen=True)
class Span:
    """A [start, end) interval in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def plan_segments(
    duration_s: float, pauses: list[Span], max_len_s: float, min_len_s: float | None = None
) -> list[Span]:
    """Split [0, duration) into contiguous segments of at most max_len_s, cutting inside pauses.

    Each cut goes at the middle of the latest pause that leaves the segment at least min_len_s long
    (default: half the limit); with no such pause the cut is hard, at the limit."""
    if duration_s <= 0:
        return []
    if max_len_s <= 0:
        raise ValueError("max_len_s must be positive")
    min_len = max_len_s / 2 if min_len_s is None else min(min_len_s, max_len_s)
    cut_points = sorted((p.start + p.end) / 2 for p in pauses if 0 < (p.start + p.end) / 2 < duration_s)
    segments: list[Span] = []
    start = 0.0
    while duration_s - start > max_len_s:
        limit = start + max_len_s
        candidates = [c for c in cut_points if start + min_len <= c <= limit]
        cut = candidates[-1] if candidates else limit
        segments.append(Span(round(start, 3), round(cut, 3)))
        start = round(cut, 3)
    segments.append(Span(start, round(duration_s, 3)))
    return segments


def coverage_gaps(segments: list[Span], duration_s: float, tolerance_s: float = 0.01) -> list[Span]:
    """The parts of [0, duration) no segment covers (empty when coverage is complete)."""
    gaps: list[Span] = []
    cursor = 0.0
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.start - cursor > tolerance_s:
            gaps.append(Span(cursor, seg.start))
        cursor = max(cursor, seg.end)
    if duration_s - cursor > tolerance_s:
        gaps.append(Span(cursor, duration_s))
    return gaps


def check_coverage(segments: list[Span], duration_s: float) -> None:
    gaps = coverage_gaps(segments, duration_s)
    if gaps:
        listed = ", ".join(f"{g.start:.2f}-{g.end:.2f}s" for g in gaps[:5])
        raise CoverageError(f"segments leave {len(gaps)} gap(s) uncovered: {listed}")


_VAD_MODEL = None


def find_pauses(audio: np.ndarray, min_pause_s: float = 0.3) -> list[Span]:
    """Pauses between speech regions found by silero-vad (its model ships inside the wheel)."""
    global _VAD_MODEL
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    if _VAD_MODEL is None:
        _VAD_MODEL = load_silero_vad()
    duration = len(audio) / SAMPLE_RATE
    speech = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
        _VAD_MODEL,
        sampling_rate=SAMPLE_RATE,
        return_seconds=True,
        min_silence_duration_ms=int(min_pause_s * 1000),
    )
    pauses: list[Span] = []
    cursor = 0.0
    for region in speech:
        if region["start"] - cursor >= min_pause_s:
            pauses.append(Span(cursor, float(region["start"])))
        cursor = float(region["end"])
    if duration - cursor >= min_pause_s:
        pauses.append(Span(cursor, duration))
    return pauses
